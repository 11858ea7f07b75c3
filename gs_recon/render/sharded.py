"""Sharded rendering across ranks (torchrun): every rank holds a disjoint part of the Gaussians and renders
its own cameras with all ranks' Gaussians.

This is the scheme of gsplat's ``rasterization(..., distributed=True)`` (Zhao et al., "On Scaling Up 3D
Gaussian Splatting Training", arXiv:2406.18533): projection is split over Gaussians, rasterization over
cameras, and one all-to-all between them moves each projected Gaussian to the ranks whose cameras need
it. gsplat's function accepts per-Gaussian colours only (it asserts so in distributed mode), while our
render composites per-camera features (camera-space depth and normals, label one-hots, extras), so the
three steps are written here over the backend's own ops:

  1. gather every rank's cameras; project this rank's Gaussians into all of them and build features
     (gsplat's ``fully_fused_projection`` on CUDA, ours on CPU);
  2. all-to-all: rank q receives, from every rank, that rank's projected Gaussians for q's cameras
     -> [C_local, N_total] per field;
  3. rasterize the local cameras (gsplat's ``rasterize_to_pixels`` on CUDA, ours on CPU).

Gradients return through the all-to-all to the rank that owns each Gaussian, so each rank's optimizer
and densification strategy see exactly their shard. The communication (``all_to_all_single``: NCCL on
GPU, gloo on CPU) is the same code for both backends, so the CPU tests with gloo exercise it.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as tdist
from torch import Tensor

from .api import (
    RenderOutput,
    _features,
    _meta,
    _outputs_to,
    _split,
    _to_cpu,
    project_gaussians,
    rasterize_projected,
    use_gsplat_for,
)


def _exchange(x: Tensor, send: List[int], recv: List[int]) -> Tensor:
    out = x.new_empty((sum(recv),) + tuple(x.shape[1:]))
    tdist.all_to_all_single(out, x.contiguous(), output_split_sizes=recv, input_split_sizes=send)
    return out


class _AllToAllV(torch.autograd.Function):
    """Differentiable all_to_all_single with uneven splits along dim 0 (backward swaps the splits)."""

    @staticmethod
    def forward(ctx, x: Tensor, send: List[int], recv: List[int]) -> Tensor:
        ctx.send, ctx.recv = send, recv
        return _exchange(x, send, recv)

    @staticmethod
    def backward(ctx, g: Tensor):
        return _exchange(g, ctx.recv, ctx.send), None, None


def all_to_all(x: Tensor, send: List[int], recv: List[int]) -> Tensor:
    """Rows x[sum(send[:q]) : sum(send[:q+1])] go to rank q; returns the received rows in source-rank
    order. Differentiable."""
    return _AllToAllV.apply(x, send, recv)


def _all_gather_rows(x: Tensor, world: int) -> Tensor:
    """[C, ...] on every rank -> [world * C, ...] in rank order (no gradient; cameras)."""
    parts = [torch.empty_like(x) for _ in range(world)]
    tdist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def render_sharded(params, viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: int = 0,
                   background: Optional[Tensor] = None, n_labels: int = 0, backend: str = "auto", eps2d: float = 0.3,
                   near_plane: float = 0.01) -> RenderOutput:
    """Render this rank's cameras with the Gaussians of all ranks.

    params: this rank's shard (keys as in ``render``), N_r Gaussians. viewmats [C,4,4], Ks [C,3,3]: this
    rank's cameras; every rank must pass the same C. Returns this rank's images [C,H,W,*] as ``render``
    would for the union of all shards. meta["means2d"] [C_world, N_r, 2] and meta["radii"] [C_world, N_r, 2]
    are this rank's Gaussians in every rank's cameras (their gradients are the densification statistic,
    as in gsplat), meta["n_cameras"] = C.
    """
    world = tdist.get_world_size()
    dev = params["means"].device
    use_gsplat = use_gsplat_for(backend, dev)
    if dev.type != "cpu" and not use_gsplat:
        params, viewmats, Ks, _ = _to_cpu(params, viewmats, Ks, None)
    cdev = params["means"].device
    C = viewmats.shape[0]
    n_local = params["means"].shape[0]
    counts = torch.tensor([n_local], device=cdev)
    all_counts = [torch.zeros_like(counts) for _ in range(world)]
    tdist.all_gather(all_counts, counts)
    n_world = [int(c) for c in all_counts]
    vm_all, K_all = _all_gather_rows(viewmats, world), _all_gather_rows(Ks, world)  # [world*C, ...]

    p = project_gaussians(params, vm_all, K_all, width, height, use_gsplat, eps2d, near_plane)
    opac = torch.sigmoid(params["opacities"])
    feats = _features(params, p.means_cam, p.rot_cam, vm_all, sh_degree, n_labels, None)  # [world*C, N_r, D]
    Cw = world * C
    D = feats.shape[-1]
    # one float message: means2d (2) | conics (3) | depth (1) | opacity (1) | features (D)
    msg = torch.cat([p.means2d, p.conics, p.depths[..., None], opac[None, :, None].expand(Cw, -1, 1), feats], dim=-1)
    send = [C * n_local] * world
    recv = [C * n for n in n_world]
    got = all_to_all(msg.reshape(Cw * n_local, -1), send, recv)
    radii = all_to_all(p.radii.reshape(Cw * n_local, 2), send, recv)
    # received blocks are [C, N_q, *] from each source rank q: lay them side by side -> [C, N_total, *]
    got = torch.cat([b.reshape(C, n, -1) for b, n in zip(got.split(recv), n_world)], dim=1)
    radii = torch.cat([b.reshape(C, n, 2) for b, n in zip(radii.split(recv), n_world)], dim=1)
    m2d, con, dep, op, f = got.split([2, 3, 1, 1, D], dim=-1)
    img, alpha, median, _ = rasterize_projected(m2d.contiguous(), con.contiguous(), op[..., 0].contiguous(),
                                                f.contiguous(), dep[..., 0].contiguous(), radii, width, height,
                                                use_gsplat)
    meta = _meta(p, opac, width, height, C, "gsplat" if use_gsplat else "cpu")
    out = _split(img, alpha, median, background, n_labels, meta)
    return _outputs_to(out, dev) if out.rgb.device != dev else out
