"""Generate a synthetic multi-object scene with ground truth (see gs_recon.data.synthetic).

    gs-recon make-scene OUT [--meshes a.obj b.obj] [--objects 3] [--views 24] [--arc 360]
        [--test_views 0] [--width 128] [--height 96] [--no_priors] [--exemplars DIR]

--exemplars DIR also writes an exemplar library for the scene's objects (DIR/<name>/*.ply: procedural
variants of the primitives, other real meshes of the same kind for real ones, never the exact shapes
placed) for `--prior.model exemplar:DIR` (see docs/PRIOR.md).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, List, Literal, Optional

import tyro

from ..config.options import parse
from ..heap import imports_paused


@dataclasses.dataclass
class MakeSceneArgs:
    out: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")]
    meshes: List[str] = dataclasses.field(default_factory=list)  # real meshes to place (default: primitives)
    objects: int = 3  # number of objects when no meshes are given
    views: int = 24  # training cameras
    arc: float = 360.0  # degrees of the training-camera arc
    test_views: int = 0  # extra test cameras all around (0: every 8th arc view)
    width: int = 128
    height: int = 96
    no_priors: bool = False  # do not write depth/ and normal/
    points: int = 3000  # SfM-like points (COLMAP points3D, and sparse_pc.ply named by transforms.json)
    points_min_views: int = 2
    """points only where this many training views see the surface, coloured from them (as SfM triangulates);
    0: on every surface, seen or not, in the meshes' base colours (before 2026-11-28)"""
    seed: int = 0  # object placement, camera jitter and the points' sampling
    # default: README input contract (COLMAP + transforms.json); dprecon: DP-Recon / MonoSDF scan (cameras.npz,
    # *_rgb.png, instance_mask/, GTmesh/); neus: NeuS / DTU scan (image/, mask/, cameras_sphere.npz)
    layout: Literal["default", "dprecon", "neus"] = "default"
    exemplars: Optional[str] = None  # also write an exemplar library for the objects here
    # real meshes of other kinds for the exemplar library (default: ../shared/data/meshes beside a checkout)
    shared_meshes: Optional[str] = None


def main(argv=None) -> int:
    with imports_paused():  # torch, trimesh (gs_recon/heap.py)
        from ..data.synthetic import default_objects, make_scene, write_exemplars

    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(MakeSceneArgs, argv, MakeSceneArgs(out=tyro.MISSING), "gs-recon make-scene", __doc__)
    out = make_scene(a.out, a.meshes, a.objects, a.views, a.arc, a.test_views, a.width, a.height,
                     priors=not a.no_priors, n_points=a.points, seed=a.seed, layout=a.layout,
                     points_min_views=a.points_min_views)
    print(f"wrote {out}")
    if a.exemplars:
        shared = Path(a.shared_meshes) if a.shared_meshes else \
            Path(__file__).resolve().parents[2].parent / "shared" / "data" / "meshes"
        lib = write_exemplars(a.exemplars, default_objects(a.meshes, a.objects, a.seed), shared)
        print(f"wrote {lib} ({', '.join(sorted(p.name for p in Path(lib).iterdir()))})")
    return 0
