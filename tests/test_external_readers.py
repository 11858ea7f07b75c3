"""Our files read by independent, third-party readers (npm packages CI installs into .npm-tools/):
PlayCanvas splat-transform reads every splat file we write (.ply, .splat, .spz) with the same Gaussian
count and positions (.spz: 24-bit fixed point, 1/4096), rotations up to sign, scales and colours within
the formats' quantisation; the Khronos glTF validator finds 0 errors in our .glb files."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT

TOOLS = Path(os.environ.get("GS_RECON_NPM_TOOLS", ROOT / ".npm-tools"))


def _tool(name: str) -> Path:
    p = TOOLS / "node_modules" / name
    if shutil.which("node") is None or not p.exists():
        pytest.skip(f"npm tools are not installed ({p} missing): "
                    f"cd .npm-tools && npm install gltf-validator @playcanvas/splat-transform")
    return p


def _csv(path: Path, tmp: Path) -> dict:
    exe = _tool("@playcanvas/splat-transform") / ".." / ".." / ".bin" / "splat-transform"
    out = tmp / (path.name + ".csv")
    r = subprocess.run([str(exe), "-q", "-w", str(path), str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    a = np.genfromtxt(out, delimiter=",", names=True)
    return {k: a[k] for k in a.dtype.names}


@pytest.fixture(scope="module")
def gaussians():
    from gs_recon.eval.bench import random_scene

    p, _, _ = random_scene(400, 32, seed=3)
    g = {k: v.detach() for k, v in p.items()}
    g["shN"] = torch.randn(400, 15, 3, generator=torch.Generator().manual_seed(1)) * 0.2
    return g


def test_splat_transform_reads_ply_splat_spz(gaussians, tmp_path):
    from gs_recon.export.splats import write_ply, write_splat, write_spz

    g = gaussians
    q = torch.nn.functional.normalize(g["quats"], dim=-1).numpy()
    for fmt, writer in (("ply", write_ply), ("splat", write_splat), ("spz", write_spz)):
        path = tmp_path / f"g.{fmt}"
        writer(path, g)
        c = _csv(path, tmp_path)
        assert len(c["x"]) == 400, fmt
        # .splat is reordered (sorted by size x opacity): match by position
        pos = np.stack([c["x"], c["y"], c["z"]], -1)
        d = np.linalg.norm(pos[:, None] - g["means"].numpy()[None], axis=-1)
        idx = d.argmin(1)
        assert len(set(idx.tolist())) == 400, fmt
        assert d.min(1).max() < (1.0 / 4096 if fmt == "spz" else 1e-6), fmt
        rot = np.stack([c[f"rot_{i}"] for i in range(4)], -1)
        rot /= np.linalg.norm(rot, axis=-1, keepdims=True)
        assert np.abs((rot * q[idx]).sum(-1)).min() > (0.999 if fmt != "splat" else 0.99), fmt
        sc = np.stack([c[f"scale_{i}"] for i in range(3)], -1)
        assert np.abs(sc - g["scales"].numpy()[idx]).max() < (1e-5 if fmt == "ply" else 0.04), fmt
        if fmt != "splat":  # .splat has no SH; .spz keeps 5 bits in band 1, 4 above
            rest = np.stack([c[f"f_rest_{i}"] for i in range(45)], -1)
            ours = g["shN"].numpy()[idx].transpose(0, 2, 1).reshape(400, 45)  # channel-major, as in PLY
            assert np.abs(rest - np.clip(ours, -1, 1)).max() < (1e-6 if fmt == "ply" else 0.07), fmt
            dc = np.stack([c[f"f_dc_{i}"] for i in range(3)], -1)
            assert np.abs(dc - g["sh0"].numpy()[idx, 0]).max() < (1e-6 if fmt == "ply" else 0.02), fmt


def _validate_glb(path: Path) -> dict:
    mod = _tool("gltf-validator")
    js = ("const v=require(process.argv[1]);const fs=require('fs');"
          "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2]))).then(r=>"
          "console.log(JSON.stringify(r.issues))).catch(e=>{console.error(e);process.exit(1)})")
    r = subprocess.run(["node", "-e", js, str(mod), str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    return json.loads(r.stdout)


def test_gltf_validator_accepts_our_glb(run):
    issues = _validate_glb(run[1] / "meshes" / "scene.glb")
    assert issues["numErrors"] == 0, [m for m in issues["messages"] if m["severity"] == 0][:5]
