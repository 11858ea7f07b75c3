"""Checkpoints: plain dicts of tensors and numbers, written atomically, loaded with weights_only=True."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from ..errors import SceneError
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


# ---------------------------------------------------------------- sharded state (torchrun --distributed)
# A Trainer state holds per-Gaussian tensors (params, Adam moments, densification statistics: first
# dimension N) and everything else (steps, lrs, scalars). A shard keeps rows [lo, hi) of every
# per-Gaussian tensor; merging concatenates the shards in rank order, so merge(shards) == state.


def shard_bounds(n: int, rank: int, world: int) -> tuple:
    """Rows [lo, hi) of n that rank `rank` of `world` owns (contiguous, sizes differ by at most one)."""
    return n * rank // world, n * (rank + 1) // world


def _is_rows(x, n: int) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[0] == n


def _tree_map(fn, x):
    """fn applied to every tensor of a nested dict/list/tuple structure; other leaves kept."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, dict):
        return {k: _tree_map(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_tree_map(fn, v) for v in x)
    return x


def shard_state(state: Dict[str, Any], rank: int, world: int) -> Dict[str, Any]:
    """This rank's part of a full Trainer state."""
    n = state["params"]["means"].shape[0]
    lo, hi = shard_bounds(n, rank, world)
    return _tree_map(lambda t: t[lo:hi].clone() if _is_rows(t, n) else t, state)


def merge_states(states) -> Dict[str, Any]:
    """Concatenate rank-ordered shard states into one full state (non-per-Gaussian values from rank 0)."""
    ns = [s["params"]["means"].shape[0] for s in states]

    def join(xs):
        x0 = xs[0]
        if isinstance(x0, torch.Tensor) and all(_is_rows(x, n) for x, n in zip(xs, ns)):
            return torch.cat([x.cpu() for x in xs], dim=0)
        if isinstance(x0, dict):
            return {k: join([x[k] for x in xs]) for k in x0}
        if isinstance(x0, (list, tuple)):
            return type(x0)(join([x[i] for x in xs]) for i in range(len(x0)))
        return x0

    return join(list(states))


def to_cpu(x):
    """The same nested structure with every tensor on the CPU (for pickling across ranks)."""
    return _tree_map(lambda t: t.detach().cpu(), x)
