"""EWA projection of 3D Gaussians to 2D, differentiable.

The same maths as gsplat's ``fully_fused_projection`` for pinhole cameras: world->camera with an
OpenCV world-to-camera matrix, perspective Jacobian with the screen-limit clamp, eps2d blur added
to the 2D covariance, conic = inverse 2D covariance, per-axis radii of 3.33 sigma; with the opacities given,
gsplat's opacity-aware radii (what ``gsplat.rasterization`` computes): the box where alpha can reach 1/255,
and a radius of 0 for a Gaussian whose opacity is below 1/255.

``project`` runs the C++ kernels (csrc/projection_cpu.cpp, one pass per camera and Gaussian forward and
backward) on float32 CPU tensors when the extension is built, else ``project_reference``, the same maths in
torch ops with autograd (the kernels' reference in tests/test_render_cpu.py; also float64 and cameras that
need gradients).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..geometry import quat_to_rotmat

ALPHA_INV_MIN = 255.0  # 1 / the smallest alpha a Gaussian contributes (gsplat's ALPHA_THRESHOLD, 1/255)


@dataclass
class Projection:
    """Per-camera projected Gaussians (C cameras, N Gaussians)."""

    means2d: Tensor  # [C, N, 2] pixel coordinates
    conics: Tensor  # [C, N, 3] (a, b, c) of the inverse 2D covariance
    depths: Tensor  # [C, N] camera-space z
    radii: Tensor  # [C, N, 2] int32, 0 where culled
    means_cam: Tensor  # [C, N, 3] camera-space centres
    rot_cam: Tensor  # [C, N, 3, 3] Gaussian axes in camera space


def camera_frames(means: Tensor, quats: Tensor, viewmats: Tensor, rotations: bool = True):
    """Gaussian centres and axes in each camera's frame, differentiable: means [N,3], quats [N,4], viewmats
    [C,4,4] -> (means_cam [C,N,3], rot_cam [C,N,3,3] or None unless `rotations`)."""
    R, t = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]  # [C, 1, 3, 3], [C, 1, 3]
    means_c = (R @ means[None, :, :, None]).squeeze(-1) + t
    return means_c, (R @ quat_to_rotmat(quats)[None] if rotations else None)


class _ProjectFn(torch.autograd.Function):
    """The C++ projection as an autograd Function: (means, quats, scales) -> (means2d, conics, depths, radii);
    cameras and opacities get no gradient."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, opacities, width, height, eps2d, near_plane, far_plane):
        from ._ext import load_cpu_ext

        ext = load_cpu_ext()
        means2d, conics, depths, radii = ext.project_fwd(means, quats, scales, viewmats, Ks, opacities, width, height,
                                                         eps2d, near_plane, far_plane)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks)
        ctx.dims = (width, height, eps2d)
        ctx.mark_non_differentiable(radii)
        return means2d, conics, depths, radii

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, _v_radii):
        from ._ext import load_cpu_ext

        means, quats, scales, viewmats, Ks = ctx.saved_tensors
        C, N = viewmats.shape[0], means.shape[0]
        z = means.new_zeros
        v_means, v_quats, v_scales = load_cpu_ext().project_bwd(
            means, quats, scales, viewmats, Ks, *ctx.dims,
            v_means2d if v_means2d is not None else z(C, N, 2), v_conics if v_conics is not None else z(C, N, 3),
            v_depths if v_depths is not None else z(C, N))
        return v_means, v_quats, v_scales, None, None, None, None, None, None, None, None


def _use_kernel(tensors, viewmats: Tensor, Ks: Tensor) -> bool:
    """The C++ projection applies: float32 CPU tensors, fixed cameras, the extension built."""
    if not all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors):
        return False
    if viewmats.requires_grad or Ks.requires_grad:
        return False
    from ._ext import load_cpu_ext

    return load_cpu_ext() is not None


def project(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    opacities: Optional[Tensor] = None,
    frames: bool = True,
) -> Projection:
    """Project Gaussians. means [N,3], quats [N,4], scales [N,3] (linear), viewmats [C,4,4], Ks [C,3,3],
    opacities [N] or [C,N] (optional: the radii then bound only where alpha >= 1/255, as gsplat's do).
    frames=False: means_cam and rot_cam are None (only depth and normal features read them)."""
    if not _use_kernel((means, quats, scales, viewmats, Ks), viewmats, Ks):
        p = project_reference(means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane,
                              opacities)
        return p if frames else Projection(p.means2d, p.conics, p.depths, p.radii, None, None)
    C, N = viewmats.shape[0], means.shape[0]
    op = (opacities.detach().float().expand(C, N).contiguous() if opacities is not None
          else torch.zeros(0))
    means2d, conics, depths, radii = _ProjectFn.apply(means, quats, scales, viewmats.detach(), Ks.detach(), op,
                                                      width, height, eps2d, near_plane, far_plane)
    means_c, rot_c = camera_frames(means, quats, viewmats) if frames else (None, None)
    return Projection(means2d, conics, depths, radii, means_c, rot_c)


def project_reference(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor, width: int,
                      height: int, eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
                      opacities: Optional[Tensor] = None) -> Projection:
    """``project`` in torch ops (autograd for the gradients; any dtype and device, cameras may need
    gradients). Arguments and outputs as there."""
    means_c, rot_c = camera_frames(means, quats, viewmats)  # [C, N, 3], [C, N, 3, 3]
    M = rot_c * scales[None, :, None, :]
    cov_c = M @ M.transpose(-1, -2)  # [C, N, 3, 3]

    fx = Ks[:, 0, 0, None]
    fy = Ks[:, 1, 1, None]
    cx = Ks[:, 0, 2, None]
    cy = Ks[:, 1, 2, None]
    tx, ty, tz = means_c.unbind(-1)
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    tz_safe = torch.where(tz.abs() < 1e-6, torch.full_like(tz, 1e-6), tz)
    txc = tz_safe * torch.clamp(tx / tz_safe, min=-lim_x_neg, max=lim_x_pos)
    tyc = tz_safe * torch.clamp(ty / tz_safe, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack(
        [fx / tz_safe, zero, -fx * txc / tz_safe**2, zero, fy / tz_safe, -fy * tyc / tz_safe**2], dim=-1
    ).reshape(tz.shape + (2, 3))
    cov2d = J @ cov_c @ J.transpose(-1, -2)  # [C, N, 2, 2]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    det = (cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]).clamp(min=1e-10)
    conics = torch.stack(
        [cov2d[..., 1, 1] / det, -(cov2d[..., 0, 1] + cov2d[..., 1, 0]) / 2.0 / det, cov2d[..., 0, 0] / det], dim=-1
    )
    means2d = torch.stack([fx * tx / tz_safe + cx, fy * ty / tz_safe + cy], dim=-1)

    with torch.no_grad():
        extend = 3.33
        valid = (det > 0) & (tz > near_plane) & (tz < far_plane) & torch.isfinite(means2d).all(-1)
        if opacities is not None:
            # alpha = opacity * exp(-sigma) >= 1/255 only where sigma <= log(255 opacity): that level set's box
            op = opacities.detach().to(cov2d.dtype)
            extend = torch.sqrt(2.0 * torch.log((op * ALPHA_INV_MIN).clamp(min=1.0))).clamp(max=3.33)
            valid = valid & (op >= 1.0 / ALPHA_INV_MIN)
        radius = torch.stack(
            [torch.ceil(extend * cov2d[..., 0, 0].sqrt()), torch.ceil(extend * cov2d[..., 1, 1].sqrt())], dim=-1
        )
        inside = (
            (means2d[..., 0] + radius[..., 0] > 0)
            & (means2d[..., 0] - radius[..., 0] < width)
            & (means2d[..., 1] + radius[..., 1] > 0)
            & (means2d[..., 1] - radius[..., 1] < height)
        )
        radius = torch.where((valid & inside)[..., None], radius, torch.zeros_like(radius))
        radius = torch.nan_to_num(radius, nan=0.0, posinf=0.0).clamp(max=1e6)
    return Projection(means2d, conics, tz, radius.int(), means_c, rot_c)
