"""Per-Gaussian visibility and DP-Recon's visibility-to-weight mapping.

Accumulation (one pass over the training views, same tiling / cut-offs / early stop as the renderer):
    weight_sum[g] = sum over views and pixels of alpha_g T_g   (compositing weight)
    alpha_sum[g]  = sum over the same pixels of alpha_g         (its weight with nothing in front)
    count[g]      = number of pixels where alpha_g T_g > thresh
Normalised visibility v_g = weight_sum[g] / alpha_sum[g] in [0, 1]: the transmittance-weighted fraction
of its footprint the cameras actually saw. 1: in plain sight; 0: always behind opaque surfaces (or a
pixel's early stop came first) or never inside a view. It lives in params["visibility"] so densified
Gaussians inherit it, and is recomputed at stage boundaries.

For a novel view, V = sum_i T_i alpha_i v_i over the object's own Gaussians (rendered alone) is a
visibility image in [0, 1]; SDS is weighted by (DP-Recon, CVPR 2025, Sec. 3.3, paper mapping):
    geometry:   w(V) = 20 - 38 V  if V < 0.5   else  2 - 2 V   (20 at V=0 .. 1 at V=0.5 .. 0 at V=1)
    appearance: w(V) = 1 if V < 0.3 else 0
Backends: CUDA kernel (cuda_ext/) on gsplat's projection; C++ kernel on CPU; torch reference
(gs_recon.render.rasterize_ref.visibility_ref) as the oracle. An independent check, used by the tests:
weight_sum equals the gradient of the summed render of an all-ones per-Gaussian channel.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .render.api import render


@dataclass
class Visibility:
    weight_sum: Tensor  # [N] float32, sum of alpha*T
    count: Tensor  # [N] int32, pixels with alpha*T > thresh
    alpha_sum: Tensor  # [N] float32, sum of alpha over the same pixels

    @property
    def normalised(self) -> Tensor:
        """[N] in [0, 1]: weight_sum / alpha_sum (0 where the Gaussian was never reached)."""
        return torch.where(self.alpha_sum > 0, self.weight_sum / self.alpha_sum.clamp(min=1e-12),
                           torch.zeros_like(self.weight_sum)).clamp(0, 1)


def geometry_weight(V: Tensor) -> Tensor:
    """DP-Recon geometry-stage SDS weight: 20 - 38 V where V < 0.5, else 2 - 2 V. V in [0, 1]."""
    return torch.where(V < 0.5, 20.0 - 38.0 * V, 2.0 - 2.0 * V)


def appearance_weight(V: Tensor, thresh: float = 0.3) -> Tensor:
    """DP-Recon appearance-stage SDS weight: 1 where V < 0.3 (poorly seen), else 0."""
    return (V < thresh).to(V.dtype)


def _gsplat_tiles_to_ref(info, N: int):
    """gsplat's (isect_offsets [C,TH,TW], flatten_ids c*N+g) -> the CPU layout (offsets [C,T+1], ids g)."""
    from .render.rasterize_cpu import Tiles

    off = info["isect_offsets"].long().cpu()
    C, th, tw = off.shape
    flat = off.reshape(-1)
    ends = torch.cat([flat[1:], torch.tensor([info["flatten_ids"].numel()])])
    offsets = torch.cat([flat.view(C, -1), ends.view(C, -1)[:, -1:]], 1)
    return Tiles(offsets, (info["flatten_ids"].long().cpu() % N).int(), tw, th)


@torch.no_grad()
def accumulate(params, viewmats: Tensor, Ks: Tensor, width: int, height: int, thresh: float = 0.01,
               batch: int = 8, backend: str = "auto", impl: str = "auto") -> Visibility:
    """Visibility of every Gaussian in `params` over views viewmats [V,4,4], Ks [V,3,3].

    impl: "auto" (CUDA kernel on gsplat's outputs, C++ on CPU), "kernel", or "reference" (torch)."""
    from .render._cuda_ext import load_cuda_ext
    from .render.rasterize_cpu import accumulate_visibility
    from .render.rasterize_ref import visibility_ref

    N = params["means"].shape[0]
    dev = params["means"].device
    tot = Visibility(torch.zeros(N, device=dev), torch.zeros(N, dtype=torch.int32, device=dev),
                     torch.zeros(N, device=dev))
    for s in range(0, viewmats.shape[0], batch):
        vm, K = viewmats[s:s + batch].to(dev), Ks[s:s + batch].to(dev)
        meta = render(params, vm, K, width, height, sh_degree=0, backend=backend).meta
        C = vm.shape[0]
        op = meta["opacities"]
        op = op[None].expand(C, -1) if op.dim() == 1 else op
        if meta["backend"] == "gsplat":
            ext = load_cuda_ext() if impl in ("auto", "kernel") else None
            if ext is not None:
                out = ext.accumulate_visibility(meta["means2d"].float().contiguous(), meta["conics"].float().contiguous(),
                                                op.float().contiguous(), meta["isect_offsets"].int().contiguous(),
                                                meta["flatten_ids"].int().contiguous(), width, height,
                                                meta["tile_size"], thresh)
            else:
                tiles = _gsplat_tiles_to_ref(meta, N)
                out = visibility_ref(meta["means2d"].float().cpu(), meta["conics"].float().cpu(), op.float().cpu(),
                                     tiles.offsets, tiles.ids, width, height, thresh, meta["tile_size"])
        elif impl == "reference":
            t = meta["tiles"]
            out = visibility_ref(meta["means2d"], meta["conics"], op, t.offsets, t.ids, width, height, thresh,
                                 meta["tile_size"])
        else:
            out = accumulate_visibility(meta["means2d"], meta["conics"], op.contiguous(), meta["tiles"], width,
                                        height, thresh)
        w, c, a = (x.to(dev) for x in out)
        tot.weight_sum += w
        tot.count += c
        tot.alpha_sum += a
    return tot


def accumulate_autograd(params, viewmats: Tensor, Ks: Tensor, width: int, height: int, batch: int = 8,
                        backend: str = "auto") -> Tensor:
    """Independent route to weight_sum [N]: d(sum of the rendered all-ones channel)/d(that channel)."""
    N = params["means"].shape[0]
    detached = {k: v.detach() for k, v in params.items()}
    ones = torch.ones(N, 1, device=params["means"].device, requires_grad=True)
    for s in range(0, viewmats.shape[0], batch):
        out = render(detached, viewmats[s:s + batch], Ks[s:s + batch], width, height, extra=ones, backend=backend)
        out.extra.sum().backward()
    return ones.grad[:, 0]


def update_params_visibility(params, scene, thresh: float = 0.01) -> Visibility:
    """Recompute v over the scene's training views and store it in params["visibility"] (in place)."""
    idx = scene.train_idx
    vis = accumulate(params, scene.viewmats[idx], scene.Ks[idx], scene.width, scene.height, thresh)
    params["visibility"].data.copy_(vis.normalised.to(params["visibility"]).view_as(params["visibility"]))
    return vis
