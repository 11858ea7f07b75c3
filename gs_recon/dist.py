"""Multi-process runs (torchrun): NCCL on GPU, gloo on CPU.

How a run is split. Stage 1 (reconstruction): by default rank 0 reconstructs alone and writes its
checkpoint, and every rank loads it. With ``--distributed`` (train.distributed) every rank owns a
contiguous block of the Gaussians and trains on its own views; rendering goes through
gs_recon.render.sharded (gsplat's distributed-rasterization scheme), each rank's optimizer and
densification act on its block only, checkpoints are merged on rank 0, and at the end of stage 1 the
blocks are gathered so all ranks hold identical Gaussians. In the prior stages each rank takes its own object each step
(objects are sharded round-robin across ranks: rank r takes geo_ids[(k * world + r) % n] at its k-th
step) and its own training view; gradients are averaged across ranks before the (identical) optimizer
steps, so the Gaussians stay identical everywhere and every step covers `world` objects. Rank 0 alone
evaluates and writes outputs. Densification happens only in stage 1, so shapes never diverge.
"""
from __future__ import annotations

import os
from typing import Iterable

import torch


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT). False if single."""
    import torch.distributed as dist

    if env_world() <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return True


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if active() else 0


def world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if active():
        dist.barrier()


def average_grads(tensors: Iterable[torch.Tensor]) -> None:
    """All-reduce (mean) the .grad of each tensor in place; a missing grad counts as zeros."""
    import torch.distributed as dist

    if not active():
        return
    for t in tensors:
        if t.grad is None:
            t.grad = torch.zeros_like(t)
        dist.all_reduce(t.grad, op=dist.ReduceOp.SUM)
        t.grad /= world()


def broadcast_object(obj, src: int = 0):
    import torch.distributed as dist

    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _comm_device():
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def any_rank(flag: bool, collective: bool = True) -> bool:
    """True if `flag` holds on any rank (a collective: every rank must call it); local when not."""
    import torch.distributed as dist

    if not (collective and active()):
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_object(obj, all_ranks: bool = False):
    """Rank-ordered list of every rank's `obj` on rank 0 (None elsewhere), or on all ranks."""
    import torch.distributed as dist

    if not active():
        return [obj]
    if all_ranks:
        out = [None] * world()
        dist.all_gather_object(out, obj)
        return out
    out = [None] * world() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out
