"""Axis-projection UV charts: a fast alternative to xatlas's unwrap (MeshConfig.unwrap "axis").

Each face goes to the one of the six directions +-x, +-y, +-z that its normal, averaged over its
neighbourhood (a few edges around), points along most; the connected groups of faces with one direction
become charts, and each chart is projected orthographically onto the plane across its direction (so a face
facing its direction keeps its orientation, and a face is stretched by at most 1 / cos of its angle to it,
sqrt(3) for the dominant axis of its own normal). The averaging makes the charts follow the object's shape
rather than the noise of a decimated TSDF mesh, whose small folds (faces turned away from their neighbours)
stay in their neighbours' chart, sharing texels with surface a fraction of a percent away. Where two layers
of one chart farther apart than `layer_tol` of the diagonal would share a texel (a surface that wraps over
itself), the faces in the way leave the chart and form their own, until no such texel is left (at most
max_rounds times). The charts are packed into the square texture in shelves, at the one texel density that
fills it best.

On the demo's and the real3 scene's 20,000-face TSDF meshes: 180-600 charts instead of xatlas's 970-3,000,
3.7-6.7x less time, the same textured-mesh PSNR within 0.02 dB, and 0.90-1.23x xatlas's texel density at
the same texture size (docs/BENCHMARKS.md "UV charts"). What it gives up: faces at a chart's border or in a
fold are stretched more than sqrt(3), and a small fold shares texels with the surface it folds over.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .uv import texel_hits, uv_to_texel

# the six directions; the chart plane's axes (u, v) with u x v = the direction, so a face that faces the
# direction is counter-clockwise in (u, v) as it is seen from outside
_DIRS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
_UV_AXES = ((1, 2), (2, 1), (2, 0), (0, 2), (0, 1), (1, 0))  # (u axis, v axis) per direction


def _face_adjacency(faces: np.ndarray) -> np.ndarray:
    """Pairs of faces [E, 2] that share an edge (trimesh's face adjacency)."""
    import trimesh

    return trimesh.graph.face_adjacency(faces=faces)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component id [n] of n nodes joined by pairs [E, 2] (trimesh's labelling, scipy underneath)."""
    import trimesh

    return trimesh.graph.connected_component_labels(pairs, node_count=n)


def _directions(face_normals: np.ndarray, adj: np.ndarray, rounds: int = 6) -> np.ndarray:
    """Direction index [F] per face: the dominant axis of its normal averaged (area weighted: face_normals
    [F, 3] unnormalised, length 2 x area) with its neighbours' out to `rounds` edges, so the charts follow
    the surface's shape rather than the noise of a decimated TSDF mesh. A small fold (a face turned away
    from its neighbours) stays in their chart; _stacked_faces takes it out if it is deep enough to matter."""
    sm = face_normals.copy()
    for _ in range(rounds):
        acc = sm.copy()
        np.add.at(acc, adj[:, 0], sm[adj[:, 1]])
        np.add.at(acc, adj[:, 1], sm[adj[:, 0]])
        sm = acc
    return (sm @ _DIRS.T).argmax(1)


def _project(vertices: np.ndarray, faces: np.ndarray, chart: np.ndarray, direction: np.ndarray):
    """Per-chart orthographic projection. Returns vmap [M] (the chart vertices' source vertex), faces [F, 3]
    into them, and uv [M, 2] in the chart's plane (world units)."""
    N = len(vertices)
    corner = chart[:, None].astype(np.int64) * N + faces  # one vertex per (chart, source vertex)
    keys, inv = np.unique(corner.ravel(), return_inverse=True)
    vmap, vchart = keys % N, keys // N
    d = direction[vchart]
    axes = np.array(_UV_AXES)[d]  # [M, 2]
    uv = np.take_along_axis(vertices[vmap], axes, axis=1)
    return vmap, inv.reshape(-1, 3), uv


def _stacked_faces(uv: np.ndarray, faces: np.ndarray, height: np.ndarray, size: int, tol: float,
                   which: Optional[np.ndarray] = None) -> np.ndarray:
    """Faces [K] to take out of their charts: where faces of one chart cover the same texel centre of the
    packed atlas (uv [M, 2] in [0, 1]) at heights along the chart's direction (height [M], per UV vertex)
    more than `tol` below the highest one there (the layer seen first looking down the direction), i.e. two
    layers of the surface would share the texel. The highest layer keeps it, so what leaves is whole layers,
    not a scatter of faces. Faces within tol of it (a small fold) stay: they show the same colour. Charts
    are packed apart, so the faces on one texel are one chart's, and `which` (face indices [W], whole
    charts) checks only those charts."""
    if which is not None:
        faces = faces[which]
    pix_l, f_l, h_l = [], [], []
    for f, pix, bary in texel_hits(uv_to_texel(uv[faces], size), size, tol=-1e-3):  # shared edges: no
        pix_l.append(pix)
        f_l.append(f if which is None else which[f])
        h_l.append((height[faces[f]] * bary).sum(1))
    if sum(len(p) for p in pix_l) == 0:
        return np.zeros(0, np.int64)
    pix, f, h = (np.concatenate(x) for x in (pix_l, f_l, h_l))
    order = np.argsort(pix, kind="stable")
    pix, f, h = pix[order], f[order], h[order]
    first = np.r_[True, pix[1:] != pix[:-1]]  # each texel's first hit
    top = np.maximum.reduceat(h, np.flatnonzero(first))[np.cumsum(first) - 1]
    return np.unique(f[h < top - tol])


def _split(chart: np.ndarray, out: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """Faces `out` [K] leave their charts; the pieces are the connected parts of what stays and of what
    left, per chart. Returns new chart ids [F] (0..C-1)."""
    key = chart.astype(np.int64) * 2
    key[out] += 1
    return _components(len(chart), adj[key[adj[:, 0]] == key[adj[:, 1]]])


def _shelf_pack(wh: np.ndarray, width: int) -> Tuple[np.ndarray, int]:
    """Rectangles wh [K, 2] (texels, already sorted by decreasing height) in shelves of `width`:
    lower-left corners [K, 2] and the total height (a rectangle wider than `width`: none, height inf)."""
    xy = np.zeros((len(wh), 2), np.int64)
    if len(wh) and wh[:, 0].max() > width:
        return xy, np.inf
    x = y = shelf = 0
    for i, (w, h) in enumerate(wh):
        if x + w > width:
            x, y, shelf = 0, y + shelf, 0
        xy[i] = (x, y)
        x += w
        shelf = max(shelf, h)
    return xy, y + shelf


def _pack(uv: np.ndarray, faces: np.ndarray, chart: np.ndarray, size: int, gap: int):
    """Scale every chart by one texel density and pack them into [0, 1]^2 (a size x size texture), `gap`
    texels apart (half of it on each side of a chart). Charts are turned 90 degrees to lie flat (wider than
    tall). Returns uv [M, 2] in [0, 1]."""
    K = int(chart.max()) + 1
    vchart = np.zeros(len(uv), np.int64)
    vchart[faces.ravel()] = np.repeat(chart, 3)
    lo = np.full((K, 2), np.inf)
    hi = np.full((K, 2), -np.inf)
    np.minimum.at(lo, vchart, uv)
    np.maximum.at(hi, vchart, uv)
    ext = hi - lo
    turn = ext[:, 1] > ext[:, 0]
    local = uv - lo[vchart]
    t = turn[vchart]  # (u, v) -> (v_extent - v, u): a rotation, so orientation is kept
    local[t] = np.stack([ext[vchart[t], 1] - local[t, 1], local[t, 0]], 1)
    ext[turn] = ext[turn][:, ::-1]
    order = np.argsort(-ext[:, 1], kind="stable")

    def fit(density: float):
        wh = np.ceil(ext[order] * density).astype(np.int64) + 1 + gap
        xy, height = _shelf_pack(wh, size)
        return xy, height

    area = float((ext[:, 0] * ext[:, 1]).sum()) + 1e-12
    lo_d, hi_d = 0.0, 2.0 * size / np.sqrt(area)  # the density that would fill the square with no waste, x2
    for _ in range(64):  # flat charts (zero area) make the bound too low; all of them points: any density
        if fit(hi_d)[1] > size:
            break
        lo_d, hi_d = hi_d, hi_d * 2
    for _ in range(40):
        mid = 0.5 * (lo_d + hi_d)
        lo_d, hi_d = (mid, hi_d) if fit(mid)[1] <= size else (lo_d, mid)
    density = lo_d
    xy, _ = fit(density)
    corner = np.zeros((K, 2))
    corner[order] = xy + gap / 2.0 + 0.5
    return (local * density + corner[vchart]) / size


def axis_unwrap(vertices: np.ndarray, faces: np.ndarray, resolution: int = 1024, gap: int = 2,
                max_rounds: int = 8, smooth: int = 6, layer_tol: float = 0.02):
    """Axis-projection charts, packed (see the module docstring). vertices [N, 3], faces [F, 3] ->
    (vmapping [M] index into vertices, faces [F, 3] into the M new vertices, uv [M, 2] in [0, 1]), as
    texture.unwrap returns them; vertices on chart borders are duplicated. smooth: the normal-averaging
    rounds (edges); layer_tol: how far apart (a fraction of the bounding-box diagonal) two layers may be and
    still share texels; max_rounds: how often layers in the way may leave their charts."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return np.zeros(0, np.int64), f.reshape(0, 3), np.zeros((0, 2), np.float32)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    adj = _face_adjacency(f)
    d = _directions(fn, adj, smooth)
    tol = layer_tol * float(np.linalg.norm(v.max(0) - v.min(0)))
    chart = _components(len(f), adj[d[adj[:, 0]] == d[adj[:, 1]]])
    which = None  # the charts to check: all, then the pieces of those just cut, then all once more
    for i in range(max_rounds + 1):
        direction = np.zeros(int(chart.max()) + 1, np.int64)
        direction[chart] = d
        vmap, f_uv, uv = _project(v, f, chart, direction)
        uv = _pack(uv, f_uv, chart, resolution, gap)
        if i == max_rounds:
            break
        vdir = np.zeros(len(vmap), np.int64)
        vdir[f_uv.ravel()] = np.repeat(d, 3)
        height = (v[vmap] * _DIRS[vdir]).sum(1)
        out = _stacked_faces(uv, f_uv, height, resolution, tol, which)
        if len(out) == 0 and which is not None:  # the cut charts are clean: the whole atlas, as packed now
            which = None
            out = _stacked_faces(uv, f_uv, height, resolution, tol)
        if len(out) == 0:
            break
        which = np.flatnonzero(np.isin(chart, chart[out]))
        chart = _split(chart, out, adj)
    return vmap.astype(np.int64), f_uv.astype(np.int64), uv.astype(np.float32)


def chart_count(faces_uv: np.ndarray) -> int:
    """How many charts (connected groups of faces in UV space) a parameterisation has. faces_uv [F, 3]."""
    if len(faces_uv) == 0:
        return 0
    return int(_components(len(faces_uv), _face_adjacency(faces_uv)).max()) + 1


__all__: List[str] = ["axis_unwrap", "chart_count"]
