"""The command line: every config field set from the command line round-trips with its type, choices
are validated, presets layer under the command line, and `gs-recon` dispatches its subcommands."""
import dataclasses
import subprocess
import sys
import typing
from typing import List, Literal, Optional

import pytest

from conftest import DEMO, ROOT
from gs_recon.cli.train import parse_train
from gs_recon.config import Config, load_config
from gs_recon.errors import SceneError


def _leaves(obj, prefix=""):
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from _leaves(v, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", hints[f.name], v


def _cases(typ, default):
    """(command-line tokens, the value they must give) for one field type; several spellings each."""
    if typing.get_origin(typ) is Literal:
        return [([c], c) for c in typing.get_args(typ)]
    if typ is bool:
        return [(["false"], False), (["1"], True), (["0"], False), (["true"], True), (["no"], False)]
    if typ is int:
        return [([str(default + 3)], default + 3), (["2e3"], 2000), (["-1"], -1)]
    if typ is float:
        return [([repr(default * 2 + 0.25)], default * 2 + 0.25), (["1e-3"], 1e-3), (["7"], 7.0)]
    if typ is str:  # "none" stays the string where the field is a string (the --guidance none bug)
        return [(["none"], "none"), (["null"], "null"), (["a/b"], "a/b")]
    if typ == Optional[str]:
        return [(["none"], None), (["x/y"], "x/y"), (["null"], None), (["None"], None)]
    if typ in (List[int], List[float]):
        return [(["1,2"], [1, 2]), (["[3, 4]"], [3, 4]), (["5", "6"], [5, 6])]
    raise AssertionError(f"no command-line test for field type {typ}: add one to _cases")


def test_every_config_field_round_trips_from_the_command_line():
    leaves = list(_leaves(Config()))
    assert len(leaves) > 60
    cases = {k: _cases(t, d) for k, t, d in leaves}
    for i in range(max(map(len, cases.values()))):
        argv = []
        want = {}
        for k, cs in cases.items():
            if k == "prior.model":  # its value has forms (validate()): hub ids and folders
                cs = [(["a/b"], "a/b"), (["tiny-random"], "tiny-random"), (["exemplar:lib"], "exemplar:lib")]
            if k == "prior.inpaint_model":  # the same (checked when prior.inpaint_iters > 0)
                cs = [(["a/b"], "a/b"), (["tiny-random"], "tiny-random"), (["c/d"], "c/d")]
            if k == "prior.inpaint_res":  # a multiple of 8 (checked when prior.inpaint_iters > 0)
                cs = [(["64"], 64), (["256"], 256), (["8"], 8)]
            tokens, value = cs[i % len(cs)]
            argv += [f"--{k}", *tokens]
            want[k] = value
        # the tools' parser (gs-recon train) and the library's (load_config overrides): one parser
        cfg_cli = parse_train(["scene", *argv]).cfg
        cfg_lib = load_config(None, argv)
        for cfg in (cfg_cli, cfg_lib):
            for k, v in want.items():
                obj = cfg
                for part in k.split("."):
                    obj = getattr(obj, part)
                assert obj == v and type(obj) is type(v), (k, argv[argv.index(f"--{k}") + 1], obj, v)


def test_preset_then_command_line():
    """tiny_prior_cpu sets guidance sd; the command line's --guidance none wins and stays the string."""
    a = parse_train(["scene", "--config", "configs/tiny_prior_cpu.yaml", "--guidance", "none",
                     "--train.iterations=5", "--prior.elevation", "1,2", "--resume"])
    assert a.cfg.guidance == "none" and a.cfg.train.iterations == 5 and a.cfg.prior.elevation == [1.0, 2.0]
    assert a.cfg.prior.model == "tiny-random" and a.cfg.prior.geometry_iters == 120  # from the preset
    assert a.resume and a.config == "configs/tiny_prior_cpu.yaml" and a.scene_dir == "scene"
    b = parse_train(["scene", "--config=tiny_cpu"])  # a bundled preset by name
    assert b.cfg.train.iterations == 700 and not b.resume


@pytest.mark.parametrize("argv, match", [
    (["--guidance", "foo"], "invalid choice 'foo'.*none.*sd"),
    (["--data.format", "nerf"], "invalid choice 'nerf'.*auto.*colmap.*blender"),
    (["--mesh.object_mode", "solid"], "closed.*open"),
    (["--train.iterations", "1.5"], "expects an integer"),
    (["--mesh.extract", "maybe"], "true/false"),
    (["--prior.model", "sd21"], "hub id.*exemplar:DIR.*tiny-random"),
    (["--train.itrations", "5"], "unknown config key 'train.itrations'; did you mean --train.iterations"),
])
def test_bad_values_name_the_option_and_the_choices(argv, match):
    with pytest.raises(SceneError, match=match):
        load_config(None, argv)


def test_yaml_values_are_typed(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  iterations: lots\n")
    with pytest.raises(SceneError, match=r"bad.yaml: 'train.iterations' expects int, got 'lots'"):
        load_config(p)
    p.write_text("guidance: diffusion\n")
    with pytest.raises(SceneError, match=r"'guidance' is 'diffusion'; choose one of none, sd"):
        load_config(p)
    p.write_text("prior:\n  sds_geometry_lambda: 1e-3\n  elevation: [5, 60]\noutput:\n  out_dir: null\n")
    cfg = load_config(p)  # YAML 1.1 reads 1e-3 as a string; ints in a float list become floats
    assert cfg.prior.sds_geometry_lambda == 1e-3 and cfg.prior.elevation == [5.0, 60.0]
    assert all(type(x) is float for x in cfg.prior.elevation) and cfg.output.out_dir is None


def _gs(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "gs_recon", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_gs_recon_command_and_help():
    r = _gs("--help")
    assert r.returncode == 0
    for cmd in ("train", "eval", "export", "extract-mesh", "view", "make-scene", "bench"):
        assert f"\n  {cmd} " in r.stdout
    r = _gs("train", "--help")
    assert r.returncode == 0, r.stderr
    # type, default and the comment saying where the constant comes from
    text = " ".join(r.stdout.replace("│", " ").split())
    assert "--train.iterations INT" in text and "(default: 7000)" in text
    assert "--train.ssim_lambda FLOAT 3DGS: (1 - 0.2) L1 + 0.2 D-SSIM (default: 0.2)" in text
    assert "--guidance {none,sd}" in text and "--mesh.extract {true,false}" in text
    r = _gs("trian")
    assert r.returncode == 2 and "unknown command 'trian'; did you mean train?" in r.stderr
    r = _gs("train", str(DEMO), "--guidance", "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Expected one of ('none', 'sd')" in r.stderr
    r = _gs("export", "--help")
    assert r.returncode == 0 and "{ply,splat,spz,glb}" in r.stdout and "--mesh.resolution" in r.stdout


def test_tools_wrappers_are_the_same_commands(tmp_path):
    """tools/*.py run the package's commands (no copy of their logic): same help text."""
    for tool, cmd in (("train", "train"), ("extract_mesh", "extract-mesh"), ("make_synthetic_scene", "make-scene"),
                      ("pose", "pose")):
        a = subprocess.run([sys.executable, f"tools/{tool}.py", "--help"], cwd=ROOT, capture_output=True, text=True)
        b = _gs(cmd, "--help")
        assert a.returncode == 0 and a.stdout == b.stdout, tool
