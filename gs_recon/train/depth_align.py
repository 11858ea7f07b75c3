"""Monocular depth priors aligned across the training views once, before training.

A monocular estimator's depth is right up to an unknown scale and shift per image. MonoSDF / DP-Recon fit
that affine map to the rendered depth at every step (scale/shift-invariant loss); with Gaussians that fit
absorbs the render's own errors: on the background benchmark's prims3 room the per-step fit settles at a
scale 5% below the true one, and even the ground-truth depth through it leaves the seen background at
F@5cm 0.27-0.34, against 0.57-0.88 with the true affine map held fixed (docs/BENCHMARKS.md).

The cameras are posed, so the views fix each other's maps: a pixel of view i at depth a_i p_i(u) + b_i is a
point in space, which view j sees at depth z_j and pixel u'; where both views see the same surface,
z_j = a_j p_j(u') + b_j. align_depth_priors finds every view's (a, b) at once by minimising those relative
residuals (Cauchy loss, its scale annealed 10% -> 3% -> 1% so occlusions, silhouettes and the priors' own
errors weigh little; L-BFGS on log a and b) over each view's nearest cameras. The parallax between posed
views fixes the scale: on the benchmark's prims3 room, exact depth put through random per-view maps
(a in [0.5, 2], b within +-0.3) comes back within 0.3% in scale (tests/test_depth_align.py).

The alignment's residual measures how well the priors agree, i.e. how accurate they are: synthetic
monocular errors (data/synthetic.monocular_like_depth) with 2.4% / 4.9% mean relative error after each
view's best affine fit leave residuals of 2.7% / 5.0%. Held maps help only accurate priors: on prims3 seen
background F@5cm 0.30 (held) vs 0.24 (per-step fit) at 2.4%, but 0.08 vs 0.24 at 4.9%, where the held maps
pin the surfaces to the priors' distortions and the per-step fit absorbs part of them. The trainer therefore
holds the maps only under train.depth_align_max_residual (3.5%) and fits per step otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from .losses import depth_prior_valid


@dataclass
class DepthAlignment:
    """Per-view affine maps of the priors to camera depth (internal units): depth = a * prior + b.
    affine [C,2] float64; residual: the median relative residual |z_j - (a_j p_j + b_j)| / z_j of all
    correspondences at the end; pixels: how many there were; iterations: L-BFGS iterations run."""
    affine: Tensor
    residual: float
    pixels: int
    iterations: int


def _sample(maps: Tensor, view: Tensor, g: Tensor) -> Tensor:
    """Bilinear lookups: pair q's points g[q] [S,1,2] in maps[view[q]] (maps [C,ch,H,W]) -> [Q,ch,S]; one
    lookup per view, so no [Q,ch,H,W] copy of the maps is made (differentiable in g)."""
    S = g.shape[1]
    order = torch.argsort(view, stable=True)
    parts = []
    for v in torch.unique(view).tolist():
        sel = order[view[order] == v]
        x = torch.nn.functional.grid_sample(maps[v:v + 1], g[sel].reshape(1, -1, 1, 2), mode="bilinear",
                                            align_corners=False)  # [1,ch,len*S,1]
        parts.append(x[0, :, :, 0].reshape(maps.shape[1], len(sel), S).transpose(0, 1))
    return torch.cat(parts)[torch.argsort(order)]


def align_depth_priors(prior: Tensor, viewmats: Tensor, Ks: Tensor, init: Optional[Tensor] = None,
                       neighbours: int = 6, samples: int = 2048, iters: int = 30,
                       sigmas=(0.1, 0.03, 0.01)) -> Optional[DepthAlignment]:
    """Align monocular depth priors prior [C,H,W] (NaN / <= 0: none) of views viewmats [C,4,4] (OpenCV
    world-to-camera), Ks [C,3,3] to each other. init [C,2]: starting (a, b) per view (default: b = 0 and a
    that puts each prior's median at the point the cameras' optical axes pass nearest). Each view is
    compared with its `neighbours` nearest cameras on a regular grid of up to `samples` pixels (fewer with
    many views: at most ~250k correspondences per evaluation). Returns None with fewer than 2 views or too
    little overlap (< 10 correspondences per view)."""
    C, H, W = prior.shape
    if C < 2:
        return None
    dev = prior.device
    P = prior.double()
    ok_map = depth_prior_valid(P)
    Pz = torch.where(ok_map, P, torch.zeros_like(P))
    V = viewmats.double().to(dev)
    K = Ks.double().to(dev)
    R, t = V[:, :3, :3], V[:, :3, 3]
    centres = -(R.transpose(1, 2) @ t[..., None])[..., 0]  # [C,3]
    if init is None:
        init = _initial_maps(Pz, ok_map, centres, R)
    ab = init.double().to(dev).clone()
    k = min(neighbours, C - 1)
    samples = max(256, min(samples, 250_000 // (C * k)))
    # pixel grid per view: rays in the world frame (unit z in camera), prior values
    step = max(1, int((H * W / samples) ** 0.5))
    ys, xs = torch.meshgrid(torch.arange(step // 2, H, step, device=dev), torch.arange(step // 2, W, step, device=dev),
                            indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    pix = torch.stack([xs.double() + 0.5, ys.double() + 0.5, torch.ones_like(xs, dtype=torch.float64)], -1)  # [S,3]
    rays_c = pix @ torch.linalg.inv(K).transpose(1, 2)  # [C,S,3] camera frame, z = 1
    rays_w = rays_c @ R  # [C,S,3] world frame (R^T r for each ray)
    p_src = Pz[:, ys, xs]  # [C,S]
    ok_src = ok_map[:, ys, xs]
    # neighbours: the nearest camera centres (ties: view order)
    dist = torch.cdist(centres, centres)
    dist.fill_diagonal_(float("inf"))
    nbr = dist.topk(k, largest=False).indices  # [C,k]
    pairs = torch.tensor([(i, int(j)) for i in range(C) for j in nbr[i]], device=dev)  # [Q,2]
    pi_, pj_ = pairs[:, 0], pairs[:, 1]
    grid_maps = torch.stack([Pz, ok_map.double()], 1).float()  # [C,2,H,W] for bilinear lookups: prior, has-prior

    def residuals(ab_: Tensor):
        """Relative residuals [Q,S] of every pair's pixels and their validity [Q,S] at maps ab_ [C,2]."""
        D = ab_[pi_, 0, None] * p_src[pi_] + ab_[pi_, 1, None]  # [Q,S] depth in view i
        X = centres[pi_, None] + D[..., None] * rays_w[pi_]  # [Q,S,3]
        xc = X @ R[pj_].transpose(1, 2) + t[pj_, None]  # [Q,S,3] in view j
        z = xc[..., 2]
        uv = xc @ K[pj_].transpose(1, 2)
        u, v = uv[..., 0] / z.clamp(min=1e-9), uv[..., 1] / z.clamp(min=1e-9)
        g = torch.stack([2 * u / W - 1, 2 * v / H - 1], -1)[:, :, None].float()  # [Q,S,1,2] (align_corners False)
        pj, okj = _sample(grid_maps, pj_, g).unbind(1)
        valid = ok_src[pi_] & (z > 1e-6) & (D > 1e-6) & (okj > 0.999) & (g[..., 0, 0].abs() < 1) & (g[..., 0, 1].abs() < 1)
        target = ab_[pj_, 0, None] * pj.double() + ab_[pj_, 1, None]
        return (z - target) / z.abs().clamp(min=1e-9), valid

    theta = torch.stack([ab[:, 0].clamp(min=1e-9).log(), ab[:, 1]], -1).requires_grad_(True)
    to_ab = lambda th: torch.stack([th[:, 0].exp(), th[:, 1]], -1)  # noqa: E731  (a > 0)
    # Cauchy loss on the relative residuals, its scale annealed (graduated non-convexity): wide first so a
    # rough start finds the basin, then narrow so occlusions, silhouettes and the priors' own errors weigh
    # little. (Re-trimming at a multiple of the median instead shrank onto a consistent subset at a wrong scale.)
    it = 0
    for sigma in sigmas:
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=iters, tolerance_change=1e-12,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            r, valid = residuals(to_ab(theta))
            loss = torch.log1p((r[valid] / sigma) ** 2).mean()
            loss.backward()
            return loss

        opt.step(closure)
        it += opt.state[theta]["n_iter"]
    with torch.no_grad():
        ab = to_ab(theta)
        r, valid = residuals(ab)
        if int(valid.sum()) < 10 * C:
            return None
        residual = float(r[valid].abs().median())
    return DepthAlignment(ab.detach(), residual, int(valid.sum()), it)


def _initial_maps(Pz: Tensor, ok: Tensor, centres: Tensor, R: Tensor) -> Tensor:
    """Starting maps: b = 0, a = (distance of the camera to the point its optical axis passes nearest to the
    other cameras' axes) / (median prior), i.e. each prior scaled so its median depth reaches the scene the
    cameras look at."""
    C = Pz.shape[0]
    d = R[:, 2, :]  # optical axes in the world frame [C,3]
    # least-squares point nearest to every optical axis
    I3 = torch.eye(3, dtype=Pz.dtype, device=Pz.device)
    proj = I3 - d[:, :, None] * d[:, None, :]  # [C,3,3]
    focus = torch.linalg.lstsq(proj.sum(0), (proj @ centres[..., None]).sum(0)).solution[:, 0]
    reach = ((focus - centres) * d).sum(-1).clamp(min=1e-3)  # depth of the focus along each axis
    med = torch.stack([Pz[c][ok[c]].median() if ok[c].any() else Pz.new_ones(()) for c in range(C)])
    return torch.stack([reach / med.clamp(min=1e-9), torch.zeros_like(reach)], -1)
