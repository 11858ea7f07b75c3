"""Reconstruction losses. Images are [C, H, W, 3]; masks/labels [C, H, W]."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..eval.metrics import ssim


def rgb_loss(pred: Tensor, gt: Tensor, ssim_lambda: float) -> Tensor:
    """(1 - lambda) L1 + lambda (1 - SSIM), the 3DGS photometric loss."""
    return (1 - ssim_lambda) * (pred - gt).abs().mean() + ssim_lambda * (1 - ssim(pred, gt))


def mask_loss(object_alpha: Tensor, instance: Tensor) -> Tensor:
    """Per-object alpha [C,H,W,L] vs instance labels [C,H,W].

    Each object k > 0 must have alpha 1 inside its mask and 0 outside. The background (label 0) must be
    transparent where an object is seen (elsewhere it may be empty space or a wall, so it is not asked to be 1).
    """
    L = object_alpha.shape[-1]
    target = F.one_hot(instance.clamp(0, L - 1), L).to(object_alpha)
    a = object_alpha.clamp(0, 1)
    err = (a - target).abs()
    obj_term = err[..., 1:].mean() if L > 1 else a.new_zeros(())
    bg_term = (a[..., 0] * (instance > 0).to(a)).mean()
    return obj_term + bg_term


def depth_prior_loss(depth: Tensor, prior: Tensor, mask: Tensor) -> Tensor:
    """Scale/shift-invariant depth loss (MonoSDF / DP-Recon use one for monocular depth): fit the prior to
    the rendered depth by least squares on the mask, then L1. depth, prior [C,H,W]; mask [C,H,W] bool;
    prior NaN = no prior there (MonoSDF's invalid-depth masks)."""
    losses = []
    for d, p, m in zip(depth, prior, mask & torch.isfinite(prior)):
        if m.sum() < 10:
            continue
        x, y = p[m], d[m]
        # least squares y ~ a x + b in closed form (float64 sums): torch.linalg.lstsq goes through
        # multi-threaded LAPACK, whose results differed run to run and made training irreproducible
        xd, yd = x.detach().double(), y.detach().double()
        n, sx, sy, sxx, sxy = xd.numel(), xd.sum(), yd.sum(), (xd * xd).sum(), (xd * yd).sum()
        det = n * sxx - sx * sx
        a = (n * sxy - sx * sy) / det if det > 1e-12 else xd.new_zeros(())
        b = (sy - a * sx) / n
        losses.append((a.float() * x + b.float() - y).abs().mean())
    return torch.stack(losses).mean() if losses else depth.new_zeros(())


def normal_prior_loss(normals: Tensor, prior: Tensor, mask: Tensor) -> Tensor:
    """MonoSDF / DP-Recon's normal loss, L1 + (1 - cos), between rendered [C,H,W,3] and prior normals (both
    unit, OpenCV camera frame, facing the camera), on mask [C,H,W]; prior NaN = no prior there."""
    mask = mask & torch.isfinite(prior).all(-1)
    if not mask.any():
        return normals.new_zeros(())
    n, p = F.normalize(normals[mask], dim=-1), F.normalize(prior[mask], dim=-1)
    return (n - p).abs().sum(-1).mean() + (1 - (n * p).sum(-1)).mean()


def scale_reg(log_scales: Tensor, max_scale: float) -> Tensor:
    """Penalise Gaussian scales above max_scale (internal units). log_scales [N,3]."""
    return F.relu(torch.exp(log_scales) - max_scale).mean()
