"""Pure-torch reference rasterizer: padded tiles, fully vectorised, autograd for gradients.

It is the test oracle for the C++ kernels (forward, backward and visibility) and the fallback when
the extension cannot be built. Same rules as the kernel: alpha = min(0.99, o * exp(-sigma)),
alpha < 1/255 skipped, a Gaussian is composited only while the transmittance after it stays > 1e-4
(transmittance is non-increasing, so this is the kernel's early stop).
"""
from __future__ import annotations

import torch
from torch import Tensor

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4


@torch.no_grad()
def isect_tiles_ref(means2d: Tensor, radii: Tensor, depths: Tensor, tile: int, tile_w: int, tile_h: int):
    """Same output as the C++ isect_tiles: offsets [C, T+1] int64 (global), ids [M] int32."""
    C, N = depths.shape
    T = tile_w * tile_h
    all_ids, counts = [], []
    for c in range(C):
        r = radii[c]
        ok = (r > 0).all(-1)
        m = means2d[c]
        x0 = torch.floor((m[:, 0] - r[:, 0]) / tile).clamp(min=0).long()
        x1 = torch.minimum(torch.floor((m[:, 0] + r[:, 0]) / tile).long() + 1, torch.tensor(tile_w))
        y0 = torch.floor((m[:, 1] - r[:, 1]) / tile).clamp(min=0).long()
        y1 = torch.minimum(torch.floor((m[:, 1] + r[:, 1]) / tile).long() + 1, torch.tensor(tile_h))
        tiles_of, gs_of = [], []
        for g in torch.nonzero(ok).flatten().tolist():
            ys = torch.arange(int(y0[g]), int(y1[g]))
            xs = torch.arange(int(x0[g]), int(x1[g]))
            if len(ys) == 0 or len(xs) == 0:
                continue
            t = (ys[:, None] * tile_w + xs[None, :]).flatten()
            tiles_of.append(t)
            gs_of.append(torch.full_like(t, g))
        if tiles_of:
            tt, gg = torch.cat(tiles_of), torch.cat(gs_of)
            # sort by depth then (stable) by tile
            order = torch.sort(depths[c][gg], stable=True).indices
            tt, gg = tt[order], gg[order]
            order = torch.sort(tt, stable=True).indices
            tt, gg = tt[order], gg[order]
        else:
            tt = gg = torch.zeros(0, dtype=torch.long)
        counts.append(torch.bincount(tt, minlength=T))
        all_ids.append(gg.int())
    cnt = torch.stack(counts)  # [C, T]
    flat = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(cnt.flatten(), 0)])
    offsets = torch.stack([flat[c * T : (c + 1) * T + 1] for c in range(C)])
    return offsets, torch.cat(all_ids)


def _tile_weights(means2d, conics, opacities, offsets, ids, c, width, height, tile, tile_w, tile_h):
    """Weights w [T, P, K] of each padded tile entry for camera c, and the padded ids [T, K]."""
    T = tile_w * tile_h
    off = offsets[c]
    cnt = (off[1:] - off[:-1]).long()
    K = max(int(cnt.max()) if T else 0, 1)
    slot = torch.arange(K)
    valid = slot[None, :] < cnt[:, None]  # [T, K]
    idx = (off[:-1, None] + slot[None, :]).clamp(max=max(ids.numel() - 1, 0))
    gid = torch.where(valid, ids.long()[idx] if ids.numel() else torch.zeros_like(idx), torch.zeros_like(idx))
    ty, tx = torch.div(torch.arange(T), tile_w, rounding_mode="floor"), torch.arange(T) % tile_w
    py, px = torch.meshgrid(torch.arange(tile), torch.arange(tile), indexing="ij")
    pxs = (tx[:, None] * tile + px.flatten()[None]).to(means2d.dtype) + 0.5  # [T, P]
    pys = (ty[:, None] * tile + py.flatten()[None]).to(means2d.dtype) + 0.5
    inside = (pxs < width) & (pys < height)
    m = means2d[c][gid]  # [T, K, 2]
    cn = conics[c][gid]  # [T, K, 3]
    dx = m[:, None, :, 0] - pxs[:, :, None]  # [T, P, K]
    dy = m[:, None, :, 1] - pys[:, :, None]
    sigma = 0.5 * (cn[:, None, :, 0] * dx * dx + cn[:, None, :, 2] * dy * dy) + cn[:, None, :, 1] * dx * dy
    a = torch.clamp(opacities[c][gid][:, None, :] * torch.exp(-sigma), max=ALPHA_MAX)
    keep = valid[:, None, :] & (sigma >= 0) & (a >= ALPHA_MIN) & inside[:, :, None]
    a = torch.where(keep, a, torch.zeros_like(a))
    nT = torch.cumprod(1 - a, dim=-1)
    Tb = torch.cat([torch.ones_like(nT[..., :1]), nT[..., :-1]], dim=-1)
    include = keep & (nT > T_MIN)
    w = torch.where(include, a * Tb, torch.zeros_like(a))
    return w, gid, include, nT, pxs, pys, inside


def rasterize_ref(means2d, conics, opacities, features, depths, offsets, ids, width, height, tile):
    """render [C,H,W,D], alpha [C,H,W], median depth [C,H,W] (median not differentiable)."""
    C, N, D = features.shape
    tile_w, tile_h = (width + tile - 1) // tile, (height + tile - 1) // tile
    renders, alphas, medians = [], [], []
    for c in range(C):
        w, gid, include, nT, pxs, pys, inside = _tile_weights(
            means2d, conics, opacities, offsets, ids, c, width, height, tile, tile_w, tile_h
        )
        f = features[c][gid]  # [T, K, D]
        out = torch.einsum("tpk,tkd->tpd", w, f)
        alpha = w.sum(-1)
        with torch.no_grad():
            d = depths[c][gid][:, None, :].expand_as(w)
            crossed = include & (nT <= 0.5)
            first = torch.where(crossed.any(-1), crossed.float().argmax(-1), -1)
            n_inc = include.sum(-1)
            slots = torch.arange(include.shape[-1])
            last = torch.where(include, slots, torch.zeros_like(slots)).amax(-1)
            pick = torch.where(first >= 0, first, last)
            med = torch.gather(d, -1, pick[..., None])[..., 0]
            med = torch.where(n_inc > 0, med, torch.zeros_like(med))
        img = torch.zeros(height, width, D, dtype=out.dtype)
        a_img = torch.zeros(height, width, dtype=out.dtype)
        m_img = torch.zeros(height, width, dtype=out.dtype)
        yi, xi = pys[inside].long(), pxs[inside].long()
        img = img.index_put((yi, xi), out[inside])
        a_img = a_img.index_put((yi, xi), alpha[inside])
        m_img = m_img.index_put((yi, xi), med[inside])
        renders.append(img)
        alphas.append(a_img)
        medians.append(m_img)
    return torch.stack(renders), torch.stack(alphas), torch.stack(medians)


@torch.no_grad()
def visibility_ref(means2d, conics, opacities, offsets, ids, width, height, thresh=0.01, tile=16):
    """vis [N] (sum over cameras and pixels of alpha*T), count [N] of pixels with weight > thresh, and
    alpha_sum [N] (sum of alpha over the same pixels, i.e. up to each pixel's early stop)."""
    C, N = opacities.shape
    tile_w, tile_h = (width + tile - 1) // tile, (height + tile - 1) // tile
    vis = torch.zeros(N, dtype=torch.float32)
    cnt = torch.zeros(N, dtype=torch.int32)
    asum = torch.zeros(N, dtype=torch.float32)
    for c in range(C):
        w, gid, include, nT, *_ = _tile_weights(means2d, conics, opacities, offsets, ids, c, width, height, tile,
                                                tile_w, tile_h)
        g = gid[:, None, :].expand_as(w).flatten()
        Tb = torch.cat([torch.ones_like(nT[..., :1]), nT[..., :-1]], dim=-1)
        a = torch.where(include, w / Tb.clamp(min=1e-30), torch.zeros_like(w))
        vis.index_add_(0, g, w.flatten().float())
        cnt.index_add_(0, g, (w > thresh).flatten().int())
        asum.index_add_(0, g, a.flatten().float())
    return vis, cnt, asum
