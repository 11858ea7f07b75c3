"""Loaders on the shared real data and on generated scenes; COLMAP read/write round trip."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import DEMO, shared

from gs_recon.config import DataConfig
from gs_recon.data import colmap, load_scene
from gs_recon.errors import SceneError
from gs_recon.geometry import quat_to_rotmat
from gs_recon.geometry import lookup, project_points


def test_transforms_scene_reads_its_point_cloud(tmp_path):
    """nerfstudio's transforms.json names its SfM points in ply_file_path: a scene in that layout alone gets the
    same points as through COLMAP (so the sparse SfM depth term and the room's support extents work there)."""
    from gs_recon.data.synthetic import make_scene

    root = make_scene(tmp_path / "s", n_objects=2, views=6, width=48, height=36, priors=False, n_points=500)
    via_colmap = load_scene(root)
    shutil.rmtree(root / "sparse")
    via_json = load_scene(root)
    assert via_json.points is not None and via_json.points.shape == (500, 3)
    assert torch.allclose(via_json.points, via_colmap.points, atol=1e-4)
    assert torch.equal(via_json.point_colors, via_colmap.point_colors)
    meta = json.loads((root / "transforms.json").read_text())
    del meta["ply_file_path"]
    (root / "transforms.json").write_text(json.dumps(meta))
    assert load_scene(root).points is None  # a Blender scene without points, as before


def test_depth_prior_holes_do_not_blend_when_resized(tmp_path):
    """A depth prior with holes (0: sensor depth's 'no reading'), loaded at half size: the holes stay holes
    (NaN) and no depth near them is pulled toward 0 by the resize; elsewhere the depth is the resized map."""
    from gs_recon.data.synthetic import make_scene

    root = make_scene(tmp_path / "s", n_objects=1, views=4, width=48, height=36, priors=True, n_points=200)
    f = next(f for f in sorted((root / "depth").glob("*.npy")) if (np.load(f) > 0).all())  # sees no open side
    before = load_scene(root, DataConfig(downscale=2))
    v = next(k for k, n in enumerate(before.image_names) if n.startswith(f.stem))
    d = np.load(f)
    d[10:20, 12:30] = 0.0
    np.save(f, d)
    p = load_scene(root, DataConfig(downscale=2)).depth_prior[v]
    assert p.shape == (18, 24)
    assert bool(torch.isnan(p[5:10, 6:15]).all())  # the hole, at half size
    ok = torch.isfinite(p)
    assert ok.float().mean() > 0.6 and float(p[ok].min()) >= float(d[d > 0].min()) - 1e-4, float(p[ok].min())
    far = torch.ones_like(ok)
    far[3:12, 4:17] = False  # the hole and the resize filter's reach around it
    assert torch.allclose(p[far], before.depth_prior[v][far])


def test_synthetic_sfm_points_lie_only_where_two_photos_look(tmp_path):
    """The generator's SfM-like points are what COLMAP could triangulate from the training photos: each one on
    a surface two training views see unoccluded (checked against the ray-cast depth maps the scene ships),
    coloured like those photos' pixels there. On a 150-degree arc much of the room is unseen; the generator
    before 2026-11-28 (points_min_views=0) put points there too, in the meshes' base colours."""
    from gs_recon.data.synthetic import make_scene

    def views_seeing(root):
        s = load_scene(root)
        tr = s.train_idx
        assert all(s.image_names[i].startswith("train_") for i in tr)
        dep = torch.stack([torch.from_numpy(np.load(root / "depth" / f"{s.image_names[i][:-4]}.npy")) for i in tr])
        uv, z = project_points(s.points, s.viewmats[tr], s.Ks[tr])
        d, inside = lookup(dep[..., None] * s.scale, uv, z)  # metres -> the scene's normalised units
        ok = inside & ((d[..., 0] - z).abs() < 0.02 * z + 0.02 * s.scale)  # the scene is normalised
        rgb, _ = lookup(s.images[tr], uv, z)
        col = (rgb * ok[..., None]).sum(0) / ok.sum(0).clamp(min=1)[:, None]
        return s, ok.sum(0), col

    kw = dict(n_objects=2, views=6, arc=150, test_views=2, width=64, height=48, n_points=400)
    s, n, col = views_seeing(make_scene(tmp_path / "new", **kw))
    # all but a few at objects' silhouettes, where the 3 mm of noise moves a point into the next pixel
    assert s.points.shape == (400, 3) and float((n >= 2).float().mean()) > 0.98, int((n < 2).sum())
    good = n >= 2
    assert float((s.point_colors - col)[good].abs().max()) < 0.05  # the photos' colours (uint8)
    _, n0, _ = views_seeing(make_scene(tmp_path / "old", points_min_views=0, **kw))
    assert float((n0 < 2).float().mean()) > 0.3  # floor behind the cameras, the walls' tops, the objects' backs


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


def _distort(x, y, k1, k2, p1, p2):
    """OpenCV radial-tangential model on normalised coordinates (what the lens does)."""
    r2 = x * x + y * y
    rad = 1 + k1 * r2 + k2 * r2 * r2
    return x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y


def _undistort_points(xd, yd, k):
    """Inverse of _distort by fixed-point iteration (as OpenCV's undistortPoints)."""
    x, y = xd.copy(), yd.copy()
    for _ in range(60):
        dx, dy = _distort(x, y, *k)
        x, y = x - (dx - xd), y - (dy - yd)
    return x, y


# (COLMAP model, its params from (f, cx, cy), the lens as k1, k2, p1, p2)
LENSES = {
    "OPENCV": (lambda f, cx, cy: [f, f * 1.02, cx, cy, -0.3, 0.08, 0.004, -0.003], (-0.3, 0.08, 0.004, -0.003)),
    "SIMPLE_RADIAL": (lambda f, cx, cy: [f, cx, cy, -0.3], (-0.3, 0.0, 0.0, 0.0)),
    "RADIAL": (lambda f, cx, cy: [f, cx, cy, -0.3, 0.08], (-0.3, 0.08, 0.0, 0.0)),
}


@pytest.mark.parametrize("model", list(LENSES))
@pytest.mark.parametrize("cam_scale", [1, 2])
def test_distorted_camera_is_undistorted(tmp_path, model, cam_scale):
    """Loading a distorted camera undistorts the photo and its instance mask: a disc drawn around a known
    ray through the real lens lands (centroid) within 0.3 px of where the pinhole K puts that ray.

    k1 = -0.3 (and p1, p2 != 0 for OPENCV) moves the disc by ~7 px, so a no-op undistortion fails.
    cam_scale 2: cameras.txt describes the camera at twice the photo's size (COLMAP run on full-size
    photos, images downscaled since): K and the distortion must be applied at the photo's size."""
    from PIL import Image

    d = tmp_path / "s"
    (d / "images").mkdir(parents=True)
    (d / "instance").mkdir()
    W, H, f, cx, cy = 160, 120, 120.0, 83.0, 57.5  # principal point off centre: x/y mix-ups show
    params, lens = LENSES[model]
    fx = params(f, cx, cy)[0]
    fy = params(f, cx, cy)[1] if model == "OPENCV" else fx
    ray = (0.42, 0.3)  # normalised pinhole coordinates of the disc's centre
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    xu, yu = _undistort_points((xx - cx) / fx, (yy - cy) / fy, lens)  # the ray each photo pixel saw
    r = np.hypot((xu - ray[0]) * fx, (yu - ray[1]) * fy)  # in undistorted pixels
    img = np.clip(255 * (4.0 - r) / 1.5, 0, 255).astype(np.uint8)  # a soft-edged disc of radius ~3.3 px
    Image.fromarray(np.stack([img] * 3, -1)).save(d / "images" / "a.png")
    Image.fromarray(np.stack([img] * 3, -1)).save(d / "images" / "b.png")
    (d / "depth").mkdir()  # a monocular prior estimated on the distorted photos, at half their size (1 + the
    for n in ("a", "b"):  # disc: 0 would be "no reading")
        np.save(d / "depth" / f"{n}.npy", 1 + np.asarray(Image.fromarray(img.astype(np.float32), mode="F")
                                                          .resize((W // 2, H // 2), Image.BILINEAR)))
    lab = (r < 8.0).astype(np.uint8)
    Image.fromarray(lab).save(d / "instance" / "a.png")
    Image.fromarray(lab).save(d / "instance" / "b.png")
    p = np.array(params(f, cx, cy), float)
    p[: 4 if model == "OPENCV" else 3] *= cam_scale  # focal lengths and principal point
    cams = {1: colmap.Camera(1, model, W * cam_scale, H * cam_scale, p)}
    ims = {i: colmap.Image(i, np.array([1.0, 0, 0, 0]), np.array([0, 0, float(i)]), 1, n) for i, n in ((1, "a.png"), (2, "b.png"))}
    colmap.write_model(colmap.Model(cams, ims, np.zeros((0, 3)), np.zeros((0, 3), np.uint8)), d / "sparse" / "0")
    s = load_scene(d)
    assert (s.width, s.height) == (W, H)
    K = s.Ks[0]
    assert torch.allclose(K, torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=K.dtype), atol=1e-4)
    want = np.array([ray[0] * fx + cx, ray[1] * fy + cy])
    before = np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()
    assert np.linalg.norm(before - want) > 3.0  # the lens really moved it
    im = s.images[0].mean(-1).numpy()
    got = np.array([(im * xx).sum(), (im * yy).sum()]) / im.sum()
    assert np.abs(got - want).max() < 0.3, (got, want)
    m = (s.instance[0] == 1).numpy()
    got_m = np.array([xx[m].mean(), yy[m].mean()])
    assert np.abs(got_m - want).max() < 0.3, (got_m, want)
    assert abs(m.sum() - np.pi * 64) < 0.1 * np.pi * 64  # a disc of radius 8, not a smeared blob
    dp = np.nan_to_num(s.depth_prior[0].numpy() - 1)  # NaN: rays the distorted prior did not cover
    got_d = np.array([(dp * xx).sum(), (dp * yy).sum()]) / dp.sum()
    assert np.abs(got_d - want).max() < 0.3, (got_d, want)


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


def test_colmap_text_model_with_point_lines(tmp_path):
    """images.txt as COLMAP writes it: comment header, each image line followed by its POINTS2D line
    (x y point3D_id triples, -1 = untriangulated; an image without points has an empty line); a name with
    a space; SIMPLE_RADIAL and RADIAL cameras of different sizes."""
    from PIL import Image as PILImage

    sp = tmp_path / "s" / "sparse" / "0"
    sp.mkdir(parents=True)
    (tmp_path / "s" / "images").mkdir()
    for n in ("a b.png", "c.png", "d.png"):
        PILImage.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "s" / "images" / n)
    (sp / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "# Number of cameras: 2\n1 SIMPLE_RADIAL 40 30 35.5 20.5 14.5 0.0\n2 RADIAL 80 60 70.0 40.0 29.0 0.0 0.0\n")
    (sp / "images.txt").write_text(
        "# Image list with two lines of data per image:\n#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
        "#   POINTS2D[] as (X, Y, POINT3D_ID)\n# Number of images: 3, mean observations per image: 1.33\n"
        "3 1 0 0 0 0.5 0 0 2 d.png\n"
        "10.5 11.5 -1 12.25 13.75 7\n"
        "1 0.7071067811865476 0 0.7071067811865476 0 0 0 2 1 a b.png\n"
        "1.0 2.0 7 3.0 4.0 -1 5.0 6.0 8\n"
        "2 1 0 0 0 -0.5 0 0 1 c.png\n"
        "\n")
    (sp / "points3D.txt").write_text(
        "# 3D point list with one line of data per point:\n"
        "7 0.1 0.2 0.3 255 0 10 0.5 1 0 3 0\n8 -1.0 0.5 2.0 0 128 255 0.25 1 2\n")
    m = colmap.read_model(sp)
    assert sorted(m.images) == [1, 2, 3]
    a = m.images[1]
    assert a.name == "a b.png" and a.camera_id == 1
    assert np.allclose(a.xys, [[1, 2], [3, 4], [5, 6]]) and list(a.point3d_ids) == [7, -1, 8]
    assert len(m.images[2].xys) == 0 and m.images[2].name == "c.png"
    assert list(m.images[3].point3d_ids) == [-1, 7] and np.allclose(m.images[3].tvec, [0.5, 0, 0])
    assert np.allclose(m.points, [[0.1, 0.2, 0.3], [-1.0, 0.5, 2.0]]) and m.colors.tolist() == [[255, 0, 10], [0, 128, 255]]
    assert np.allclose(quat_to_rotmat(torch.tensor(a.qvec, dtype=torch.float64)).numpy(), [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-9)
    s = load_scene(tmp_path / "s")
    assert s.image_names == ["a b.png", "c.png", "d.png"] and (s.width, s.height) == (40, 30)
    # the RADIAL camera was described at 80x60 for these 40x30 photos: intrinsics rescaled by 1/2
    assert torch.allclose(s.Ks[2], torch.tensor([[35.0, 0, 20.0], [0, 35.0, 14.5], [0, 0, 1]]), atol=1e-5)
    assert torch.allclose(s.Ks[0], torch.tensor([[35.5, 0, 20.5], [0, 35.5, 14.5], [0, 0, 1]]), atol=1e-5)
