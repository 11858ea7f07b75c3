#!/usr/bin/env python
"""Re-export a finished run, or a subset of its objects, in one format.

    python tools/export.py RUN_DIR --format ply|splat|glb [--objects 1,3] [--out DIR]

ply / splat: 3DGS Gaussians in the input's world frame, one file per object plus, with --objects,
             DIR/splats/selection.<fmt> holding exactly those objects (without --objects: the whole
             scene, background and every object).
glb:         the objects' TSDF meshes as one glTF scene (one named node per object) at DIR/selection.glb;
             meshes already under RUN_DIR/meshes are reused, missing ones are extracted.
DIR defaults to RUN_DIR/export.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.data.errors import SceneError  # noqa: E402


def main(argv=None) -> int:
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--format", required=True, choices=["ply", "splat", "glb"])
    ap.add_argument("--objects", default=None, help="comma-separated object ids (default: everything)")
    ap.add_argument("--out", default=None, help="output folder (default RUN_DIR/export)")
    a, rest = ap.parse_known_args(argv)
    try:
        from gs_recon.export.scene_export import export_selection
        from gs_recon.run_io import open_run, parse_ids

        run = open_run(a.run_dir, rest)
        objs = parse_ids(a.objects, run.scene)
        out = Path(a.out) if a.out else run.path / "export"
        files = export_selection(run, a.format, objs, out)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for f in files:
        print(f"  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
