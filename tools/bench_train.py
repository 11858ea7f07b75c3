#!/usr/bin/env python
"""Milliseconds per training step: reconstruction and each prior stage, at two image sizes and two
Gaussian counts, on whatever device is present.

For each (width x height, N Gaussians) case: a synthetic room with three objects (tools/make_synthetic_scene's
generator, 10 views on a 140-degree arc, instance masks, no monocular priors), N Gaussians initialised on the
surfaces (the generator's SfM-like points), densification statistics kept but no refinement (N stays fixed).
Timed with the device synchronised at both ends of a run of steps, after warm-up steps, through Trainer.fit
(so the logging reads are in the figure):
  reconstruction      Trainer.train_step: render (gsplat on CUDA, our C++ rasterizer on CPU), RGB + D-SSIM +
                      mask losses, backward, Adam, gsplat's densification bookkeeping
  geometry prior      + the geometry SDS term on one object rendered alone from a novel camera
  appearance prior    + the appearance SDS term (VAE encode of an object render)
The prior stages use the tiny RANDOM diffusion model (prior.model tiny-random: the only one that runs without
downloads), so their figures are the pipeline's cost around the UNet; Stable Diffusion's own UNet/VAE time comes
on top (not measured here: no weights on the benchmark machines).
On CUDA it also times the floor: one bare gsplat.rasterization forward + backward of the same Gaussians (RGB
only, same camera size), and prints each step / that floor.

    python tools/bench_train.py                                 # 128x96 and 512x384, 20k and 200k Gaussians
    python tools/bench_train.py --sizes 128x96 --counts 20000 --steps 20 --warmup 5   # a quick CPU run
    python tools/bench_train.py --json out.json                 # also write the figures as JSON
    python tools/bench_train.py --sizes 512x384 --counts 20000 --no-prior --profile 50   # where a step's time goes
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def make_case(work: Path, width: int, height: int, n: int):
    """(scene, config) for one case; the scene folder is generated once per size under `work`."""
    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.data.synthetic import make_scene

    root = work / f"scene_{width}x{height}"
    if not (root / "objects.json").exists():
        # points on every surface, seen or not (the generator's points before 2026-11-28): this benchmark
        # times steps over N Gaussians spread through the room, as its recorded figures did
        make_scene(root, n_objects=3, views=10, arc=140.0, width=width, height=height, priors=False,
                   n_points=200_000, seed=0, points_min_views=0)
    cfg = load_config(None, ["train.refine_start_iter=1000000000", "train.cap_max=100000000",
                             "train.checkpoint_every=0", "model.sh_degree=3", "model.sh_degree_interval=1000000",
                             "prior.model=tiny-random", "prior.views_per_step=1"])
    return load_scene(root, cfg.data), cfg


def fixed_gaussians(tr, n: int, seed: int = 0) -> None:
    """Replace the trainer's Gaussians by n on the scene's surfaces (its SfM points, resampled with jitter),
    labelled by the instance masks' votes, with fresh optimizers and strategy state."""
    from gs_recon.gaussians.init import vote_labels
    from gs_recon.gaussians.model import PARAM_KEYS, create_params

    s = tr.scene
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, s.points.shape[0], (n,), generator=g)
    pts = s.points[pick] + 0.002 * s.scale * torch.randn(n, 3, generator=g)
    cols = s.point_colors[pick]
    labs = vote_labels(pts, s.instance[s.train_idx], s.viewmats[s.train_idx], s.Ks[s.train_idx], s.n_labels)
    m = tr.cfg.model
    tr.params = create_params(pts, cols, labs, m.sh_degree, m.init_opacity, m.init_scale, tr.device)
    tr.set_trainable(PARAM_KEYS)
    tr._make_optimizers()
    if hasattr(tr, "densifier"):  # fresh densification statistics for the new Gaussians
        tr.densifier.reset()
    else:  # an older gs_recon (a same-machine baseline in .baseline/, tools/gpu_check.sh) kept it in Trainer
        tr._make_strategy()


def time_steps(tr, steps: int, warmup: int, label: str, step_fn=None) -> float:
    """ms per step over `steps` steps after `warmup` (Trainer.fit, device synchronised at both ends)."""
    if warmup:
        tr.fit(tr.step + warmup, progress=False, stage=label, step_fn=step_fn)
    _sync(tr.device)
    t0 = time.perf_counter()
    tr.fit(tr.step + steps, progress=False, stage=label, step_fn=step_fn)
    _sync(tr.device)
    return (time.perf_counter() - t0) * 1000 / steps


def gsplat_floor(tr, steps: int, warmup: int) -> float:
    """ms for one bare gsplat.rasterization forward + backward of the trainer's Gaussians (RGB colours, one
    training camera): the floor a training step cannot go below."""
    from gsplat import rasterization

    s, p = tr.scene, tr.params
    leaves = {k: p[k].detach().clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "sh0")}
    vm, K = tr.scene.viewmats[:1].to(tr.device), tr.scene.Ks[:1].to(tr.device)

    def once():
        img, _, _ = rasterization(leaves["means"], leaves["quats"], torch.exp(leaves["scales"]),
                                  torch.sigmoid(leaves["opacities"]), leaves["sh0"][:, 0], vm, K, s.width, s.height,
                                  packed=False)
        img.sum().backward()

    for _ in range(warmup):
        once()
    _sync(tr.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        once()
    _sync(tr.device)
    return (time.perf_counter() - t0) * 1000 / steps


def profile_steps(tr, steps: int) -> None:
    """Where a reconstruction step's time goes: Python functions (cProfile, cumulative, per step) and torch ops
    (torch.profiler, self CPU time; CUDA kernel time alongside on a GPU)."""
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity, profile

    pr = cProfile.Profile()
    _sync(tr.device)
    pr.enable()
    tr.fit(tr.step + steps, progress=False)
    _sync(tr.device)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(40)
    print(f"\n== cProfile, {steps} reconstruction steps (cumulative seconds over all steps)\n" + buf.getvalue())
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if tr.device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        tr.fit(tr.step + steps, progress=False)
        _sync(tr.device)
    print(f"== torch.profiler, {steps} reconstruction steps")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
    if tr.device.type == "cuda":
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=15))


def run_case(work: Path, width: int, height: int, n: int, steps: int, warmup: int, prior: bool,
             profile: int = 0):
    from gs_recon.prior.models import load_guidance
    from gs_recon.prior.stages import APPEARANCE_KEYS, GEOMETRY_KEYS, PriorStages
    from gs_recon.train.recon import Trainer

    scene, cfg = make_case(work, width, height, n)
    tr = Trainer(scene, cfg)
    fixed_gaussians(tr, n)
    row = {"size": f"{width}x{height}", "gaussians": n,
           "reconstruction_ms": time_steps(tr, steps, warmup, "reconstruction")}
    if profile:
        profile_steps(tr, profile)
    if prior:
        g = load_guidance(cfg.prior.model, cfg.prior.guidance_scale, device=tr.device)
        ps = PriorStages(tr, g, cfg.prior)
        ps.refresh_visibility()  # the frozen visibility grid (max-view visibility over the training views)
        for label, keys, sds, key in (("geometry prior", GEOMETRY_KEYS, ps.geometry_sds, "geometry_ms"),
                                      ("appearance prior", APPEARANCE_KEYS, ps.appearance_sds, "appearance_ms")):
            tr.start_stage(keys, {"means": cfg.prior.lr_means * tr.scene_scale})
            getattr(ps, "_clear_caches", lambda: None)()  # (older gs_recon: a baseline run has none)
            fn = (lambda s: lambda gen: tr.train_step(gen, extra_losses=lambda: s(0.5), densify=False))(sds)
            row[key] = time_steps(tr, steps, warmup, label, fn)
        tr.set_trainable(tuple(tr.optimizers))
    if tr.device.type == "cuda":
        row["gsplat_floor_ms"] = gsplat_floor(tr, steps, warmup)
        row["reconstruction_over_floor"] = row["reconstruction_ms"] / row["gsplat_floor_ms"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["128x96", "512x384"])
    ap.add_argument("--counts", nargs="+", type=int, default=[20_000, 200_000])
    ap.add_argument("--steps", type=int, default=100, help="timed steps per stage")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--no-prior", action="store_true", help="reconstruction only")
    ap.add_argument("--work", type=Path, default=None, help="folder for the generated scenes (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="also profile this many reconstruction steps of the first case (cProfile + torch.profiler)")
    a = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    what = (torch.cuda.get_device_name() if dev.type == "cuda" else f"{platform.machine()}, {torch.get_num_threads()} threads")
    print(f"bench_train: device {dev} ({what}), torch {torch.__version__}, {a.steps} timed steps after {a.warmup}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        for size in a.sizes:
            w, h = (int(x) for x in size.lower().split("x"))
            for n in a.counts:
                t0 = time.time()
                r = run_case(work, w, h, n, a.steps, a.warmup, not a.no_prior, a.profile if not rows else 0)
                rows.append(r)
                print("  " + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items())
                      + f"  ({time.time() - t0:.0f} s)", flush=True)
    cols = [c for c in ("reconstruction_ms", "geometry_ms", "appearance_ms", "gsplat_floor_ms",
                        "reconstruction_over_floor") if any(c in r for r in rows)]
    print("\n| size | Gaussians | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['size']} | {r['gaussians']} | " + " | ".join(f"{r[c]:.2f}" if c in r else "-" for c in cols) + " |")
    if a.json:
        a.json.write_text(json.dumps({"device": what, "torch": torch.__version__, "steps": a.steps, "rows": rows},
                                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
