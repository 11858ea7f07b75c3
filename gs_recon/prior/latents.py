"""DP-Recon's geometry latent on Gaussians: position-dependent camera-space normals from the rendered depth,
packed as [n o + (1 - o) (0, 0, 1), 2 o - 1] in DP-Recon's camera convention (docs/PRIOR.md), and the
visibility image resampled to the latent grid. Used by the prior stages and by the exemplar prior's renders."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..render.api import normals_from_depth


def _on_grid(V: Tensor, z: Tensor) -> Tensor:
    """Visibility image V [B,H,W,1] area-resampled to the latent grid of z [B,4,h,w] -> [B,1,h,w]."""
    return F.interpolate(V.permute(0, 3, 1, 2), size=z.shape[-2:], mode="area")


def surface_normals(out, Ks: Tensor) -> Tensor:
    """Camera-space (OpenCV) unit normals [B,H,W,3] that depend on positions: central differences of the
    rendered expected depth where the pixel and its 4 neighbours are covered (alpha > 0.5), elsewhere
    (silhouette edges) the alpha-composited shortest-axis normals, normalised. SDS on these moves means:
    on shortest-axis normals alone it can be satisfied by turning Gaussians in place."""
    a = out.alpha[..., 0]
    ok = a > 0.5
    inner = torch.zeros_like(ok)
    inner[:, 1:-1, 1:-1] = ok[:, 1:-1, 1:-1] & ok[:, :-2, 1:-1] & ok[:, 2:, 1:-1] & ok[:, 1:-1, :-2] & ok[:, 1:-1, 2:]
    nd = normals_from_depth(out.depth, Ks)
    ng = F.normalize(out.normals, dim=-1, eps=1e-6)
    return torch.where(inner[..., None], nd, ng)


def geometry_latent(normals_cv: Tensor, alpha: Tensor) -> Tensor:
    """DP-Recon's geometry-stage input (threestudio's comp_normal_cam_vis + opacity, then x 2 - 1):
    [n o + (1 - o) (0, 0, 1), 2 o - 1] with n in DP-Recon's camera frame (threestudio's OpenGL camera
    with x flipped, which is the OpenCV normal negated: a surface facing the camera is (0, 0, 1)).
    normals_cv [B,H,W,3] unit (OpenCV camera frame), alpha [B,H,W,1] -> [B,4,H,W]."""
    n = -normals_cv
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=n.dtype, device=n.device)
    rgb = n * alpha + (1 - alpha) * bg
    return torch.cat([rgb, 2 * alpha - 1], -1).permute(0, 3, 1, 2)
