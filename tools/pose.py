#!/usr/bin/env python
"""Thin wrapper: ``python tools/pose.py ...`` == ``gs-recon pose ...`` (gs_recon.cli.pose.py; --help for options).

Works from a checkout without installing; installed, the package is imported as usual.
"""
try:
    from gs_recon.cli.pose import main
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from gs_recon.cli.pose import main

if __name__ == "__main__":
    raise SystemExit(main())
