"""Estimate camera poses for a folder of photos (structure from motion with pycolmap).

    gs-recon pose SCENE_DIR [--exhaustive_max 150] [--seed 0]

Reads SCENE_DIR/images/, writes SCENE_DIR/sparse/0/ (COLMAP binary model: cameras, images, points). After
it the folder trains like any COLMAP scene. `gs-recon train` does the same step by itself when a scene has
photos but no cameras (--data.sfm false turns that off).
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Annotated

import tyro

from ..errors import SceneError
from ..heap import imports_paused
from ..config.options import parse


@dataclasses.dataclass
class PoseArgs:
    # a folder with images/ (and no cameras yet)
    scene_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SCENE_DIR")]
    exhaustive_max: int = 150  # up to this many photos every pair is matched; above, sequential matching
    seed: int = 0  # COLMAP mapper's random seed
    no_progress: bool = False  # no progress lines


def main(argv=None) -> int:
    from pathlib import Path

    with imports_paused():  # torch, pycolmap (gs_recon/heap.py)
        from ..data.sfm import estimate_poses

    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(PoseArgs, argv, PoseArgs(scene_dir=tyro.MISSING), "gs-recon pose", __doc__)
    try:
        if not Path(a.scene_dir).is_dir():
            raise SceneError(f"{a.scene_dir}: scene folder not found")
        r = estimate_poses(Path(a.scene_dir), exhaustive_max=a.exhaustive_max, seed=a.seed,
                           progress=not a.no_progress)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if r["unregistered"]:
        print(f"not registered ({len(r['unregistered'])}): {', '.join(r['unregistered'][:10])}"
              f"{' ...' if len(r['unregistered']) > 10 else ''}")
    return 0
