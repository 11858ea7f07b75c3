#!/usr/bin/env python
"""Generate a synthetic multi-object scene with ground truth (see gs_recon.synthetic).

    python tools/make_synthetic_scene.py OUT [--meshes a.obj b.obj] [--objects 3] [--views 24] [--arc 360]
        [--test-views 0] [--width 128] [--height 96] [--no-priors] [--exemplars DIR]

--exemplars DIR also writes an exemplar library for the scene's objects (DIR/<name>/*.ply: procedural
variants of the primitives, other real meshes of the same kind for real ones, never the exact shapes
placed) for `--prior.model exemplar:DIR` (see docs/PRIOR.md).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.synthetic import default_objects, make_scene, write_exemplars  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--meshes", nargs="*", default=[])
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--arc", type=float, default=360.0, help="degrees of the training-camera arc")
    ap.add_argument("--test-views", type=int, default=0, help="extra test cameras all around (0: every 8th arc view)")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--no-priors", action="store_true", help="do not write depth/ and normal/")
    ap.add_argument("--points", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exemplars", default=None, help="also write an exemplar library for the objects here")
    a = ap.parse_args(argv)
    out = make_scene(a.out, a.meshes, a.objects, a.views, a.arc, a.test_views, a.width, a.height,
                     priors=not a.no_priors, n_points=a.points, seed=a.seed)
    print(f"wrote {out}")
    if a.exemplars:
        from pathlib import Path

        shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"
        lib = write_exemplars(a.exemplars, default_objects(a.meshes, a.objects, a.seed), shared)
        print(f"wrote {lib} ({', '.join(sorted(p.name for p in Path(lib).iterdir()))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
