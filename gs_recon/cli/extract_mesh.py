"""Extract TSDF meshes (one per object, background, scene.ply, scene.glb) from a finished run.

    gs-recon extract-mesh RUN_DIR [--objects 1,3] [--mesh.resolution 128 --mesh.orbit_views 24 ...]

Training already does this at its end (mesh.extract: true); use this command to redo it with other
settings. Defaults are the run's saved config; --mesh.* options override them.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Annotated, Optional

import tyro

from ..errors import SceneError
from ..heap import imports_paused
from ..config.options import ConfigArgs, parse
from .args import run_default


@dataclasses.dataclass
class ExtractArgs:
    # a finished run: the output folder of gs-recon train (holds scene.json)
    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    cfg: ConfigArgs
    objects: Optional[str] = None  # comma-separated object ids; none: every object and the background
    no_progress: bool = False  # no progress bars


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        a = parse(ExtractArgs, argv, run_default(ExtractArgs, argv), "gs-recon extract-mesh", __doc__)
        with imports_paused():  # gs_recon/heap.py
            from ..export.meshes import extract_meshes
            from ..run.manifest import open_run, parse_ids

        run = open_run(a.run_dir, cfg=a.cfg)
        objs = parse_ids(a.objects, run.scene)
        t0 = time.time()
        entries = extract_meshes(run.params, run.scene, run.path, run.cfg.mesh, objects=objs,
                                 progress=not a.no_progress, room=run.manifest.get("room"),
                                 room_views=run.cfg.background.mesh_views)
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
