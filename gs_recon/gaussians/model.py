"""Labeled 3D Gaussians as a plain dict of tensors (the layout gsplat's strategies act on).

Keys and shapes (N Gaussians, K = (sh_degree+1)^2):
    means [N, 3]   scales [N, 3] (log)   quats [N, 4] (w, x, y, z)   opacities [N] (logit)
    sh0 [N, 1, 3]  shN [N, K-1, 3]       labels [N] int64 (0 = background, k = object k; not trained)
    visibility [N] float32 (per-Gaussian visibility from the training views; not trained)
Integer/buffer entries are ``nn.Parameter(requires_grad=False)`` so densification copies them.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from torch import Tensor, nn

from ..render.sh import num_sh_bases, rgb_to_sh

PARAM_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def knn_mean_dist(points: np.ndarray, k: int = 3) -> np.ndarray:
    """Mean distance to the k nearest neighbours, [N] (scipy cKDTree)."""
    from scipy.spatial import cKDTree

    if len(points) < 2:
        return np.full(len(points), 0.01, dtype=np.float32)
    k = min(k, len(points) - 1)
    d, _ = cKDTree(points).query(points, k=k + 1)
    return d[:, 1:].mean(-1).astype(np.float32)


def create_params(points: Tensor, colors: Tensor, labels: Tensor, sh_degree: int = 3, init_opacity: float = 0.1,
                  init_scale: float = 1.0, device: str | torch.device = "cpu") -> nn.ParameterDict:
    """points [N,3], colors [N,3] in [0,1], labels [N] -> ParameterDict of labeled Gaussians."""
    N = points.shape[0]
    dist = torch.from_numpy(knn_mean_dist(points.detach().cpu().numpy().astype(np.float64)))
    dist = dist.clamp(min=1e-4, max=float(dist.median()) * 10 + 1e-4)
    scales = torch.log(dist * init_scale)[:, None].repeat(1, 3)
    quats = torch.zeros(N, 4)
    quats[:, 0] = 1.0
    opac = torch.logit(torch.full((N,), float(init_opacity)))
    K = num_sh_bases(sh_degree)
    sh0 = rgb_to_sh(colors.float().clamp(0, 1))[:, None, :]
    shN = torch.zeros(N, K - 1, 3)
    d = {
        "means": nn.Parameter(points.float().clone()),
        "scales": nn.Parameter(scales.float()),
        "quats": nn.Parameter(quats),
        "opacities": nn.Parameter(opac),
        "sh0": nn.Parameter(sh0.float()),
        "shN": nn.Parameter(shN),
        "labels": nn.Parameter(labels.long().clone(), requires_grad=False),
        "visibility": nn.Parameter(torch.zeros(N), requires_grad=False),
    }
    return nn.ParameterDict(d).to(device)


def select(params, mask: Tensor) -> Dict[str, Tensor]:
    """Detached subset of Gaussians, mask [N] bool -> plain dict."""
    return {k: v.detach()[mask] for k, v in params.items()}


def num_gaussians(params) -> int:
    return int(params["means"].shape[0])
