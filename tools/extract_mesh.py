#!/usr/bin/env python
"""Extract TSDF meshes (one per object, background, scene.ply, scene.glb) from a finished run.

    python tools/extract_mesh.py RUN_DIR [--objects 1,3] [--mesh.resolution 128 --mesh.orbit_views 24 ...]

Training already does this at its end (mesh.extract: true); use this tool to redo it with other settings.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.data.errors import SceneError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--objects", default=None, help="comma-separated object ids (default: all + background)")
    ap.add_argument("--no-progress", action="store_true")
    a, rest = ap.parse_known_args(argv)
    try:
        from gs_recon.mesh.extract import extract_meshes
        from gs_recon.run_io import open_run, parse_ids

        run = open_run(a.run_dir, rest)
        objs = parse_ids(a.objects, run.scene)
        t0 = time.time()
        entries = extract_meshes(run.params, run.scene, run.path, run.cfg.mesh, objects=objs,
                                 progress=not a.no_progress)
        if objs is None:
            run.manifest["meshes"] = entries
        else:  # replace only the re-extracted objects' entries
            old = [e for e in run.manifest.get("meshes") or [] if e["id"] not in objs]
            run.manifest["meshes"] = sorted(old + entries, key=lambda e: e["id"])
        run.manifest.setdefault("timings", {})["mesh_s"] = time.time() - t0
        run.save_manifest()
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for e in entries:
        print(f"  {e['id']:>3} {e['name']:<20} {e.get('faces', 0):>8} faces  {(e['mesh'] or ['(none)'])[0]}")
    print(f"meshes written in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
