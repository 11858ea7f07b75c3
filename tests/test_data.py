"""Loaders on the shared real data and on generated scenes; COLMAP read/write round trip."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import DEMO, shared

from gs_recon.config import DataConfig
from gs_recon.data import SceneError, colmap, load_scene
from gs_recon.gaussians.init import lookup, project_points


def test_colmap_statue_loads():
    root = shared("real_colmap_statue")
    s = load_scene(root, DataConfig(downscale=8))
    assert s.images.shape[0] == 23 and s.images.shape[-1] == 3
    assert s.width == 125 and 80 <= s.height <= 83
    assert s.points is not None and s.points.shape == (1443, 3)
    assert len(s.train_idx) == 20 and len(s.test_idx) == 3
    # SfM points project into the images for most views (poses/intrinsics converted correctly)
    uv, z = project_points(s.points, s.viewmats, s.Ks)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < s.width) & (uv[..., 1] >= 0) & (uv[..., 1] < s.height) & (z > 0)
    assert inside.float().mean() > 0.8
    # normalisation: camera centres inside the unit sphere, world_from_internal maps back
    assert s.camera_centres().norm(dim=1).max() <= 1.0 + 1e-5
    m = colmap.read_model(root / "sparse")
    pts_w = (s.world_from_internal[:3, :3] @ s.points.T).T + s.world_from_internal[:3, 3]
    assert np.allclose(pts_w.numpy(), m.points, atol=1e-3 * np.abs(m.points).max())


def test_blender_lego_loads_with_alpha_masks():
    root = shared("lego_subset")
    s = load_scene(root, DataConfig(downscale=8))
    assert s.images.shape == (25, 100, 100, 3)
    assert s.alpha is not None and s.instance is not None
    assert [o.id for o in s.objects] == [1]
    frac = s.instance.float().mean()
    assert 0.1 < frac < 0.6
    # white background where alpha == 0
    bg = s.alpha < 0.01
    assert s.images[bg].min() > 0.95
    # every camera looks at the object: the scene centre projects inside every image
    lego_world = torch.zeros(1, 3)  # the lego sits at the Blender world origin
    w2i = torch.linalg.inv(s.world_from_internal)
    c = (w2i[:3, :3] @ lego_world.T).T + w2i[:3, 3]
    uv, z = project_points(c, s.viewmats, s.Ks)
    lab, inside = lookup(s.instance, uv, z)
    assert inside.all() and (lab == 1).float().mean() > 0.8


def test_colmap_binary_and_text_roundtrip(tmp_path):
    m = colmap.read_model(DEMO / "sparse" / "0")
    colmap.write_model(m, tmp_path / "b", binary=True)
    colmap.write_model(m, tmp_path / "t", binary=False)
    for d in ("b", "t"):
        m2 = colmap.read_model(tmp_path / d)
        assert set(m2.images) == set(m.images)
        for k in m.images:
            assert np.allclose(m2.images[k].qvec, m.images[k].qvec) and np.allclose(m2.images[k].tvec, m.images[k].tvec)
            assert m2.images[k].name == m.images[k].name
        assert np.allclose(m2.points, m.points)


def test_transforms_and_colmap_give_same_cameras(tmp_path):
    """The demo ships both camera files; after conversion they must agree."""
    a = load_scene(DEMO)
    d = tmp_path / "tf"
    shutil.copytree(DEMO, d)
    shutil.rmtree(d / "sparse")
    b = load_scene(d)
    assert torch.allclose(a.Ks, b.Ks, atol=1e-4)
    assert torch.allclose(a.viewmats, b.viewmats, atol=1e-4)
    assert a.instance is not None and torch.equal(a.instance, b.instance)
    assert [o.name for o in a.objects] == ["box", "ball", "cylinder"]


def test_distorted_camera_is_undistorted(tmp_path):
    """An OPENCV camera: loading undistorts so a point lands where the pinhole model puts it."""
    from PIL import Image

    d = tmp_path / "s"
    (d / "images").mkdir(parents=True)
    W, H, f = 80, 60, 70.0
    dist = np.array([-0.2, 0.05, 0.0, 0.0])
    # a bright dot at a known ray, drawn where the distorted lens images it
    x, y = 0.35, 0.25
    r2 = x * x + y * y
    rad = 1 + dist[0] * r2 + dist[1] * r2 * r2
    u, v = x * rad * f + W / 2, y * rad * f + H / 2
    img = np.zeros((H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    img[((xx - u) ** 2 + (yy - v) ** 2) < 2.0] = 255
    Image.fromarray(img).save(d / "images" / "a.png")
    Image.fromarray(img).save(d / "images" / "b.png")
    cams = {1: colmap.Camera(1, "OPENCV", W, H, np.array([f, f, W / 2, H / 2, *dist]))}
    ims = {i: colmap.Image(i, np.array([1.0, 0, 0, 0]), np.array([0, 0, float(i)]), 1, n) for i, n in ((1, "a.png"), (2, "b.png"))}
    colmap.write_model(colmap.Model(cams, ims, np.zeros((0, 3)), np.zeros((0, 3), np.uint8)), d / "sparse" / "0")
    s = load_scene(d)
    im = s.images[0].sum(-1)
    ys, xs = torch.nonzero(im > 1.0, as_tuple=True)
    cu, cv = xs.float().mean() + 0.5, ys.float().mean() + 0.5
    assert abs(cu - (x * f + W / 2)) < 1.0 and abs(cv - (y * f + H / 2)) < 1.0


def test_unsupported_camera_model_is_a_clear_error(tmp_path):
    d = tmp_path / "s"
    shutil.copytree(DEMO, d, ignore=shutil.ignore_patterns("gt"))
    (d / "sparse" / "0" / "cameras.bin").unlink()
    txt = (d / "sparse" / "0" / "cameras.txt").read_text().replace("PINHOLE 128 96", "OPENCV_FISHEYE 128 96") + ""
    txt = txt.replace("64.0 48.0", "64.0 48.0 0.0 0.0 0.0 0.0")
    (d / "sparse" / "0" / "cameras.txt").write_text(txt)
    (d / "sparse" / "0" / "images.bin").unlink()
    (d / "sparse" / "0" / "points3D.bin").unlink()
    with pytest.raises(SceneError, match="OPENCV_FISHEYE is not supported"):
        load_scene(d)


def test_missing_scene_dir_and_no_cameras(tmp_path):
    with pytest.raises(SceneError, match="scene folder not found"):
        load_scene(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match="no cameras found"):
        load_scene(tmp_path / "empty")


def test_split_json_and_objects_json(tmp_path):
    d = tmp_path / "s"
    shutil.copytree(DEMO, d, ignore=shutil.ignore_patterns("gt"))
    names = sorted(p.name for p in (d / "images").iterdir())
    (d / "split.json").write_text(json.dumps({"train": names[:20], "test": names[20:]}))
    s = load_scene(d)
    assert len(s.train_idx) == 20 and len(s.test_idx) == len(names) - 20
    (d / "objects.json").write_text("{not json")
    with pytest.raises(SceneError, match="objects.json: malformed"):
        load_scene(d)
