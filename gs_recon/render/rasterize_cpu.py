"""CPU rasterization: tile intersection + C++ forward/backward behind a torch autograd Function.

``rasterize`` takes projected Gaussians and per-camera features and returns composited features,
alpha, median depth, plus the tile lists (reused by the visibility accumulator). When the C++
extension is unavailable, the pure-torch reference in ``rasterize_ref`` computes the same thing.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._ext import load_cpu_ext
from .rasterize_ref import isect_tiles_ref, rasterize_ref

TILE = 16


class Tiles(NamedTuple):
    offsets: Tensor  # [C, TH*TW + 1] int64, global offsets into ids
    ids: Tensor  # [M] int32, Gaussian index within its camera, sorted by depth per tile
    tile_w: int
    tile_h: int


def isect_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int, tile: int = TILE) -> Tiles:
    """means2d [C,N,2], radii [C,N,2] int32, depths [C,N] -> Tiles."""
    tw, th = (width + tile - 1) // tile, (height + tile - 1) // tile
    ext = load_cpu_ext()
    m, r, d = means2d.detach().float().cpu(), radii.int().cpu(), depths.detach().float().cpu()
    if ext is not None:
        off, ids = ext.isect_tiles(m, r, d, tile, tw, th)
    else:
        off, ids = isect_tiles_ref(m, r, d, tile, tw, th)
    return Tiles(off, ids, tw, th)


class _RasterizeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, opacities, features, depths, offsets, ids, width, height, tile):
        ext = load_cpu_ext()
        render, alpha, last, median = ext.rasterize_fwd(
            means2d, conics, opacities, features, depths, offsets, ids, width, height, tile
        )
        ctx.save_for_backward(means2d, conics, opacities, features, offsets, ids, alpha, last)
        ctx.dims = (width, height, tile)
        ctx.mark_non_differentiable(last, median)
        return render, alpha, last, median

    @staticmethod
    def backward(ctx, v_render, v_alpha, _v_last, _v_median):
        means2d, conics, opacities, features, offsets, ids, alpha, last = ctx.saved_tensors
        width, height, tile = ctx.dims
        if v_render is None:
            v_render = torch.zeros_like(features.new_empty(alpha.shape + (features.shape[-1],)))
        if v_alpha is None:
            v_alpha = torch.zeros_like(alpha)
        vm, vc, vo, vf = load_cpu_ext().rasterize_bwd(
            means2d, conics, opacities, features, offsets, ids, alpha, last,
            v_render.float(), v_alpha.float(), width, height, tile,
        )
        return vm, vc, vo, vf, None, None, None, None, None, None


def rasterize(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    depths: Tensor,
    tiles: Tiles,
    width: int,
    height: int,
    tile: int = TILE,
):
    """Composite features front to back.

    means2d [C,N,2], conics [C,N,3], opacities [C,N], features [C,N,D], depths [C,N].
    Returns render [C,H,W,D], alpha [C,H,W,1], median_depth [C,H,W,1] (no gradient).
    """
    ext = load_cpu_ext()
    if ext is None:
        render, alpha, median = rasterize_ref(
            means2d, conics, opacities, features, depths, tiles.offsets, tiles.ids, width, height, tile
        )
        return render, alpha[..., None], median[..., None]
    render, alpha, _last, median = _RasterizeFn.apply(
        means2d.float().contiguous(), conics.float().contiguous(), opacities.float().contiguous(),
        features.float().contiguous(), depths.detach().float().contiguous(),
        tiles.offsets, tiles.ids, width, height, tile,
    )
    return render, alpha[..., None], median[..., None]


@torch.no_grad()
def accumulate_visibility(
    means2d: Tensor, conics: Tensor, opacities: Tensor, tiles: Tiles, width: int, height: int,
    thresh: float = 0.01, tile: int = TILE,
):
    """Per-Gaussian sum of compositing weights alpha*T over all cameras' pixels, count of pixels with weight
    > thresh, and sum of alpha over the same pixels. means2d [C,N,2], conics [C,N,3], opacities [C,N]
    -> (vis [N] float32, count [N] int32, alpha_sum [N] float32)."""
    ext = load_cpu_ext()
    if ext is None:
        from .rasterize_ref import visibility_ref

        return visibility_ref(means2d, conics, opacities, tiles.offsets, tiles.ids, width, height, thresh, tile)
    return tuple(ext.accumulate_visibility(
        means2d.float().contiguous(), conics.float().contiguous(), opacities.float().contiguous(),
        tiles.offsets, tiles.ids, width, height, tile, thresh,
    ))
