"""Initial Gaussians: SfM points labeled by instance-mask votes, visual hulls carved from the masks where
points are missing, and random background points.
"""
from __future__ import annotations

import logging
from typing import Tuple

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


def carve_hull(instance: Tensor, viewmats: Tensor, Ks: Tensor, label: int, bound: float = 1.5,
               res: int = 64, max_bg_frac: float = 0.1, gen: torch.Generator | None = None,
               n_samples: int = 3000) -> Tensor:
    """Visual hull of one object label from instance masks [C,H,W]: samples [n, 3] inside the carved
    voxels of the cube [-bound, bound]^3 (empty when the label is never seen).

    A voxel is kept when at least a quarter of the views (and two) see it, it projects onto background (0)
    in at most `max_bg_frac` of them, and onto `label` in at least half of the views where it lands on
    any object: another object in front of it does not carve it, but a voxel inside or behind another
    object (seen as that object from most directions) is not taken for this one.
    """
    min_seen = max(2, int(0.25 * instance.shape[0] + 0.999))

    def carve(lo: Tensor, hi: Tensor):
        axes = [(torch.arange(res).float() + 0.5) / res * (hi[i] - lo[i]) + lo[i] for i in range(3)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        uv, z = project_points(grid, viewmats, Ks)
        lab, inside = lookup(instance, uv, z)
        pos = ((lab == label) & inside).sum(0)
        neg = ((lab == 0) & inside).sum(0)
        seen = inside.sum(0)
        on_objects = ((lab > 0) & inside).sum(0)
        majority = pos.float() >= 0.5 * on_objects.float()  # another object in front: a minority of views
        keep = (seen >= min_seen) & (pos >= 1) & majority & (neg.float() <= max_bg_frac * seen.float())
        loose = (pos >= max(2, min_seen // 2)) & majority
        return grid, keep, loose

    lo, hi = torch.full((3,), -bound), torch.full((3,), bound)
    grid, keep, loose = carve(lo, hi)
    step = (hi - lo) / res
    if int(keep.sum()) < 32 and bool(loose.any()):
        # thin or small object (narrower than a voxel of the whole-scene cube): carve again on a grid of
        # the same size over the region where several views agree it is
        pts = grid[loose]
        grid, keep, _ = carve(pts.min(0).values - step, pts.max(0).values + step)
        step = (pts.max(0).values - pts.min(0).values + 2 * step) / res
    vox = grid[keep]
    if len(vox) == 0:
        return torch.zeros(0, 3)
    idx = torch.randint(0, len(vox), (n_samples,), generator=gen)
    jitter = (torch.rand(n_samples, 3, generator=gen) - 0.5) * step
    return vox[idx] + jitter


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
        for o in scene.objects:
            if int((have == o.id).sum()) >= 200:
                continue
            h = carve_hull(inst, vm, K, o.id, bound=bound, res=cfg.hull_resolution, gen=gen,
                           n_samples=cfg.hull_points_per_object)
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
