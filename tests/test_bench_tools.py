"""The benchmarks tools/gpu_check.sh runs on a lent GPU, and the CPU rasterizer's, run here on the CPU at toy
size, so that a GPU session's few minutes are not lost to a benchmark that no longer runs against the library
(bench_train.py once called a Trainer method that had moved into train/strategy.py, and nothing noticed)."""
import json
import math
import re
import subprocess
import sys

from conftest import ROOT


def _run(args, timeout=300):
    r = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


def test_bench_train_runs_every_stage(tmp_path):
    """bench_train.py: one toy case, reconstruction and both prior stages, one timed step each (~25 s)."""
    out = tmp_path / "t.json"
    _run(["tools/bench_train.py", "--sizes", "32x24", "--counts", "1000", "--steps", "1", "--warmup", "1",
          "--work", str(tmp_path / "w"), "--json", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["size"] == "32x24" and row["gaussians"] == 1000
    for k in ("reconstruction_ms", "geometry_ms", "appearance_ms"):
        assert math.isfinite(row[k]) and 0 < row[k] < 60_000, (k, row[k])


def test_bench_visibility_routes_agree():
    """bench_visibility.py: the kernel route, the autograd route and the reference all run and agree."""
    text = _run(["tools/bench_visibility.py", "--n", "2000", "--views", "2", "--width", "32", "--height", "24",
                 "--repeats", "1"])
    for route in ("kernel", "autograd", "reference"):
        assert re.search(rf"^\s+{route}\s+[\d.]+ ms", text, re.M), text
    err = float(re.search(r"max relative difference ([\d.e+-]+)", text).group(1))
    assert err < 1e-4, text


def test_bench_render_runs():
    """bench_render.py (the README's CPU rasterizer figure): both routes run and report a time."""
    text = _run(["tools/bench_render.py", "--n", "1000", "--size", "32", "--repeats", "1"])
    for label in ("CPU backend", "naive padded-tile torch reference", "speed-up vs naive reference"):
        assert re.search(rf"{label}.*?\s[\d.]+\s*(ms|x)", text), text
