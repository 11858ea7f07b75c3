"""Multi-process runs (torchrun): NCCL on GPU, gloo on CPU.

How a run is split: rank 0 reconstructs the scene (stage 1) and writes its checkpoint; every rank loads
it, so all ranks hold identical Gaussians. In the prior stages each rank takes its own object each step
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
