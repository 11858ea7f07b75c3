"""Initial Gaussians: SfM points labeled by instance-mask votes, visual hulls carved from the masks where
points are missing, and random background points.
"""
from __future__ import annotations

import logging
from typing import List, Tuple

import torch
from torch import Tensor

from ..geometry import lookup, project_points

log = logging.getLogger("gs_recon")


def vote_labels(points: Tensor, instance: Tensor, viewmats: Tensor, Ks: Tensor, n_labels: int) -> Tensor:
    """Label each point by majority vote of the instance labels it projects onto. -> [P] int64."""
    uv, z = project_points(points, viewmats, Ks)
    lab, inside = lookup(instance, uv, z)
    votes = torch.zeros(points.shape[0], n_labels)
    for k in range(n_labels):
        votes[:, k] = ((lab == k) & inside).sum(0).float()
    out = votes.argmax(1)
    out[votes.sum(1) == 0] = 0
    return out


def _voxel_centres(lo: Tensor, hi: Tensor, res: int) -> Tensor:
    """Centres [res^3, 3] of a res^3 grid over the box [lo, hi]."""
    axes = [(torch.arange(res).float() + 0.5) / res * (hi[i] - lo[i]) + lo[i] for i in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _view_counts(grid: Tensor, instance: Tensor, viewmats: Tensor, Ks: Tensor, labels: List[int]):
    """Per voxel centre of grid [G,3], counted over the views: those that see it (it projects inside the image,
    in front), and among them those that show background there, any object, and each of `labels`
    -> seen, neg, on_objects [G], pos [len(labels), G] (int64)."""
    uv, z = project_points(grid, viewmats, Ks)
    lab, inside = lookup(instance, uv, z)
    pos = torch.stack([((lab == label) & inside).sum(0) for label in labels])
    return inside.sum(0), ((lab == 0) & inside).sum(0), ((lab > 0) & inside).sum(0), pos


def _carved(counts, i: int, min_seen: int, max_bg_frac: float):
    """The voxels kept for label number i of _view_counts (keep [G] bool), and the looser set where several
    views agree it is (loose [G] bool): the rules carve_hulls states."""
    seen, neg, on_objects, pos = counts
    pos = pos[i]
    majority = pos.float() >= 0.5 * on_objects.float()  # another object in front: a minority of views
    keep = (seen >= min_seen) & (pos >= 1) & majority & (neg.float() <= max_bg_frac * seen.float())
    loose = (pos >= max(2, min_seen // 2)) & majority
    return keep, loose


def carve_hulls(instance: Tensor, viewmats: Tensor, Ks: Tensor, labels: List[int], bound: float = 1.5,
                res: int = 64, max_bg_frac: float = 0.1, gen: torch.Generator | None = None,
                n_samples: int = 3000) -> List[Tensor]:
    """Visual hulls of several object labels from instance masks [C,H,W]: for each label, samples [n, 3]
    inside the carved voxels of the cube [-bound, bound]^3 (empty when the label is never seen).

    A voxel is kept when at least a quarter of the views (and two) see it, it projects onto background (0)
    in at most `max_bg_frac` of them, and onto the label in at least half of the views where it lands on
    any object: another object in front of it does not carve it, but a voxel inside or behind another
    object (seen as that object from most directions) is not taken for this one.

    The cube's res^3 voxel centres are projected into the views once for all labels (the demo's three
    objects: 1.8 -> 0.6 s). A thin or small object (fewer than 32 voxels kept) is carved again on a grid of
    the same size over the region where several views agree it is. The samples are drawn label after label
    from `gen`: the same as carving the labels one at a time."""
    min_seen = max(2, int(0.25 * instance.shape[0] + 0.999))
    lo, hi = torch.full((3,), -bound), torch.full((3,), bound)
    grid = _voxel_centres(lo, hi, res)
    counts = _view_counts(grid, instance, viewmats, Ks, labels)
    hulls = []
    for i, label in enumerate(labels):
        keep, loose = _carved(counts, i, min_seen, max_bg_frac)
        g, step = grid, (hi - lo) / res
        if int(keep.sum()) < 32 and bool(loose.any()):
            pts = g[loose]
            g = _voxel_centres(pts.min(0).values - step, pts.max(0).values + step, res)
            keep, _ = _carved(_view_counts(g, instance, viewmats, Ks, [label]), 0, min_seen, max_bg_frac)
            step = (pts.max(0).values - pts.min(0).values + 2 * step) / res
        vox = g[keep]
        if len(vox) == 0:
            hulls.append(torch.zeros(0, 3))
            continue
        idx = torch.randint(0, len(vox), (n_samples,), generator=gen)
        jitter = (torch.rand(n_samples, 3, generator=gen) - 0.5) * step
        hulls.append(vox[idx] + jitter)
    return hulls


def colours_from_images(points: Tensor, images: Tensor, viewmats: Tensor, Ks: Tensor) -> Tensor:
    """Mean colour of the pixels each point projects onto (no occlusion test). -> [P,3]."""
    uv, z = project_points(points, viewmats, Ks)
    col, inside = lookup(images, uv, z)
    w = inside.float()[..., None]
    return (col * w).sum(0) / w.sum(0).clamp(min=1)


def initial_points(scene, cfg, seed: int = 0) -> Tuple[Tensor, Tensor, Tensor]:
    """-> points [P,3], colours [P,3], labels [P] for the training views of `scene` (model config `cfg`)."""
    gen = torch.Generator().manual_seed(seed)
    tr = scene.train_idx
    vm, K = scene.viewmats[tr], scene.Ks[tr]
    imgs = scene.images[tr]
    inst = scene.instance[tr] if scene.instance is not None else None
    pts, cols, labs = [], [], []
    if scene.points is not None and len(scene.points):
        p = scene.points
        pts.append(p)
        cols.append(scene.point_colors if scene.point_colors is not None else colours_from_images(p, imgs, vm, K))
        labs.append(vote_labels(p, inst, vm, K, scene.n_labels) if inst is not None else torch.zeros(len(p), dtype=torch.long))
    bound = 1.5 * float(scene.camera_centres().norm(dim=1).max().clamp(min=1e-3))
    if inst is not None:
        have = torch.cat(labs) if labs else torch.zeros(0, dtype=torch.long)
        need = [o for o in scene.objects if int((have == o.id).sum()) < 200]  # objects the SfM points miss
        hulls = carve_hulls(inst, vm, K, [o.id for o in need], bound=bound, res=cfg.hull_resolution, gen=gen,
                            n_samples=cfg.hull_points_per_object) if need else []
        for o, h in zip(need, hulls):
            if len(h) == 0:
                log.warning("object %d (%s) is visible in no training view; it gets no Gaussians", o.id, o.name)
                continue
            pts.append(h)
            cols.append(colours_from_images(h, imgs, vm, K))
            labs.append(torch.full((len(h),), o.id, dtype=torch.long))
    n_bg = int(sum(int((lab == 0).sum()) for lab in labs))
    if n_bg < 200 and cfg.background_points > 0:
        # random background points in the cube that holds the cameras, outside every object's masks
        b = (torch.rand(cfg.background_points * 3, 3, generator=gen) * 2 - 1) * bound
        if inst is not None:
            uv, z = project_points(b, vm, K)
            lab, inside = lookup(inst, uv, z)
            b = b[~((lab > 0) & inside).any(0)][: cfg.background_points]
        else:
            b = b[: cfg.background_points]
        pts.append(b)
        cols.append(colours_from_images(b, imgs, vm, K))
        labs.append(torch.zeros(len(b), dtype=torch.long))
    if not pts:
        raise RuntimeError("no initial points")
    return torch.cat(pts).float(), torch.cat(cols).float(), torch.cat(labs)
