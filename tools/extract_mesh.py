#!/usr/bin/env python
"""Extract TSDF meshes (one per object, background, scene, scene.glb) from a finished run.

    python tools/extract_mesh.py RUN_DIR [--resolution 128] [--objects 1,3]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.data.errors import SceneError  # noqa: E402


def main(argv=None) -> int:
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--objects", default=None, help="comma-separated object ids (default: all + background)")
    a = ap.parse_args(argv)
    try:
        from gs_recon.config import DataConfig
        from gs_recon.data.scene import load_scene
        from gs_recon.io_utils import write_json
        from gs_recon.mesh.extract import MeshConfig, extract_meshes
        from gs_recon.train.checkpoint import load_checkpoint

        run = Path(a.run_dir)
        mp = run / "scene.json"
        if not mp.exists():
            raise SceneError(f"{mp}: not found; RUN_DIR must be a finished tools/train.py output folder")
        try:
            man = json.loads(mp.read_text())
        except json.JSONDecodeError as e:
            raise SceneError(f"{mp}: invalid JSON ({e.msg})") from None
        dcfg = DataConfig(**man["config"]["data"])
        scene = load_scene(man["scene_dir"], dcfg)
        ck = load_checkpoint(run / "checkpoints" / "last.pt")
        objs = [int(v) for v in a.objects.split(",")] if a.objects else None
        t0 = time.time()
        entries = extract_meshes(ck["params"], scene, run, MeshConfig(resolution=a.resolution), objects=objs)
        man["meshes"] = entries
        man.setdefault("timings", {})["mesh_s"] = time.time() - t0
        write_json(mp, man)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for e in entries:
        print(f"  {e['id']:>3} {e['name']:<20} {e.get('faces', 0):>8} faces  {(e['mesh'] or ['(none)'])[0]}")
    print(f"meshes written in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
