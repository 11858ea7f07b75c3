#!/usr/bin/env python
"""Benchmark the per-Gaussian visibility accumulator.

Same inputs, same run, these routes:
  kernel       gs_recon's route: projection + tile lists + kernel, no render (the CUDA kernel in cuda_ext/ over
               all views in one launch on a GPU; the C++ kernel on CPU)
  kernel only  (CUDA) the kernel launch alone on precomputed projection and tiles, timed with CUDA events
  autograd     the gradient of the summed render of an all-ones per-Gaussian channel
  reference    the vectorised torch reference (the test oracle; skipped above --ref-max Gaussians)
Prints the median time of each and the ratios against the kernel route.

    python tools/bench_visibility.py                          # GPU target: 1M Gaussians, 20 views 512x384
    python tools/bench_visibility.py --n 20000 --views 4 --width 128 --height 96   # CPU-sized
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
from gs_recon.prior.visibility import accumulate, accumulate_autograd  # noqa: E402


def _time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def _kernel_only(params, vms, Ks, width: int, height: int, repeats: int) -> float:
    """Seconds for the CUDA kernel launch alone (median of `repeats`, CUDA events), on gsplat's projection and
    tile lists computed once beforehand."""
    from gs_recon.render._cuda_ext import load_cuda_ext
    from gs_recon.render.api import gsplat_tiles, project_gaussians
    from gs_recon.render.rasterize_cpu import TILE

    ext = load_cuda_ext()
    with torch.no_grad():
        p = project_gaussians(params, vms, Ks, width, height, True, frames=False)
        offsets, flat = gsplat_tiles(p.means2d, p.radii, p.depths, width, height)
        args = (p.means2d.float().contiguous(), p.conics.float().contiguous(),
                torch.sigmoid(params["opacities"]).float().contiguous(), offsets.int().contiguous(),
                flat.int().contiguous(), width, height, TILE, 0.01)
        ext.accumulate_visibility(*args)
        ts = []
        for _ in range(repeats):
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            ext.accumulate_visibility(*args)
            t1.record()
            torch.cuda.synchronize()
            ts.append(t0.elapsed_time(t1) / 1000)
    print(f"  ({flat.numel()} tile intersections)")
    return sorted(ts)[len(ts) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--views", type=int, default=20)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-max", type=int, default=50_000, help="skip the torch reference above this many Gaussians")
    a = ap.parse_args(argv)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    params, vm, K = random_scene(a.n, a.width, seed=0)
    K[:, 1, 2] = a.height / 2
    offs = torch.linspace(-0.3, 0.3, a.views)
    vms = vm.repeat(a.views, 1, 1)
    vms[:, 0, 3] += offs
    Ks = K.repeat(a.views, 1, 1)
    params = {k: v.to(dev) for k, v in params.items()}
    vms, Ks = vms.to(dev), Ks.to(dev)
    print(f"{a.n} Gaussians, {a.views} views {a.width}x{a.height}, device {dev}"
          + (f" ({torch.cuda.get_device_name()})" if dev == "cuda" else f" ({torch.get_num_threads()} threads)"))
    res = {"kernel": _time(lambda: accumulate(params, vms, Ks, a.width, a.height, impl="kernel"), a.repeats),
           "autograd": _time(lambda: accumulate_autograd(params, vms, Ks, a.width, a.height), a.repeats)}
    if dev == "cuda":
        res["kernel only"] = _kernel_only(params, vms, Ks, a.width, a.height, a.repeats)
    if a.n <= a.ref_max:
        res["reference"] = _time(lambda: accumulate(params, vms, Ks, a.width, a.height, impl="reference"), 1)
    k = accumulate(params, vms, Ks, a.width, a.height, impl="kernel").weight_sum
    ag = accumulate_autograd(params, vms, Ks, a.width, a.height)
    err = float((k - ag).abs().max() / k.abs().max().clamp(min=1e-12))
    for name, t in res.items():
        print(f"  {name:<12} {t * 1000:10.1f} ms   {t / res['kernel']:6.2f}x the kernel route's time")
    print(f"kernel vs autograd: max relative difference {err:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
