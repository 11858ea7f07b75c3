"""Per-Gaussian visibility and DP-Recon's visibility-to-weight mapping.

Accumulation (one pass over the training views, same tiling / cut-offs / early stop as the renderer):
    weight_sum[g] = sum over views and pixels of alpha_g T_g   (compositing weight)
    alpha_sum[g]  = sum over the same pixels of alpha_g         (its weight with nothing in front)
    count[g]      = number of pixels where alpha_g T_g > thresh
Normalised visibility v_g = weight_sum[g] / alpha_sum[g] in [0, 1]: the transmittance-weighted fraction
of its footprint the cameras actually saw. 1: in plain sight; 0: always behind opaque surfaces (or a
pixel's early stop came first) or never inside a view. It lives in params["visibility"] so densified
Gaussians inherit it, and is recomputed at stage boundaries.

For the prior stages, visibility follows DP-Recon (its VisGrid: the maximum transmittance any training
ray reached at a point, in a grid indexed by position, frozen after reconstruction):
    v_max[g] = max over training views of weight_sum_view[g] / alpha_sum_view[g]
(a Gaussian fully seen in one view of ten scores ~1, where the all-view ratio above gives ~0.15), splatted
into a per-label grid over each label's box (max over the Gaussians in a cell, dilated by one cell) at the
end of stage 1 and queried by position afterwards (VisibilityGrid), so a Gaussian moved by SDS reads the
visibility of where it is now. For a novel view, V = sum_i T_i alpha_i v_i over the object's own Gaussians
(rendered alone) is a visibility image in [0, 1]; the geometry SDS is weighted per pixel by DP-Recon's
released mapping (geometry.yaml: none_vis_region_max 20, vis_region_max 0.1; the paper prints 2 - 2V
above 0.5, the code uses a tenth of it, which is what produced the published numbers):
    geometry:   w(V) = 20 - 38 V  if V < 0.5   else  0.1 (2 - 2 V)   (20 at V=0 .. 1 .. then 0.1 .. 0)
    appearance: w(V) = 1 if V < 0.3 else 0
Backends: CUDA kernel (cuda_ext/) on gsplat's projection; C++ kernel on CPU; torch reference
(gs_recon.render.rasterize_ref.visibility_ref) as the oracle. An independent check, used by the tests:
weight_sum equals the gradient of the summed render of an all-ones per-Gaussian channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from torch import Tensor

from ..render.api import render


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


def geometry_weight(V: Tensor, none_vis_max: float = 20.0, vis_max: float = 0.1) -> Tensor:
    """DP-Recon geometry-stage SDS weight (code/threestudio/models/guidance/stable_diffusion_guidance.py):
    none_vis_max - 2 V (none_vis_max - 1) where V < 0.5 (20 .. 1), else vis_max (2 - 2 V) (0.1 .. 0).
    vis_max = 1 gives the paper's printed mapping (2 - 2 V above 0.5). V in [0, 1], any shape."""
    return torch.where(V < 0.5, none_vis_max - 2.0 * V * (none_vis_max - 1.0), vis_max * (2.0 - 2.0 * V))


def appearance_weight(V: Tensor, thresh: float = 0.3) -> Tensor:
    """DP-Recon appearance-stage SDS weight: 1 where V < 0.3 (poorly seen), else 0."""
    return (V < thresh).to(V.dtype)


def _gsplat_tiles_to_ref(info, N: int):
    """gsplat's (isect_offsets [C,TH,TW], flatten_ids c*N+g) -> the CPU layout (offsets [C,T+1], ids g)."""
    from ..render.rasterize_cpu import Tiles

    off = info["isect_offsets"].long().cpu()
    C, th, tw = off.shape
    flat = off.reshape(-1)
    ends = torch.cat([flat[1:], torch.tensor([info["flatten_ids"].numel()])])
    offsets = torch.cat([flat.view(C, -1), ends.view(C, -1)[:, -1:]], 1)
    return Tiles(offsets, (info["flatten_ids"].long().cpu() % N).int(), tw, th)


_KERNEL_MAX_ENTRIES = 1 << 27  # views per launch: C * N below this ([C, N] outputs, ~1.5 GB at the limit)


def _cuda_route(params, backend: str, impl: str):
    """The CUDA kernel module when this accumulation runs on it (gsplat usable on the params' device and the
    kernel built), else None."""
    from ..render._cuda_ext import load_cuda_ext
    from ..render.api import use_gsplat_for

    if impl not in ("auto", "kernel") or not use_gsplat_for(backend, params["means"].device):
        return None
    return load_cuda_ext()


def _per_view_kernel(ext, params, viewmats: Tensor, Ks: Tensor, width: int, height: int, thresh: float):
    """One launch over all views, no render: gsplat's projection and tile intersection, then the kernel.
    -> (weight_sum, count, alpha_sum), each [C, N]."""
    from ..render.api import gsplat_tiles, project_gaussians
    from ..render.rasterize_cpu import TILE

    p = project_gaussians(params, viewmats, Ks, width, height, True, frames=False)
    offsets, flatten_ids = gsplat_tiles(p.means2d, p.radii, p.depths, width, height)
    return ext.accumulate_visibility(p.means2d.float().contiguous(), p.conics.float().contiguous(),
                                     torch.sigmoid(params["opacities"]).float().contiguous(),
                                     offsets.int().contiguous(), flatten_ids.int().contiguous(), width, height,
                                     TILE, thresh)


def _kernel_batches(n_views: int, N: int):
    b = max(1, _KERNEL_MAX_ENTRIES // max(1, N))
    return [(s, min(s + b, n_views)) for s in range(0, n_views, b)]


@torch.no_grad()
def accumulate(params, viewmats: Tensor, Ks: Tensor, width: int, height: int, thresh: float = 0.01,
               batch: int = 8, backend: str = "auto", impl: str = "auto") -> Visibility:
    """Visibility of every Gaussian in `params` over views viewmats [V,4,4], Ks [V,3,3]; no image is rendered
    (projection, tile lists and the accumulator only).

    impl: "auto" (CUDA kernel on gsplat's projection, all views in one launch; the C++ kernel on CPU),
    "kernel", or "reference" (torch). `batch`: views per pass of the CPU and reference routes."""
    from ..render.api import gsplat_tiles, project_gaussians, use_gsplat_for
    from ..render.rasterize_cpu import TILE, accumulate_visibility, isect_tiles
    from ..render.rasterize_ref import visibility_ref

    N = params["means"].shape[0]
    dev = params["means"].device
    tot = Visibility(torch.zeros(N, device=dev), torch.zeros(N, dtype=torch.int32, device=dev),
                     torch.zeros(N, device=dev))
    ext = _cuda_route(params, backend, impl)
    if ext is not None:
        for s, e in _kernel_batches(viewmats.shape[0], N):
            w, c, a = _per_view_kernel(ext, params, viewmats[s:e].to(dev), Ks[s:e].to(dev), width, height, thresh)
            tot.weight_sum += w.sum(0)
            tot.count += c.sum(0, dtype=torch.int32)
            tot.alpha_sum += a.sum(0)
        return tot
    gs = use_gsplat_for(backend, dev)
    for s in range(0, viewmats.shape[0], batch):
        vm, K = viewmats[s:s + batch].to(dev), Ks[s:s + batch].to(dev)
        C = vm.shape[0]
        p = project_gaussians(params, vm, K, width, height, gs, frames=False)
        op = torch.sigmoid(params["opacities"])[None].expand(C, -1).float()
        if gs:  # gsplat's projection and tiles, our torch reference on the CPU
            offsets, flatten_ids = gsplat_tiles(p.means2d, p.radii, p.depths, width, height)
            tiles = _gsplat_tiles_to_ref({"isect_offsets": offsets, "flatten_ids": flatten_ids}, N)
            out = visibility_ref(p.means2d.float().cpu(), p.conics.float().cpu(), op.cpu(), tiles.offsets, tiles.ids,
                                 width, height, thresh, TILE)
        else:
            tiles = isect_tiles(p.means2d, p.radii, p.depths, width, height)
            if impl == "reference":
                out = visibility_ref(p.means2d, p.conics, op, tiles.offsets, tiles.ids, width, height, thresh, TILE)
            else:
                out = accumulate_visibility(p.means2d, p.conics, op.contiguous(), tiles, width, height, thresh)
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


@torch.no_grad()
def max_view_visibility(params, viewmats: Tensor, Ks: Tensor, width: int, height: int, backend: str = "auto") -> Tensor:
    """[N] in [0, 1]: for each Gaussian, the best single training view's transmittance-weighted fraction
    of its footprint that was seen, max_v weight_sum_v / alpha_sum_v (0 for a Gaussian no view reached).
    On a GPU one kernel launch gives every view's sums at once; elsewhere one accumulation pass per view."""
    N = params["means"].shape[0]
    best = torch.zeros(N, device=params["means"].device)
    ext = _cuda_route(params, backend, "auto")
    if ext is not None:
        for s, e in _kernel_batches(viewmats.shape[0], N):
            w, _, a = _per_view_kernel(ext, params, viewmats[s:e].to(best.device), Ks[s:e].to(best.device),
                                       width, height, 0.01)
            ratio = torch.where(a > 0, w / a.clamp(min=1e-12), torch.zeros_like(w)).clamp(0, 1)
            best = torch.maximum(best, ratio.max(0).values)
        return best
    for i in range(viewmats.shape[0]):
        vis = accumulate(params, viewmats[i:i + 1], Ks[i:i + 1], width, height, batch=1, backend=backend)
        best = torch.maximum(best, vis.normalised.to(best))
    return best


class VisibilityGrid:
    """Visibility indexed by position, one dense grid per label over that label's box (DP-Recon's VisGrid,
    per object). Built once from Gaussians and their v (max over each cell's Gaussians, dilated by one
    cell so a Gaussian that moves a little keeps its neighbourhood's value), then frozen; query(means,
    labels) -> [N] by trilinear interpolation, 0 outside a label's box (never seen)."""

    def __init__(self, grids: Dict[int, Tuple[Tensor, Tensor, Tensor]]):
        self.grids = grids  # label -> (lo [3], hi [3], grid [R, R, R])

    @classmethod
    @torch.no_grad()
    def build(cls, means: Tensor, labels: Tensor, v: Tensor, resolution: int = 48, pad: float = 0.1) -> "VisibilityGrid":
        """means [N,3], labels [N], v [N] in [0, 1]."""
        import torch.nn.functional as F

        grids = {}
        means, labels, v = means.detach().float().cpu(), labels.cpu(), v.detach().float().cpu()
        for lab in torch.unique(labels).tolist():
            m = labels == lab
            pts, val = means[m], v[m]
            if len(pts) < 2:
                continue
            q = torch.tensor([0.005, 0.995])
            lo, hi = torch.quantile(pts, q[0], dim=0), torch.quantile(pts, q[1], dim=0)
            ext = (hi - lo).max().clamp(min=1e-4)
            lo, hi = lo - pad * ext, hi + pad * ext
            R = resolution
            ijk = ((pts - lo) / (hi - lo) * R).floor().long()
            ok = ((ijk >= 0) & (ijk < R)).all(1)
            flat = (ijk[ok, 0] * R + ijk[ok, 1]) * R + ijk[ok, 2]
            g = torch.zeros(R ** 3).scatter_reduce(0, flat, val[ok], reduce="amax", include_self=True)
            g = F.max_pool3d(g.view(1, 1, R, R, R), 3, stride=1, padding=1)[0, 0]
            grids[int(lab)] = (lo, hi, g)
        return cls(grids)

    def query(self, means: Tensor, labels: Tensor) -> Tensor:
        """[N] visibility at the Gaussians' current positions (no gradient)."""
        out = torch.zeros(means.shape[0], device=means.device)
        for lab in self.grids:
            m = labels == lab
            if not bool(m.any()):
                continue
            out[m] = self.query_label(means.detach()[m], lab)
        return out.clamp(0, 1)

    def query_label(self, means: Tensor, label: int) -> Tensor:
        """[n] visibility of points means [n,3] that all carry `label` (0 for a label without a grid), read
        from that label's grid; no host sync (the prior stages call it every step)."""
        import torch.nn.functional as F

        if label not in self.grids:
            return torch.zeros(means.shape[0], device=means.device)
        lo, hi, g = (t.to(means.device) for t in self.grids[label])
        R = g.shape[0]
        # cell centres at lo + (i + 0.5) (hi - lo) / R; grid_sample with align_corners=False matches
        x = (means.detach().float() - lo) / (hi - lo) * 2 - 1  # [-1, 1] across the box
        inside = (x.abs() <= 1).all(1)
        grid = x[:, [2, 1, 0]].view(1, 1, 1, -1, 3)  # grid_sample's (x, y, z) index (W, H, D) = (k, j, i)
        val = F.grid_sample(g.view(1, 1, R, R, R), grid, mode="bilinear", padding_mode="border",
                            align_corners=False).view(-1)
        return torch.where(inside, val, torch.zeros_like(val)).clamp(0, 1)

    def state_dict(self) -> Dict[str, Tensor]:
        return {f"{lab}.{k}": t for lab, tr in self.grids.items() for k, t in zip(("lo", "hi", "grid"), tr)}

    @classmethod
    def from_state_dict(cls, sd: Dict[str, Tensor]) -> "VisibilityGrid":
        labs = sorted({int(k.split(".")[0]) for k in sd})
        return cls({lab: (sd[f"{lab}.lo"], sd[f"{lab}.hi"], sd[f"{lab}.grid"]) for lab in labs})
