"""The prior stages' maths, each DP-Recon detail pinned by a case computed by hand: the geometry latent's
convention, normals that depend on positions, best-view visibility frozen in a position-indexed grid,
the released weight mapping, the held-then-annealed timestep range, and means that SDS can move."""
import math

import pytest
import numpy as np
import torch

from gs_recon.geometry import look_at
from gs_recon.prior.sd import timestep_range
from gs_recon.render.api import render
from gs_recon.prior.latents import geometry_latent, surface_normals
from gs_recon.prior.visibility import VisibilityGrid, accumulate, geometry_weight, max_view_visibility


def test_geometry_latent_convention_matches_dp_recon():
    """[n o + (1 - o)(0,0,1), 2o - 1] with n in DP-Recon's camera frame (threestudio's OpenGL camera, x
    flipped) = the OpenCV normal negated. Hand-made 2x2 render: facing the camera, facing right, facing up
    (image up), and empty."""
    n_cv = torch.tensor([[[0.0, 0, -1], [1, 0, 0]], [[0, -1, 0], [0, 0, -1]]])[None]  # OpenCV camera frame
    alpha = torch.tensor([[[1.0], [1.0]], [[0.5], [0.0]]])[None]
    z = geometry_latent(n_cv, alpha)
    assert z.shape == (1, 4, 2, 2)
    px = z[0].permute(1, 2, 0)  # [2,2,4]
    # facing the camera: OpenGL (0,0,1) -> x flip -> (0,0,1); opaque
    assert torch.allclose(px[0, 0], torch.tensor([0.0, 0, 1, 1]))
    # facing the camera's right: OpenGL (1,0,0) -> x flip -> (-1,0,0)
    assert torch.allclose(px[0, 1], torch.tensor([-1.0, 0, 0, 1]))
    # facing image-up: OpenCV -y = OpenGL +y -> (0,1,0); half transparent over the (0,0,1) background
    assert torch.allclose(px[1, 0], torch.tensor([0.0, 0.5, 0.5, 0.0]))
    # empty: the background normal (0,0,1), opacity -1
    assert torch.allclose(px[1, 1], torch.tensor([0.0, 0, 1, -1]))


def _sheet(n=24, tilt_deg=0.0, z0=0.0):
    """An opaque sheet of flat Gaussians (thin along their own z), all with identity rotation, whose
    centres lie on a plane tilted by tilt_deg about the x axis."""
    ii = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1).reshape(-1, 2).float()
    xy = (ii - (n - 1) / 2) * (1.2 / n)
    t = math.radians(tilt_deg)
    means = torch.stack([xy[:, 0], xy[:, 1] * math.cos(t), z0 + xy[:, 1] * math.sin(t)], 1)
    N = len(means)
    return {"means": means, "scales": torch.log(torch.tensor([0.06, 0.06, 0.004])).repeat(N, 1),
            "quats": torch.tensor([1.0, 0, 0, 0]).repeat(N, 1), "opacities": torch.full((N,), 4.0),
            "sh0": torch.zeros(N, 1, 3), "shN": torch.zeros(N, 0, 3), "labels": torch.zeros(N, dtype=torch.long)}


def test_surface_normals_follow_positions_not_rotations():
    """Gaussians whose axes all say 'normal = z' placed on a plane tilted by 30 degrees: the shortest-axis
    normals stay at z, the surface normals used by the geometry SDS report the tilted plane (within 5 deg
    in the interior), so moving means is how SDS changes them."""
    vm = look_at((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))[None]
    K = torch.tensor([[[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]]])
    p = _sheet(tilt_deg=30.0)
    out = render(p, vm, K, 64, 64)
    n = surface_normals(out, K)
    want_w = torch.tensor([0.0, -math.sin(math.radians(30)), math.cos(math.radians(30))])  # plane normal, world
    want = vm[0, :3, :3] @ want_w  # camera frame (it already faces the camera above it)
    inner = n[0, 24:40, 24:40].reshape(-1, 3)
    ang = torch.rad2deg(torch.acos((inner @ want).clamp(-1, 1)))
    assert ang.max() < 5.0, ang.max()  # measured 3.7 deg at worst (depth ripples between Gaussians)
    axis = torch.nn.functional.normalize(out.normals[0, 24:40, 24:40].reshape(-1, 3), dim=-1)
    assert torch.rad2deg(torch.acos((axis @ (vm[0, :3, :3] @ torch.tensor([0.0, 0, 1]))).clamp(-1, 1))).max() < 1
    # and the latent's normal channels have a gradient with respect to the means
    means = p["means"].clone().requires_grad_()
    out = render({**p, "means": means}, vm, K, 64, 64)
    geometry_latent(surface_normals(out, K), out.alpha)[:, :3, 20:44, 20:44].sum().backward()
    assert means.grad[:, 2].abs().max() > 1e-3


def _front_back():
    """36 opaque Gaussians on z = 0 each hiding a small one on z = -0.3 (from +z), and the reverse from -z."""
    ii = torch.stack(torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij"), -1).reshape(-1, 2)
    xy = (ii.float() - 2.5) * 0.3
    front = torch.cat([xy, torch.zeros(36, 1)], 1)
    back = torch.cat([xy * 2.3 / 2.0, torch.full((36, 1), -0.3)], 1)  # on the rays of a camera at z = 2
    n = 72
    return {"means": torch.cat([front, back]),
            "scales": torch.cat([torch.full((36, 3), math.log(0.06)), torch.full((36, 3), math.log(0.01))]),
            "quats": torch.tensor([1.0, 0, 0, 0]).repeat(n, 1), "opacities": torch.full((n,), 6.0),
            "sh0": torch.rand(n, 1, 3), "shN": torch.zeros(n, 0, 3),
            "labels": torch.cat([torch.ones(36), torch.full((36,), 2)]).long()}


def test_visibility_is_the_best_view_and_frozen_by_position():
    """Three cameras on the +z side (the small Gaussians are hidden behind the big ones) and one on the
    -z side (they are in plain sight there). The all-view ratio calls them mostly unseen (~1/4); the
    best view says seen (~1). The grid built from it answers by position: a Gaussian moved outside its
    label's box reads 0, one moved within a cell keeps its value."""
    p = _front_back()
    K = torch.tensor([[120.0, 0, 64], [0, 120.0, 64], [0, 0, 1]])
    vms = torch.stack([look_at((0, 0, 2.0), (0, 0, 0), up=(0, 1, 0)), look_at((0.05, 0, 2.0), (0, 0, 0), up=(0, 1, 0)),
                       look_at((0, 0.05, 2.0), (0, 0, 0), up=(0, 1, 0)), look_at((0, 0, -2.0), (0, 0, -0.3), up=(0, 1, 0))])
    Ks = K[None].repeat(4, 1, 1)
    mean_ratio = accumulate(p, vms, Ks, 128, 128).normalised
    best = max_view_visibility(p, vms, Ks, 128, 128)
    assert best[36:].min() > 0.9 and 0.1 < mean_ratio[36:].mean() < 0.45, (best[36:].min(), mean_ratio[36:].mean())
    assert best[:36].min() > 0.9
    only_front = max_view_visibility(p, vms[:3], Ks[:3], 128, 128)
    assert only_front[36:].max() < 0.05
    grid = VisibilityGrid.build(p["means"], p["labels"], only_front, resolution=16)
    q = grid.query(p["means"], p["labels"])
    assert q[:36].min() > 0.9 and q[36:].max() < 0.05
    moved = p["means"].clone()
    moved[0] += torch.tensor([0.0, 0.0, 5.0])  # far outside label 1's box: never seen
    moved[1] += torch.tensor([0.01, 0.0, 0.0])  # a fraction of a cell: same value
    q2 = grid.query(moved, p["labels"])
    assert q2[0] == 0 and q2[1] > 0.9
    back = VisibilityGrid.from_state_dict(grid.state_dict())  # what the checkpoint holds
    assert torch.equal(back.query(moved, p["labels"]), q2)


def test_weight_mapping_is_dp_recon_released():
    """code/threestudio/models/guidance/stable_diffusion_guidance.py with geometry.yaml's
    none_vis_region_max 20 and vis_region_max 0.1: 20 - 38 V below 0.5, 0.1 (2 - 2 V) from 0.5 on."""
    V = torch.tensor([0.0, 0.25, 0.4999, 0.5, 0.75, 1.0])
    assert torch.allclose(geometry_weight(V), torch.tensor([20.0, 10.5, 1.0038, 0.1, 0.05, 0.0]), atol=1e-3)
    # vis_max = 1: the mapping printed in the paper
    assert torch.allclose(geometry_weight(V, vis_max=1.0), torch.tensor([20.0, 10.5, 1.0038, 1.0, 0.5, 0.0]), atol=1e-3)


def test_timestep_range_held_then_annealed():
    """geometry.yaml: [0.2, 0.98] T held to step 2500 of 5000, then linear to [0.02, 0.40] T."""
    s, e = [200, 980], [20, 400]
    assert timestep_range(s, e, 0.0, hold=0.5) == (200, 980)
    assert timestep_range(s, e, 0.49, hold=0.5) == (200, 980)
    assert timestep_range(s, e, 0.75, hold=0.5) == (110, 690)
    assert timestep_range(s, e, 1.0, hold=0.5) == (20, 400)
    assert timestep_range(s, e, 0.5, hold=0.0) == (110, 690)  # hold 0: plain linear anneal


class _SphereTarget:
    """A stand-in guidance whose 'denoised' latent is a sphere around the object's box centre with 1.35x
    the box's half-size: the SDS-shaped gradient z - target pulls the surface outward."""

    def __init__(self):
        self.target = None

    def prepare(self, kind, category, vms, Ks, size, box, surface=None, background=None):
        c, r = box[0], 1.35 * float(box[1].max()) / 2
        ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
        outs = []
        for vm, K in zip(vms, Ks):
            d = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1)
            d = torch.nn.functional.normalize(d, dim=-1)  # camera frame rays from the origin
            cc = vm[:3, :3] @ c + vm[:3, 3]
            b = d @ cc
            disc = b * b - (cc @ cc - r * r)
            hit = disc > 0
            tt = b - disc.clamp(min=0).sqrt()
            n = torch.nn.functional.normalize(d * tt[..., None] - cc, dim=-1)
            o = hit.float()[..., None]
            outs.append(geometry_latent(n[None], o[None])[0])
        self.target = torch.stack(outs)

    def sds_loss(self, z, prompt, t_range, weight=None, generator=None, noise=None, t=None):
        g = (z.detach() - self.target) * (1.0 if weight is None else weight)
        return 0.5 * ((z - (z.detach() - g)) ** 2).sum() / z.shape[0]


@pytest.fixture(scope="module")
def demo_trainer():
    from conftest import DEMO

    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.train.recon import Trainer

    cfg = load_config("configs/tiny_prior_cpu.yaml", ["train.iterations=200", "prior.geometry_iters=40",
                                                      "prior.views_per_step=2", "prior.geometry_render=48",
                                                      "prior.geometry_latent=24", "prior.sds_geometry_lambda=0.02"])
    tr = Trainer(load_scene(DEMO, cfg.data), cfg)
    tr.fit(progress=False)
    return tr, cfg


def test_geometry_stage_moves_means_outward(demo_trainer):
    """Geometry stage on the ball (radius 0.2 m) with a target 35% larger, 40 steps from the same state:
    starting from fresh Adam moments at prior.lr_means (10x stage 1's final LR) its Gaussians move outward
    by more than GROW_MIN on average; with the means LR left at stage 1's final 1% (as before the fix)
    they move less than a quarter of that."""
    import copy

    from gs_recon.prior.stages import PriorStages

    tr, cfg = demo_trainer
    state = copy.deepcopy(tr.state_dict())
    grow = {}
    try:
        for name, lr in (("prior.lr_means", cfg.prior.lr_means), ("stage-1 final", cfg.train.lr_means * 0.01)):
            tr._load_state(copy.deepcopy(state))
            pc = copy.deepcopy(cfg.prior)
            pc.lr_means, pc.gaussian_gate = lr, 0.0  # every Gaussian of the ball takes the pull (no gate)
            ps = PriorStages(tr, _SphereTarget(), pc)
            ps.geo_ids = [2]  # the ball
            m = tr.params["labels"] == 2
            before = tr.params["means"].detach()[m].clone()
            c = before.mean(0)
            ps.run_geometry(progress=False)
            assert tr.step == 240
            assert tr.optimizers["means"].param_groups[0]["lr"] == pytest.approx(lr * tr.scene_scale)
            after = tr.params["means"].detach()[m]
            scale = float(tr.scene.world_from_internal[:3, :3].det().abs() ** (1 / 3))  # internal -> metres
            grow[name] = scale * float(((after - c).norm(dim=1) - (before - c).norm(dim=1)).mean())
    finally:
        tr._load_state(state)
    assert grow["prior.lr_means"] > GROW_MIN, grow
    assert grow["stage-1 final"] < 0.25 * grow["prior.lr_means"], grow


def test_geometry_stage_densifies_inside_the_box_under_the_cap(demo_trainer):
    """Bounded densification in the geometry stage: the ball pulled outward (the only object with SDS
    gradients) grows at each event (steps 10, 20, 30 of 40) by at most densify_frac of its count; the other
    objects and the background keep theirs; the new Gaussians lie in the ball's box; the stage's optimizer
    steps run on the grown tensors. With train.cap_max at the current count nothing is added."""
    import copy

    from gs_recon.prior.stages import PriorStages

    tr, cfg = demo_trainer
    state = copy.deepcopy(tr.state_dict())
    counts = lambda: torch.bincount(tr.params["labels"], minlength=4)  # noqa: E731
    try:
        pc = copy.deepcopy(cfg.prior)
        pc.densify_every, pc.densify_frac = 10, 0.05
        ps = PriorStages(tr, _SphereTarget(), pc)
        ps.geo_ids = [2]
        n0 = counts()
        centre, ext, B = ps.upright_box(2)
        ps.run_geometry(progress=False)
        n1 = counts()
        assert tr.step == 240
        assert n1[2] > n0[2] and n1[2] <= int(n0[2] * 1.05 ** 3) + 3, (n0, n1)
        assert ps.added == int(n1.sum() - n0.sum()) == int(n1[2] - n0[2])
        assert torch.equal(n1[[0, 1, 3]], n0[[0, 1, 3]])
        u = (tr.params["means"].detach()[tr.params["labels"] == 2] - centre) @ B.T
        assert ((u.abs() <= 0.6 * ext).all(1)).float().mean() > 0.98
        assert tr.optimizers["means"].state[tr.params["means"]]["exp_avg"].shape == tr.params["means"].shape
        # under the cap: no room, no growth
        tr._load_state(copy.deepcopy(state))
        tr.cfg.train.cap_max = int(tr.params["means"].shape[0])
        ps = PriorStages(tr, _SphereTarget(), pc)
        ps.geo_ids = [2]
        ps.run_geometry(progress=False)
        assert ps.added == 0 and torch.equal(counts(), n0)
    finally:
        tr.cfg.train.cap_max = cfg.train.cap_max
        tr._load_state(state)


GROW_MIN = 0.0004  # metres in 40 steps (measured 0.61 mm; 0.06 mm at the old 1%); linear, ~2 cm over 2000 steps


def _library(tmp_path):
    import trimesh

    for cat, meshes in {"crate": [trimesh.creation.box((1.0, 1.0, 1.0))],
                        "ball": [trimesh.creation.icosphere(3, 0.5)]}.items():
        (tmp_path / cat).mkdir()
        for i, m in enumerate(meshes):
            m.export(tmp_path / cat / f"{i}.obj")
    return tmp_path


def test_exemplar_renders_and_exact_denoiser(tmp_path):
    """A unit-box exemplar fitted into the upright box [-0.2,0.2]^2 x [0,0.3], seen head-on from +x: its
    geometry latent covers exactly the box's face, facing the camera. The denoiser is the posterior mean
    of the exemplar set: at low noise the nearest exemplar, at high noise the plain average; classifier-free
    guidance extrapolates from the unconditional (all categories) to the conditional (category) set."""
    from gs_recon.prior.exemplar import ExemplarGuidance

    torch.manual_seed(0)  # the noise draws below (float32 softmax sums differ in order: a fixed draw, no flake)
    g = ExemplarGuidance(_library(tmp_path), guidance_scale=3.0, supersample=1)
    assert g.categories == ["ball", "crate"]
    S = 40
    vm = look_at((2.0, 0.0, 0.15), (0.0, 0.0, 0.15))[None]
    K = torch.tensor([[[100.0, 0, S / 2], [0, 100.0, S / 2], [0, 0, 1]]])
    box = (torch.tensor([0.0, 0.0, 0.15]), torch.tensor([0.4, 0.4, 0.3]), torch.eye(3))
    g.prepare("geometry", "crate", vm, K, S, box)
    assert g.x.shape == (2 * 4, 1, 4, S, S) and g.cond.tolist() == [False] * 4 + [True] * 4  # ball, crate x 4 yaws
    crate = g.x[4, 0]
    o = (crate[3] + 1) / 2
    # the face at x = 0.2 is 1.8 from the camera: half-widths 0.2 / 1.8 * 100 = 11.1 px, 0.15 / 1.8 * 100 = 8.3 px
    cols, rows = (o > 0.5).any(0).nonzero()[:, 0], (o > 0.5).any(1).nonzero()[:, 0]
    assert abs(len(cols) - 22.2) <= 1.5 and abs(len(rows) - 16.7) <= 1.5, (len(cols), len(rows))
    assert torch.allclose(crate[:3, 20, 20], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)  # facing the camera
    x = g.x
    every = torch.ones(8, dtype=torch.bool)
    ab_lo, ab_hi = torch.tensor([0.999]), torch.tensor([1e-7])
    zt = ab_lo.sqrt() * x[5] + (1 - ab_lo).sqrt() * 0.01 * torch.randn_like(x[5])
    assert torch.allclose(g.x0_hat(zt, ab_lo, every), x[5], atol=1e-4)
    zt = torch.randn_like(x[0]) * 0.01
    assert torch.allclose(g.x0_hat(zt, ab_hi, every), x.mean(0), atol=1e-3)
    # by hand at a middle noise level
    ab = torch.tensor([0.5])
    zt = ab.sqrt() * (0.5 * x[1] + 0.5 * x[6]) + (1 - ab).sqrt() * torch.randn_like(x[0])
    d2 = torch.stack([((zt - ab.sqrt() * x[k]) ** 2).sum() for k in range(8)])
    wk = torch.softmax(-d2 / (2 * (1 - ab)), 0)
    assert torch.allclose(g.x0_hat(zt, ab, every), (wk.view(-1, 1, 1, 1, 1) * x).sum(0), atol=1e-4)
    # the guided noise prediction
    t = torch.tensor([int((g.alphas_cumprod - 0.5).abs().argmin())])
    abt = g.alphas_cumprod[t]
    zt = abt.sqrt() * x[6] + (1 - abt).sqrt() * torch.randn_like(x[0])
    eu = (zt - abt.sqrt() * g.x0_hat(zt, abt, every)) / (1 - abt).sqrt()
    ec = (zt - abt.sqrt() * g.x0_hat(zt, abt, g.cond)) / (1 - abt).sqrt()
    assert torch.allclose(g.predict_noise(zt, t, ""), eu + 3.0 * (ec - eu), atol=1e-4)


def test_exemplar_registration_recovers_a_partly_seen_box():
    """ICP with per-axis scale on a 0.30 x 0.40 x 0.25 box displaced by (0.03, -0.02, 0.01). The exemplar has
    the box's proportions at another size (0.6 x 0.8 x 0.5); the start is a box fit 20% too large, centred
    wrongly. Seen on +x, -x, +y and the top: the two x faces fix the size along x, the exemplar's proportions
    carry it to the unseen -y side and the bottom: size and position within 5 mm (8 cm off at the start).
    Seen on +x, +y and the top
    only (no axis seen on both sides) the seen faces are still placed to 5 mm and the residual is small."""
    import trimesh

    from gs_recon.prior.exemplar import register

    q = np.asarray(trimesh.creation.box((0.6, 0.8, 0.5)).sample(4000, seed=0))
    ext, off = np.array([0.30, 0.40, 0.25]), np.array([0.03, -0.02, 0.01])
    rng = np.random.default_rng(1)

    def faces(*which):
        out = []
        for ax, side in which:
            f = rng.uniform(-0.5, 0.5, (800, 3))
            f[:, ax] = 0.5 * side
            out.append(f * ext + off)
        return np.concatenate(out)

    start = 1.2 * ext / np.array([0.6, 0.8, 0.5])
    s, t, res = register(q, faces((0, 1), (0, -1), (1, 1), (2, 1)), start)
    assert np.abs(s * [0.6, 0.8, 0.5] - ext).max() < 0.005 and np.abs(t - off).max() < 0.005, (s, t)
    assert res < 0.008  # the model is 4000 samples ~1 cm apart
    s2, t2, res2 = register(q, faces((0, 1), (1, 1), (2, 1)), start)
    placed = t2 + s2 * np.array([0.3, 0.4, 0.25])  # the +x, +y and top faces of the fit
    assert np.abs(placed - (off + ext / 2)).max() < 0.005, placed
    assert res2 < 0.008


def test_exemplar_appearance_latents_from_coloured_exemplars(tmp_path):
    """Appearance steps: only exemplars with colours take part. A red box (face colours) seen head-on renders
    as 2 rgb - 1 = (1, -1, -1) where it covers the latent pixel and 2 bg - 1 around it; a category whose
    exemplars have no colours gets no appearance prior (x None: zero SDS)."""
    import trimesh

    from gs_recon.prior.exemplar import ExemplarGuidance

    box = trimesh.creation.box((1.0, 1.0, 1.0))
    box.visual.face_colors = np.tile([255, 0, 0, 255], (len(box.faces), 1))
    (tmp_path / "crate").mkdir()
    box.export(tmp_path / "crate" / "0.ply")
    (tmp_path / "ball").mkdir()
    trimesh.creation.icosphere(2, 0.5).export(tmp_path / "ball" / "0.obj")
    g = ExemplarGuidance(tmp_path, supersample=4)
    assert g.library[1].face_rgb is not None and g.library[0].face_rgb is None  # sorted: ball, crate
    S = 8
    vm = look_at((2.0, 0.0, 0.15), (0.0, 0.0, 0.15))[None]
    K = torch.tensor([[[20.0, 0, S / 2], [0, 20.0, S / 2], [0, 0, 1]]])  # the 0.4 x 0.3 face: ~4.4 x 3.3 px
    obox = (torch.tensor([0.0, 0.0, 0.15]), torch.tensor([0.4, 0.4, 0.3]), torch.eye(3))
    bg = torch.tensor([0.0, 1.0, 1.0])
    g.prepare("appearance", "crate", vm, K, S, obox, background=bg)
    assert g.x.shape == (4, 1, 3, S, S) and g.cond.all()  # the crate's 4 yaws; the uncoloured ball is left out
    assert torch.allclose(g.x[0, 0, :, 4, 4], torch.tensor([1.0, -1.0, -1.0]), atol=1e-5)
    assert torch.allclose(g.x[0, 0, :, 0, 0], 2 * bg - 1, atol=1e-5)
    g.prepare("appearance", "ball", vm, K, S, obox, background=bg)
    assert g.x is None
    z = torch.zeros(1, 3, S, S, requires_grad=True)
    g.sds_loss(z, "", (20, 980)).backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_exemplar_appearance_step_reaches_the_colours(demo_trainer, tmp_path):
    """Stage 3 with the exemplar prior: for the box (a red exemplar box in the library) an appearance SDS step
    renders the coloured exemplars over the scene's background and its gradient reaches the box's colours;
    the ball (an uncoloured exemplar) gets a zero term."""
    import trimesh

    from gs_recon.prior.exemplar import ExemplarGuidance
    from gs_recon.prior.stages import APPEARANCE_KEYS, PriorStages

    tr, cfg = demo_trainer
    red = trimesh.creation.box((0.35, 0.35, 0.35))
    red.visual.face_colors = np.tile([200, 30, 30, 255], (len(red.faces), 1))
    for cat, m in (("box", red), ("ball", trimesh.creation.icosphere(2, 0.2))):
        (tmp_path / cat).mkdir()
        m.export(tmp_path / cat / "0.ply")
    ps = PriorStages(tr, ExemplarGuidance(tmp_path, device=tr.device), cfg.prior)
    tr.set_trainable(APPEARANCE_KEYS)
    try:
        ps.objects = [1, 2]
        for oid, expect in ((1, True), (2, False)):
            tr.params["sh0"].grad = None
            loss = ps.appearance_sds(1.0)["sds_app"]
            loss.backward()
            g = tr.params["sh0"].grad
            moved = g is not None and bool((g[tr.params["labels"] == oid].abs() > 0).any())
            assert moved == expect, (oid, float(loss))
            if expect:
                assert ps.g.x.shape[2] == 3 and float(loss) > 0
    finally:
        tr.params["sh0"].grad = None
        tr.set_trainable(tuple(tr.optimizers))


def test_exemplar_library_errors(tmp_path):
    from gs_recon.errors import SceneError
    from gs_recon.prior.models import load_guidance

    with pytest.raises(SceneError, match="exemplar library not found"):
        load_guidance(f"exemplar:{tmp_path / 'nope'}")
    (tmp_path / "empty" / "chair").mkdir(parents=True)
    with pytest.raises(SceneError, match="no exemplar meshes"):
        load_guidance(f"exemplar:{tmp_path / 'empty'}")
