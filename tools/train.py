#!/usr/bin/env python
"""Reconstruct a decomposed 3D Gaussian scene from posed photos.

    python tools/train.py SCENE_DIR [--config configs/X.yaml] [--resume] [--key.sub value ...]

Examples:
    python tools/train.py examples/demo_scene --config configs/tiny_cpu.yaml
    python tools/train.py data/room --train.iterations 30000 --data.downscale 2
    torchrun --nproc_per_node=4 tools/train.py data/room --distributed   # stage 1 sharded over 4 GPUs
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.config import load_config  # noqa: E402
from gs_recon.data.errors import SceneError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene_dir")
    ap.add_argument("--config", default=None, help="YAML preset (configs/default.yaml, configs/tiny_cpu.yaml)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoints/last.pt")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--distributed", action="store_true",
                    help="under torchrun: shard stage 1's Gaussians over the ranks (= --train.distributed true)")
    args, rest = ap.parse_known_args(argv)
    if args.distributed:
        rest = [*rest, "--train.distributed", "true"]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = load_config(args.config, rest)
        if args.resume and not cfg.output.out_dir:
            raise SceneError("--resume needs --output.out_dir RUN_DIR (the run to continue)")
        from gs_recon.pipeline import run

        m = run(args.scene_dir, cfg, resume=args.resume, progress=not args.no_progress)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
