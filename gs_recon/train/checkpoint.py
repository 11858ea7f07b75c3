"""Checkpoints: plain dicts of tensors and numbers, written atomically, loaded with weights_only=True."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from ..data.errors import SceneError
from ..io_utils import atomic_path


def save_checkpoint(path: str | Path, payload: Dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: no checkpoint to resume from; run without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SceneError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e)[:120]}); delete it to start over") from None
