"""Browse a finished run as an interactive, decomposed scene (viser): toggle objects, drag their
gizmos to move/rotate them, save the re-composed scene.

    gs-recon view RUN_DIR [--port 8080] [--host 127.0.0.1] [--show splats|meshes|both]

Then open http://127.0.0.1:8080 (over SSH: ssh -L 8080:127.0.0.1:8080 host). Ctrl-C stops it.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Annotated, Literal

import tyro

from ..errors import SceneError
from ..heap import imports_paused
from ..config.options import parse


@dataclasses.dataclass
class ViewArgs:
    # a finished run: the output folder of gs-recon train (holds scene.json)
    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    host: str = "127.0.0.1"  # bind address (default: this machine only; 0.0.0.0 to serve the network)
    port: int = 8080  # the next free port is taken when this one is busy
    show: Literal["splats", "meshes", "both"] = "splats"  # what to draw for each object


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        a = parse(ViewArgs, argv, ViewArgs(run_dir=tyro.MISSING), "gs-recon view", __doc__)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return serve(a.run_dir, a.host, a.port, a.show)


def serve(run_dir, host: str, port: int, show: str, server=None) -> int:
    """Serve a finished run until Ctrl-C (gs-recon view; gs-recon train --viewer after training, on the
    live viewer's `server`)."""
    with imports_paused():  # torch, viser (gs_recon/heap.py)
        from ..viewer import SceneViewer

    try:
        v = SceneViewer(run_dir, host, port, show, server=server)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"viewer on http://{host}:{v.port}  ({len(v.objects)} objects; Ctrl-C to stop)")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        try:
            v.stop()
        except KeyboardInterrupt:  # a second Ctrl-C while the server shuts down
            pass
    return 0
