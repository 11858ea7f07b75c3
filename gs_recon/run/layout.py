"""A run folder's file names (the output layout README documents)."""
from __future__ import annotations

import re


def slug(name: str) -> str:
    """An object name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "object"


def object_file_stem(oid: int, name: str) -> str:
    """<id>_<name>: the stem of an object's splat and mesh files."""
    return f"{oid}_{slug(name)}"
