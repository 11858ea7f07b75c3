#!/usr/bin/env python
"""Browse a finished run as an interactive, decomposed scene (viser): toggle objects, drag their
gizmos to move/rotate them, save the re-composed scene.

    python tools/view.py RUN_DIR [--port 8080] [--host 127.0.0.1] [--show splats|meshes|both]

Then open http://127.0.0.1:8080 (over SSH: ssh -L 8080:127.0.0.1:8080 host). Ctrl-C stops it.
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
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--show", default="splats", choices=["splats", "meshes", "both"])
    a = ap.parse_args(argv)
    try:
        try:
            from gs_recon.viewer import SceneViewer
        except ImportError as e:
            raise SceneError(f"the viewer needs viser ({e.name} missing): pip install -e '.[viewer]'") from None
        v = SceneViewer(a.run_dir, a.host, a.port, a.show)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"viewer on http://{a.host}:{v.port}  ({len(v.objects)} objects; Ctrl-C to stop)")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        v.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
