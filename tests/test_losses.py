"""Stage 1's losses (train/losses.py): surface terms (depth-normal consistency, flattening, depth continuity),
sparse SfM depth, and the monocular prior losses' missing readings."""
import math

import numpy as np
import pytest
import torch

from gs_recon.gaussians.model import create_params
from gs_recon.geometry import look_at, rotmat_to_quat
from gs_recon.render.api import normals_from_depth, render
from gs_recon.train.losses import (continuous, depth_normal_loss, flatten_loss, sparse_depth_loss,
                                 sparse_depth_targets)

W, H = 64, 48
K = torch.tensor([[[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]]])


def _plane(tilt_deg: float, disc_tilt_deg: float):
    """A 2 m x 2 m plane through the origin, its normal tilted tilt_deg from +z about x, covered by flat
    discs whose own normals are tilted a further disc_tilt_deg about x. -> params, the plane's normal."""
    a = math.radians(tilt_deg)
    u, v = np.array([1.0, 0, 0]), np.array([0, math.cos(a), math.sin(a)])
    n = np.cross(u, v)
    g = np.linspace(-1, 1, 40)
    pts = torch.tensor(np.array([x * u + y * v for x in g for y in g]), dtype=torch.float32)
    params = create_params(pts, torch.full_like(pts, 0.5), torch.zeros(len(pts)), sh_degree=0)
    b = math.radians(tilt_deg + disc_tilt_deg)
    R = np.stack([u, [0, math.cos(b), math.sin(b)], np.cross(u, [0, math.cos(b), math.sin(b)])], 1)  # columns
    with torch.no_grad():
        params["quats"][:] = torch.tensor(rotmat_to_quat(R), dtype=torch.float32)
        params["scales"][:] = torch.log(torch.tensor([0.06, 0.06, 0.002]))
        params["opacities"][:] = 4.0
    return params, torch.tensor(n, dtype=torch.float32)


def _render(params):
    vm = look_at((0.2, -0.7, 1.5), (0.0, 0.0, 0.0))[None]
    return render(params, vm, K, W, H, sh_degree=0, n_labels=1), vm


def test_depth_normals_agree_with_the_discs_on_a_plane():
    """The two normals the term compares, on a tilted plane of flat discs lying on it: the same direction
    (the plane's normal in camera space, facing the camera), so the loss is ~0; discs turned 60 degrees off
    the plane give a large loss (the depth still says the plane)."""
    params, n_world = _plane(30, 0)
    out, vm = _render(params)
    dn = normals_from_depth(out.depth, K)
    w = (out.alpha[..., 0] > 0.99) & continuous(out.depth)
    assert w.sum() > 0.5 * W * H
    n_cam = vm[0, :3, :3] @ n_world
    n_cam = n_cam if n_cam[2] < 0 else -n_cam  # facing the camera (camera looks along +z)
    assert (dn[w] @ n_cam).min() > 0.98 and (dn[w] @ n_cam).mean() > 0.995
    gauss_n = torch.nn.functional.normalize(out.normals[w], dim=-1)
    assert (gauss_n @ n_cam).min() > 0.98 and (gauss_n @ n_cam).mean() > 0.995
    assert float(depth_normal_loss(out.normals, dn, w.float())) < 0.01
    turned, _ = _plane(30, 60)
    out2, _ = _render(turned)
    w2 = ((out2.alpha[..., 0] > 0.99) & continuous(out2.depth)).float()
    assert float(depth_normal_loss(out2.normals, normals_from_depth(out2.depth, K), w2)) > 0.3


def test_depth_normal_loss_turns_discs_onto_the_surface():
    """Optimising only the discs' rotations on the loss brings their normals from 40 degrees off the plane to
    within a few degrees of it."""
    params, n_world = _plane(20, 40)
    params["quats"].requires_grad_(True)
    opt = torch.optim.Adam([params["quats"]], lr=0.02)

    def angle():
        from gs_recon.geometry import quat_to_rotmat

        R = quat_to_rotmat(torch.nn.functional.normalize(params["quats"].detach(), dim=-1))
        return float(torch.rad2deg(torch.arccos((R[:, :, 2] @ n_world).abs().clamp(max=1))).median())

    assert angle() > 39
    for _ in range(60):
        out, _ = _render(params)
        w = (out.alpha[..., 0] > 0.5) & continuous(out.depth)
        loss = depth_normal_loss(out.normals, normals_from_depth(out.depth, K), w.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert angle() < 8


def test_flatten_loss_pulls_only_the_shortest_axis():
    """Gradient against finite differences; only each Gaussian's shortest axis is pulled, by exp(s) / scale."""
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(50, 3, generator=g, dtype=torch.float64) * 3 - 5).requires_grad_(True)
    flatten_loss(s, 2.0).backward()
    mins = s.detach().argmin(1)
    expected = torch.zeros_like(s)
    expected[torch.arange(50), mins] = torch.exp(s.detach()[torch.arange(50), mins]) / (50 * 2.0)
    assert torch.allclose(s.grad, expected)
    e = 1e-6
    for i, j in [(0, int(mins[0])), (7, int(mins[7]))]:
        sp, sm = s.detach().clone(), s.detach().clone()
        sp[i, j] += e
        sm[i, j] -= e
        fd = (flatten_loss(sp, 2.0) - flatten_loss(sm, 2.0)) / (2 * e)
        assert abs(float(fd) - float(s.grad[i, j])) < 1e-8
    assert float(flatten_loss(s[:0], 2.0)) == 0.0


def test_continuous_masks_silhouette_jumps():
    z = torch.full((1, 10, 12, 1), 2.0)
    z[:, :, 6:] = 4.0  # a step between columns 5 and 6
    ok = continuous(z)
    assert not ok[0, 0].any() and not ok[0, :, 0].any()  # border
    assert not ok[0, 1:-1, 5:7].any()  # beside the jump
    assert ok[0, 1:-1, 1:5].all() and ok[0, 1:-1, 7:11].all()


def test_sparse_depth_targets_keep_what_each_view_sees():
    """Two parallel sheets of points, the near one covering the left half of the view: the z-buffer keeps
    the near sheet's points there and the far sheet's elsewhere, each at its true depth and pixel."""
    g = torch.linspace(-1, 1, 60)
    far = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    far = torch.cat([far, torch.full((len(far), 1), 5.0)], 1)  # z = 5 plane
    near = far[far[:, 0] < 0] * torch.tensor([0.5, 0.5, 0.5])  # z = 2.5, covering x < 0 in the image
    pts = torch.cat([near, far])
    vm = torch.eye(4)[None]  # camera at the origin looking down +z
    t = sparse_depth_targets(pts, vm, K, W, H, cell=4)
    pix, z = t[0]
    x = pix % W
    assert len(pix) > 100
    left, right = x < W / 2 - 4, x >= W / 2 + 4
    assert torch.allclose(z[left], torch.full_like(z[left], 2.5)) and left.sum() > 20
    assert torch.allclose(z[right], torch.full_like(z[right], 5.0)) and right.sum() > 20
    # each kept point at the pixel it projects to
    pc = pts[(pts[:, 2] == 5.0) & (pts[:, 0] > 0.2)][:5]
    u = (pc[:, 0] / pc[:, 2] * 50 + W / 2).floor().long()
    v = (pc[:, 1] / pc[:, 2] * 50 + H / 2).floor().long()
    assert set((v * W + u).tolist()) <= set(pix.tolist())


def test_sparse_depth_loss_gradient_and_cap():
    """Relative L1 at the targets' pixels, gradient sign(d - z) / (z n) against finite differences; errors beyond
    the cap pull no more."""
    depth = torch.full((1, 4, 5, 1), 2.0, dtype=torch.float64, requires_grad=True)
    pix, z = torch.tensor([0, 7, 13]), torch.tensor([1.9, 2.1, 4.0], dtype=torch.float64)
    loss = sparse_depth_loss(depth, [(pix, z)], max_rel=0.2)
    assert abs(float(loss) - (0.1 / 1.9 + 0.1 / 2.1 + 0.2) / 3) < 1e-12
    loss.backward()
    gr = depth.grad.flatten()
    assert abs(float(gr[0]) - 1 / (1.9 * 3)) < 1e-12 and abs(float(gr[7]) + 1 / (2.1 * 3)) < 1e-12
    assert float(gr[13]) == 0.0  # capped: 50% off
    e = 1e-7
    for i in (0, 7):
        dp, dm = depth.detach().clone(), depth.detach().clone()
        dp.view(-1)[i] += e
        dm.view(-1)[i] -= e
        fd = (sparse_depth_loss(dp, [(pix, z)]) - sparse_depth_loss(dm, [(pix, z)])) / (2 * e)
        assert abs(float(fd) - float(gr[i])) < 1e-6
    # `where` drops pixels: only the first target is left
    where = torch.zeros(1, 4, 5, dtype=torch.bool)
    where.view(-1)[0] = True
    assert abs(float(sparse_depth_loss(depth, [(pix, z)], where=where)) - 0.1 / 1.9) < 1e-12


def test_trainer_sparse_sfm_depth_keeps_the_depth_on_the_points():
    """Wired into stage 1: targets for the training views only, and the same steps with the term end with the
    rendered depth nearer the SfM points' depths (on object-free pixels) than without it."""
    from conftest import DEMO

    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.train.recon import Trainer

    scene = load_scene(DEMO)
    errs = {}
    for lam in (0.0, 0.5):
        cfg = load_config("tiny_cpu", [f"train.sfm_depth_lambda={lam}"])
        tr = Trainer(scene, cfg)
        if lam == 0:
            assert tr.sfm_targets is None
            targets = Trainer(scene, load_config("tiny_cpu", ["train.sfm_depth_lambda=0.5"])).sfm_targets
            assert sorted(targets) == sorted(scene.train_idx)
        tr.fit(50, progress=False)
        with torch.no_grad():
            out = tr.render_views(scene.train_idx)
        free = out.object_alpha[..., 1:].sum(-1) < 0.05
        errs[lam] = float(sparse_depth_loss(out.depth, [targets[i] for i in scene.train_idx], where=free))
    assert errs[0.5] < 0.7 * errs[0.0], errs


def test_prior_losses_skip_missing_readings():
    """A depth prior of 0 (sensor depth's 'no reading', e.g. ScanNet's) or an all-zero normal is no prior, the
    same as NaN: the loss, its per-step affine fit and its gradient are those of the prior without those pixels.
    Before, the zeros entered the least-squares fit and the L1 (the cross-view alignment already skipped them)."""
    from gs_recon.train.losses import depth_prior_loss, normal_prior_loss

    g = torch.Generator().manual_seed(0)
    prior = 1 + torch.rand(2, 12, 12, generator=g)
    depth = (0.7 * prior + 0.2 + 0.05 * torch.randn(2, 12, 12, generator=g)).requires_grad_(True)
    mask = torch.ones(2, 12, 12, dtype=torch.bool)
    hole = torch.zeros(2, 12, 12, dtype=torch.bool)
    hole[0, :5] = True
    hole[1, :, 7:] = True
    zeros, nans = prior.masked_fill(hole, 0.0), prior.masked_fill(hole, float("nan"))
    for aff in (None, torch.tensor([[0.7, 0.2], [0.7, 0.2]])):
        lz = depth_prior_loss(depth, zeros, mask, aff)
        ln = depth_prior_loss(depth, nans, mask, aff)
        gz, = torch.autograd.grad(lz, depth)
        gn, = torch.autograd.grad(ln, depth)
        assert float(lz.detach()) == pytest.approx(float(ln.detach()), rel=1e-6) and float(ln.detach()) < 0.1
        assert torch.allclose(gz, gn) and float(gz[hole].abs().max()) == 0.0
    n = torch.nn.functional.normalize(torch.randn(2, 12, 12, 3, generator=g), dim=-1)
    pn = n.masked_fill(hole[..., None], 0.0)
    assert float(normal_prior_loss(n, pn, mask)) < 1e-6
    assert float(normal_prior_loss(n, pn, mask)) == pytest.approx(
        float(normal_prior_loss(n, n.masked_fill(hole[..., None], float("nan")), mask)), abs=1e-7)
