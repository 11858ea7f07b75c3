"""The bad-input matrix: each case gets a one-line error naming the file (or a warning where real data
is routinely imperfect), and nothing is written to the output folder."""
import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

from gs_recon.data import load_scene


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from gs_recon.data.synthetic import make_scene

    return make_scene(tmp_path_factory.mktemp("base") / "scene", n_objects=2, views=6, width=48, height=36,
                      priors=False, n_points=400)


@pytest.fixture
def scene(base, tmp_path):
    d = tmp_path / "scene"
    shutil.copytree(base, d)
    return d


def _train(scene_dir, out, *extra):
    return subprocess.run([sys.executable, "tools/train.py", str(scene_dir), "--output.out_dir", str(out),
                           "--no-progress", "--train.iterations", "2", "--mesh.extract", "false", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _fails(scene_dir, out, *needles):
    r = _train(scene_dir, out)
    assert r.returncode == 2, r.stderr[-1500:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), r.stderr[-1500:]
    for n in needles:
        assert n in line, (n, line)
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))  # nothing partial


def test_missing_scene_dir(tmp_path):
    _fails(tmp_path / "nope", tmp_path / "out", "nope", "scene folder not found")


def test_no_images(scene, tmp_path):
    shutil.rmtree(scene / "images")
    (scene / "images").mkdir()
    _fails(scene, tmp_path / "out", "none of the", "images")


def test_corrupt_image(scene, tmp_path):
    (scene / "images" / "train_002.png").write_bytes(b"not a png at all")
    _fails(scene, tmp_path / "out", "train_002.png", "corrupt")


def test_mask_size_mismatch(scene, tmp_path):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(scene / "instance" / "train_001.png")
    _fails(scene, tmp_path / "out", "train_001.png", "mask size")


def test_unsupported_camera_model(scene, tmp_path):
    for f in (scene / "sparse" / "0").glob("*.bin"):
        f.unlink()
    cams = scene / "sparse" / "0" / "cameras.txt"
    lines = cams.read_text().splitlines()
    lines = [ln.replace("PINHOLE", "OPENCV_FISHEYE") + " 0 0 0 0" if ln and not ln.startswith("#") else ln
             for ln in lines]
    cams.write_text("\n".join(lines) + "\n")
    _fails(scene, tmp_path / "out", "cameras.txt", "OPENCV_FISHEYE")


def test_nan_pose(scene, tmp_path):
    shutil.rmtree(scene / "sparse")
    t = json.loads((scene / "transforms.json").read_text())
    t["frames"][3]["transform_matrix"][0][3] = float("nan")
    (scene / "transforms.json").write_text(json.dumps(t).replace("NaN", "NaN"))
    _fails(scene, tmp_path / "out", "transforms.json", "non-finite")


@pytest.mark.parametrize("case", ["missing", "not a ply"])
def test_bad_transforms_point_cloud(scene, tmp_path, case):
    """transforms.json's ply_file_path (nerfstudio's SfM points) missing or unreadable: one line naming the file."""
    shutil.rmtree(scene / "sparse")
    if case == "missing":
        (scene / "sparse_pc.ply").unlink()
        _fails(scene, tmp_path / "out", "transforms.json", "sparse_pc.ply not found")
    else:
        (scene / "sparse_pc.ply").write_text("not a ply\n")
        _fails(scene, tmp_path / "out", "sparse_pc.ply", "not a readable PLY point cloud")


def test_malformed_objects_json(scene, tmp_path):
    (scene / "objects.json").write_text("{not json")
    _fails(scene, tmp_path / "out", "objects.json", "malformed")


def test_output_dir_not_writable(scene, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _train(scene, blocker / "out")
    assert r.returncode == 2 and "not writable" in r.stderr.strip().splitlines()[-1]


def test_missing_image_files_are_skipped_with_a_warning(scene):
    (scene / "images" / "train_004.png").unlink()
    with pytest.warns(UserWarning, match="train_004.png.*missing"):
        s = load_scene(scene)
    assert "train_004.png" not in s.image_names and len(s.image_names) == 5


def test_labels_vs_objects_json(scene):
    (scene / "objects.json").write_text(json.dumps({"objects": [{"id": 1, "name": "thing"},
                                                                {"id": 7, "name": "ghost"}]}))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = load_scene(scene)
    msgs = " | ".join(str(x.message) for x in w)
    assert "label 2" in msgs and "object_2" in msgs  # in masks, not in objects.json: named object_k
    assert "object 7 (ghost)" in msgs  # in objects.json, never in masks: warned
    assert {o.id: o.name for o in s.objects}[2] == "object_2"


def test_single_view_trains(scene, tmp_path):
    for p in sorted((scene / "images").glob("*.png"))[1:]:
        p.unlink()
    r = _train(scene, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "only one view" in r.stderr
    m = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert m["cameras"]["train"] == ["train_000.png"] and m["cameras"]["test"] == []


def test_object_seen_in_no_training_view_skips_its_prior(base, caplog):
    from gs_recon.config import load_config
    from gs_recon.prior.models import load_guidance
    from gs_recon.prior.stages import PriorStages
    from gs_recon.train.recon import Trainer

    s = load_scene(base)
    tr_idx = torch.tensor(s.train_idx)
    inst = s.instance.clone()
    inst[tr_idx] = torch.where(inst[tr_idx] == 2, torch.zeros_like(inst[tr_idx]), inst[tr_idx])
    s.instance = inst
    cfg = load_config("configs/tiny_prior_cpu.yaml", ["train.iterations=2"])
    t = Trainer(s, cfg)
    with caplog.at_level("WARNING", logger="gs_recon"):
        ps = PriorStages(t, load_guidance("tiny-random"), cfg.prior)
    assert ps.objects == [1] and 2 not in ps.geo_ids
    assert "object 2" in caplog.text and "no training view" in caplog.text


def test_retired_config_keys(tmp_path):
    """A run saved by an earlier version (scene.json config with prior.gaussian_weighting and
    prior.vis_count_thresh) still loads, with a warning naming the key; on the command line the key is a
    one-line error that says why it went. Any other unknown key stays an error."""
    from gs_recon.config import Config, config_from_dict, load_config
    from gs_recon.errors import SceneError

    old = Config().to_dict()
    old["prior"]["gaussian_weighting"] = True
    old["prior"]["vis_count_thresh"] = 0.01
    with pytest.warns(UserWarning, match="prior.gaussian_weighting' is retired"):
        cfg = config_from_dict(old, "run/scene.json")
    assert cfg.prior.pixel_weighting and not hasattr(cfg.prior, "gaussian_weighting")
    with pytest.raises(SceneError, match="--prior.gaussian_weighting is retired"):
        load_config(None, ["--prior.gaussian_weighting", "true"])
    old["prior"]["no_such_key"] = 1
    with pytest.raises(SceneError, match="unknown config key 'prior.no_such_key'"):
        config_from_dict(old, "run/scene.json")
