"""Evaluate a finished run: test-view PSNR / SSIM (/ LPIPS when its weights are available locally),
whole scene and per object, and mesh accuracy / completeness / Chamfer-L1 / F-score / normal
consistency per object, background and scene against ground-truth meshes. Prints a table and writes
RUN_DIR/eval.json.

    gs-recon eval RUN_DIR [--gt SCENE_DIR/gt] [--threshold 0.05] [--samples 100000]
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Literal, Optional

import tyro

from ..errors import SceneError
from ..heap import imports_paused
from ..config.options import parse


@dataclasses.dataclass
class EvalArgs:
    # a finished run: the output folder of gs-recon train (holds scene.json)
    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    gt: Optional[str] = None  # ground-truth folder (objects/<id>_<name>.ply, background.ply, scene.ply); none: SCENE_DIR/gt
    threshold: float = 0.05  # F-score distance in scene units (5 cm, DP-Recon's and MonoSDF's protocol)
    samples: int = 100_000  # surface samples per mesh
    # samples: area-weighted surface samples (ours); dprecon: DP-Recon's protocol (vertices voxel-downsampled
    # at 2 cm, 200k samples for normal consistency), for comparing with its published numbers (docs/BENCHMARKS.md)
    protocol: Literal["samples", "dprecon"] = "samples"


def _f(v, fmt):
    return "-" if v is None else (format(v, fmt) if isinstance(v, (int, float)) else str(v))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        a = parse(EvalArgs, argv, EvalArgs(run_dir=tyro.MISSING), "gs-recon eval", __doc__)
        with imports_paused():  # torch, scipy, trimesh (gs_recon/heap.py)
            from rich.console import Console
            from rich.table import Table

            from ..eval.evaluate import evaluate_run
            from ..io_utils import write_json
            from ..run.manifest import open_run

        run = open_run(a.run_dir)
        res = evaluate_run(run, a.gt, a.threshold, a.samples, a.protocol)
        write_json(run.path / "eval.json", res)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    con = Console()
    im = res["images"]
    t = Table(title=f"images: {im.get('scene', {}).get('n_views', 0)} test views")
    for c in ("", "PSNR dB", "SSIM", "LPIPS", "views", "mask mIoU"):
        t.add_column(c)
    if "scene" in im:
        sc = im["scene"]
        lp = "skipped" if isinstance(sc["lpips"], str) else _f(sc["lpips"], ".4f")
        t.add_row("scene", _f(sc["psnr"], ".2f"), _f(sc["ssim"], ".4f"), lp, str(sc["n_views"]),
                  _f(sc.get("mask_miou"), ".4f"))
        for name, o in im["objects"].items():
            t.add_row(name, _f(o["psnr"], ".2f"), _f(o["ssim"], ".4f"), "", str(o["n_views"]))
    con.print(t)
    me = res["meshes"]
    if "meshes" in me:
        t = Table(title=f"meshes vs {me['gt_dir']} (F-score at {me['threshold']})")
        for c in ("", "acc", "comp", "chamfer-L1", "CD cm", "prec", "recall", "F-score", "normal cons."):
            t.add_column(c)
        for name, m in me["meshes"].items():
            t.add_row(name, *[_f(m[k], ".4f") for k in ("accuracy", "completeness", "chamfer_l1")],
                      _f(m["chamfer_cm"], ".2f"),
                      *[_f(m[k], ".4f") for k in ("precision", "recall", "fscore", "normal_consistency")])
        con.print(t)
        if me.get("visible_side"):
            t = Table(title="visible side only (GT seen by a training camera)")
            for c in ("", "seen", "acc", "comp", "chamfer-L1", "F-score", "normal cons."):
                t.add_column(c)
            for name, m in me["visible_side"].items():
                t.add_row(name, _f(m["visible_fraction"], ".2f"),
                          *[_f(m[k], ".4f") for k in ("accuracy", "completeness", "chamfer_l1", "fscore",
                                                      "normal_consistency")])
            con.print(t)
    else:
        con.print(f"meshes: {me.get('skipped')}")
    if isinstance(im.get("scene", {}).get("lpips"), str):
        con.print(f"LPIPS {im['scene']['lpips']}")
    con.print(f"wrote {run.path / 'eval.json'}")
    return 0
