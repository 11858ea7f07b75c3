"""Mesh metrics against ground truth, as MonoSDF / DP-Recon define them.

Both meshes are sampled uniformly on their surface (area-weighted, `n` points each, fixed seed); with
nearest neighbours from scipy's cKDTree:
- accuracy     = mean distance from predicted points to the GT points      (lower is better)
- completeness = mean distance from GT points to the predicted points      (lower is better)
- chamfer_l1   = (accuracy + completeness) / 2
- precision    = fraction of predicted points within `threshold` of GT; recall likewise from GT;
  fscore = 2 P R / (P + R)
- normal_consistency = mean over both directions of |n_pred . n_gt| at the nearest neighbour
Distances are in the meshes' units (scene units: the input's world frame).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np


def sample_surface(mesh, n: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Uniform area-weighted samples: points [n, 3], unit face normals [n, 3]."""
    import trimesh

    pts, fidx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts), np.asarray(mesh.face_normals[fidx])


def mesh_metrics(pred, gt, threshold: float = 0.05, n: int = 100_000, seed: int = 0,
                 gt_samples: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Dict[str, float]:
    """pred, gt: trimesh.Trimesh. Returns accuracy, completeness, chamfer_l1, precision, recall, fscore,
    normal_consistency (see module docstring). A missing/empty prediction scores inf / 0."""
    from scipy.spatial import cKDTree

    pg, ng = gt_samples if gt_samples is not None else sample_surface(gt, n, seed)
    if pred is None or len(pred.faces) == 0:
        return {"accuracy": float("inf"), "completeness": float("inf"), "chamfer_l1": float("inf"),
                "precision": 0.0, "recall": 0.0, "fscore": 0.0, "normal_consistency": 0.0}
    pp, npd = sample_surface(pred, n, seed)  # same seed: identical meshes give identical samples
    d_pg, i_pg = cKDTree(pg).query(pp)  # pred -> gt
    d_gp, i_gp = cKDTree(pp).query(pg)  # gt -> pred
    acc, comp = float(d_pg.mean()), float(d_gp.mean())
    prec, rec = float((d_pg < threshold).mean()), float((d_gp < threshold).mean())
    f = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    nc = 0.5 * (np.abs((npd * ng[i_pg]).sum(1)).mean() + np.abs((ng * npd[i_gp]).sum(1)).mean())
    return {"accuracy": acc, "completeness": comp, "chamfer_l1": 0.5 * (acc + comp), "precision": prec,
            "recall": rec, "fscore": float(f), "normal_consistency": float(nc)}
