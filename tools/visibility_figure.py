#!/usr/bin/env python
"""Figure for docs/PRIOR.md: an object's visibility rendered on a novel view.

Renders one object of a finished run alone from two novel cameras, on the side the training cameras saw
most and on the opposite side: its RGB, the visibility image V = sum_i T_i alpha_i v_i as a heat map,
and the geometry-stage SDS weight w(V) (20 - 38 V below 0.5, else 2 - 2 V). Writes one PNG.

    python tools/visibility_figure.py RUN_DIR [--object 1] [--out docs/figures/visibility.png] [--size 256]
"""
from __future__ import annotations

import argparse
import math
import os
import sys

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.errors import SceneError  # noqa: E402


def _heat(x):
    """[H,W] in [0,1] -> [H,W,3] (dark blue -> red -> yellow), no matplotlib needed."""
    import numpy as np

    x = np.clip(x, 0, 1)[..., None]
    stops = np.array([[0.05, 0.05, 0.35], [0.1, 0.4, 0.9], [0.9, 0.2, 0.2], [1.0, 0.95, 0.3]])
    pos = x * (len(stops) - 1)
    i = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    f = pos - i
    return stops[i[..., 0]] * (1 - f) + stops[i[..., 0] + 1] * f


def main(argv=None) -> int:
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--object", type=int, default=1)
    ap.add_argument("--out", default="docs/figures/visibility.png")
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args(argv)
    try:
        import numpy as np
        import torch
        from PIL import Image, ImageDraw

        from gs_recon.geometry import look_at, pinhole_K, quantile_box, ring_direction
        from gs_recon.io_utils import atomic_path
        from gs_recon.render.api import render
        from gs_recon.run.manifest import open_run, parse_ids
        from gs_recon.prior.visibility import geometry_weight, update_params_visibility

        run = open_run(a.run_dir)
        parse_ids(str(a.object), run.scene)
        p, s = run.params, run.scene
        update_params_visibility(p, s)
        m = p["labels"] == a.object
        pts = p["means"][m]
        c = pts.median(0).values
        cams = s.camera_centres()
        up = s.up / s.up.norm()
        seen = (cams - c).mean(0)
        seen = seen - (seen @ up) * up
        seen = seen / seen.norm().clamp(min=1e-6)
        lo, hi = quantile_box(pts)
        ext = float((hi - lo).max())
        dist = ext / 0.8 / (2 * math.tan(math.radians(21)))
        K = pinhole_K(42.0, a.size, a.size)[None]
        rows, covers = [], []
        # row 1: the side the training cameras saw most; row 2: the opposite side, seen least
        for d in (seen, -seen):
            eye = c + dist * ring_direction(0.0, math.radians(25), d, torch.zeros(3), up)
            vm = look_at(tuple(eye.tolist()), tuple(c.tolist()), up=tuple(up.tolist()))[None]
            with torch.no_grad():
                out = render(p, vm, K, a.size, a.size, sh_degree=run.cfg.model.sh_degree,
                             background=torch.ones(3), mask=m, extra=p["visibility"][:, None])
            V = out.extra[0, ..., 0].clamp(0, 1).numpy()
            alpha = out.alpha[0, ..., 0].numpy()
            W = geometry_weight(torch.from_numpy(V)).numpy() / 20.0
            bg = np.ones_like(V)[..., None]
            rows.append(np.concatenate([out.rgb[0].clamp(0, 1).numpy(),
                                        _heat(V) * alpha[..., None] + bg * (1 - alpha[..., None]),
                                        _heat(W) * alpha[..., None] + bg * (1 - alpha[..., None])], 1))
            covers.append(float((V * alpha).sum() / max(alpha.sum(), 1e-6)))
        img = (np.concatenate(rows, 0) * 255).astype(np.uint8)
        canvas = Image.new("RGB", (img.shape[1], img.shape[0] + 22), "white")
        canvas.paste(Image.fromarray(img), (0, 22))
        dr = ImageDraw.Draw(canvas)
        name = s.object_name(a.object)
        for i, t in enumerate([f"{name}: RGB (top: seen side, bottom: unseen)", "visibility V (0 blue .. 1 yellow)",
                               "geometry SDS weight w(V)/20"]):
            dr.text((i * a.size + 6, 5), t, fill="black")
        for r, cv in enumerate(covers):
            dr.text((a.size + 6, 22 + r * a.size + a.size - 16), f"mean V = {cv:.2f}", fill="black")
        out_path = Path(a.out)
        with atomic_path(out_path) as tmp:
            canvas.save(tmp, format="PNG")
    except SceneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out_path}  (mean V over the object's pixels: seen side {covers[0]:.3f}, unseen side {covers[1]:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
