"""gs_recon/geometry.py: the shared rotations, cameras, boxes and Gaussian transforms, against independent
definitions (scipy's rotations, projection of the target, covariance algebra)."""
import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from gs_recon.geometry import (covariance_3d, horizontal_basis, look_at, orbit_viewmats, panorama_cameras,
                               quantile_box, quat_to_rotmat, ring_direction, rotmat_to_quat, transform_gaussians)


def test_quaternions_match_scipy_and_round_trip():
    R = Rotation.random(50, random_state=0)
    xyzw = R.as_quat()
    wxyz = torch.from_numpy(xyzw[:, [3, 0, 1, 2]] * 3.0)  # unnormalised on purpose
    assert np.allclose(quat_to_rotmat(wxyz).numpy(), R.as_matrix(), atol=1e-12)
    q = rotmat_to_quat(R.as_matrix())
    assert (q[:, 0] >= 0).all() and np.allclose(np.linalg.norm(q, axis=1), 1)
    assert np.allclose(quat_to_rotmat(torch.from_numpy(q)).numpy(), R.as_matrix(), atol=1e-12)
    assert rotmat_to_quat(np.eye(3)).shape == (4,) and np.allclose(rotmat_to_quat(np.eye(3)), [1, 0, 0, 0])


def test_look_at_puts_the_target_on_the_optical_axis():
    cam, target = np.array([1.0, -2.0, 0.5]), np.array([0.2, 0.3, -0.1])
    vm = look_at(cam, target).double().numpy()
    assert np.allclose(vm[:3, :3] @ vm[:3, :3].T, np.eye(3), atol=1e-6)
    x = vm[:3, :3] @ target + vm[:3, 3]
    assert abs(x[0]) < 1e-6 and abs(x[1]) < 1e-6 and math.isclose(x[2], np.linalg.norm(target - cam), rel_tol=1e-6)
    y_world = vm[1, :3]  # camera y (down) in world coordinates: against +z up
    assert y_world[2] < 0


def test_orbit_and_ring_directions():
    up = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    a, b, u = horizontal_basis(up)
    assert torch.allclose(torch.stack([a, b, u]) @ torch.stack([a, b, u]).T, torch.eye(3, dtype=torch.float64))
    assert torch.allclose(torch.linalg.cross(a, b), u)
    d = ring_direction(math.pi / 2, math.radians(30), a, b, u)
    assert torch.allclose(d, math.cos(math.radians(30)) * b + 0.5 * u)
    vms = orbit_viewmats([0.1, 0.2, 0.3], [2.0, 3.0], [0.0, 1.0], [0.2, 0.9], up=(0, 0, 1))
    centres = -torch.einsum("cji,cj->ci", vms[:, :3, :3], vms[:, :3, 3])
    assert torch.allclose((centres - torch.tensor([0.1, 0.2, 0.3])).norm(dim=1), torch.tensor([2.0, 3.0]), atol=1e-5)
    assert torch.allclose(centres[:, 2] - 0.3, torch.tensor([2 * math.sin(0.2), 3 * math.sin(0.9)]), atol=1e-5)
    pv, pK = panorama_cameras([0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], 4, 64, 64)
    assert pv.shape == (6, 4, 4) and torch.allclose(pK[0, 0, 0], torch.tensor(32.0))  # 90 degrees: f = W / 2


def test_quantile_box():
    pts = torch.cat([torch.rand(1000, 3), torch.full((5, 3), 100.0)])  # a few outliers
    lo, hi = quantile_box(pts, 0.02)
    assert (lo > -0.01).all() and (lo < 0.05).all() and (hi < 1.01).all() and (hi > 0.95).all()


def test_transform_gaussians_moves_means_and_covariances():
    g = torch.Generator().manual_seed(0)
    n = 20
    gs = {"means": torch.randn(n, 3, generator=g, dtype=torch.float64).float(), "quats": torch.randn(n, 4, generator=g),
          "scales": torch.randn(n, 3, generator=g) * 0.3, "opacities": torch.zeros(n), "labels": torch.arange(n)}
    R = torch.from_numpy(Rotation.random(random_state=1).as_matrix())
    M = torch.eye(4, dtype=torch.float64)
    M[:3, :3], M[:3, 3] = 2.5 * R, torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    out = transform_gaussians(gs, M)
    assert torch.allclose(out["means"].double(), gs["means"].double() @ M[:3, :3].T + M[:3, 3], atol=1e-5)
    cov_in = covariance_3d(gs["quats"].double(), gs["scales"].double().exp())
    cov_out = covariance_3d(out["quats"].double(), out["scales"].double().exp())
    assert torch.allclose(cov_out, M[:3, :3] @ cov_in @ M[:3, :3].T, atol=1e-4)
    assert torch.equal(out["labels"], gs["labels"])
