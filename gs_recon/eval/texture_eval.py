"""How well the textured meshes reproduce the Gaussians: render both from the test views and score each
against the photo on the objects' pixels (masked PSNR). The meshes are read back from the run's OBJ/MTL/PNG
files by trimesh (an independent reader of what we wrote)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch


def masked_psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """pred, gt [H, W, 3] in [0, 1], mask [H, W] bool -> PSNR (dB) over the masked pixels."""
    mse = float(((pred - gt) ** 2)[mask].mean())
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def load_textured(run) -> List:
    """The run's textured OBJ meshes (objects and background), world frame, as trimesh objects."""
    import trimesh

    from ..mesh.texture import mesh_file

    return [(e["id"], e["name"], trimesh.load(Path(run.path) / mesh_file(e), force="mesh", process=False))
            for e in run.manifest.get("meshes") or [] if e["id"] >= 0 and e.get("mesh") and e.get("texture")]


@torch.no_grad()
def textured_vs_splats(run, views: List[int] | None = None) -> Dict:
    """Masked PSNR on the ground-truth object pixels (instance > 0) of the test views, for the splat render
    and the textured-mesh render. Returns {views, splat_psnr, mesh_psnr, per_view: [...]}. Needs instance
    masks on the test views and textured meshes in the run (mesh.texture true)."""
    from ..render.api import render
    from ..errors import SceneError
    from ..mesh.texture import render_textured

    sc = run.scene
    views = list(sc.test_idx) if views is None else views
    meshes = load_textured(run)
    if not meshes:
        raise SceneError(f"{run.path}: no textured meshes (run gs-recon extract-mesh with --mesh.texture true)")
    if sc.instance is None:
        raise SceneError(f"{run.path}: the scene has no instance masks to score objects on")
    vw = sc.viewmats_world()
    rows = []
    for i in views:
        mask = sc.instance[i] > 0
        if not bool(mask.any()):
            continue
        out = render(run.params, sc.viewmats[[i]], sc.Ks[[i]], sc.width, sc.height,
                     sh_degree=run.cfg.model.sh_degree, backend="cpu", background=sc.background_color)
        rgb_m, hit, _ = render_textured([m for _, _, m in meshes], vw[i], sc.Ks[i], sc.width, sc.height,
                                        background=sc.background_color.numpy())
        gt = sc.images[i]
        rows.append({"view": int(i), "pixels": int(mask.sum()), "splat_psnr": masked_psnr(out.rgb[0].clamp(0, 1), gt, mask),
                     "mesh_psnr": masked_psnr(rgb_m, gt, mask), "mesh_coverage": float(hit[mask].float().mean())})
    if not rows:
        raise SceneError(f"{run.path}: no test view shows an object")
    return {"views": len(rows), "splat_psnr": float(np.mean([r["splat_psnr"] for r in rows])),
            "mesh_psnr": float(np.mean([r["mesh_psnr"] for r in rows])), "per_view": rows}
