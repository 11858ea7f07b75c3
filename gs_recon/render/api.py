"""One render interface, two backends (gsplat on CUDA, our C++ tile rasterizer on CPU).

``render`` composites, per camera, one feature vector per Gaussian:
    [ RGB (3) | camera-space depth (1) | camera-space normal (3) | per-label one-hot (L) | extra (E) ]
so colour, expected depth, normals, per-object alpha and any extra channel (e.g. visibility) come out
of one pass. Median depth (where transmittance crosses 0.5) only when asked for (``median=True``: mesh
extraction reads it, nothing else does): from the same traversal on CPU, from gs_recon's CUDA kernel on
gsplat's projection and tile lists on a GPU.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .projection import Projection, camera_frames, project
from .rasterize_cpu import TILE, isect_tiles, rasterize
from .sh import eval_sh

_GSPLAT_STATE: Dict[str, Any] = {"ok": None}


@dataclass
class RenderOutput:
    rgb: Tensor  # [C, H, W, 3], background composited
    alpha: Tensor  # [C, H, W, 1]
    depth: Optional[Tensor]  # [C, H, W, 1] expected depth (alpha-normalised), camera z; None if not asked for
    median_depth: Optional[Tensor]  # [C, H, W, 1] depth where transmittance crosses 0.5 (no gradient); None
    #                                  unless render(..., median=True)
    normals: Optional[Tensor]  # [C, H, W, 3] camera-space normals from shortest Gaussian axes (alpha-weighted)
    object_alpha: Tensor  # [C, H, W, L] per-label alpha (label 0 = background)
    extra: Optional[Tensor]  # [C, H, W, E] composited extra channels, or None
    meta: Dict[str, Any] = field(default_factory=dict)  # gsplat-compatible fields for strategies

    def depth_normals(self, Ks: Tensor) -> Tensor:
        """Camera-space normals from the expected depth map, [C, H, W, 3]."""
        return normals_from_depth(self.depth, Ks)


def normals_from_depth(depth: Tensor, Ks: Tensor) -> Tensor:
    """depth [C,H,W,1], Ks [C,3,3] -> camera-space normals [C,H,W,3] by central differences."""
    C, H, W, _ = depth.shape
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5,
        torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5,
        indexing="ij",
    )
    fx, fy = Ks[:, 0, 0, None, None], Ks[:, 1, 1, None, None]
    cx, cy = Ks[:, 0, 2, None, None], Ks[:, 1, 2, None, None]
    z = depth[..., 0]
    pts = torch.stack([(xs - cx) / fx * z, (ys - cy) / fy * z, z], dim=-1)  # [C,H,W,3]
    dx = torch.zeros_like(pts)
    dy = torch.zeros_like(pts)
    dx[:, :, 1:-1] = pts[:, :, 2:] - pts[:, :, :-2]
    dy[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    n = torch.cross(dy, dx, dim=-1)
    return F.normalize(n, dim=-1)


def gsplat_available() -> bool:
    """True when gsplat's CUDA backend imports and a GPU is present; warns once otherwise."""
    if _GSPLAT_STATE["ok"] is None:
        ok, why = False, ""
        if not torch.cuda.is_available():
            why = "no CUDA device"
        else:
            try:
                from gsplat.cuda._backend import _C  # noqa: F401  (JIT-builds on first import)

                ok = _C is not None
                why = "" if ok else "gsplat_cuda extension unavailable"
            except Exception as e:  # ImportError about gsplat_cuda.so, missing toolkit, ...
                why = f"{type(e).__name__}: {str(e)[:160]}"
        if not ok and torch.cuda.is_available():
            warnings.warn(f"gs_recon: gsplat CUDA backend unusable ({why}); using the CPU rasterizer.", stacklevel=2)
        _GSPLAT_STATE["ok"] = ok
    return bool(_GSPLAT_STATE["ok"])


def _features(params, means_c: Tensor, rot_c: Tensor, viewmats: Tensor, sh_degree: int, n_labels: int,
              extra: Optional[Tensor], depth: bool = True, normals: bool = True) -> Tensor:
    """Per-camera features [C, N, 3 + (1 if depth) + (3 if normals) + L + E]. means_c [C,N,3] is read only for
    depth and normals, rot_c [C,N,3,3] only for normals (either may be None otherwise)."""
    C, N = viewmats.shape[0], params["means"].shape[0]
    coeffs = torch.cat([params["sh0"], params["shN"]], dim=1) if params["shN"].shape[1] > 0 else params["sh0"]
    if sh_degree > 0:
        campos = -(viewmats[:, :3, :3].transpose(1, 2) @ viewmats[:, :3, 3:])[..., 0]  # [C, 3]
        dirs = params["means"][None] - campos[:, None]  # [C, N, 3]
        K = (sh_degree + 1) ** 2
        if dirs.is_cuda and gsplat_available():  # gsplat's fused SH kernel (forward and backward)
            from gsplat.cuda._wrapper import spherical_harmonics

            rgb = torch.clamp_min(spherical_harmonics(sh_degree, dirs, coeffs[None, :, :K].expand(C, -1, -1, -1))
                                  + 0.5, 0.0)
        else:  # the same maths in torch (~80 elementwise ops at degree 3)
            rgb = eval_sh(sh_degree, coeffs[None].expand(C, -1, -1, -1), dirs)
    else:
        rgb = eval_sh(0, coeffs[None, :, :1].expand(C, N, -1, -1), params["means"][None].expand(C, -1, -1))
    parts = [rgb]
    if depth:
        parts.append(means_c[..., 2:3])
    if normals:  # shortest axis of each Gaussian in camera space, flipped to face the camera
        with torch.no_grad():
            short = params["scales"].argmin(-1)  # [N]
        n = torch.gather(rot_c, 3, short[None, :, None, None].expand(C, N, 3, 1))[..., 0]  # [C, N, 3]
        facing = (n * means_c).sum(-1, keepdim=True)
        parts.append(torch.where(facing > 0, -n, n))
    if n_labels > 0:
        parts.append(F.one_hot(params["labels"].long().clamp(0, n_labels - 1), n_labels).to(rgb.dtype)[None].expand(C, -1, -1))
    if extra is not None:
        parts.append(extra.to(rgb.dtype)[None].expand(C, -1, -1) if extra.dim() == 2 else extra.to(rgb.dtype))
    return torch.cat(parts, dim=-1)


def render(
    params,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int = 0,
    background: Optional[Tensor] = None,
    n_labels: int = 0,
    mask: Optional[Tensor] = None,
    extra: Optional[Tensor] = None,
    backend: str = "auto",
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    median: bool = False,
    depth: bool = True,
    normals: bool = True,
) -> RenderOutput:
    """Render Gaussians.

    params: dict with means [N,3], scales [N,3] (log), quats [N,4], opacities [N] (logit), sh0 [N,1,3],
        shN [N,K-1,3], labels [N] (int).
    viewmats [C,4,4] OpenCV world-to-camera, Ks [C,3,3]; background [3] or [C,3].
    mask [N] bool: render only these Gaussians (e.g. one object alone). extra [N,E] or [C,N,E].
    backend: "auto" (gsplat on CUDA tensors when usable, else CPU), "gsplat" or "cpu".
    median: also compute RenderOutput.median_depth (else None). depth / normals: composite the expected depth /
    the shortest-axis normals (else those fields are None: fewer channels to rasterize; the training step asks
    only for what its losses read).
    """
    if mask is not None:
        params = {k: v[mask] for k, v in params.items()}
        if extra is not None:
            extra = extra[..., mask, :] if extra.dim() == 3 else extra[mask]
    if use_gsplat_for(backend, params["means"].device):
        return _render_gsplat(params, viewmats, Ks, width, height, sh_degree, background, n_labels, extra, eps2d,
                              near_plane, median, depth, normals)
    return _render_cpu(params, viewmats, Ks, width, height, sh_degree, background, n_labels, extra, eps2d, near_plane,
                       median, depth, normals)


def use_gsplat_for(backend: str, device: torch.device) -> bool:
    """backend "gsplat", or "auto" on CUDA tensors, and gsplat's CUDA backend usable (else our CPU one)."""
    return (backend == "gsplat" or (backend == "auto" and device.type == "cuda")) and gsplat_available()


def _meta(p: Projection, opacities: Tensor, width: int, height: int, n_cameras: int, backend: str, **more):
    """The gsplat-compatible meta fields gsplat's strategies and our visibility code read."""
    return dict(means2d=p.means2d, radii=p.radii, width=width, height=height, n_cameras=n_cameras,
                gaussian_ids=None, depths=p.depths, conics=p.conics, opacities=opacities, tile_size=TILE,
                backend=backend, **more)


def _split(feat_img: Tensor, alpha: Tensor, median: Optional[Tensor], background, n_labels: int, meta,
           depth: bool = True, normals: bool = True) -> RenderOutput:
    """Cut the composited features [C,H,W,D] (the layout _features made) into RenderOutput's fields."""
    rgb = feat_img[..., :3]
    if background is not None:
        bg = background.to(rgb)
        bg = bg.view(-1, 1, 1, 3) if bg.dim() == 2 else bg.view(1, 1, 1, 3)
        rgb = rgb + (1 - alpha) * bg
    c = 3
    d = feat_img[..., c:c + 1] / alpha.clamp(min=1e-6) if depth else None
    c += int(depth)
    n = feat_img[..., c:c + 3] if normals else None
    c += 3 * int(normals)
    obj = feat_img[..., c:c + n_labels]
    extra = feat_img[..., c + n_labels:] if feat_img.shape[-1] > c + n_labels else None
    return RenderOutput(rgb, alpha, d, median, n, obj, extra, meta)


def _to_cpu(params, viewmats, Ks, extra):
    """The CPU backend on GPU tensors (gsplat unusable): compute on the CPU, results move back."""
    params = {k: v.cpu() for k, v in params.items()}
    return params, viewmats.cpu(), Ks.cpu(), (extra.cpu() if extra is not None else None)


def _outputs_to(out: RenderOutput, dev: torch.device) -> RenderOutput:
    for k in ("rgb", "alpha", "depth", "median_depth", "normals", "object_alpha", "extra"):
        v = getattr(out, k)
        if v is not None:
            setattr(out, k, v.to(dev))
    return out


def project_gaussians(params, viewmats: Tensor, Ks: Tensor, width: int, height: int, use_gsplat: bool,
                      eps2d: float = 0.3, near_plane: float = 0.01, frames: bool = True) -> Projection:
    """Project all Gaussians into every camera with the chosen backend's op (ours or gsplat's
    ``fully_fused_projection``). Fields as in ``Projection``: means2d [C,N,2], conics [C,N,3], depths [C,N],
    radii [C,N,2] int32, means_cam [C,N,3], rot_cam [C,N,3,3]. frames=False: leave means_cam and rot_cam None
    (only the depth and normal features read them; the visibility pass needs neither, and [C,N,3,3] is 720 MB
    at 1M Gaussians x 20 views)."""
    means, quats, scales = params["means"], params["quats"], torch.exp(params["scales"])
    opac = torch.sigmoid(params["opacities"]).detach()  # radii bound where alpha can reach 1/255, as gsplat's do
    if not use_gsplat:
        return project(means, quats, scales, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
                       opacities=opac, frames=frames)
    from gsplat.cuda._wrapper import fully_fused_projection

    radii, means2d, depths, conics, _ = fully_fused_projection(
        means, None, quats, scales, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, packed=False,
        opacities=opac)
    means_c, rot_c = camera_frames(means, quats, viewmats) if frames else (None, None)
    return Projection(means2d, conics, depths, radii.int(), means_c, rot_c)


def gsplat_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int):
    """gsplat's tile intersection for non-packed projections: (isect_offsets [C,TH,TW] int32, flatten_ids [M]
    int32, c*N + g), the layout gsplat's rasterizer and gs_recon's CUDA kernels read."""
    from gsplat.cuda._wrapper import isect_offset_encode
    from gsplat.cuda._wrapper import isect_tiles as g_isect

    C = means2d.shape[0]
    tw, th = -(-width // TILE), -(-height // TILE)
    _, isect_ids, flatten_ids = g_isect(means2d, radii, depths, TILE, tw, th, n_images=C)
    return isect_offset_encode(isect_ids, C, tw, th).reshape(C, th, tw), flatten_ids


def median_depth_gsplat(means2d: Tensor, conics: Tensor, opacities: Tensor, depths: Tensor, radii: Tensor,
                        width: int, height: int, offsets: Optional[Tensor] = None,
                        flatten_ids: Optional[Tensor] = None) -> Tensor:
    """Median depth [C,H,W,1] of a gsplat render (gsplat has no such mode), no gradient: gs_recon's CUDA kernel
    (cuda_ext/median_depth.cu) on gsplat's projection and tile lists (computed here unless given); our CPU
    traversal when the kernel cannot be built. opacities [N] or [C,N]."""
    from ._cuda_ext import load_cuda_ext

    with torch.no_grad():
        ext = load_cuda_ext()
        op = opacities.detach().float()
        if ext is None:
            op = op[None].expand(means2d.shape[0], -1) if op.dim() == 1 else op
            return _median_cpu(means2d, radii, depths, conics, op, width, height)
        if offsets is None or flatten_ids is None:
            offsets, flatten_ids = gsplat_tiles(means2d, radii, depths, width, height)
        if op.dim() == 2 and op.stride(0) == 0:  # gsplat's meta broadcasts [N] over the cameras
            op = op[0]
        med = ext.median_depth(means2d.detach().float().contiguous(), conics.detach().float().contiguous(),
                               op.contiguous(), depths.detach().float().contiguous(),
                               offsets.int().contiguous(), flatten_ids.int().contiguous(), width, height, TILE)
    return med[..., None]


def _median_cpu(means2d: Tensor, radii: Tensor, depths: Tensor, conics: Tensor, opacities: Tensor,
                width: int, height: int) -> Tensor:
    """Median depth [C,H,W,1] by our CPU traversal of a projection held anywhere (opacities [C,N]); no gradient."""
    with torch.no_grad():
        m2d, dep = means2d.detach().float().cpu(), depths.detach().float().cpu()
        tiles = isect_tiles(m2d, radii.cpu().int(), dep, width, height)
        _, _, median = rasterize(m2d, conics.detach().float().cpu(), opacities.detach().float().cpu().contiguous(),
                                 dep[..., None], dep, tiles, width, height)
    return median.to(means2d.device)


def rasterize_projected(means2d: Tensor, conics: Tensor, opacities: Tensor, features: Tensor, depths: Tensor,
                        radii: Tensor, width: int, height: int, use_gsplat: bool, median: bool = False):
    """Composite per-camera features front to back with the chosen backend's op.

    means2d [C,N,2], conics [C,N,3], opacities [C,N], features [C,N,D], depths [C,N], radii [C,N,2].
    Returns (render [C,H,W,D], alpha [C,H,W,1], median depth [C,H,W,1] or None unless `median`, backend meta
    dict)."""
    if not use_gsplat:
        tiles = isect_tiles(means2d, radii, depths, width, height)
        img, alpha, med = rasterize(means2d, conics, opacities, features, depths, tiles, width, height)
        return img, alpha, (med if median else None), {"tiles": tiles}
    from gsplat.cuda._wrapper import rasterize_to_pixels

    offsets, flatten_ids = gsplat_tiles(means2d, radii, depths, width, height)
    chunks = [rasterize_to_pixels(means2d, conics, features[..., c:c + 32].contiguous(), opacities, width, height,
                                  TILE, offsets, flatten_ids) for c in range(0, features.shape[-1], 32)]
    img, alpha = torch.cat([c[0] for c in chunks], dim=-1), chunks[0][1]
    med = (median_depth_gsplat(means2d, conics, opacities, depths, radii, width, height, offsets, flatten_ids)
           if median else None)
    return img, alpha, med, {"isect_offsets": offsets, "flatten_ids": flatten_ids}


def _render_cpu(params, viewmats, Ks, width, height, sh_degree, background, n_labels, extra, eps2d, near_plane,
                median=False, depth=True, normals=True):
    dev = params["means"].device
    if dev.type != "cpu":
        params, viewmats, Ks, extra = _to_cpu(params, viewmats, Ks, extra)
    opac = torch.sigmoid(params["opacities"])
    C = viewmats.shape[0]
    p = project_gaussians(params, viewmats, Ks, width, height, False, eps2d, near_plane, frames=depth or normals)
    feats = _features(params, p.means_cam, p.rot_cam, viewmats, sh_degree, n_labels, extra, depth, normals)
    img, alpha, median, extra_meta = rasterize_projected(p.means2d, p.conics, opac[None].expand(C, -1), feats,
                                                         p.depths, p.radii, width, height, False, median)
    out = _split(img, alpha, median, background, n_labels, _meta(p, opac, width, height, C, "cpu", **extra_meta),
                 depth, normals)
    return _outputs_to(out, dev) if dev.type != "cpu" else out


def _render_gsplat(params, viewmats, Ks, width, height, sh_degree, background, n_labels, extra, eps2d, near_plane,
                   median=False, depth=True, normals=True):
    from gsplat import rasterization

    means = params["means"]
    # [C,N,3] for the depth and normals, [C,N,3,3] for the normals only
    means_c, rot_c = camera_frames(means, params["quats"], viewmats, normals) if (depth or normals) else (None, None)
    feats = _features(params, means_c, rot_c, viewmats, sh_degree, n_labels, extra, depth, normals)
    img, alpha, info = rasterization(
        means, params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]), feats,
        viewmats, Ks, width, height, near_plane=near_plane, eps2d=eps2d, packed=False, tile_size=TILE,
        render_mode="RGB", rasterize_mode="classic",
    )
    # gsplat has no median-depth mode: gs_recon's CUDA kernel on gsplat's own projection and tiles (no gradient)
    med = (median_depth_gsplat(info["means2d"], info["conics"], info["opacities"], info["depths"], info["radii"],
                               width, height, info["isect_offsets"], info["flatten_ids"]) if median else None)
    info = dict(info)
    info.update(n_cameras=viewmats.shape[0], backend="gsplat", tile_size=TILE)
    return _split(img, alpha, med, background, n_labels, info, depth, normals)
