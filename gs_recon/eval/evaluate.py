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

from ..errors import SceneError
from .mesh_metrics import SurfaceDistances, mesh_metrics, sample_surface, visible_from
from .metrics import instance_miou, label_map, psnr, ssim


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
    ps, ss, ls, ious = [], [], [], []
    for i in s.test_idx:
        out = render(p, s.viewmats[[i]], s.Ks[[i]], s.width, s.height, sh_degree=run.cfg.model.sh_degree,
                     background=bg, n_labels=s.n_labels)
        pred, gt = out.rgb.clamp(0, 1), s.images[[i]]
        if s.instance is not None:
            iou = instance_miou(label_map(out.object_alpha[0]), s.instance[i])
            if iou is not None:
                ious.append(iou)
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
                     "n_views": len(s.test_idx),
                     # DP-Recon's novel-view instance-mask mIoU, over test views with masks showing an object
                     "mask_miou": mean(ious), "mask_miou_views": len(ious)}, "objects": {}}
    for o in s.objects:
        res["objects"][o.name] = {"id": o.id, "psnr": mean(per_obj[o.id]["psnr"]),
                                  "ssim": mean(per_obj[o.id]["ssim"]), "n_views": len(per_obj[o.id]["psnr"])}
    return res


def gt_pairs(run, gt_dir: Path):
    """(name, predicted mesh path, GT mesh path) for each object, the background and the scene. GT layouts:
    ours (objects/<id>_<name>.ply, background.ply, scene.ply) or DP-Recon's GTmesh (obj_<id>.ply,
    bg_repair.ply or bg.ply, scene_mesh.ply). Returns (pairs, occluder path or None)."""
    meshes = {e["id"]: e for e in run.manifest.get("meshes") or [] if e.get("mesh")}
    if not meshes:
        raise SceneError(f"{run.path / 'scene.json'}: lists no meshes; run gs-recon extract-mesh {run.path} first")
    first = lambda *c: next((p for p in c if p.exists()), None)  # noqa: E731
    pairs = []
    for o in run.scene.objects:
        g = sorted((gt_dir / "objects").glob(f"{o.id}_*.ply")) or [gt_dir / f"obj_{o.id}.ply"]
        if g[0].exists() and o.id in meshes:
            pairs.append((o.name, run.path / meshes[o.id]["mesh"][0], g[0]))
    bg = first(gt_dir / "background.ply", gt_dir / "bg_repair.ply", gt_dir / "bg.ply")
    if bg is not None and 0 in meshes:
        pairs.append(("background", run.path / meshes[0]["mesh"][0], bg))
    sc = first(gt_dir / "scene.ply", gt_dir / "scene_mesh.ply")
    if sc is not None and (run.path / "meshes" / "scene.ply").exists():
        pairs.append(("scene", run.path / "meshes" / "scene.ply", sc))
    return pairs, sc


def mesh_metrics_for_run(run, gt_dir: Optional[Path], threshold: float = 0.05, n: int = 100_000,
                         protocol: str = "samples") -> Dict:
    """Mesh metrics per object, background and scene, over the whole surface and the visible side.

    GT meshes are in the capture's original frame. When the run's outputs are in another frame (IDR
    cameras: the normalised one, scene.json world_frame), predictions are moved to the original frame
    first (DP-Recon's evaluate_single_scene.py applies scale_mat_0 the same way), so distances are in the
    capture's units; ``chamfer_cm`` is Chamfer-L1 x 100 (DP-Recon's tables: metres -> cm).
    protocol: "samples" (area-weighted surface samples, ours) or "dprecon" (mesh vertices voxel-downsampled
    at 2 cm for accuracy/completeness/F-score, 200k face samples for normal consistency; as DP-Recon)."""
    import numpy as np
    import trimesh

    scene_dir = Path(run.manifest["scene_dir"])
    if gt_dir is None:
        gt_dir = next((d for d in (scene_dir / "gt", scene_dir / "GTmesh") if d.exists()), scene_dir / "gt")
    gt_dir = Path(gt_dir)
    if not gt_dir.exists():
        return {"skipped": f"{gt_dir}: no ground-truth meshes (pass --gt)"}
    pairs, occ_p = gt_pairs(run, gt_dir)
    wf = run.manifest.get("world_frame") or {}
    T = np.array(wf["original_from_world"]) if "original_from_world" in wf else np.eye(4)
    out, visible = {}, {}
    s = run.scene
    occ = trimesh.load(occ_p, force="mesh") if occ_p is not None else None
    vms = s.viewmats_world()[s.train_idx].double().numpy()
    if not np.allclose(T, np.eye(4)):  # cameras into the original frame (x_world = inv(T) x_original)
        Ti = np.linalg.inv(T)
        R = vms[:, :3, :3] @ Ti[:3, :3]
        scale = np.cbrt(np.linalg.det(R))[:, None, None]
        vms = vms.copy()
        vms[:, :3, 3] = (vms[:, :3, 3] + np.einsum("cij,j->ci", vms[:, :3, :3], Ti[:3, 3])) / scale[:, :, 0]
        vms[:, :3, :3] = R / scale
    for name, pred_p, gt_p in pairs:
        gt = trimesh.load(gt_p, force="mesh")
        pred = trimesh.load(pred_p, force="mesh")
        pred.apply_transform(T)
        samples = sample_surface(gt, n, 0)
        if protocol == "samples":  # the neighbours once, for the whole surface and the visible side
            dist = SurfaceDistances(pred, gt, n, 0, samples)
            out[name] = dist.scores(threshold)
        else:
            out[name] = mesh_metrics(pred, gt, threshold=threshold, n=n, gt_samples=samples, protocol=protocol)
        out[name]["chamfer_cm"] = 100.0 * out[name]["chamfer_l1"]
        if occ is not None and name != "scene" and protocol == "samples":  # the side the training cameras saw
            vis = visible_from(samples[0], vms, s.Ks[s.train_idx].double().numpy(), s.width, s.height, occ)
            visible[name] = dist.scores(threshold, vis)
            visible[name]["visible_fraction"] = float(vis.mean())
    return {"threshold": threshold, "gt_dir": str(gt_dir), "protocol": protocol,
            "frame": "original (scene.json world_frame)" if wf else "world", "meshes": out, "visible_side": visible}


def evaluate_run(run, gt_dir: Optional[Path] = None, threshold: float = 0.05, n: int = 100_000,
                 protocol: str = "samples") -> Dict:
    return {"run": str(run.path), "scene": run.scene.name, "images": image_metrics(run),
            "meshes": mesh_metrics_for_run(run, gt_dir, threshold, n, protocol)}
