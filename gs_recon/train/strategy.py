"""Densification: 3DGS's adaptive density control on the params dict (gsplat's DefaultStrategy: clone, split,
prune and opacity reset, driven by the screen-space gradients in a render's meta) with a hard cap on the
Gaussian count, and the clone / split operations other stages use (they keep the strategy's per-Gaussian
statistics and the optimizers' moments aligned with the params)."""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from ..config import TrainConfig


class Densifier:
    """state: the strategy's running statistics (checkpointed as the trainer's "strategy" entry)."""

    def __init__(self, t: TrainConfig, scene_scale: float):
        from gsplat.strategy import DefaultStrategy

        self.strategy = DefaultStrategy(
            prune_opa=t.prune_opa, grow_grad2d=t.grow_grad2d, refine_start_iter=t.refine_start_iter,
            refine_stop_iter=t.refine_stop_iter, reset_every=t.reset_every, refine_every=t.refine_every,
            verbose=False,
        )
        self.scene_scale = scene_scale
        self.state: Dict[str, Any] = self.strategy.initialize_state(scene_scale=scene_scale)

    def reset(self) -> None:
        """Fresh statistics (a new run, or the Gaussians changed in number outside the strategy)."""
        self.state = self.strategy.initialize_state(scene_scale=self.scene_scale)

    def check(self, params: Dict[str, Tensor], optimizers: Dict[str, torch.optim.Optimizer]) -> None:
        self.strategy.check_sanity(params, optimizers)

    def pre_backward(self, params, optimizers, step: int, meta: Dict[str, Any]) -> None:
        """Before backward: the strategy keeps the 2D means' gradient (meta from render())."""
        self.strategy.step_pre_backward(params, optimizers, self.state, step, meta)

    def post_backward(self, params, optimizers, step: int, meta: Dict[str, Any], cap: int) -> None:
        """After the optimizer step: grow / prune / reset on the strategy's schedule, then at most `cap`
        Gaussians (the lowest opacities go)."""
        self.strategy.step_post_backward(params, optimizers, self.state, step, meta, packed=False)
        self.enforce_cap(params, optimizers, cap)

    @torch.no_grad()
    def enforce_cap(self, params, optimizers, cap: int) -> None:
        from gsplat.strategy.ops import remove

        n = params["means"].shape[0]
        if n <= cap:
            return
        op = params["opacities"]
        drop = torch.zeros(n, dtype=torch.bool, device=op.device)
        drop[torch.argsort(op)[: n - cap]] = True
        remove(params, optimizers, self.state, drop)

    def clone(self, params, optimizers, mask: Tensor) -> None:
        """Copy the Gaussians in mask [N] bool (appended at the end)."""
        from gsplat.strategy.ops import duplicate

        duplicate(params, optimizers, self.state, mask)

    def split(self, params, optimizers, mask: Tensor) -> None:
        """Replace each Gaussian in mask [N] bool by two smaller ones sampled inside it (3DGS's split)."""
        from gsplat.strategy.ops import split

        split(params, optimizers, self.state, mask)
