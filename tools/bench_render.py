#!/usr/bin/env python
"""Benchmark the CPU render backend: forward + backward of one image.

Times, in the same run and on the same inputs, (a) gs_recon's C++ tile rasterizer and (b) the naive
padded-tile vectorised torch reference (``gs_recon.render.rasterize_ref``), and prints the ratio.

    python tools/bench_render.py [--n 10000] [--size 128] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from gs_recon.eval.bench import random_scene  # noqa: E402
from gs_recon.render import rasterize_cpu  # noqa: E402
from gs_recon.render.api import render  # noqa: E402
from gs_recon.render.projection import project  # noqa: E402
from gs_recon.render.rasterize_ref import rasterize_ref  # noqa: E402


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="number of Gaussians")
    ap.add_argument("--size", type=int, default=128, help="image width = height")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-reference", action="store_true")
    a = ap.parse_args(argv)
    params, viewmats, Ks = random_scene(a.n, a.size, seed=0)
    W = H = a.size
    target = torch.rand(1, H, W, 3)

    def ours():
        for v in params.values():
            v.grad = None
        out = render(params, viewmats, Ks, W, H, sh_degree=0, backend="cpu")
        ((out.rgb - target).abs().mean() + out.alpha.mean()).backward()

    def naive():
        for v in params.values():
            v.grad = None
        p = project(params["means"], params["quats"], torch.exp(params["scales"]), viewmats, Ks, W, H)
        tiles = rasterize_cpu.isect_tiles(p.means2d, p.radii, p.depths, W, H)
        rgb = (params["sh0"][:, 0] * 0.28209479177387814 + 0.5).clamp(min=0)
        img, alpha, _ = rasterize_ref(p.means2d, p.conics, torch.sigmoid(params["opacities"])[None], rgb[None],
                                      p.depths, tiles.offsets, tiles.ids, W, H, rasterize_cpu.TILE)
        ((img - target).abs().mean() + alpha.mean()).backward()

    torch.set_num_threads(torch.get_num_threads())
    t_ours = _time(ours, a.repeats)
    print(f"threads={torch.get_num_threads()}  N={a.n}  image={W}x{H}")
    print(f"gs_recon CPU backend (C++), forward+backward: {t_ours * 1000:8.1f} ms")
    if not a.skip_reference:
        t_ref = _time(naive, max(1, a.repeats // 2))
        print(f"naive padded-tile torch reference:           {t_ref * 1000:8.1f} ms")
        print(f"speed-up vs naive reference (same run):      {t_ref / t_ours:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
