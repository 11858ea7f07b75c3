"""Model-free room completion: the background's floor, walls and ceiling as planes, completed where no photo
saw them (no diffusion weights needed).

After stage 1, on the background's opaque Gaussians (label 0, opacity > 0.5):
1. Planes (`fit_planes`): sequential RANSAC restricted to a room's planes: floors/ceilings (normal within
   15 degrees of the scene's up) and walls (normal within 15 degrees of horizontal); each refined on its
   inliers with the normal snapped to up / to the horizontal.
2. Room or not (`room_box`): a floor holding >= 10% of the points and at least one wall holding >= 5% make a
   room (`background.completion auto`); `on` / `off` force it. The box: the horizontal axes from the
   strongest wall; on each of the four sides the outermost wall seen there, else (an open side: nothing in
   the photos says where the room ends there) the farthest of the background points (99th percentile), the
   SfM points on the floor (the floor ends where its points do; "on" the floor plane as refitted on the
   points near it, _support_plane) and the cameras plus the photographer's clearance: the smallest gap
   between a seen wall and the cameras nearest it (at least a 5% margin). That last one is a guess - the
   room is taken to continue as far behind the cameras as the photographer kept from the seen walls -
   and it decides the 360-degree test PSNR on the background benchmark (docs/BENCHMARKS.md: +2.5 / +3.9 / +2.2 dB
   over ending the room at the cameras; the benchmark's square room, photographed from a circle about its
   centre, flatters it); the floor on the SfM points near the Gaussians' floor plane (the Gaussians' centres
   sit about their thickness below the surface they render); the ceiling if seen, else as high as the background points,
   the cameras plus a margin, and the SfM points on the walls (the largest such point: one stray SfM point on
   a plane's extension would stretch the box to it).
3. Seen surfaces (`snap_seen`): background Gaussians within the inlier distance of a plane are moved onto
   it and flattened along its normal (a wall seen from one side under textureless shading has no
   photometric depth cue, and the Gaussians drift in front of it; DP-Recon's SDF gets the same planes
   from its monocular normal prior).
   Background Gaussians only one training view sees (`one_view_background`; `background.one_view_to_room`):
   nothing triangulates them, and stage 1 leaves some standing in mid-air in front of the cameras, painted
   with what that one view shows behind them (on the background benchmark's mixed5, two such Gaussians held
   83% of what the renders put where the views looking out show the world beyond the room). Where the ray
   from that view through one meets a face of the room (floor, seen wall, seen ceiling) beyond it, it moves
   there, grown by the ratio of the distances, so that view sees it about as before.
   Then the background Gaussians no training view reaches (`background.drop_unseen`) go: stage 1 never
   trained them (the SfM initialisation where no photo looked, at its initial colour, size and opacity),
   and the cells they sat on are filled like the other unseen cells.
4. Unseen surfaces: each face of the box becomes a grid (`background.grid` cells on the room's longest
   side). A cell is seen when a training camera sees it (inside the image, the face turned towards the
   camera, the rendered depth there not more than two cells in front of it): it keeps the Gaussians it has
   and lends the photos' mean colour there to the texture. A cell with an opaque background Gaussian's centre
   within half a cell of its centre (COVER) is covered (stage 1 extrapolated there) and lends those
   Gaussians' colour. Unseen cells take colours inpainted from the seen ones (biharmonic inpainting,
   scikit-image; harmonic, nearest-seen and median fills measured within 0.1 dB of it; a face nothing saw
   takes the median colour of the seen cells of its kind) and get one flat Gaussian each (in-plane standard
   deviation FILL_SIZE = 1 cell, 3.5% of a cell across). No training camera sees those cells, but the
   Gaussians' footprints reach a little into the views at the cells' borders: on the demo run the worst
   training view renders at 42.9 dB against its render before the completion, 0.5% of its pixels changed by
   more than 0.05.
The added Gaussians are background (label 0) with visibility 0, so the prior stages see them as unseen.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch

from ..geometry import rotmat_to_quat

log = logging.getLogger("gs_recon")

_COS15, _SIN15 = math.cos(math.radians(15)), math.sin(math.radians(15))
# the fill, measured on the background benchmark's three scenes against the same stage-1 results (paired, so
# differences of 0.1 dB are real; docs/BENCHMARKS.md): a cell counts as covered by stage 1 when an opaque
# background Gaussian's centre lies within COVER cells of its centre (1.5 cells: -0.16 to -0.20 dB in the
# 360-degree test PSNR, 0.01 to 0.25: within 0.06 dB of 0.5); a fill Gaussian's in-plane standard deviation
# is FILL_SIZE cells (0.7: -0.15 to -0.17 dB, 1.3: within 0.1 dB, 1.6: -0.1 to -0.6 dB)
COVER = 0.5
FILL_SIZE = 1.0


@dataclass
class Plane:
    normal: np.ndarray  # [3] unit, pointing into the room (towards the cameras)
    offset: float  # points x on the plane: normal . x = offset
    kind: str  # "floor", "ceiling" or "wall"
    inliers: np.ndarray  # [M] indices into the points the plane was fitted to


def fit_planes(pts: np.ndarray, up: np.ndarray, inside: np.ndarray, thresh: float, min_frac: float = 0.03,
               max_planes: int = 8, iters: int = 400, seed: int = 0) -> List[Plane]:
    """Sequential RANSAC for floor / ceiling / wall planes. pts [P,3], up [3] unit, inside [3] a point inside
    the room (the cameras' centroid), thresh: inlier distance. Planes with fewer than min_frac * P inliers
    end the search. One floor and one ceiling at most: once one is found, horizontal candidates of its kind
    are not considered (a horizontal slab through the walls' Gaussians can hold more points than one wall,
    and such slabs once took all max_planes and left the walls unfound)."""
    rng = np.random.default_rng(seed)
    P = len(pts)
    left = np.arange(P)
    planes: List[Plane] = []
    found = set()
    while len(planes) < max_planes and len(left) >= max(3, min_frac * P):
        q = pts[left]
        best, best_n, best_d = None, None, None
        tri = rng.integers(0, len(q), (iters, 3))
        a, b, c = q[tri[:, 0]], q[tri[:, 1]], q[tri[:, 2]]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n, axis=1)
        ok = norm > 1e-9
        n[ok] /= norm[ok, None]
        cos_up = np.abs(n @ up)
        ok &= (cos_up > _COS15) | (cos_up < _SIN15)  # a floor/ceiling or a wall, nothing slanted
        for i in np.nonzero(ok)[0]:
            nn = _snap(n[i], up)
            d = float(nn @ a[i])
            if abs(nn @ up) > 0.5 and _kind(nn if nn @ inside - d >= 0 else -nn, up) in found:
                continue
            cnt = int((np.abs(q @ nn - d) < thresh).sum())
            if best is None or cnt > best:
                best, best_n, best_d = cnt, nn, d
        if best is None or best < min_frac * P:
            break
        inl = np.abs(q @ best_n - best_d) < thresh
        nn, d = _refine(q[inl], best_n, up)
        inl = np.abs(q @ nn - d) < thresh
        if nn @ inside - d < 0:  # normal towards the inside of the room
            nn, d = -nn, -d
        kind = _kind(nn, up)
        if kind != "wall":
            found.add(kind)
        planes.append(Plane(nn, float(d), kind, left[inl]))
        left = left[~inl]
    return planes


def _kind(n: np.ndarray, up: np.ndarray) -> str:
    """A plane's kind from its inward normal."""
    return "wall" if abs(n @ up) < 0.5 else ("floor" if n @ up > 0 else "ceiling")


def _snap(n: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Walls are made exactly vertical (their normal horizontal). Floors and ceilings keep their own normal:
    the scene's up is estimated from the cameras and can be a degree or two off the true floor, and over a
    room that tilt slices one floor into parallel slabs."""
    if abs(n @ up) > 0.5:
        return n
    h = n - (n @ up) * up
    return h / max(np.linalg.norm(h), 1e-12)


def _refine(q: np.ndarray, n: np.ndarray, up: np.ndarray):
    """Least-squares plane through inliers q (smallest principal axis), snapped as in _snap."""
    c = q.mean(0)
    if len(q) >= 3:
        _, _, vt = np.linalg.svd(q - c, full_matrices=False)
        m = vt[-1]
        n = _snap(m if m @ n >= 0 else -m, up)
    return n, float(n @ c)


@dataclass
class RoomBox:
    origin: np.ndarray  # [3] a point on the floor (the box's corner at its lowest a, b)
    axes: np.ndarray  # [3, 3] rows: horizontal a, horizontal b, up
    size: np.ndarray  # [3] extents along a, b, up
    seen: Dict[str, bool]  # which faces were fitted from planes ("-a", "+a", "-b", "+b", "floor", "ceiling")
    planes: List[Plane]  # the planes the box stands on (room_box)

    def faces(self) -> List[Dict]:
        """The box's faces as (centre [3], u [3], v [3] half-extent vectors, inward normal [3], kind, name): the
        floor, the walls and the ceiling that were seen; the room stays open where none was (completion extends
        what the photos showed, it does not invent walls)."""
        a, b, u = self.axes
        sa, sb, su = self.size
        c = self.origin + a * sa / 2 + b * sb / 2 + u * su / 2
        out = [dict(name="floor", kind="floor", centre=c - u * su / 2, u=a * sa / 2, v=b * sb / 2, n=u)]
        if self.seen.get("ceiling"):
            out.append(dict(name="ceiling", kind="ceiling", centre=c + u * su / 2, u=a * sa / 2, v=b * sb / 2, n=-u))
        for name, e, half, other, so in (("-a", -a, sa / 2, b, sb), ("+a", a, sa / 2, b, sb),
                                         ("-b", -b, sb / 2, a, sa), ("+b", b, sb / 2, a, sa)):
            if self.seen.get(name):  # a side no photo showed a wall on stays open (it may be a doorway)
                out.append(dict(name=name, kind="wall", centre=c + e * half, u=other * so / 2, v=u * su / 2, n=-e))
        return out


def _best(planes: List[Plane]) -> Plane:
    return max(planes, key=lambda p: len(p.inliers))


def _reach(planes: List[Plane], e: np.ndarray, support: Optional[np.ndarray], tol: float) -> float:
    """How far the support points lying on the planes (within tol) reach along e (-inf with none): an open side
    of the room ends where its floor's points do, a wall under no seen ceiling is as high as its points. The
    planes are the ones refitted on the support points (_support_plane)."""
    if support is None or not len(support):
        return -np.inf
    on = np.zeros(len(support), bool)
    for p in planes:
        on |= np.abs(support @ p.normal - p.offset) < tol
    return float((support[on] @ e).max()) if on.any() else -np.inf


def _support_plane(p: Plane, support: Optional[np.ndarray], tol: float, up: np.ndarray) -> Plane:
    """Plane p refitted on the support points (e.g. SfM points) near it: those within 3 tol of p, a
    least-squares plane through them (snapped as in _snap, its normal within 15 degrees of p's), then again
    through those within tol of that; p itself with fewer than 10 such points. p comes from the Gaussians, which
    cover only the near part of the surface: a tilt of 1.3 degrees put the far end of one floor 11 cm off its SfM
    points (prims3, one stage-1 run), and the room's open side, which ends where the floor's points do, came out
    63 cm short. The box's floor stands on this plane too (room_box); its walls stay on the Gaussians' planes
    (the walls on the SfM points' planes too: 0.1-0.2 dB lower 360-degree test PSNR on the background
    benchmark than the floor alone). p.inliers are kept."""
    if support is None or len(support) < 10:
        return p
    near = np.abs(support @ p.normal - p.offset) < 3 * tol
    if near.sum() < 10:
        return p
    n, d = _refine(support[near], p.normal, up)
    if n @ p.normal < _COS15:
        return p
    inl = np.abs(support @ n - d) < tol
    if inl.sum() >= 10:
        n, d = _refine(support[inl], n, up)
    return Plane(n, d, p.kind, p.inliers)


def room_box(planes: List[Plane], pts: np.ndarray, cams: np.ndarray, up: np.ndarray, min_floor: float = 0.10,
             min_wall: float = 0.05, force: bool = False, support: Optional[np.ndarray] = None,
             tol: float = 0.0) -> Optional[RoomBox]:
    """The room's box from its planes (module docstring), or None when the planes do not make a room (no
    floor, or no wall, with enough support) and `force` is off. pts [P,3] the points the planes were fitted
    to, cams [C,3] camera centres. support [S,3] (optional, e.g. the SfM points): points within tol of the
    floor extend the room on its open sides, points within tol of a wall raise an unseen ceiling.
    box.planes: the planes it stands on (the best-supported floor, the walls with enough support, the
    best-supported ceiling; secondary parallel 'floors' are blobs, not surfaces)."""
    P = max(1, len(pts))
    floors = [p for p in planes if p.kind == "floor" and len(p.inliers) >= min_floor * P]
    walls = [p for p in planes if p.kind == "wall" and len(p.inliers) >= min_wall * P]
    ceils = [p for p in planes if p.kind == "ceiling" and len(p.inliers) >= min_wall * P]
    if not (floors and walls) and not force:
        return None
    if floors:  # the box stands on the floor as found (the scene's up is estimated from the cameras)
        up = _best(floors).normal
    if walls:
        n0 = _best(walls).normal
        a = n0 - (n0 @ up) * up
        a /= np.linalg.norm(a)
    else:  # forced without walls: the points' main horizontal direction
        h = pts - np.outer(pts @ up, up)
        _, _, vt = np.linalg.svd(h - h.mean(0), full_matrices=False)
        a = vt[0] - (vt[0] @ up) * up
        a /= np.linalg.norm(a)
    b = np.cross(up, a)
    span = np.concatenate([pts, cams])
    margin = 0.05 * float(np.ptp(span @ a) + np.ptp(span @ b)) / 2
    # the planes on the support points, once, for how far the room reaches where no wall or ceiling was seen
    floor_s = [_support_plane(_best(floors), support, tol, up)] if floors else []
    lo, hi, seen, open_sides, gaps = {}, {}, {}, [], []
    for name, e in (("a", a), ("b", b)):
        for sign in (-1, 1):
            key = f"{'-' if sign < 0 else '+'}{name}"
            side = [p for p in walls if (-p.normal) @ (sign * e) > _COS15]  # the wall's outward side is +-e
            seen[key] = bool(side)
            if side:  # the outermost wall on that side, at its inliers' mean coordinate along e
                far = max(sign * float((pts[p.inliers] @ e).mean()) for p in side)
                (lo if sign < 0 else hi)[name] = sign * far
                gaps.append(far - float((sign * (cams @ e)).max()))  # from the cameras nearest that wall
            else:
                open_sides.append((name, sign, e))
    # a side no photo showed a wall on: nothing says where the room ends there. It reaches past the cameras by
    # the clearance the photographer kept from the walls that were seen (the smallest of those gaps), at least
    # a margin, and as far as the points on the floor reach
    clearance = max(margin, min(gaps)) if gaps else margin
    for name, sign, e in open_sides:
        far = max(np.quantile(sign * (pts @ e), 0.99), float((sign * (cams @ e)).max()) + clearance,
                  _reach(floor_s, sign * e, support, tol))
        (lo if sign < 0 else hi)[name] = sign * far
    # the floor where the photos' triangulated points put it, not through the Gaussians' centres: those sit about
    # a Gaussian's thickness below the surface they render (10 cm on the background benchmark, where the fill's
    # far edge on the open side then showed the floor ending too low in the views looking out: -0.5 to -0.8 dB)
    fl = floor_s[0].offset if floors else float(np.quantile(pts @ up, 0.01))
    seen["floor"] = bool(floors)
    if ceils:
        top = min(-p.offset for p in ceils)  # ceiling normal -up: -up . x = offset -> up . x = -offset
        seen["ceiling"] = True
    else:
        top = max(float(np.quantile(pts @ up, 0.99)), float((cams @ up).max()) + margin,
                  _reach([_support_plane(p, support, tol, up) for p in walls], up, support, tol))
        seen["ceiling"] = False
    origin = a * lo["a"] + b * lo["b"] + up * fl
    size = np.array([hi["a"] - lo["a"], hi["b"] - lo["b"], top - fl])
    used = ([_best(floors)] if floors else []) + walls + ([_best(ceils)] if ceils else [])
    return RoomBox(origin, np.stack([a, b, up]), size, seen, used)


def _face_grid(f: Dict, cell: float):
    """Cell centres [gu, gv, 3] over a face, and the grid shape."""
    lu, lv = 2 * np.linalg.norm(f["u"]), 2 * np.linalg.norm(f["v"])
    gu, gv = max(2, int(math.ceil(lu / cell))), max(2, int(math.ceil(lv / cell)))
    su = (np.arange(gu) + 0.5) / gu * 2 - 1
    sv = (np.arange(gv) + 0.5) / gv * 2 - 1
    return f["centre"] + su[:, None, None] * f["u"] + sv[None, :, None] * f["v"], (gu, gv), (lu / gu, lv / gv)


@torch.no_grad()
def _training_depths(params, scene):
    """Per training view: (viewmat [4,4], K [3,3], expected depth [H,W] (inf where alpha < 0.98), image [H,W,3]),
    on the CPU, for the seen-cell test."""
    from ..render.api import render

    dev = params["means"].device
    out = []
    for i in scene.train_idx:
        r = render(params, scene.viewmats[[i]].to(dev), scene.Ks[[i]].to(dev), scene.width, scene.height,
                   normals=False)
        # an occluder must be opaque: behind a half-transparent one a new Gaussian would show through
        d = torch.where(r.alpha[0, ..., 0] > 0.98, r.depth[0, ..., 0], torch.full_like(r.depth[0, ..., 0], float("inf")))
        out.append((scene.viewmats[i].double(), scene.Ks[i].double(), d.cpu().double(), scene.images[i].double()))
    return out


def _seen_colours(pts: np.ndarray, normal: np.ndarray, views, tol: float, radius: float = 0.0):
    """pts [M,3] on a face with inward normal [3] -> (colour [M,3]: mean photo colour over the training views
    that see the point, seen [M] bool). Seen: in front of the camera, inside its image widened by `radius`
    (world units, the footprint of a Gaussian placed there, projected: such a Gaussian would reach into the
    image), the face turned towards it, and the rendered depth there not more than tol in front of it."""
    P = torch.from_numpy(pts)
    n = torch.from_numpy(normal)
    acc, cnt = torch.zeros(len(pts), 3, dtype=torch.float64), torch.zeros(len(pts), dtype=torch.float64)
    for vm, K, depth, img in views:
        R, t = vm[:3, :3], vm[:3, 3]
        centre = -R.T @ t
        xc = P @ R.T + t
        z = xc[:, 2]
        uv = (xc @ K.T)[:, :2] / z.clamp(min=1e-9)[:, None]
        H, W = depth.shape
        ui, vi = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        m = (radius * K[0, 0] / z.clamp(min=1e-3)).ceil().long()  # the footprint's radius in pixels
        ok = (z > 1e-3) & (ui >= -m) & (ui < W + m) & (vi >= -m) & (vi < H + m) & (((centre - P) @ n) > 0)
        ui, vi = ui.clamp(0, W - 1), vi.clamp(0, H - 1)
        ok &= z <= depth[vi, ui] + tol
        acc[ok] += img[vi[ok], ui[ok]]
        cnt[ok] += 1
    seen = cnt > 0
    col = torch.where(seen[:, None], acc / cnt.clamp(min=1)[:, None], torch.zeros_like(acc))
    return col.numpy(), seen.numpy()


def _opaque_background(params) -> np.ndarray:
    """Indices [P] of the opaque background Gaussians (label 0, opacity > 0.5): what the planes are fitted to
    and what covers a cell."""
    lab = params["labels"].detach().cpu()
    op = torch.sigmoid(params["opacities"].detach().cpu())
    return torch.nonzero((lab == 0) & (op > 0.5))[:, 0].numpy()


@torch.no_grad()
def background_planes(params, scene, plane_thresh: float):
    """RANSAC planes of the opaque background Gaussians: (indices [P] of those Gaussians, their centres [P,3],
    up [3], camera centres [C,3], planes, inlier distance), all numpy float64 in the internal frame; None with
    fewer than 50. plane_thresh: inlier distance as a fraction of their median distance to the cameras' centroid."""
    bg = _opaque_background(params)
    if len(bg) < 50:
        return None
    pts = params["means"].detach().cpu().double().numpy()[bg]
    up = scene.up.double().numpy()
    up = up / np.linalg.norm(up)
    cams = scene.camera_centres().double().numpy()
    radius = float(np.median(np.linalg.norm(pts - cams.mean(0), axis=1)))
    planes = fit_planes(pts, up, cams.mean(0), plane_thresh * radius, seed=0)
    return bg, pts, up, cams, planes, plane_thresh * radius


def floor_plane(params, scene, plane_thresh: float = 0.03, min_floor: float = 0.10) -> Optional[Plane]:
    """The background's best-supported floor plane (normal towards the cameras), or None when no plane facing
    up holds min_floor of the opaque background Gaussians."""
    found = background_planes(params, scene, plane_thresh)
    if found is None:
        return None
    pts, planes = found[1], found[4]
    floors = [p for p in planes if p.kind == "floor" and len(p.inliers) >= min_floor * max(1, len(pts))]
    return _best(floors) if floors else None


@torch.no_grad()
def never_seen_background(params, scene, thresh: float = 0.01) -> torch.Tensor:
    """[N] bool: background Gaussians (label 0) that no pixel of any training view reaches with a compositing
    weight alpha*T above `thresh` (outside every view, or always behind opaque surfaces)."""
    from ..prior.visibility import accumulate

    idx = scene.train_idx
    vis = accumulate(params, scene.viewmats[idx], scene.Ks[idx], scene.width, scene.height, thresh)
    return ((vis.count == 0) & (params["labels"].detach() == 0)).cpu()


@torch.no_grad()
def one_view_background(params, scene, frac: float = 0.25, min_weight: float = 0.5):
    """Background Gaussians one training view sees and the others hardly do: (indices [M], the camera centre
    [M,3] of the view that sees each), numpy. Visible: a blending weight summed over that view's pixels of at
    least min_weight; the other views together give less than frac of it. Nothing triangulates such a
    Gaussian: its depth along that view's ray is free (few-view floaters)."""
    from ..prior.visibility import accumulate

    idx = scene.train_idx
    dev = params["means"].device
    w = torch.stack([accumulate(params, scene.viewmats[[i]].to(dev), scene.Ks[[i]].to(dev), scene.width,
                                scene.height).weight_sum.cpu() for i in idx])  # [V,N]
    best, v = w.max(0)
    sel = (params["labels"].detach().cpu() == 0) & (best >= min_weight) & (w.sum(0) - best < frac * best)
    j = torch.nonzero(sel)[:, 0]
    centres = scene.camera_centres().double()[list(idx)][v[j]]
    return j.numpy(), centres.numpy()


def _ray_to_faces(c: np.ndarray, x: np.ndarray, faces: List[Dict], beyond: float) -> Optional[float]:
    """Where the ray from c [3] through x [3] first meets one of the faces (within its extent, from the inside),
    as the distance from c; None when it meets none farther than |x - c| + beyond."""
    L = float(np.linalg.norm(x - c))
    r = (x - c) / L
    hit = None
    for f in faces:
        nr = float(f["n"] @ r)
        if nr >= -1e-9:  # parallel, or the face is seen from behind
            continue
        t = float(f["n"] @ (f["centre"] - c)) / nr
        q = c + t * r - f["centre"]
        if t > L + beyond and abs(q @ f["u"]) <= f["u"] @ f["u"] and abs(q @ f["v"]) <= f["v"] @ f["v"]:
            hit = t if hit is None else min(hit, t)
    return hit


def _replace_rows(params, keep: Optional[torch.Tensor] = None, add: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """In place: keep the rows where keep [N] bool (all when None), then append add's rows (a dict with
    every key of params). The caller rebuilds its optimizers (Trainer.gaussians_replaced)."""
    from ..gaussians.model import PARAM_KEYS

    for k in list(params.keys()):
        v = params[k].detach()
        if keep is not None:
            v = v[keep.to(v.device)]
        if add is not None:
            v = torch.cat([v, add[k].to(v.device, v.dtype)])
        params[k] = torch.nn.Parameter(v, requires_grad=params[k].requires_grad if k in PARAM_KEYS else False)


def complete_room(params, scene, cfg, force: Optional[bool] = None) -> Dict:
    """Snap seen background Gaussians onto the room's planes and add Gaussians where no photo saw the room
    (module docstring). params: the trainer's dict (changed in place: the caller rebuilds its optimizers).
    cfg: BackgroundConfig. Returns a report (planes, box, counts, seconds) for scene.json."""
    import time

    from scipy.spatial import cKDTree
    from skimage.restoration import inpaint_biharmonic

    from ..render.sh import rgb_to_sh, sh_to_rgb

    t0 = time.time()
    mode = cfg.completion if force is None else ("on" if force else "off")
    if mode == "off":
        return {"completion": "off"}
    found = background_planes(params, scene, cfg.plane_thresh)
    if found is None:
        return {"completion": "skipped: fewer than 50 opaque background Gaussians"}
    bg, pts, up, cams, planes, tol = found
    # the SfM points on the planes tell how far the room reaches where the training views' Gaussians stop
    support = scene.points.double().numpy() if scene.points is not None else None
    box = room_box(planes, pts, cams, up, force=mode == "on", support=support, tol=tol)
    report: Dict = {"completion": mode, "planes": [{"kind": p.kind, "normal": np.round(p.normal, 4).tolist(),
                                                    "offset": round(p.offset, 5), "inliers": int(len(p.inliers))}
                                                   for p in planes]}
    if box is None:
        report["room"] = "not a room (needs a floor and a wall; background.completion on forces it)"
        log.info("background completion: no room found (%d planes); off", len(planes))
        return report
    report["box"] = {"origin": box.origin.round(5).tolist(), "axes": box.axes.round(5).tolist(),
                     "size": box.size.round(5).tolist(), "seen": box.seen}
    means = params["means"].detach().cpu().double().numpy()
    # 3. seen surfaces onto their planes, flattened along the normal
    n_snap = 0
    if cfg.snap_seen:
        scales = params["scales"].detach().cpu().double().numpy()
        quats = params["quats"].detach().cpu().double().numpy()
        for p in box.planes:
            idx = bg[p.inliers]
            means[idx] -= np.outer(means[idx] @ p.normal - p.offset, p.normal)
            t1 = np.cross(p.normal, box.axes[2] if p.kind == "wall" else box.axes[0])
            t1 /= np.linalg.norm(t1)
            t2 = np.cross(p.normal, t1)
            R = np.stack([t1, t2, p.normal], 1)  # columns: the Gaussian's local axes
            s = np.sort(scales[idx], 1)  # log scales, ascending
            scales[idx] = np.stack([s[:, 2], s[:, 1], np.minimum(s[:, 0], np.log(0.05) + s[:, 1])], 1)
            quats[idx] = rotmat_to_quat(np.broadcast_to(R, (len(idx), 3, 3)))
            n_snap += len(idx)
        dev = params["means"].device
        params["means"].data.copy_(torch.from_numpy(means).to(dev, params["means"].dtype))
        params["scales"].data.copy_(torch.from_numpy(scales).to(dev, params["scales"].dtype))
        params["quats"].data.copy_(torch.from_numpy(quats).to(dev, params["quats"].dtype))
    # background Gaussians only one training view sees stand anywhere along its rays (nothing triangulates
    # them: few-view floaters); where such a ray meets the room's floor, walls or ceiling beyond the Gaussian,
    # the Gaussian moves there, grown with the distance so that view sees it as before
    n_moved = 0
    if cfg.one_view_to_room:
        faces = box.faces()
        one, centres = one_view_background(params, scene)
        log_s = params["scales"].detach().cpu().double().numpy()
        for j, c in zip(one, centres):
            t = _ray_to_faces(c, means[j], faces, 2 * tol)
            if t is not None:
                L = float(np.linalg.norm(means[j] - c))
                means[j] = c + (means[j] - c) * (t / L)
                log_s[j] += math.log(t / L)
                n_moved += 1
        if n_moved:
            dev = params["means"].device
            params["means"].data.copy_(torch.from_numpy(means).to(dev, params["means"].dtype))
            params["scales"].data.copy_(torch.from_numpy(log_s).to(dev, params["scales"].dtype))
    # background Gaussians no training view reaches were never trained (the SfM initialisation where no photo
    # looked, at its initial colour, size and opacity): they go, and the cells they sat on are filled like any
    # other unseen cell. After snapping (the planes' inliers index the Gaussians as they were)
    n_drop = 0
    if cfg.drop_unseen:
        gone = never_seen_background(params, scene)
        n_drop = int(gone.sum())
        if n_drop:
            _replace_rows(params, ~gone)
            bg = _opaque_background(params)
            means = params["means"].detach().cpu().double().numpy()
    # 4. unseen surfaces: per face, a grid of cells. A cell a training camera sees (inside its image, facing
    # it, nothing rendered in front of it) takes the photos' colour there; the others get Gaussians, coloured
    # by inpainting from the seen cells
    cell = float(box.size[:2].max()) / cfg.grid
    views = _training_depths(params, scene)
    new_pts, new_cols, new_R, new_s = [], [], [], []
    seen_cols: Dict[str, List[np.ndarray]] = {"floor": [], "wall": [], "ceiling": []}
    pending = []
    tree = cKDTree(means[bg])
    cols = sh_to_rgb(params["sh0"].detach().cpu().double()[bg, 0]).clamp(0, 1).numpy()
    for f in box.faces():
        grid, (gu, gv), (cu, cv) = _face_grid(f, cell)
        flat = grid.reshape(-1, 3)
        # radius: where a Gaussian placed in the cell would still reach into a training image (~2 sigma of a
        # 1-cell Gaussian; 3 sigma measured 0.1 dB worse on prims3, the same on real3 and mixed5)
        tex, seen = _seen_colours(flat, f["n"], views, 2 * cell, radius=2.1 * cell)
        # cells an opaque background Gaussian already covers (stage 1 extrapolated there) keep it too: their
        # colour is the Gaussians' distance-weighted mean
        dist, nb = tree.query(flat, k=8, distance_upper_bound=COVER * cell)
        w = np.where(np.isfinite(dist), 1.0 / (dist + 0.25 * cell), 0.0)
        covered = w.sum(1) > 0
        g_col = (cols[np.minimum(nb, len(bg) - 1)] * w[..., None]).sum(1) / np.maximum(w.sum(1), 1e-12)[:, None]
        tex = np.where((covered & ~seen)[:, None], g_col, tex)
        seen = seen | covered
        if seen.any():
            seen_cols[f["kind"]].append(tex[seen])
        pending.append((f, flat, tex.reshape(gu, gv, 3), seen.reshape(gu, gv), (cu, cv)))
    fallback = {k: (np.median(np.concatenate(v), 0) if v else None) for k, v in seen_cols.items()}
    any_seen = np.concatenate([np.concatenate(v) for v in seen_cols.values() if v]) if any(seen_cols.values()) else None
    n_seen_cells = int(sum(int(x[3].sum()) for x in pending))  # seen or covered
    for f, flat, tex, seen, (cu, cv) in pending:
        if seen.all():
            continue
        if seen.sum() >= 4:
            tex = inpaint_biharmonic(tex, ~seen, channel_axis=-1)
        else:
            fb = fallback[f["kind"]]
            fb = fb if fb is not None else (np.median(any_seen, 0) if any_seen is not None else np.full(3, 0.5))
            tex = np.broadcast_to(fb, tex.shape)
        miss = ~seen.reshape(-1)
        u, v = f["u"] / np.linalg.norm(f["u"]), f["v"] / np.linalg.norm(f["v"])
        R = np.stack([u, v, np.cross(u, v)], 1)
        new_pts.append(flat[miss])
        new_cols.append(tex.reshape(-1, 3)[miss].clip(0, 1))
        new_R.append(np.broadcast_to(R, (int(miss.sum()), 3, 3)))
        new_s.append(np.broadcast_to(np.log([FILL_SIZE * cu, FILL_SIZE * cv, 0.035 * min(cu, cv)]), (int(miss.sum()), 3)))
    n_new = int(sum(len(p) for p in new_pts))
    if n_new:
        dev = params["means"].device
        pts_n = torch.from_numpy(np.concatenate(new_pts)).float()
        add = {
            "means": pts_n,
            "scales": torch.from_numpy(np.concatenate(new_s)).float(),
            "quats": torch.from_numpy(rotmat_to_quat(np.concatenate(new_R))).float(),
            "opacities": torch.full((n_new,), math.log(0.95 / 0.05)),
            "sh0": rgb_to_sh(torch.from_numpy(np.concatenate(new_cols)).float())[:, None, :],
            "shN": torch.zeros((n_new,) + tuple(params["shN"].shape[1:])),
            "labels": torch.zeros(n_new, dtype=params["labels"].dtype),
            "visibility": torch.zeros((n_new,) + tuple(params["visibility"].shape[1:])),
        }
        _replace_rows(params, None, add)
    report.update(snapped=int(n_snap), moved=n_moved, added=n_new, dropped=n_drop, seen_cells=n_seen_cells, cell=cell,
                  seconds=round(time.time() - t0, 2))
    log.info("background completion: %d planes (%s), %d snapped onto the planes, %d seen by one view moved onto the "
             "room, %d never-seen Gaussians dropped, %d added where unseen (%.1f s)", len(planes),
             ", ".join(p.kind for p in planes), n_snap, n_moved, n_drop, n_new, time.time() - t0)
    return report
