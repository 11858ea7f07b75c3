"""Camera helpers shared by the generator, orbit views, benchmarks and tests (OpenCV axes)."""
from __future__ import annotations

import numpy as np
import torch


def look_at_c2w(cam, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world [4,4] (x right, y down, z forward) for a camera at `cam` looking at `target`.
    When `up` is parallel to the view direction, the world y axis stands in for it."""
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


def look_at(cam, target, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenCV world-to-camera [4,4] float32: the inverse of look_at_c2w (rotation transposed)."""
    c2w = look_at_c2w(cam, target, up)
    M = np.eye(4)
    M[:3, :3] = c2w[:3, :3].T
    M[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
    return torch.from_numpy(M).float()
