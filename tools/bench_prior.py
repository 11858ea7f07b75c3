#!/usr/bin/env python
"""What the prior adds, measured: the table in docs/BENCHMARKS.md ("Prior benchmark"), in one command.

Scenes from the synthetic generator, training views on a 150 degree arc (object backs unseen), 8 test
views all around; each scene x seed is reconstructed once (stage 1), then every variant continues from
that checkpoint with the geometry-prior stage:
  - reconstruction only (no further steps);
  - exemplar prior with visibility weighting (exemplar library written by the generator: shapes of the
    same kind, never the ones placed);
  - exemplar prior without visibility (prior.pixel_weighting false: weight 1 everywhere, and no per-Gaussian
    gate);
  - exemplar prior of the wrong category (the library's category folders rotated: box gets ball
    exemplars, ...);
  - tiny random UNet (the same steps with a prior that knows nothing: control for the extra steps).
Object meshes come from the Gaussians alone (mesh.object_mode open: no silhouette carving, no hull
filling). Ground truth is split by whether a training camera sees it (eval.mesh_metrics.visible_from);
accuracy / completeness / Chamfer-L1 / F@2cm / F@5cm per side, means and standard deviations over the
scenes x seeds of the per-run object means. 360-degree test PSNR, seconds per stage.

    python tools/bench_prior.py [--work /tmp/gs_prior_bench] [--out docs/BENCHMARKS.md] [--seeds 0 1 2]
    python tools/bench_prior.py --quick     # one scene, one seed, short schedules (the slow test)
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT.parent / "shared" / "data" / "meshes"
BEGIN, END = "<!-- prior-benchmark:begin -->", "<!-- prior-benchmark:end -->"

# name -> (real meshes, number of objects)
SCENES = {
    "prims3": ([], 3),  # box, ball, cylinder
    "prims5": ([], 5),  # + cone, capsule
    "spot+prims": (["spot/spot.obj"], 3),  # spot (exemplars: the cow), box, ball
}
VARIANTS = ["reconstruction only", "exemplar + visibility", "exemplar, no visibility", "exemplar, wrong category",
            "tiny random UNet"]


def _cfg(overrides):
    from gs_recon.config import load_config

    return load_config(str(ROOT / "configs" / "tiny_cpu.yaml"), overrides)


def _rotate_library(src: Path, dst: Path) -> Path:
    """The same exemplars under the wrong category names (category i gets category i+1's shapes)."""
    cats = sorted(p.name for p in src.iterdir() if p.is_dir())
    if dst.exists():
        shutil.rmtree(dst)
    for i, c in enumerate(cats):
        shutil.copytree(src / cats[(i + 1) % len(cats)], dst / c)
    return dst


@functools.lru_cache(maxsize=4)
def _gt_sides(scene_dir: Path, n: int):
    """Per object id: (GT mesh, its surface samples (points [n,3], normals [n,3]), seen [n] bool), computed
    once per scene (the ray casting is the same for every variant)."""
    import trimesh

    from gs_recon.data import load_scene
    from gs_recon.eval.mesh_metrics import sample_surface, visible_from

    s = load_scene(scene_dir)
    occ = trimesh.load(scene_dir / "gt" / "scene.ply", force="mesh")
    vms = s.viewmats_world()[s.train_idx].double().numpy()
    Ks = s.Ks[s.train_idx].double().numpy()
    out = {}
    for f in sorted((scene_dir / "gt" / "objects").glob("*_*.ply")):
        gt = trimesh.load(f, force="mesh")
        samples = sample_surface(gt, n, 0)
        out[int(f.name.split("_")[0])] = (gt, samples, visible_from(samples[0], vms, Ks, s.width, s.height, occ))
    return out


def side_metrics(run_dir: Path, scene_dir: Path, n: int):
    """Per object: {seen, unseen} x {accuracy, completeness, chamfer_l1, f2, f5} (metres), world frame."""
    import trimesh

    from gs_recon.eval.mesh_metrics import SurfaceDistances

    m = json.loads((run_dir / "scene.json").read_text())
    gts = _gt_sides(Path(scene_dir), n)
    out = {}
    for e in m["meshes"]:
        if e["id"] <= 0 or not e.get("mesh"):
            continue
        gt, samples, seen = gts[e["id"]]
        pred = trimesh.load(run_dir / e["mesh"][0], force="mesh")
        res = {}
        dist = SurfaceDistances(pred, gt, n, 0, samples)  # the neighbours once for both sides and thresholds
        for side, mask in (("seen", seen), ("unseen", ~seen)):
            m2, m5 = dist.scores(0.02, mask), dist.scores(0.05, mask)
            res[side] = {"accuracy": m5["accuracy"], "completeness": m5["completeness"],
                         "chamfer_l1": m5["chamfer_l1"], "f2": m2["fscore"], "f5": m5["fscore"],
                         "fraction": float(mask.mean())}
        out[e["name"]] = res
    return out


def run_one(scene_dir: Path, out: Path, overrides, resume_from=None):
    from gs_recon.pipeline import run

    if resume_from is not None:
        if out.exists():
            shutil.rmtree(out)
        (out / "checkpoints").mkdir(parents=True)
        shutil.copy(resume_from / "checkpoints" / "last.pt", out / "checkpoints" / "last.pt")
    cfg = _cfg([f"output.out_dir={out}", *overrides])
    t0 = time.time()
    m = run(scene_dir, cfg, resume=resume_from is not None, progress=False)
    return m, time.time() - t0


def _mean_std(v):
    v = [x for x in v if x is not None and math.isfinite(x)]
    if not v:
        return float("nan"), float("nan")
    mu = sum(v) / len(v)
    return mu, (sum((x - mu) ** 2 for x in v) / len(v)) ** 0.5


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/gs_prior_bench")
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenes", nargs="*", default=list(SCENES), help="none: only table the --include rows")
    ap.add_argument("--recon-iters", type=int, default=400)
    ap.add_argument("--geometry-iters", type=int, default=225)
    ap.add_argument("--samples", type=int, default=20000, help="surface samples per mesh for the metrics")
    ap.add_argument("--quick", action="store_true", help="one scene, one seed, short schedules; no docs update")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--include", nargs="*", default=[], help="rows of earlier runs (--json files) to table too")
    a = ap.parse_args(argv)
    if a.quick:
        a.scenes, a.seeds, a.recon_iters, a.geometry_iters, a.samples = ["prims3"], [0], 200, 40, 5000
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from gs_recon.data.synthetic import default_objects, make_scene, write_exemplars

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    common = ["mesh.object_mode=open", "mesh.resolution=64", "mesh.orbit_views=12", "mesh.background_resolution=32",
              "mesh.texture=false",  # geometry is what is measured: no UV unwrap and baking
              "output.export_splat=false", "output.save_test_renders=false", f"train.iterations={a.recon_iters}",
              f"train.refine_stop_iter={int(a.recon_iters * 0.7)}", "train.checkpoint_every=0"]
    prior = ["guidance=sd", f"prior.geometry_iters={a.geometry_iters}", "prior.appearance_iters=0",
             "prior.views_per_step=1", "prior.geometry_render=64", "prior.geometry_latent=32",
             "prior.background_geometry=false"]
    rows = []
    t_all = time.time()
    for name in a.scenes:
        meshes, n_obj = SCENES[name]
        real = [str(MESHES / p) for p in meshes]
        if any(not Path(p).exists() for p in real):
            print(f"skipping {name}: {', '.join(real)} absent (../shared/data/meshes)", flush=True)
            continue
        for seed in a.seeds:
            sd = work / f"{name}_s{seed}"
            lib, wrong = work / f"{name}_s{seed}_exemplars", work / f"{name}_s{seed}_exemplars_wrong"
            if not (sd / "transforms.json").exists():
                make_scene(sd, real, n_obj, views=10, arc=150, test_views=8, priors=False, seed=seed)
            write_exemplars(lib, default_objects(real, n_obj, seed), MESHES)
            _rotate_library(lib, wrong)
            base = work / f"{name}_s{seed}_recon"
            _, wall = run_one(sd, base, common)
            variants = {"reconstruction only": (base, wall)}
            for v, slug, extra in (("exemplar + visibility", "ex_vis", [f"prior.model=exemplar:{lib}"]),
                                   ("exemplar, no visibility", "ex_novis", [f"prior.model=exemplar:{lib}",
                                                                          "prior.pixel_weighting=false",
                                                                          "prior.gaussian_gate=0"]),
                                   ("exemplar, wrong category", "ex_wrong", [f"prior.model=exemplar:{wrong}"]),
                                   ("tiny random UNet", "tiny", ["prior.model=tiny-random"])):
                out = work / f"{name}_s{seed}_{slug}"
                _, w = run_one(sd, out, common + prior + extra, resume_from=base)
                variants[v] = (out, w)
            for v, (out, w) in variants.items():
                m = json.loads((out / "scene.json").read_text())
                sides = side_metrics(out, sd, a.samples)
                row = {"scene": name, "seed": seed, "variant": v, "psnr": m["metrics"]["test"]["psnr"],
                       "t": m["timings"], "objects": sides, "wall": w}
                rows.append(row)
                u = [o["unseen"]["chamfer_l1"] for o in sides.values()]
                print(f"{name} s{seed} {v:<26} PSNR {row['psnr']:.2f}  unseen CD {100 * sum(u) / len(u):.2f} cm",
                      flush=True)
    total = time.time() - t_all
    for f in a.include:
        prev = json.loads(Path(f).read_text())
        rows += prev
        a.scenes = sorted(set(a.scenes) | {r["scene"] for r in prev}, key=list(SCENES).index)
        total += sum(r.get("wall", 0.0) for r in prev)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.quick:
        print(f"quick run: {total:.0f} s")
        return 0
    from gs_recon.eval.bench import write_doc_section

    write_doc_section(a.out, "prior-benchmark", table(rows, a, total))
    print(f"wrote {a.out} ({total / 60:.1f} min)")
    return 0


def table(rows, a, total) -> str:
    cols = [("unseen", "chamfer_l1", 100, "unseen CD cm"), ("unseen", "accuracy", 100, "unseen acc cm"),
            ("unseen", "completeness", 100, "unseen comp cm"), ("unseen", "f2", 1, "unseen F@2cm"),
            ("unseen", "f5", 1, "unseen F@5cm"), ("seen", "chamfer_l1", 100, "seen CD cm"),
            ("seen", "accuracy", 100, "seen acc cm"), ("seen", "completeness", 100, "seen comp cm"),
            ("seen", "f2", 1, "seen F@2cm"), ("seen", "f5", 1, "seen F@5cm")]
    lines = [BEGIN, "## Prior benchmark: what the geometry prior adds", "",
             f"Produced by `python tools/bench_prior.py` on {platform.machine()} CPU, {os.cpu_count()} cores, no GPU,"
             f" {time.strftime('%Y-%m-%d')}, in {total / 60:.1f} min. Scenes {', '.join(a.scenes)} x seeds"
             f" {', '.join(map(str, a.seeds))}; 10 training views (128x96) on a 150 degree arc, 8 test views all"
             f" around; stage 1: {a.recon_iters} steps (configs/tiny_cpu.yaml); prior variants continue from the"
             f" same stage-1 checkpoint with {a.geometry_iters} geometry-stage steps. Object meshes from the"
             " Gaussians alone (`mesh.object_mode open`). Means +- standard deviation over the runs of the"
             " per-run object means; 'seen'/'unseen': ground truth split by whether a training camera sees it.",
             "", "| variant | " + " | ".join(c[3] for c in cols) + " | test PSNR | geo prior s/run |",
             "| --- |" + " --- |" * (len(cols) + 2)]
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if not rs:
            continue
        cells = []
        for side, key, mul, _ in cols:
            per_run = [sum(o[side][key] for o in r["objects"].values()) / len(r["objects"]) for r in rs]
            mu, sd = _mean_std(per_run)
            cells.append(f"{mu * mul:.2f} +- {sd * mul:.2f}" if mul != 1 else f"{mu:.3f} +- {sd:.3f}")
        pm, ps = _mean_std([r["psnr"] for r in rs])
        gs, _ = _mean_std([r["t"].get("geometry_prior_s", 0.0) for r in rs])
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {pm:.2f} +- {ps:.2f} | {gs:.0f} |")
    base = [r for r in rows if r["variant"] == "reconstruction only"]
    ex = [r for r in rows if r["variant"] == "exemplar + visibility"]
    if base and ex:
        cd = lambda rs, side, k: _mean_std([sum(o[side][k] for o in r["objects"].values()) / len(r["objects"])  # noqa: E731
                                             for r in rs])[0]
        du = 100 * (cd(ex, "unseen", "chamfer_l1") / cd(base, "unseen", "chamfer_l1") - 1)
        ds = 100 * (cd(ex, "seen", "accuracy") / cd(base, "seen", "accuracy") - 1)
        dp = _mean_std([r["psnr"] for r in ex])[0] - _mean_std([r["psnr"] for r in base])[0]
        met = du <= -25 and ds <= 10 and dp >= -0.5
        lines += ["", f"Exemplar prior with visibility vs reconstruction only (mean over {len(ex)} runs): unseen-side"
                  f" Chamfer-L1 {du:+.1f}% (target: -25% or lower), seen-side accuracy {ds:+.1f}% (target: +10% or"
                  f" less), test PSNR {dp:+.2f} dB (target: -0.5 dB or more): target {'met' if met else 'NOT met'}."]
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
