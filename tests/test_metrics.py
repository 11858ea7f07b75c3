"""Metrics against hand-computed values and an independent implementation (scikit-image)."""
import numpy as np
import pytest
import torch

from gs_recon.eval.mesh_metrics import mesh_metrics
from gs_recon.eval.metrics import psnr, ssim


def _square(z=0.0):
    import trimesh

    v = np.array([[0, 0, z], [1, 0, z], [1, 1, z], [0, 1, z]], float)
    return trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], process=False)


def test_identical_meshes_score_perfectly():
    import trimesh

    m = trimesh.creation.icosphere(3, radius=0.5)
    r = mesh_metrics(m, m.copy(), n=20000)
    assert r["chamfer_l1"] == 0.0 and r["fscore"] == 1.0
    assert r["normal_consistency"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("d", [0.01, 0.03, 0.2])
def test_shifted_plane_chamfer_equals_shift(d):
    r = mesh_metrics(_square(d), _square(0.0), n=20000, threshold=0.05)
    assert r["chamfer_l1"] == pytest.approx(d, rel=0.02)
    assert r["accuracy"] == pytest.approx(d, rel=0.02) and r["completeness"] == pytest.approx(d, rel=0.02)
    assert r["fscore"] == (1.0 if d < 0.05 else 0.0)
    assert r["normal_consistency"] == pytest.approx(1.0)


def test_shifted_sphere_and_missing_prediction():
    import trimesh

    a = trimesh.creation.icosphere(4, radius=0.5)
    b = a.copy()
    b.apply_translation([0.04, 0, 0])
    r = mesh_metrics(b, a, n=20000)
    # points move 0.04 but the nearest GT point is closer where the surface slides along itself
    assert 0.01 < r["chamfer_l1"] < 0.04
    assert mesh_metrics(None, a)["fscore"] == 0.0


def test_rotated_normals_lower_consistency():
    import trimesh

    a = _square()
    b = trimesh.Trimesh(np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], float), [[0, 1, 2], [0, 2, 3]])
    assert mesh_metrics(b, a, n=5000)["normal_consistency"] < 0.05  # perpendicular planes


def test_psnr_ssim_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    gt = rng.random((40, 50, 3))
    gt = (gt + np.roll(gt, 1, 0) + np.roll(gt, 1, 1)) / 3  # some structure
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    p = psnr(torch.tensor(pred)[None], torch.tensor(gt)[None])
    assert p == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1.0), abs=1e-6)
    s = float(ssim(torch.tensor(pred)[None], torch.tensor(gt)[None]))
    ref = structural_similarity(gt, pred, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert s == pytest.approx(ref, abs=1e-6)



def test_ssim_gradient_matches_finite_differences():
    """D-SSIM is a training loss: its gradient (one stacked depthwise convolution) against central differences,
    in float64, on a 13x12 image (2 x 3 window positions)."""
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(1, 12, 13, 3, dtype=torch.float64, generator=g)
    pred = (gt + 0.1 * torch.randn(gt.shape, dtype=torch.float64, generator=g)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: ssim(p, gt), (pred,), eps=1e-6, atol=1e-7)
    assert float(ssim(gt, gt)) == pytest.approx(1.0, abs=1e-12)

def test_visible_side_restriction():
    """A box seen from +x only: its -x face is invisible; a prediction missing that face is perfect on
    the visible side and incomplete overall."""
    import trimesh

    from gs_recon.geometry import look_at
    from gs_recon.eval.mesh_metrics import sample_surface, visible_from

    gt = trimesh.creation.box((1, 1, 1))
    keep = gt.face_normals[:, 0] > -0.5  # every face but -x
    pred = trimesh.Trimesh(gt.vertices, gt.faces[keep], process=False)
    vm = np.stack([look_at((3.0, 0.3, 0.2), (0, 0, 0)).numpy()]).astype(np.float64)
    K = np.array([[[100.0, 0, 100], [0, 100.0, 100], [0, 0, 1]]])
    pts, _ = sample_surface(gt, 20000, 0)
    vis = visible_from(pts, vm, K, 200, 200, gt)
    assert 0.1 < vis.mean() < 0.45  # one face (+ grazing ones): a sixth to ~2/5 of the surface
    assert not vis[pts[:, 0] < -0.49].any()
    full = mesh_metrics(pred, gt, n=20000)
    side = mesh_metrics(pred, gt, n=20000, gt_visible=vis)
    assert full["recall"] < 0.9 and side["recall"] == 1.0 and side["fscore"] > 0.99


def _brute_force_scores(pp, npd, pg, ng, threshold, vis=None):
    """The samples protocol from all pairwise distances (no k-d tree): the reference for SurfaceDistances."""
    D = torch.cdist(torch.from_numpy(pp), torch.from_numpy(pg)).numpy()
    i_pg = D.argmin(1)
    keep = np.ones(len(pp), bool) if vis is None else vis[i_pg]
    gsel = np.ones(len(pg), bool) if vis is None else vis
    d_pg, i_pg = D[keep].min(1), i_pg[keep]
    sub = D[keep][:, gsel]
    d_gp, i_gp = sub.min(0), sub.argmin(0)
    acc, comp = d_pg.mean(), d_gp.mean()
    prec, rec = (d_pg < threshold).mean(), (d_gp < threshold).mean()
    nc = 0.5 * (np.abs((npd[keep] * ng[i_pg]).sum(1)).mean() + np.abs((ng[gsel] * npd[keep][i_gp]).sum(1)).mean())
    return {"accuracy": acc, "completeness": comp, "precision": prec, "recall": rec, "normal_consistency": nc,
            "fscore": 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0}


def test_surface_distances_scores_any_side_and_threshold_like_brute_force():
    """SurfaceDistances computes the neighbours once and scores the whole surface, the visible side and its
    complement at several thresholds, in any order: each equals all-pairs distances on the same samples, and
    mesh_metrics (which builds it afresh) gives the same numbers."""
    import trimesh

    from gs_recon.eval.mesh_metrics import SurfaceDistances, sample_surface

    gt = trimesh.creation.box((1, 1, 1))
    pred = trimesh.creation.icosphere(3, radius=0.6)
    n = 1500
    pg, ng = sample_surface(gt, n, 0)
    pp, npd = sample_surface(pred, n, 0)
    vis = pg[:, 0] > 0.1  # a side of the box
    dist = SurfaceDistances(pred, gt, n, 0, (pg, ng))
    for side in (vis, None, ~vis, vis):
        for th in (0.02, 0.05, 0.1):
            got = dist.scores(th, side)
            ref = _brute_force_scores(pp, npd, pg, ng, th, side)
            for k, v in ref.items():
                assert got[k] == pytest.approx(float(v), rel=1e-9, abs=1e-12), (k, th, side is None)
            assert got == mesh_metrics(pred, gt, th, n, gt_samples=(pg, ng), gt_visible=side)
    assert dist.scores(0.05, vis)["completeness"] != dist.scores(0.05, ~vis)["completeness"]
    assert SurfaceDistances(None, gt, n).scores(0.05, vis)["fscore"] == 0.0
