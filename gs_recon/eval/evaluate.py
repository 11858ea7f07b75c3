"""Evaluate a finished run: test-view image metrics (whole scene and per object) and mesh metrics per
object, background and scene against ground-truth meshes (SCENE_DIR/gt by default), over the whole
surface and over its visible side (GT surface samples seen by at least one training camera, occlusion
by the GT scene included).

Per-object image metrics: PSNR over the pixels of the object's instance mask in the test views (the
full render, so occlusion is as photographed); SSIM over the object's mask bounding box.
LPIPS needs pretrained network weights (torchvision/AlexNet via the `lpips` package) that cannot be
fetched offline; it is computed only when `lpips` and its weights load, otherwise reported as skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import torch

from ..data.errors import SceneError
from .mesh_metrics import mesh_metrics, sample_surface, visible_from
from .metrics import psnr, ssim


def _lpips_fn():
    try:
        import lpips  # noqa: F401

        net = lpips.LPIPS(net="alex", verbose=False)
        return lambda a, b: float(net(a.permute(0, 3, 1, 2) * 2 - 1, b.permute(0, 3, 1, 2) * 2 - 1).mean())
    except Exception as e:
        return f"skipped: LPIPS weights not available locally ({type(e).__name__})"


@torch.no_grad()
def image_metrics(run) -> Dict:
    from ..render.api import render

    s, p = run.scene, run.params
    if not s.test_idx:
        return {"skipped": "no test views"}
    lp = _lpips_fn()
    bg = s.background_color
    per_obj: Dict[int, Dict[str, list]] = {o.id: {"psnr": [], "ssim": []} for o in s.objects}
    ps, ss, ls = [], [], []
    for i in s.test_idx:
        out = render(p, s.viewmats[[i]], s.Ks[[i]], s.width, s.height, sh_degree=run.cfg.model.sh_degree,
                     background=bg)
        pred, gt = out.rgb.clamp(0, 1), s.images[[i]]
        ps.append(psnr(pred, gt))
        ss.append(float(ssim(pred, gt)))
        if callable(lp):
            ls.append(lp(pred, gt))
        if s.instance is None:
            continue
        for o in s.objects:
            m = s.instance[i] == o.id
            if int(m.sum()) < 16:
                continue
            per_obj[o.id]["psnr"].append(psnr(pred[0], gt[0], m))
            ys, xs = torch.nonzero(m, as_tuple=True)
            y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
            if y1 - y0 >= 11 and x1 - x0 >= 11:
                per_obj[o.id]["ssim"].append(float(ssim(pred[:, y0:y1, x0:x1], gt[:, y0:y1, x0:x1])))
    mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
    res = {"scene": {"psnr": mean(ps), "ssim": mean(ss), "lpips": mean(ls) if callable(lp) else lp,
                     "n_views": len(s.test_idx)}, "objects": {}}
    for o in s.objects:
        res["objects"][o.name] = {"id": o.id, "psnr": mean(per_obj[o.id]["psnr"]),
                                  "ssim": mean(per_obj[o.id]["ssim"]), "n_views": len(per_obj[o.id]["psnr"])}
    return res


def mesh_metrics_for_run(run, gt_dir: Optional[Path], threshold: float = 0.05, n: int = 100_000) -> Dict:
    import trimesh

    gt_dir = Path(gt_dir) if gt_dir else Path(run.manifest["scene_dir"]) / "gt"
    if not gt_dir.exists():
        return {"skipped": f"{gt_dir}: no ground-truth meshes (pass --gt)"}
    meshes = {e["id"]: e for e in run.manifest.get("meshes") or [] if e.get("mesh")}
    if not meshes:
        raise SceneError(f"{run.path / 'scene.json'}: lists no meshes; run tools/extract_mesh.py {run.path} first")
    pairs = []
    for o in run.scene.objects:
        g = sorted((gt_dir / "objects").glob(f"{o.id}_*.ply"))
        if g and o.id in meshes:
            pairs.append((o.name, run.path / meshes[o.id]["mesh"][0], g[0]))
    if (gt_dir / "background.ply").exists() and 0 in meshes:
        pairs.append(("background", run.path / meshes[0]["mesh"][0], gt_dir / "background.ply"))
    if (gt_dir / "scene.ply").exists() and (run.path / "meshes" / "scene.ply").exists():
        pairs.append(("scene", run.path / "meshes" / "scene.ply", gt_dir / "scene.ply"))
    out, visible = {}, {}
    s = run.scene
    occ = trimesh.load(gt_dir / "scene.ply", force="mesh") if (gt_dir / "scene.ply").exists() else None
    for name, pred_p, gt_p in pairs:
        gt = trimesh.load(gt_p, force="mesh")
        pred = trimesh.load(pred_p, force="mesh")
        samples = sample_surface(gt, n, 0)
        out[name] = mesh_metrics(pred, gt, threshold=threshold, n=n, gt_samples=samples)
        if occ is not None and name != "scene":  # the side the training cameras saw
            vis = visible_from(samples[0], s.viewmats_world()[s.train_idx].double().numpy(),
                               s.Ks[s.train_idx].double().numpy(), s.width, s.height, occ)
            visible[name] = mesh_metrics(pred, gt, threshold=threshold, n=n, gt_samples=samples, gt_visible=vis)
            visible[name]["visible_fraction"] = float(vis.mean())
    return {"threshold": threshold, "gt_dir": str(gt_dir), "meshes": out, "visible_side": visible}


def evaluate_run(run, gt_dir: Optional[Path] = None, threshold: float = 0.05, n: int = 100_000) -> Dict:
    return {"run": str(run.path), "scene": run.scene.name, "images": image_metrics(run),
            "meshes": mesh_metrics_for_run(run, gt_dir, threshold, n)}
