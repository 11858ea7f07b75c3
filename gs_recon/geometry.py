"""Geometry shared by every layer (OpenCV camera axes: x right, y down, z forward): rotations and quaternions
(w, x, y, z), look-at cameras, directions on orbit rings, projecting points into views, boxes from quantiles,
and similarity transforms of Gaussians. One place for each: the renderer, the COLMAP parser, the prior's
cameras, the initialisation, the SfM depth term, the synthetic scenes, meshing, export and the viewer use these."""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


# ---------------------------------------------------------------------- rotations
def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices from (w, x, y, z) quaternions (normalised here). quats: [..., 4] -> [..., 3, 3]."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """Covariances R S S^T R^T. quats: [N, 4], scales: [N, 3] (linear) -> [N, 3, 3]."""
    R = quat_to_rotmat(quats)
    M = R * scales[:, None, :]
    return M @ M.transpose(-1, -2)


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] (columns: the rotated frame's axes) -> unit (w, x, y, z) [..., 4], w >= 0."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(R, dtype=np.float64)
    xyzw = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    q = xyzw[:, [3, 0, 1, 2]]
    q[q[:, 0] < 0] *= -1
    return q.reshape(R.shape[:-2] + (4,))


# ---------------------------------------------------------------------- cameras
def look_at_c2w(cam, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world [4,4] float64 for a camera at `cam` [3] looking at `target` [3]. When `up` is
    parallel to the view direction, the world y axis stands in for it."""
    cam, target = np.asarray(cam, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = target - cam
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    M = np.eye(4)
    M[:3, 0], M[:3, 1], M[:3, 2], M[:3, 3] = x, y, z, cam
    return M


def look_at(cam, target, up=(0.0, 0.0, 1.0)) -> Tensor:
    """OpenCV world-to-camera [4,4] float32: the inverse of look_at_c2w (rotation transposed)."""
    c2w = look_at_c2w(cam, target, up)
    M = np.eye(4)
    M[:3, :3] = c2w[:3, :3].T
    M[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
    return torch.from_numpy(M).float()


def horizontal_basis(up: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Two unit horizontal axes a, b and the unit up [3] each (right-handed: b = up x a), in up's dtype."""
    up = up / up.norm().clamp(min=1e-8)
    ref = torch.tensor([1.0, 0, 0], dtype=up.dtype) if abs(float(up[0])) < 0.9 else torch.tensor([0, 1.0, 0], dtype=up.dtype)
    a = torch.linalg.cross(up, ref)
    a = a / a.norm()
    return a, torch.linalg.cross(up, a), up


def ring_direction(az, el, a, b, up):
    """Unit direction at azimuth az (from a towards b) and elevation el (radians, towards up) in the frame
    (a, b, up): cos(el) (cos(az) a + sin(az) b) + sin(el) up. Angles: floats or 0-d tensors; axes: [3]."""
    cos, sin = (torch.cos, torch.sin) if isinstance(az, Tensor) else (math.cos, math.sin)
    return cos(el) * (cos(az) * a + sin(az) * b) + sin(el) * up


def orbit_viewmats(centre, dist, az, el, up=(0.0, 0.0, 1.0)) -> Tensor:
    """Cameras on a sphere around centre [3] looking at it: per camera i at centre + dist[i] d(az[i], el[i]) with
    d = ring_direction in horizontal_basis(up). dist, az, el: sequences of floats (radians). -> [n,4,4] float32
    world-to-camera."""
    c = torch.as_tensor(np.asarray(centre, dtype=np.float64))
    a, b, u = horizontal_basis(torch.as_tensor(np.asarray(up, dtype=np.float64)))
    return torch.stack([look_at(tuple((c + float(r) * ring_direction(float(p), float(q), a, b, u)).tolist()),
                                tuple(c.tolist()), up=tuple(u.tolist())) for r, p, q in zip(dist, az, el)])


def pinhole_K(fovy_deg: float, width: int, height: int) -> Tensor:
    """[3,3] intrinsics with the principal point at the image centre and vertical field of view fovy_deg."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def panorama_cameras(centre, a, b, up, n: int, width: int, height: int, vertical: bool = True) -> Tuple[Tensor, Tensor]:
    """Views from one point: n horizontal directions (azimuth 2 pi i / n from axis a towards b) plus, with
    `vertical`, straight down and straight up; 90-degree vertical FoV, so a room seen from inside is covered.
    centre, a, b, up: [3] each (a, b horizontal unit axes, up unit). -> viewmats [n(+2),4,4], Ks [n(+2),3,3]."""
    c, a, b, up = (torch.as_tensor(v, dtype=torch.float64) for v in (centre, a, b, up))
    vms = [look_at(tuple(c.tolist()), tuple((c + math.cos(2 * math.pi * i / n) * a + math.sin(2 * math.pi * i / n) * b)
                                            .tolist()), up=tuple(up.tolist())) for i in range(n)]
    if vertical:  # floor and ceiling: the "up" of these views is a horizontal axis
        vms += [look_at(tuple(c.tolist()), tuple((c + d).tolist()), up=tuple(a.tolist())) for d in (-up, up)]
    return torch.stack(vms).float(), pinhole_K(90.0, width, height)[None].repeat(len(vms), 1, 1)


# ---------------------------------------------------------------------- projection
def project_points(points: Tensor, viewmats: Tensor, Ks: Tensor):
    """points [P,3] -> pixel coords [C,P,2], depth [C,P]."""
    pc = torch.einsum("cij,pj->cpi", viewmats[:, :3, :3], points) + viewmats[:, None, :3, 3]
    z = pc[..., 2]
    uv = torch.einsum("cij,cpj->cpi", Ks, pc)[..., :2] / z.clamp(min=1e-6)[..., None]
    return uv, z


def lookup(maps: Tensor, uv: Tensor, z: Tensor):
    """Nearest-pixel lookup. maps [C,H,W,(D)], uv [C,P,2] -> values [C,P,(D)], inside [C,P] bool."""
    C, H, W = maps.shape[:3]
    x = torch.floor(uv[..., 0]).long()
    y = torch.floor(uv[..., 1]).long()
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H) & (z > 1e-3)
    xi, yi = x.clamp(0, W - 1), y.clamp(0, H - 1)
    ci = torch.arange(C)[:, None].expand_as(xi)
    return maps[ci, yi, xi], inside


# ---------------------------------------------------------------------- boxes and Gaussians
def quantile_box(pts: Tensor, q: float = 0.02) -> Tuple[Tensor, Tensor]:
    """Robust axis-aligned box of points [N,3]: their q and 1 - q quantiles per axis, ([3], [3])."""
    qs = torch.tensor([q, 1 - q], dtype=pts.dtype, device=pts.device)
    lo_hi = torch.quantile(pts, qs, dim=0)
    return lo_hi[0], lo_hi[1]


def transform_gaussians(g: Dict[str, Tensor], M) -> Dict[str, Tensor]:
    """Gaussians (means [N,3], quats [N,4] wxyz, scales [N,3] log, ...) under the similarity M [4,4] (s R,
    translation): means M x, rotations R q, log scales + log s; other fields copied. Returns CPU tensors."""
    M = torch.as_tensor(np.asarray(M, dtype=np.float64) if not isinstance(M, Tensor) else M).double().cpu()
    sR = M[:3, :3]
    s = float(torch.det(sR).abs() ** (1 / 3))
    R = (sR / s).float()
    out = {k: v.detach().cpu().clone() for k, v in g.items()}
    out["means"] = (g["means"].detach().cpu().double() @ sR.T + M[:3, 3]).float()
    out["scales"] = g["scales"].detach().cpu() + float(np.log(s))
    if not torch.allclose(R, torch.eye(3), atol=1e-6):
        rm = R[None] @ quat_to_rotmat(g["quats"].detach().cpu())
        out["quats"] = torch.from_numpy(rotmat_to_quat(rm.double().numpy())).float()
    return out
