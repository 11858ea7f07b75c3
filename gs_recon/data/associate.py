"""Per-image instance masks -> object ids that agree across views (`--data.masks per_image`).

A segmenter run on each photo on its own numbers its masks per photo: ids permuted, an object split into
two masks in one photo, two objects merged into one mask in another. The scene's SfM points tie the photos
together: every point that a view sees (a z-buffer over the projected points) takes that view's mask id.
Two points belong to the same object when their ids agree in most of the views that see both: a split
or a merge disagrees in a few views only, two different objects in nearly all. Points are clustered on
that agreement (graph of agreeing pairs, connected components, small clusters dropped), clusters become
objects 1..K (largest first), and each photo's masks are relabelled: a mask whose points fall in one
cluster takes it whole; a mask holding two clusters (a merge) is split pixel by pixel by the nearest
projected point.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ..errors import SceneError


def point_labels(inst: np.ndarray, viewmats: np.ndarray, Ks: np.ndarray, points: np.ndarray, radius: int = 2,
                 depth_tol: float = 0.03) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """inst [V, H, W] (per-image ids, 0 background, -1 unknown), viewmats [V, 4, 4] world-to-camera, Ks [V, 3, 3],
    points [P, 3] -> (labels [P, V] int: the id each view gives each point, -1 where the view does not see it;
    uv [P, V, 2] pixel coordinates; visible [P, V] bool). A point is seen when it is in front, inside the
    image, and within depth_tol (relative) of the nearest point projected within `radius` pixels."""
    V, H, W = inst.shape
    P = len(points)
    labels = np.full((P, V), -1, np.int64)
    uvs = np.zeros((P, V, 2))
    vis = np.zeros((P, V), bool)
    for v in range(V):
        pc = points @ viewmats[v, :3, :3].T + viewmats[v, :3, 3]
        z = pc[:, 2]
        ok = z > 1e-6
        u = Ks[v, 0, 0] * pc[:, 0] / np.where(ok, z, 1) + Ks[v, 0, 2]
        w = Ks[v, 1, 1] * pc[:, 1] / np.where(ok, z, 1) + Ks[v, 1, 2]
        ok &= (u >= 0) & (u < W) & (w >= 0) & (w < H)
        ui, wi = np.floor(u).astype(np.int64), np.floor(w).astype(np.int64)
        zbuf = np.full((H + 2 * radius, W + 2 * radius), np.inf)
        idx = np.flatnonzero(ok)
        for dy in range(-radius, radius + 1):  # splat each point's depth over a (2r+1)^2 window
            for dx in range(-radius, radius + 1):
                np.minimum.at(zbuf, (wi[idx] + dy + radius, ui[idx] + dx + radius), z[idx])
        zmin = zbuf[wi[idx] + radius, ui[idx] + radius]
        seen = idx[z[idx] <= zmin * (1 + depth_tol)]
        lab = inst[v, wi[seen], ui[seen]]
        known = lab >= 0
        labels[seen[known], v] = lab[known]
        vis[seen[known], v] = True
        uvs[:, v, 0], uvs[:, v, 1] = u, w
    return labels, uvs, vis


def associate(inst: np.ndarray, viewmats: np.ndarray, Ks: np.ndarray, points: np.ndarray, agree: float = 0.75,
              min_views: int = 2, min_points: int = 8) -> Tuple[np.ndarray, Dict]:
    """Consistent ids for per-image masks. inst [V, H, W] int64 -> (inst [V, H, W] with objects 1..K,
    0 background, -1 unknown kept; report). Two points join when they are both seen by >= min_views views and
    their ids agree in >= `agree` of them; clusters under min_points points are dropped."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if points is None or len(points) == 0:
        raise SceneError("--data.masks per_image needs SfM points to tie the photos together (COLMAP sparse/ "
                         "with points3D, or transforms.json naming a point cloud in ply_file_path, as nerfstudio writes it)")
    labels, uvs, vis = point_labels(inst, viewmats, Ks, points)
    fg = ((labels > 0).sum(1) > (labels == 0).sum(1)) & ((labels > 0).sum(1) >= min_views)
    cand = np.flatnonzero(fg)
    L = labels[cand]  # [C, V]
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for s in range(0, len(cand), 512):
        a = L[s:s + 512, None, :]
        both = (a >= 0) & (L[None] >= 0)
        n = both.sum(-1)
        same = (both & (a == L[None]) & (a > 0)).sum(-1)
        ok = (n >= min_views) & (same >= agree * np.maximum(n, 1))
        i, j = np.nonzero(ok)
        rows.append(i + s)
        cols.append(j)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n_comp, comp = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(cand),) * 2),
                                        directed=False)
    sizes = np.bincount(comp, minlength=n_comp)
    keep = [c for c in np.argsort(-sizes) if sizes[c] >= min_points]
    obj_of = np.zeros(len(points), np.int64)  # 0 = no object
    for k, c in enumerate(keep):
        obj_of[cand[comp == c]] = k + 1
    out = np.where(inst < 0, -1, 0).astype(np.int64)
    n_seg = n_split = n_lost = 0
    V = inst.shape[0]
    for v in range(V):
        for lab in np.unique(inst[v]):
            if lab <= 0:
                continue
            n_seg += 1
            seg = inst[v] == lab
            pts = np.flatnonzero((labels[:, v] == lab) & (obj_of > 0))
            if len(pts) == 0:
                n_lost += 1
                continue
            ids, cnt = np.unique(obj_of[pts], return_counts=True)
            if cnt.max() >= 0.8 * cnt.sum():
                out[v][seg] = ids[np.argmax(cnt)]
                continue
            n_split += 1  # a merged mask: each pixel takes the object of its nearest point
            major = pts[np.isin(obj_of[pts], ids[cnt >= 0.1 * cnt.sum()])]
            ys, xs = np.nonzero(seg)
            _, nn = cKDTree(uvs[major, v]).query(np.stack([xs + 0.5, ys + 0.5], -1))
            out[v][ys, xs] = obj_of[major[nn]]
    report = {"objects": len(keep), "points_per_object": [int(sizes[c]) for c in keep], "masks": n_seg,
              "masks_split": n_split, "masks_without_points": n_lost}
    if not keep:
        raise SceneError("--data.masks per_image: no object could be tied across views (too few SfM points on "
                         "the masked objects); provide masks whose ids agree across views")
    return out, report
