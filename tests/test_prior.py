"""The prior stages with a tiny RANDOM diffusion model (plumbing, not quality): exact SDS gradients,
per-Gaussian gradient scaling, stage switching, clear errors for missing weights."""
import os
import subprocess
import sys

import diffusers  # noqa: F401  (a test dependency: a missing one is an error, not a skip)
import pytest
import torch
from conftest import DEMO, ROOT

from gs_recon.eval.bench import random_scene
from gs_recon.render.api import render


@pytest.fixture(scope="module")
def guidance():
    from gs_recon.prior.models import load_guidance

    return load_guidance("tiny-random", guidance_scale=50.0)


def test_cfg_noise_prediction_matches_manual_unet_calls(guidance):
    g = guidance
    z = torch.randn(2, 4, 8, 8)
    t = torch.tensor([100, 700])
    emb = g.embed("a photo of a box")
    with torch.no_grad():
        eu = g.unet(z, t, encoder_hidden_states=emb[:1].expand(2, -1, -1)).sample
        ec = g.unet(z, t, encoder_hidden_states=emb[1:].expand(2, -1, -1)).sample
    assert torch.allclose(g.predict_noise(z, t, "a photo of a box"), eu + 50.0 * (ec - eu), atol=1e-4)
    assert "a photo of a box" in g._emb  # cached


def test_sds_gradient_through_vae_encoder(guidance):
    """Acceptance: d SDS / d rgb == J_encoder^T [w(t) (eps_hat - eps)] (with a fixed t and noise)."""
    g = guidance
    rgb = torch.rand(1, 64, 64, 3, requires_grad=True)
    t = torch.tensor([500])
    noise = torch.randn(1, 4, 8, 8)
    loss = g.sds_loss(g.encode_images(rgb), "a photo of a ball", None, t=t, noise=noise)
    (got,) = torch.autograd.grad(loss, rgb)
    z = g.encode_images(rgb)
    ab = g.alphas_cumprod[t].view(-1, 1, 1, 1)
    eps_hat = g.predict_noise(ab.sqrt() * z.detach() + (1 - ab).sqrt() * noise, t, "a photo of a ball")
    w = ab.sqrt() * (1 - ab)
    (want,) = torch.autograd.grad(z, rgb, grad_outputs=w * (eps_hat - noise))
    assert got.abs().max() > 0
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


def test_sds_pixel_weights_scale_latent_gradient(guidance):
    g = guidance
    z = torch.randn(2, 4, 16, 16, requires_grad=True)
    t = torch.tensor([300, 300])
    noise = torch.randn_like(z)
    W = torch.rand(2, 1, 16, 16)
    W[:, :, :8] = 0
    (g1,) = torch.autograd.grad(g.sds_loss(z, "x", None, t=t, noise=noise), z)
    (g2,) = torch.autograd.grad(g.sds_loss(z, "x", None, weight=W, t=t, noise=noise), z)
    assert torch.allclose(g2, g1 * W, atol=1e-7)
    assert (g2[:, :, :8] == 0).all()


def test_per_gaussian_weights_scale_sds_gradients_exactly(guidance):
    """A Gaussian with weight 0 gets zero SDS gradient; others get exactly w times the unweighted one."""
    import torch.nn.functional as F

    from gs_recon.prior.stages import scale_gaussian_grads

    params, vm, K = random_scene(800, 48, seed=1)
    params = {k: (v.clone().requires_grad_(True) if v.is_floating_point() and k != "visibility" else v)
              for k, v in params.items()}
    w = torch.rand(800) * 3
    w[:400] = 0

    def sds(p):
        out = render(p, vm, K, 48, 48)
        z = F.interpolate(torch.cat([out.normals, out.alpha], -1).permute(0, 3, 1, 2), size=(16, 16), mode="bilinear")
        torch.manual_seed(0)
        return guidance.sds_loss(z, "a box", None, t=torch.tensor([400]), noise=torch.randn(1, 4, 16, 16))

    keys = ("means", "scales", "quats", "opacities")
    plain = torch.autograd.grad(sds(params), [params[k] for k in keys])
    scaled = torch.autograd.grad(sds(scale_gaussian_grads(params, w, keys)), [params[k] for k in keys])
    for k, a, b in zip(keys, plain, scaled):
        assert a[400:].abs().sum() > 0, k
        assert (b[:400] == 0).all(), k
        assert torch.allclose(b, a * w.view(-1, *([1] * (a.dim() - 1))), rtol=1e-5, atol=1e-10), k


def test_stages_switch_trainable_parameters_and_sds_acts(guidance):
    """Stage 2 trains geometry only and stage 3 colours only; in each, the SDS term itself changes the
    parameters: the same stage from the same state with the SDS weight at 0 ends elsewhere (reconstruction
    losses alone also move them, so 'the means changed' would not show it)."""
    import copy

    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.prior.stages import PriorStages
    from gs_recon.train.recon import Trainer

    cfg = load_config("configs/tiny_prior_cpu.yaml", ["train.iterations=40", "prior.geometry_iters=4",
                                                      "prior.appearance_iters=4", "prior.geometry_render=48"])
    scene = load_scene(DEMO, cfg.data)
    tr = Trainer(scene, cfg)
    tr.fit(progress=False)
    start = copy.deepcopy(tr.state_dict())
    snap = lambda: {k: v.detach().clone() for k, v in tr.params.items()}  # noqa: E731

    def stages(geo_lambda, app_lambda):
        tr._load_state(copy.deepcopy(start))
        tr.history.clear()
        pc = copy.deepcopy(cfg.prior)
        pc.sds_geometry_lambda, pc.sds_appearance_lambda = geo_lambda, app_lambda
        ps = PriorStages(tr, guidance, pc)
        assert ps.geo_ids == [1, 2, 3, 0] and ps.objects == [1, 2, 3]
        s0 = snap()
        ps.run_geometry(progress=False)
        s1 = snap()
        assert tr.step == 44 and tr.trainable == {"means", "scales", "quats", "opacities"}
        assert torch.equal(s0["sh0"], s1["sh0"])
        assert (s1["visibility"] > 0).any() and s1["visibility"].max() <= 1  # recomputed at the boundary
        ps.run_appearance(progress=False)
        s2 = snap()
        assert tr.step == 48 and tr.trainable == {"sh0", "shN"}
        assert torch.equal(s1["means"], s2["means"]) and torch.equal(s1["opacities"], s2["opacities"])
        return s1, s2, list(tr.history)

    on1, on2, hist = stages(cfg.prior.sds_geometry_lambda, cfg.prior.sds_appearance_lambda)
    off1, off2, hist0 = stages(0.0, 0.0)
    geo = [h["sds_geo"] for h in hist[:4]]
    app = [h["sds_app"] for h in hist[4:]]
    assert all(v > 0 and v == v for v in geo + app), (geo, app)  # the terms were there, finite, non-zero
    assert all(h["sds_geo"] == 0 for h in hist0[:4])
    # same views, same draws: only the SDS term differs between the two runs
    for k in ("means", "scales", "quats", "opacities"):
        assert not torch.equal(on1[k], off1[k]), k
    # the appearance SDS on its own: the same geometry stage, then stage 3 with and without it
    geo_only1, geo_only2, _ = stages(cfg.prior.sds_geometry_lambda, 0.0)
    assert torch.equal(geo_only1["means"], on1["means"])
    assert not torch.equal(on2["sh0"], geo_only2["sh0"]) and not torch.equal(on2["shN"], geo_only2["shN"])


def test_novel_object_cameras_frame_the_box():
    from gs_recon.prior.cameras import object_cameras

    lo, hi = torch.tensor([-0.2, -0.1, 0.0]), torch.tensor([0.2, 0.1, 0.3])
    gen = torch.Generator().manual_seed(0)
    vms, Ks = object_cameras(lo, hi, torch.tensor([0, 0, 1.0]), 64, 100, 0.0, gen)
    c = (lo + hi) / 2
    cam = (vms[:, :3, :3] @ c + vms[:, :3, 3])  # box centre in camera space
    assert torch.allclose(cam[:, :2], torch.zeros(64, 2), atol=1e-4) and (cam[:, 2] > 0).all()
    centres = -(vms[:, :3, :3].transpose(1, 2) @ vms[:, :3, 3:])[..., 0]
    el = torch.rad2deg(torch.asin((centres - c)[:, 2] / (centres - c).norm(dim=1)))
    assert el.min() >= 5 - 1e-3 and el.max() <= 30 + 1e-3
    fovy = torch.rad2deg(2 * torch.atan(50 / Ks[:, 1, 1]))
    assert fovy.min() >= 40 - 1e-3 and fovy.max() <= 45 + 1e-3


def test_background_scene_cameras_follow_dprecon():
    """DP-Recon's background cameras: at a training camera or (30%) the scene centre, within the jitter; the
    optical axis passes through a point of the unit ball around the centre; view directions reach far up and
    down (elevation up to +-90 degrees), which the "outward" cameras (pitch -10..20) never do."""
    from gs_recon.prior.cameras import background_cameras, scene_cameras

    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.8, 0.0, 0.3], [0.0, 0.9, 0.3], [-0.7, -0.5, 0.2]])
    up = torch.tensor([0, 0, 1.0])
    n = 400
    vms, Ks = scene_cameras(centres, torch.zeros(3), up, n, 64, gen)
    R, t = vms[:, :3, :3], vms[:, :3, 3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(n, 3, 3), atol=1e-5)
    pos = -(R.transpose(1, 2) @ t[..., None])[..., 0]
    d_train = (pos[:, None] - centres[None]).abs()
    near_train = ((d_train[..., :2] <= 0.05 + 1e-5).all(-1) & (d_train[..., 2] <= 0.02 + 1e-5)).any(1)
    at_centre = (pos[:, :2].abs() <= 0.05 + 1e-5).all(1) & (pos[:, 2].abs() <= 0.02 + 1e-5)
    assert (near_train | at_centre).all() and 0.2 < float(at_centre.float().mean()) < 0.4
    fwd = R[:, 2]  # the optical axis in world coordinates
    s = (-pos * fwd).sum(1).clamp(min=0)  # the axis' closest approach to the centre, in front of the camera
    assert ((pos + s[:, None] * fwd).norm(dim=1) <= 1 + 1e-4).all()
    el = torch.rad2deg(torch.asin(fwd[:, 2]))
    assert el.max() > 60 and el.min() < -60
    fovy = torch.rad2deg(2 * torch.atan(32 / Ks[:, 1, 1]))
    assert fovy.min() >= 70 - 1e-3 and fovy.max() <= 85 + 1e-3
    vo, _ = background_cameras(centres, centres.mean(0), up, n, 64, torch.Generator().manual_seed(0))
    el_o = torch.rad2deg(torch.asin(vo[:, 2, 2]))
    assert el_o.max() < 25 and el_o.min() > -15


def test_missing_weights_are_a_clear_error(tmp_path):
    from gs_recon.errors import SceneError
    from gs_recon.prior.models import load_guidance

    with pytest.raises(SceneError, match="not a diffusers Stable Diffusion folder"):
        load_guidance(str(tmp_path / "no_such_model"))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "tools/train.py", str(DEMO), "--guidance", "sd", "--prior.model",
                        "nonexistent-org/nonexistent-model", "--output.out_dir", str(tmp_path / "run")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()[-1]
    assert "nonexistent-org/nonexistent-model" in err and "huggingface-cli download" in err
    assert not (tmp_path / "run").exists()  # nothing written
