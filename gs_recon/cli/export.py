"""Re-export a finished run, or a subset of its objects, in one format.

    gs-recon export RUN_DIR --format ply|splat|spz|glb [--objects 1,3] [--out DIR]

ply / splat / spz: 3DGS Gaussians in the input's world frame, one file per object plus, with --objects,
             DIR/splats/selection.<fmt> holding exactly those objects (without --objects: the whole
             scene, background and every object).
glb:         the objects' TSDF meshes as one glTF scene (one named node per object) at DIR/selection.glb;
             meshes already under RUN_DIR/meshes are reused, missing ones are extracted (--mesh.* options
             apply; defaults are the run's saved config).
DIR defaults to RUN_DIR/export.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from ..errors import SceneError
from ..heap import imports_paused
from ..config.options import ConfigArgs, parse
from .args import run_default


@dataclasses.dataclass
class ExportArgs:
    # a finished run: the output folder of gs-recon train (holds scene.json)
    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    format: Literal["ply", "splat", "spz", "glb"]  # 3DGS .ply, antimatter15 .splat, Niantic .spz, or the meshes as one glTF scene
    cfg: ConfigArgs
    objects: Optional[str] = None  # comma-separated object ids; none: everything
    out: Optional[str] = None  # output folder; none: RUN_DIR/export


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        a = parse(ExportArgs, argv, run_default(ExportArgs, argv, format=tyro.MISSING), "gs-recon export", __doc__)
        with imports_paused():  # gs_recon/heap.py
            from ..export.scene_export import export_selection
            from ..run.manifest import open_run, parse_ids

        run = open_run(a.run_dir, cfg=a.cfg)
        objs = parse_ids(a.objects, run.scene)
        out = Path(a.out) if a.out else run.path / "export"
        files = export_selection(run, a.format, objs, out)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for f in files:
        print(f"  {f}")
    return 0
