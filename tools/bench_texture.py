#!/usr/bin/env python
"""Benchmark the textured meshes: how close does a textured-mesh render come to the Gaussians' own render?

For each case it trains a scene (`gs-recon train`, meshes off), times mesh extraction + decimation + UV
unwrap + texture bake (`extract_meshes`, the work `gs-recon extract-mesh` does), then renders the test views
twice, Gaussians (our CPU rasterizer) and the textured OBJ meshes as trimesh reads them back (ray-cast,
bilinear texture lookups), and scores both against the photos on the objects' pixels (masked PSNR).
It writes one picture per case (object crop: splat render | textured mesh | photo) to docs/img/.

    python tools/bench_texture.py [--cases demo,real3] [--work /tmp/gs_bench_tex]

Cases: demo = the README demo (examples/demo_scene, configs/tiny_cpu.yaml); real3 = the synthetic benchmark's
real3 scene (tools/bench_synthetic.py: bunny, spot, banana; 10 views on a 180 degree arc, 8 test views
all around, so the objects' backs are seen only by test views).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT.parent / "shared" / "data" / "meshes"


def _scene(case: str, work: Path) -> Path:
    if case == "demo":
        return ROOT / "examples" / "demo_scene"
    from gs_recon.data.synthetic import make_scene

    real = [MESHES / "stanford-bunny.obj", MESHES / "spot" / "spot.obj",
            MESHES / "ycb_banana" / "textured_simple_reoriented.obj"]
    sd = work / "real3"
    if not (sd / "transforms.json").exists():
        make_scene(sd, [str(p) for p in real if p.exists()], 3, views=10, arc=180, test_views=8, priors=False, seed=0)
    return sd


def _figure(run, path: Path) -> None:
    """Object 1 in the test view where it is largest: splat render | textured mesh render | photo."""
    from PIL import Image

    from gs_recon.eval.texture_eval import load_textured
    from gs_recon.mesh.texture import render_textured
    from gs_recon.render.api import render

    sc = run.scene
    oid = sc.objects[0].id
    i = max(sc.test_idx, key=lambda j: int((sc.instance[j] == oid).sum()))
    ys, xs = torch.nonzero(sc.instance[i] == oid, as_tuple=True)
    pad = 6
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, sc.height)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, sc.width)
    out = render(run.params, sc.viewmats[[i]], sc.Ks[[i]], sc.width, sc.height, sh_degree=run.cfg.model.sh_degree,
                 backend="cpu", background=sc.background_color)
    mesh_rgb, _, _ = render_textured([m for _, _, m in load_textured(run)], sc.viewmats_world()[i], sc.Ks[i],
                                     sc.width, sc.height, background=sc.background_color.numpy())
    panels = [out.rgb[0].clamp(0, 1), mesh_rgb, sc.images[i]]
    strip = torch.cat([p[y0:y1, x0:x1] for p in panels], 1).numpy()
    img = Image.fromarray((strip * 255 + 0.5).astype(np.uint8))
    scale = max(1, 384 // max(1, y1 - y0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def run_case(case: str, work: Path, unwrap: str = "") -> dict:
    from gs_recon.eval.texture_eval import textured_vs_splats
    from gs_recon.export.meshes import extract_meshes
    from gs_recon.run.manifest import open_run

    out = work / f"run_{case}"
    if not (out / "scene.json").exists():
        r = subprocess.run([sys.executable, "-m", "gs_recon", "train", str(_scene(case, work)), "--config", "tiny_cpu",
                            "--no_progress", "--mesh.extract", "false", "--output.out_dir", str(out)],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"training {case} failed:\n{r.stderr[-2000:]}")
    run = open_run(out)
    from gs_recon.config import load_config

    # the preset's mesh settings as they are now (a run trained earlier keeps its own in scene.json)
    run.cfg.mesh = load_config(ROOT / "configs" / "tiny_cpu.yaml").mesh
    if unwrap:
        run.cfg.mesh.unwrap = unwrap
    t0 = time.perf_counter()
    entries = extract_meshes(run.params, run.scene, run.path, run.cfg.mesh)
    wall = time.perf_counter() - t0
    run.manifest["meshes"] = entries
    run.save_manifest()
    res = textured_vs_splats(open_run(out))
    _figure(run, ROOT / "docs" / "img" / f"texture_{case}.png")
    objs = [e for e in entries if e["id"] > 0 and e.get("mesh")]
    bg = next((e for e in entries if e["id"] == 0 and e.get("mesh")), None)
    row = {"case": case, "wall": wall, "splat": res["splat_psnr"], "mesh": res["mesh_psnr"], "views": res["views"],
           "tex": objs[0]["texture"]["size"], "bg_tex": bg["texture"]["size"] if bg else None,
           "faces": [e["faces"] for e in objs], "faces_full": [e["faces_before_decimation"] for e in objs],
           "bg_faces": (bg["faces"], bg["faces_before_decimation"]) if bg else None,
           "watertight": all(e["watertight"] for e in objs), "levels": [e["iso_level"] for e in objs],
           "unwrap": sum(e["texture"]["unwrap_s"] for e in entries if e.get("texture")),
           "method": run.cfg.mesh.unwrap,
           "charts": [e["texture"]["charts"] for e in objs] + ([bg["texture"]["charts"]] if bg else []),
           "bake": sum(e["texture"]["bake_s"] for e in entries if e.get("texture")),
           "seen": float(np.mean([e["texture"]["seen_fraction"] for e in objs]))}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="demo,real3")
    ap.add_argument("--work", default="/tmp/gs_bench_tex")
    ap.add_argument("--unwrap", default="", help="xatlas or axis (default: the preset's mesh.unwrap); "
                    "several, comma-separated, give one row each on the same trained runs")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = [run_case(c, work, u) for c in a.cases.split(",") for u in a.unwrap.split(",")]
    print(f"\n{platform.machine()} CPU, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, `python tools/bench_texture.py`\n")
    print("| case | object faces (full -> budget) | background faces | texture (obj / bg) | watertight | "
          "iso-level | unwrap | charts (objects, bg) | unwrap s | bake s | meshes + textures s | splat PSNR | "
          "textured mesh PSNR | gap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        faces = ", ".join(f"{a} -> {b}" for a, b in zip(r["faces_full"], r["faces"]))
        bgf = f"{r['bg_faces'][1]} -> {r['bg_faces'][0]}" if r["bg_faces"] else "-"
        print(f"| {r['case']} | {faces} | {bgf} | {r['tex']} / {r['bg_tex']} | {r['watertight']} | "
              f"{', '.join(f'{x:.1f}' for x in r['levels'])} | {r['method']} | {', '.join(map(str, r['charts']))} | "
              f"{r['unwrap']:.1f} | {r['bake']:.1f} | {r['wall']:.1f} | "
              f"{r['splat']:.2f} | {r['mesh']:.2f} | {r['splat'] - r['mesh']:.2f} dB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
