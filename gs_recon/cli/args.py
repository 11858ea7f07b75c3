"""What the tools read from argv before parsing it (gs_recon/config/options.py parses it)."""
from __future__ import annotations

import dataclasses
import typing
from typing import Optional, Sequence

import tyro

from ..config import Config, config_from_dict
from ..config.options import option_names
from ..errors import SceneError
from ..heap import imports_paused


def preset_arg(argv: Sequence[str], flag: str = "--config") -> Optional[str]:
    """The value of ``--config X`` / ``--config=X`` in argv (read before parsing: it sets the defaults)."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def first_positional(cls: type, argv: Sequence[str]) -> Optional[str]:
    """The first positional token of argv (a RUN_DIR read before parsing: its saved config is the default)."""
    takes_value = set(option_names(cls))
    flags = _switches(cls)
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-"):
            return a
        key = a[2:].split("=", 1)[0].replace("-", "_")
        i += 1 if ("=" in a or key in flags or key not in takes_value) else 2
    return None


def _switches(cls: type) -> set:
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if hints[f.name] is bool}


def run_default(cls: type, argv: Sequence[str], **fields):
    """A default ``cls`` instance for a tool taking RUN_DIR: the run's saved config is what the command
    line overrides (the plain defaults when RUN_DIR is missing or unreadable: open_run reports that)."""
    with imports_paused():  # torch (gs_recon/heap.py)
        from ..run.manifest import read_manifest

    run_dir, cfg = first_positional(cls, argv), Config()
    if run_dir:
        try:
            cfg = config_from_dict(read_manifest(run_dir)["config"], f"{run_dir}/scene.json")
        except SceneError:
            pass
    return cls(run_dir=tyro.MISSING, cfg=cfg, **fields)
