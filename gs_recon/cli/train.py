"""gs-recon train: reconstruct a decomposed 3D Gaussian scene from posed photos.

    gs-recon train SCENE_DIR [--config tiny_cpu|configs/X.yaml] [--resume] [--key.sub value ...]

Examples:
    gs-recon train examples/demo_scene --config configs/tiny_cpu.yaml
    gs-recon train data/room --train.iterations 30000 --data.downscale 2 --guidance sd
    torchrun --nproc_per_node=4 tools/train.py data/room --distributed   # stage 1 sharded over 4 GPUs
    gs-recon train data/room --viewer      # watch it train at http://127.0.0.1:8080, then browse the result

Options are layered: defaults, then the --config preset, then the command line.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Annotated, Optional

import tyro

from ..config import Config, load_config
from ..errors import SceneError
from ..heap import imports_paused
from ..config.options import ConfigArgs, parse
from .args import preset_arg


@dataclasses.dataclass
class TrainArgs:
    # a scene folder: images/ with sparse/ (COLMAP) or transforms.json, optional instance/ masks (README)
    scene_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SCENE_DIR")]
    cfg: ConfigArgs
    # YAML preset: a path, or a bundled preset's name (default, tiny_cpu, tiny_prior_cpu); options given on
    # the command line override it
    config: Optional[str] = None
    resume: bool = False  # continue from OUT_DIR/checkpoints/last.pt (needs --output.out_dir)
    no_progress: bool = False  # no progress bars (logs only)
    distributed: bool = False  # under torchrun: shard stage 1's Gaussians over the ranks (= --train.distributed true)
    viewer: bool = False  # watch training live in the browser (= --viewer.enabled true; --viewer.port etc.)


def parse_train(argv) -> TrainArgs:
    preset = preset_arg(argv)
    cfg = load_config(preset) if preset else Config()
    default = TrainArgs(scene_dir=tyro.MISSING, cfg=cfg, config=preset)
    return parse(TrainArgs, argv, default, "gs-recon train", __doc__)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        a = parse_train(argv)
        cfg = a.cfg
        if a.distributed:
            cfg.train.distributed = True
        if a.viewer:
            cfg.viewer.enabled = True
        if a.resume and not cfg.output.out_dir:
            raise SceneError("--resume needs --output.out_dir RUN_DIR (the run to continue)")
        with imports_paused():  # torch and the rest only grow the heap (gs_recon/heap.py)
            from ..pipeline import run

        keep = cfg.viewer.enabled and cfg.viewer.keep_open
        m = run(a.scene_dir, cfg, resume=a.resume, progress=not a.no_progress, keep_viewer=keep)
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    if "rank" in m:  # a non-zero rank of a torchrun job: rank 0 reports
        return 0
    te = m["metrics"].get("test", {})
    tr = m["metrics"].get("train", {})
    print(f"done: {m['out_dir']}")
    if tr:
        print(f"train PSNR {tr['psnr']:.2f} dB  SSIM {tr['ssim']:.4f}")
    if te:
        print(f"test  PSNR {te['psnr']:.2f} dB  SSIM {te['ssim']:.4f}  ({te['n_views']} views)")
    for o in m["objects"]:
        print(f"  {o['id']:>3} {o['name']:<20} {o['gaussians']:>8} Gaussians  {o['files'][0]}")
    live = m.pop("live_viewer", None)
    if live is not None:  # the finished run takes over the live viewer's server: open browsers stay connected
        from .view import serve

        return serve(m["out_dir"], cfg.viewer.host, cfg.viewer.port, "both", server=live.server)
    return 0
