"""Novel cameras for the prior stages (DP-Recon's sampling, in the scene's internal frame).

Objects: azimuth uniform over 360 degrees around the object's box centre, elevation (from the scene's up
direction) uniform in [5, 30] degrees widening linearly to [5, 80] over the stage, fovy uniform in
[40, 45], distance such that the box's longest side spans `fill` (80%) of the view height.
Background ("outward"): from a training camera centre (jittered), looking outward, away from the scene
centre, with a random azimuth offset of +-60 degrees and a small pitch; fovy uniform in [70, 85].
Background ("dprecon", DP-Recon's scene cameras, code/camera_views.py get_scene_camera): from a training
camera centre, or with probability 0.3 the scene centre, jittered by up to 0.05 horizontally and 0.02
vertically, looking at a random point of the unit ball around the scene centre (radius uniform in [0, 1],
azimuth uniform over 360 degrees, elevation uniform in [-90, 90]); fovy uniform in [70, 85]. It sees the
floor and ceiling and across the room, where "outward" sees the walls behind the cameras.
All cameras: OpenCV world-to-camera viewmats [n,4,4] and intrinsics Ks [n,3,3] for a size x size image.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

from ..geometry import horizontal_basis, look_at, ring_direction


def _K(fovy_deg: Tensor, size: int) -> Tensor:
    f = 0.5 * size / torch.tan(torch.deg2rad(fovy_deg) / 2)
    K = torch.zeros(len(fovy_deg), 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, size / 2, size / 2, 1
    return K


def _u(gen, n, lo, hi) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def object_cameras(lo: Tensor, hi: Tensor, up: Tensor, n: int, size: int, progress: float, gen: torch.Generator,
                   elevation: Sequence[float] = (5, 30), elevation_end: Sequence[float] = (5, 80),
                   fovy: Sequence[float] = (40, 45), fill: float = 0.8) -> Tuple[Tensor, Tensor]:
    """n cameras around the box [lo, hi] ([3] each); progress in [0, 1] widens the elevation range."""
    p = min(max(progress, 0.0), 1.0)
    e_lo = elevation[0] + (elevation_end[0] - elevation[0]) * p
    e_hi = elevation[1] + (elevation_end[1] - elevation[1]) * p
    az = _u(gen, n, 0.0, 2 * math.pi)
    el = torch.deg2rad(_u(gen, n, e_lo, e_hi))
    fy = _u(gen, n, fovy[0], fovy[1])
    c = (lo + hi) / 2
    longest = float((hi - lo).max())
    a, b, upn = horizontal_basis(up.float())
    vms = []
    for i in range(n):
        dist = longest / fill / (2 * math.tan(math.radians(float(fy[i])) / 2)) + longest / 2
        d = ring_direction(az[i], el[i], a, b, upn)
        vms.append(look_at(tuple((c + dist * d).tolist()), tuple(c.tolist()), up=tuple(upn.tolist())))
    return torch.stack(vms), _K(fy, size)


def background_cameras(centres: Tensor, scene_centre: Tensor, up: Tensor, n: int, size: int, gen: torch.Generator,
                       fovy: Sequence[float] = (70, 85), jitter: float = 0.05) -> Tuple[Tensor, Tensor]:
    """n cameras at (jittered) training camera centres [M,3], looking outward from scene_centre [3]."""
    a, b, upn = horizontal_basis(up.float())
    pick = torch.randint(0, centres.shape[0], (n,), generator=gen)
    fy = _u(gen, n, fovy[0], fovy[1])
    vms = []
    for i in range(n):
        pos = centres[pick[i]].float() + jitter * torch.randn(3, generator=gen)
        out = pos - scene_centre.float()
        out = out - (out @ upn) * upn  # horizontal outward direction
        base = math.atan2(float(out @ b), float(out @ a)) if out.norm() > 1e-6 else 0.0
        az = base + math.radians(float(_u(gen, 1, -60, 60)))
        el = math.radians(float(_u(gen, 1, -10, 20)))
        d = ring_direction(az, el, a, b, upn)
        vms.append(look_at(tuple(pos.tolist()), tuple((pos + d).tolist()), up=tuple(upn.tolist())))
    return torch.stack(vms), _K(fy, size)


def scene_cameras(centres: Tensor, scene_centre: Tensor, up: Tensor, n: int, size: int, gen: torch.Generator,
                  fovy: Sequence[float] = (70, 85), p_centre: float = 0.3, radius: float = 1.0,
                  elevation: Sequence[float] = (-90, 90)) -> Tuple[Tensor, Tensor]:
    """DP-Recon's background cameras (module docstring): n cameras at (jittered) training camera centres
    [M,3] or, with probability p_centre, at scene_centre [3], each looking at a random point within `radius`
    of scene_centre (elevation range in degrees from the horizontal)."""
    a, b, upn = horizontal_basis(up.float())
    pick = torch.randint(0, centres.shape[0], (n,), generator=gen)
    at_centre = torch.rand(n, generator=gen) < p_centre
    fy = _u(gen, n, fovy[0], fovy[1])
    vms = []
    for i in range(n):
        pos = scene_centre.float() if at_centre[i] else centres[pick[i]].float()
        j = _u(gen, 3, -1.0, 1.0)
        pos = pos + 0.05 * (j[0] * a + j[1] * b) + 0.02 * j[2] * upn
        while True:  # a look-at point on the camera itself has no direction: draw again
            r = float(_u(gen, 1, 0.0, radius))
            az = math.radians(float(_u(gen, 1, -180.0, 180.0)))
            el = math.radians(float(_u(gen, 1, elevation[0], elevation[1])))
            target = scene_centre.float() + r * ring_direction(az, el, a, b, upn)
            d = target - pos
            if d.norm() > 1e-3:
                break
        # looking (nearly) straight up or down: the horizontal axis a stands in for up
        cam_up = upn if abs(float(d @ upn)) < 0.999 * float(d.norm()) else a
        vms.append(look_at(tuple(pos.tolist()), tuple(target.tolist()), up=tuple(cam_up.tolist())))
    return torch.stack(vms), _K(fy, size)
