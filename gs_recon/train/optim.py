"""The training step's Adam update without torch.optim's per-call Python.

Each Gaussian parameter has its own torch.optim.Adam (gsplat's densification edits them one by one), and their
state stays the optimizers' own (exp_avg, exp_avg_sq, a float32 step on the parameter's device: what fused Adam
keeps), so checkpoints, the densification and a plain optimizer.step() all carry on from it. What changes is the
call: Optimizer.step's wrappers (profiler records, hooks, grad-mode switches, group bookkeeping) cost ~150 us of
host time per optimizer and step, six per training step; on a GPU the step is bound by exactly that host time
(docs/GPU.md). adam_step makes the same update with one step-count increment for all parameters and one fused
Adam kernel per parameter.
"""
from __future__ import annotations

from typing import Dict, Iterable

import torch


def _lean(o: torch.optim.Optimizer) -> bool:
    """Whether adam_step can update `o` itself: a fused torch.optim.Adam with one group of one parameter and
    plain settings (no amsgrad, maximize, weight decay, capturable or differentiable mode, a float LR)."""
    if type(o) is not torch.optim.Adam or len(o.param_groups) != 1 or not hasattr(torch, "_fused_adam_"):
        return False
    g = o.param_groups[0]
    return (len(g["params"]) == 1 and bool(g.get("fused")) and not g.get("amsgrad") and not g.get("maximize")
            and not g.get("capturable") and not g.get("differentiable") and g.get("weight_decay", 0) == 0
            and not g.get("decoupled_weight_decay", False) and isinstance(g["lr"], float))


def adam_step(optimizers: Dict[str, torch.optim.Optimizer], keys: Iterable[str]) -> None:
    """optimizers[k].step() for every k in `keys`, then their gradients cleared (set to None, as
    zero_grad(set_to_none=True)). Each lean optimizer (see _lean) gets the update torch.optim.Adam(fused=True)
    makes, bit for bit (tests/test_optim.py), from the same state; any other optimizer is stepped as usual."""
    todo = []
    for k in keys:
        o = optimizers[k]
        if not _lean(o):
            o.step()
            continue
        p = o.param_groups[0]["params"][0]
        if p.grad is None:
            continue
        st = o.state[p]
        if len(st) == 0:  # first step: the state torch.optim.Adam's lazy initialisation makes for fused Adam
            st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        todo.append((o.param_groups[0], p, st))
    if todo:
        torch._foreach_add_([st["step"] for _, _, st in todo], 1)
        for g, p, st in todo:
            beta1, beta2 = g["betas"]
            torch._fused_adam_([p], [p.grad], [st["exp_avg"]], [st["exp_avg_sq"]], [], [st["step"]], amsgrad=False,
                               lr=g["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0, eps=g["eps"], maximize=False,
                               grad_scale=None, found_inf=None)
    for k in keys:
        for p in optimizers[k].param_groups[0]["params"]:
            p.grad = None
