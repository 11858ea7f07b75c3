"""DP-Recon / MonoSDF and NeuS / DTU scene folders (gs_recon/data/idr.py), monocular priors in both
conventions, and DP-Recon's evaluation protocol pieces (mask mIoU, GTmesh layout, original frame)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from gs_recon.config import DataConfig
from gs_recon.errors import SceneError
from gs_recon.data.idr import center_crop_K, decompose_projection, write_cameras
from gs_recon.data.scene import load_scene
from gs_recon.data.synthetic import make_scene


def _rot(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("seed", range(5))
def test_decompose_projection_recovers_K_and_pose(seed):
    rng = np.random.default_rng(seed)
    K = np.array([[rng.uniform(100, 900), rng.uniform(-2, 2), rng.uniform(50, 400)],
                  [0, rng.uniform(100, 900), rng.uniform(50, 300)], [0, 0, 1]])
    R, C = _rot(rng), rng.normal(size=3) * 3
    vm = np.eye(4)
    vm[:3, :3], vm[:3, 3] = R, -R @ C
    P = K @ vm[:3]
    for scale in (1.0, -2.5, 1e-3):  # P is projective: any non-zero scale, either sign
        P4 = np.vstack([P * scale, [0, 0, 0, 1]])  # IDR stores 4x4 world_mats
        K2, vm2 = decompose_projection(P4)
        assert np.allclose(K2, K, atol=1e-8) and np.allclose(vm2, vm, atol=1e-8)


def _cams(tmp_path, n=3, **override):
    rng = np.random.default_rng(0)
    K = np.array([[100.0, 0, 32], [0, 100, 24], [0, 0, 1]])
    vms = []
    for _ in range(n):
        vm = np.eye(4)
        vm[:3, :3], vm[:3, 3] = _rot(rng), rng.normal(size=3)
        vms.append(vm)
    write_cameras(tmp_path / "cameras.npz", [K] * n, vms, np.eye(4))
    d = dict(np.load(tmp_path / "cameras.npz"))
    d.update(override)
    for k in [k for k, v in override.items() if v is None]:
        d.pop(k)
    np.savez(tmp_path / "cameras.npz", **d)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    kw = dict(n_objects=3, views=10, arc=150, test_views=4, width=64, height=48, n_points=300)
    return {lay: make_scene(d / lay, layout=lay, **kw) for lay in ("default", "dprecon")} | {
        "neus": make_scene(d / "neus", layout="neus", n_objects=1, views=8, arc=150, width=64, height=48)}


@pytest.mark.parametrize("case, match", [
    ({"world_mat_2": None}, "cameras.npz: 2 cameras .world_mat_i. for 3 images"),
    ({"scale_mat_1": None}, "cameras.npz: missing key scale_mat_1"),
    ({"world_mat_1": np.zeros((4, 4))}, "cameras.npz: world_mat_1 @ scale_mat_1: singular"),
    ({"world_mat_3": np.eye(4), "scale_mat_3": np.eye(4)}, "4 cameras .world_mat_i. for 3 images"),
])
def test_malformed_cameras_npz_is_a_one_line_error(scenes, tmp_path, case, match):
    import shutil

    s = tmp_path / "scan"
    shutil.copytree(scenes["dprecon"], s, ignore=shutil.ignore_patterns("eval-novel-views"))
    for p in sorted(s.glob("*_rgb.png"))[3:]:
        p.unlink()
    for p in sorted((s / "instance_mask").glob("*.png"))[3:]:
        p.unlink()
    _cams(s, 3, **case)
    with pytest.raises(SceneError, match=match) as e:
        load_scene(s)
    assert "\n" not in str(e.value) and str(s / "cameras.npz") in str(e.value)
    r = subprocess.run([sys.executable, "-m", "gs_recon", "train", str(s), "--no_progress"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cameras.npz" in r.stderr


def _centres(sc, T=None):
    vm = sc.viewmats_world().double().numpy()
    c = -np.einsum("cji,cj->ci", vm[:, :3, :3], vm[:, :3, 3])
    if T is not None:
        c = c @ T[:3, :3].T + T[:3, 3]
    return c, vm[:, :3, :3]


def test_dprecon_layout_loads_as_the_same_scene(scenes):
    a = load_scene(scenes["default"], DataConfig(format="blender"))  # COLMAP's order is by name (test_ first)
    b = load_scene(scenes["dprecon"])
    assert b.world_frame["kind"] == "idr_normalised"
    T = np.array(b.world_frame["original_from_world"])
    assert np.allclose(T @ np.array(b.world_frame["world_from_original"]), np.eye(4))
    ca, Ra = _centres(a)
    cb, Rb = _centres(b, T)  # cameras in the normalised frame, mapped back to the original one
    assert np.abs(ca - cb).max() < 1e-5 and np.abs(Ra - Rb).max() < 1e-6
    assert torch.allclose(a.Ks, b.Ks)
    assert [o.name for o in b.objects] == [o.name for o in a.objects]
    assert [o.prompt for o in b.objects] == [o.prompt for o in a.objects]  # from *_prompt_geometry.json
    assert b.world_frame["instance_ids"] == {"1": 13, "2": 23, "3": 33}
    # raw ids 13/23/33 and 255 -> objects 1..3 and background; test views from eval-novel-views/
    assert torch.equal(a.instance, b.instance)
    assert [b.image_names[i] for i in b.test_idx] == [f"eval-novel-views/rgb/{j:06d}.png" for j in range(4)]
    assert len(a.test_idx) == 4 and torch.equal(a.images[a.test_idx], b.images[b.test_idx])
    # priors: DP-Recon's [3, H, W] in [0, 1] normals decode to ours; test views have none
    tr = a.train_idx
    assert torch.allclose(a.normal_prior[tr], b.normal_prior[b.train_idx], atol=1e-6)
    assert torch.allclose(a.depth_prior[tr], b.depth_prior[b.train_idx])
    assert torch.isnan(b.depth_prior[b.test_idx]).all()


def test_neus_layout(scenes):
    c = load_scene(scenes["neus"])
    assert [o.id for o in c.objects] == [1] and set(torch.unique(c.instance).tolist()) == {0, 1}
    assert c.image_names[0] == "image/000000.png" and c.world_frame["kind"] == "idr_normalised"
    assert load_scene(scenes["neus"], DataConfig(format="neus")).image_names == c.image_names
    with pytest.raises(SceneError, match="no cameras found for --data.format dprecon"):
        load_scene(scenes["neus"], DataConfig(format="dprecon"))


def test_center_crop_intrinsics():
    """DP-Recon's center_crop_for_replica: 1200x680 calibration, photos cropped to 680x680 and resized to 384."""
    K = np.array([[600.0, 0, 599.5], [0, 600.0, 339.5], [0, 0, 1]])
    s = 384 / 680
    want = np.array([[600 * s, 0, (599.5 - 260) * s], [0, 600 * s, 339.5 * s], [0, 0, 1]])
    assert np.allclose(center_crop_K(K, (384, 384), "auto", "x"), want)
    assert np.allclose(center_crop_K(K, (384, 384), "off", "x"), K)
    K2 = np.array([[300.0, 0, 192], [0, 300, 192], [0, 0, 1]])  # ScanNet++ (no_crop): already at 384
    assert np.allclose(center_crop_K(K2, (384, 384), "auto", "x"), K2)


def test_priors_are_zero_loss_at_the_truth_in_both_conventions(scenes):
    """The loaders' normals/depths equal the ray-cast truth (OpenCV camera frame, facing the camera), so the
    prior losses vanish there, and not for a wrong convention (undecoded [0, 1] or flipped normals)."""
    from gs_recon.train.losses import depth_prior_loss, normal_prior_loss
    from gs_recon.data.synthetic import default_objects, render_views, room_mesh, arc_cameras

    objs = default_objects((), 3, 0)
    c2ws = arc_cameras(10, 150, 2.4, 30.0, np.array([0.0, 0.0, 0.2]), jitter=5.0, seed=0)
    K = load_scene(scenes["default"], DataConfig(format="blender")).Ks[0].double().numpy()
    _, inst, dep, nrm = render_views(objs, room_mesh(), c2ws, K, 64, 48)
    true_n, true_d = torch.tensor(nrm).float(), torch.tensor(dep).float()
    mask = torch.ones(true_d.shape, dtype=torch.bool)
    for lay in ("default", "dprecon"):
        s = load_scene(scenes[lay], DataConfig(format="blender") if lay == "default" else None)
        tr = s.train_idx
        assert float(normal_prior_loss(true_n[tr], s.normal_prior[tr], mask[tr])) < 1e-4, lay
        # depth is scale/shift invariant: the normalised frame's depths (1/3) fit the truth exactly
        assert float(depth_prior_loss(true_d[tr] / 3 + 0.5, s.depth_prior[tr], mask[tr])) < 1e-4, lay
        assert float(normal_prior_loss(-true_n[tr], s.normal_prior[tr], mask[tr])) > 1.0, lay
    raw = (true_n.permute(0, 3, 1, 2) + 1) / 2  # DP-Recon's encoding read without decoding
    assert float(normal_prior_loss(true_n[:1], raw[:1].permute(0, 2, 3, 1), mask[:1])) > 0.3


def test_mask_miou_by_hand():
    from gs_recon.eval.metrics import instance_miou, label_map

    gt = torch.zeros(4, 6, dtype=torch.long)
    gt[:2, :3] = 1  # 6 px
    gt[2:, 3:] = 2  # 6 px
    pred = torch.zeros_like(gt)
    pred[:2, :2] = 1  # 4 of object 1's 6 px: IoU 4/6
    pred[2:, 2:] = 2  # object 2's 6 px + 2 more: IoU 6/8
    assert instance_miou(pred, gt) == pytest.approx((4 / 6 + 6 / 8) / 2)
    assert instance_miou(gt, gt) == 1.0
    assert instance_miou(pred, torch.zeros_like(gt)) is None  # background only: DP-Recon skips the view
    assert instance_miou(pred, torch.full_like(gt, -1)) is None  # no mask for this view
    pred[0, 0] = 3  # a predicted label that is not in the GT costs only its own pixels
    assert instance_miou(pred, gt) == pytest.approx((3 / 6 + 6 / 8) / 2)
    a = torch.zeros(1, 2, 3)
    a[0, 0] = torch.tensor([0.1, 0.7, 0.1])
    a[0, 1] = torch.tensor([0.1, 0.1, 0.2])  # total 0.4 < 0.5: background
    assert label_map(a).tolist() == [[1, 0]]


def test_dprecon_mesh_protocol():
    import trimesh

    from gs_recon.eval.mesh_metrics import mesh_metrics, voxel_downsample

    pts = np.array([[0.001, 0.001, 0], [0.009, 0.009, 0], [0.031, 0, 0]])
    assert np.allclose(voxel_downsample(pts, 0.02), [[0.005, 0.005, 0], [0.031, 0, 0]])
    gt = trimesh.creation.box((0.5, 0.5, 0.5)).subdivide().subdivide().subdivide()
    m = mesh_metrics(gt, gt, protocol="dprecon")
    assert m["chamfer_l1"] == 0 and m["fscore"] == 1 and m["normal_consistency"] > 0.999
    moved = gt.copy()
    moved.apply_translation((0.03, 0, 0))
    m = mesh_metrics(moved, gt, protocol="dprecon", threshold=0.02)
    assert m["chamfer_l1"] == pytest.approx(0.03, abs=0.002) and m["fscore"] == 0


@pytest.mark.slow
def test_layouts_train_like_todays(tmp_path):
    """Acceptance: the same synthetic scene written as DP-Recon and NeuS scans trains to within 0.5 dB test
    PSNR and 10% object Chamfer of today's layout (read through its transforms.json without its point cloud:
    the IDR layouts carry no SfM points either), with the meshes scored in the original frame (GTmesh/ for DP-Recon).

    The layouts load to the same scene up to 1e-7 (test above), but densification turns such differences
    into a change of seed (0.7 dB spread between seeds of the tiny preset at 700 steps, measured in
    docs/BENCHMARKS.md), which would compare seeds, not layouts. So this run keeps the preset's schedule and
    turns densification off (refine_start_iter past the end). NeuS scans carry no depth/normal priors, so
    its reference is today's layout written without them."""
    def train_eval(scene, tag, *extra):
        out = tmp_path / f"run_{tag}"
        r = subprocess.run([sys.executable, "-m", "gs_recon", "train", str(scene), "--config", "tiny_cpu",
                            "--no_progress", "--output.out_dir", str(out), "--train.refine_start_iter", "100000",
                            "--train.iterations", "500", "--mesh.resolution", "64",
                            "--mesh.background_resolution", "64", "--output.export_splat", "false",
                            "--output.export_spz", "false", *extra],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        r = subprocess.run([sys.executable, "-m", "gs_recon", "eval", str(out), "--samples", "30000"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        ev = json.loads((out / "eval.json").read_text())
        objs = [m["chamfer_l1"] for k, m in ev["meshes"]["meshes"].items() if k not in ("background", "scene")]
        p, c, m = ev["images"]["scene"]["psnr"], float(np.mean(objs)), ev["images"]["scene"]["mask_miou"]
        print(f"{tag}: PSNR {p:.3f} dB, object CD {c * 100:.3f} cm, mask mIoU {m:.4f}, frame {ev['meshes']['frame']}")
        return p, c, m, ev

    def no_points(scene):  # today's layout read through transforms.json without its point cloud
        meta = json.loads((scene / "transforms.json").read_text())
        del meta["ply_file_path"]
        (scene / "transforms.json").write_text(json.dumps(meta))
        return scene

    kw = dict(n_objects=3, views=24, arc=150, width=96, height=72, n_points=500)  # test views: every 8th
    ref = train_eval(no_points(make_scene(tmp_path / "default", **kw)), "default", "--data.format", "blender")
    dp = train_eval(make_scene(tmp_path / "dprecon", layout="dprecon", **kw), "dprecon")
    assert abs(dp[0] - ref[0]) < 0.5 and abs(dp[1] - ref[1]) < 0.1 * ref[1]
    assert dp[3]["meshes"]["frame"].startswith("original") and abs(dp[2] - ref[2]) < 0.05
    kw = dict(n_objects=1, views=24, arc=150, width=96, height=72, n_points=500, priors=False)
    ref = train_eval(no_points(make_scene(tmp_path / "default1", **kw)), "default, 1 object, no priors",
                     "--data.format", "blender")
    ne = train_eval(make_scene(tmp_path / "neus", layout="neus", **kw), "neus")
    assert abs(ne[0] - ref[0]) < 0.5 and abs(ne[1] - ref[1]) < 0.1 * ref[1]
    assert ne[3]["meshes"]["frame"].startswith("original")


def test_depth_prior_loss_fit_is_least_squares_and_reproducible():
    """The closed-form scale/shift fit equals torch.linalg.lstsq's, and the loss is bit-identical when
    recomputed (lstsq's threaded LAPACK path was not: two identical 700-step runs ended 1 dB apart)."""
    from gs_recon.train.losses import depth_prior_loss

    g = torch.Generator().manual_seed(0)
    prior = torch.rand(2, 20, 30, generator=g) * 3 + 1
    depth = (2.0 * prior - 0.7 + 0.05 * torch.randn(2, 20, 30, generator=g)).requires_grad_()
    mask = torch.rand(2, 20, 30, generator=g) > 0.3
    ref = []
    for d, p, m in zip(depth.detach(), prior, mask):
        A = torch.stack([p[m], torch.ones_like(p[m])], -1).double()
        sol = torch.linalg.lstsq(A, d[m].double()[:, None]).solution
        ref.append(((A @ sol)[:, 0] - d[m].double()).abs().mean())
    got = depth_prior_loss(depth, prior, mask)
    assert float(got) == pytest.approx(float(torch.stack(ref).mean()), rel=1e-4)
    got.backward()
    g1 = depth.grad.clone()
    depth.grad = None
    depth_prior_loss(depth, prior, mask).backward()
    assert torch.equal(g1, depth.grad) and float(got) == float(depth_prior_loss(depth, prior, mask))
