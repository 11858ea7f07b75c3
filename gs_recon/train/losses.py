"""Reconstruction losses. Images are [C, H, W, 3]; masks/labels [C, H, W]."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..eval.metrics import ssim
from ..geometry import project_points


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


def depth_prior_valid(prior: Tensor) -> Tensor:
    """Where a depth prior [..., H, W] has a reading: finite and > 0 (NaN: MonoSDF's invalid-depth masks; 0 or
    less: what sensor depth such as ScanNet's writes where it has none). The loss below and the cross-view
    alignment (train/depth_align.py) both read it."""
    return torch.isfinite(prior) & (prior > 0)


def depth_prior_loss(depth: Tensor, prior: Tensor, mask: Tensor, affine: Optional[Tensor] = None) -> Tensor:
    """Monocular depth prior loss, L1 between the rendered depth and the prior mapped to depth by a per-view
    affine map. depth, prior [C,H,W]; mask [C,H,W] bool; the prior counts where depth_prior_valid (NaN or
    <= 0: no prior there, as in the cross-view alignment). affine [C,2] (a, b: depth =
    a prior + b, from train/depth_align.py, fixed for the run) or None: MonoSDF / DP-Recon's
    scale/shift-invariant form, the map fitted to the render by least squares on the mask at every step."""
    losses = []
    for c, (d, p, m) in enumerate(zip(depth, prior, mask & depth_prior_valid(prior))):
        if m.sum() < 10:
            continue
        x, y = p[m], d[m]
        if affine is not None:
            a, b = affine[c, 0], affine[c, 1]
        else:
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
    unit, OpenCV camera frame, facing the camera), on mask [C,H,W]; prior NaN or all zero = no prior there."""
    mask = mask & torch.isfinite(prior).all(-1) & (prior.abs().sum(-1) > 0)
    if not mask.any():
        return normals.new_zeros(())
    n, p = F.normalize(normals[mask], dim=-1), F.normalize(prior[mask], dim=-1)
    return (n - p).abs().sum(-1).mean() + (1 - (n * p).sum(-1)).mean()


def flatten_loss(log_scales: Tensor, scale: float) -> Tensor:
    """The shortest axis of each Gaussian (log_scales [M,3], the ones the term applies to) pulled towards zero,
    so it becomes a disc lying on the surface (the flattening of NeuSG / PGSR, 2DGS's surfels). scale: the
    scene's extent (the loss is a fraction of it, so its weight does not depend on the scene's units)."""
    if log_scales.shape[0] == 0:
        return log_scales.new_zeros(())
    return torch.exp(log_scales.min(-1).values).mean() / scale


def continuous(depth: Tensor, rel: float = 0.1) -> Tensor:
    """[C,H,W] bool: pixels whose depth [C,H,W,1] changes by less than `rel` of itself across the two
    neighbours in x and in y (central differences there describe a surface, not a silhouette's jump);
    the image border is False."""
    z = depth[..., 0]
    ok = torch.zeros_like(z, dtype=torch.bool)
    dx = (z[:, 1:-1, 2:] - z[:, 1:-1, :-2]).abs()
    dy = (z[:, 2:, 1:-1] - z[:, :-2, 1:-1]).abs()
    bound = rel * z[:, 1:-1, 1:-1]
    ok[:, 1:-1, 1:-1] = (dx < bound) & (dy < bound)
    return ok


def depth_normal_loss(normals: Tensor, depth_normals: Tensor, weight: Tensor) -> Tensor:
    """2DGS's depth-normal consistency: the composited Gaussian normals [C,H,W,3] (shortest axes) agree with the
    normals of the rendered depth [C,H,W,3] (central differences), 1 - cos, weighted per pixel by weight
    [C,H,W] (no gradient). Both sides carry gradients: the depth moves onto the Gaussians' discs and the
    discs turn to the depth's surface."""
    cos = (F.normalize(normals, dim=-1) * depth_normals).sum(-1)
    w = weight.detach()
    return ((1 - cos) * w).sum() / w.sum().clamp(min=1.0)


def sparse_depth_targets(points: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int, cell: int = 4,
                         tol: float = 0.03, labels: Optional[Tensor] = None, instance: Optional[Tensor] = None
                         ) -> List[Tuple[Tensor, Tensor]]:
    """What each view sees of a sparse point cloud (SfM points), for sparse_depth_loss: per view, the pixels
    (flat indices [M]) and z-depths [M] of the points in front of it that are within `tol` (relative) of the
    nearest point projecting into the same cell x cell block (a z-buffer over the points: points hidden
    behind nearer ones drop out; tracks are not needed). points [P,3], viewmats [V,4,4], Ks [V,3,3].
    labels [P] and instance [V,H,W] (optional): a point counts only on pixels of its own label (a
    background point behind an object that has no points of its own is dropped there)."""
    out = []
    uvs, zs = project_points(points, viewmats, Ks)  # [V,P,2], [V,P]
    for v, (uv, z) in enumerate(zip(uvs, zs)):
        x, y = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        ok = (z > 1e-3) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        x, y, z = x[ok], y[ok], z[ok]
        if labels is not None and instance is not None:
            mine = instance[v, y, x].long() == labels[ok]
            x, y, z = x[mine], y[mine], z[mine]
        block = (y // cell) * ((width + cell - 1) // cell) + x // cell
        nearest = torch.full((int(block.max()) + 1 if len(block) else 1,), float("inf")).scatter_reduce(
            0, block, z, "amin")
        keep = z <= nearest[block] * (1 + tol)
        out.append(((y * width + x)[keep], z[keep]))
    return out


def sparse_depth_loss(depth: Tensor, targets: List[Tuple[Tensor, Tensor]], max_rel: float = 0.2,
                      where: Optional[Tensor] = None) -> Tensor:
    """Rendered depth [C,H,W,1] at the points' pixels against their depths (DS-NeRF's / depth-regularised
    3DGS's sparse SfM depth), relative L1, each error capped at max_rel (a point the z-buffer wrongly kept
    pulls no harder than that). targets: one (pixels, depths) per rendered view; where [C,H,W] bool
    (optional): only these pixels count."""
    losses = []
    for c, (d, (pix, z)) in enumerate(zip(depth[..., 0].flatten(1), targets)):
        if where is not None:
            ok = where[c].flatten()[pix]
            pix, z = pix[ok], z[ok]
        if len(pix):
            losses.append(((d[pix] - z).abs() / z).clamp(max=max_rel).mean())
    return torch.stack(losses).mean() if losses else depth.new_zeros(())


def scale_reg(log_scales: Tensor, max_scale: float) -> Tensor:
    """Penalise Gaussian scales above max_scale (internal units). log_scales [N,3]."""
    return F.relu(torch.exp(log_scales) - max_scale).mean()
