"""UV rasterisation: which texel centres each triangle of a UV layout covers (the bake in mesh/texture.py and
the layer check of mesh/charts.py). Texture images are stored row 0 = top: texel (x, y) has its centre at
uv = ((x + 0.5) / S, 1 - (y + 0.5) / S)."""
from __future__ import annotations

import numpy as np


def texel_hits(tri: np.ndarray, size: int, tol: float = 1e-6, max_candidates: int = 1 << 22):
    """The texel centres inside each UV triangle, in chunks. tri [F, 3, 2] in texel-centre coordinates
    (x right, y down: texel (x, y) has its centre at (x, y)). The texel centres in each face's bounding box
    are tested with barycentrics (inside: all three >= -tol; a negative tol keeps only texels clear of the
    edges); degenerate faces cover nothing. Yields (face [K], flat texel index y * size + x [K], barycentrics
    [K, 3] float64), faces in order, each face's texels row by row, chunks of at most max_candidates
    bounding-box texels. The C++ kernel (mesh/csrc/uv_cpu.cpp) does the work when the extension is built,
    else the numpy reference below, with the same hits."""
    from ..render._ext import load_cpu_ext

    ext = load_cpu_ext()
    if ext is None:
        yield from _texel_hits_numpy(tri, size, tol, max_candidates)
        return
    import torch

    tri = np.ascontiguousarray(tri, np.float64)
    _, w, h = _bboxes(tri, size)
    for s, e in _chunks(w * h, max_candidates):
        f, pix, bary = ext.texel_hits(torch.from_numpy(tri[s:e]), size, tol)
        yield f.numpy() + s, pix.numpy(), bary.numpy()


def _bboxes(tri: np.ndarray, size: int):
    """Per face: the first texel centre of its bounding box lo [F, 2] and its width, height [F] (texels)."""
    lo = np.clip(np.ceil(tri.min(1) - 1e-3), 0, size).astype(np.int64)  # the texel centres in the bbox
    hi = np.clip(np.floor(tri.max(1) + 1e-3), -1, size - 1).astype(np.int64)
    w, h = np.maximum(hi - lo + 1, 0).T
    return lo, w, h


def _chunks(bbox_texels: np.ndarray, max_candidates: int):
    """Face ranges [s, e) whose bounding boxes (bbox_texels [F], texels per face) hold at most max_candidates
    texels together (a larger face alone)."""
    ends = np.cumsum(bbox_texels)
    s = 0
    while s < len(bbox_texels):
        before = int(ends[s - 1]) if s else 0
        e = max(s + 1, int(np.searchsorted(ends, before + max_candidates, side="right")))
        yield s, e
        s = e


def _texel_hits_numpy(tri: np.ndarray, size: int, tol: float = 1e-6, max_candidates: int = 1 << 22):
    """texel_hits in numpy (the reference for the C++ kernel; used when the extension cannot be built): each
    face's bounding-box texel centres enumerated, tested in chunks of at most max_candidates."""
    tri = np.asarray(tri, np.float64)
    lo, w, h = _bboxes(tri, size)
    a = tri[:, 0]
    v0, v1 = tri[:, 1] - a, tri[:, 2] - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-12
    inv = 1.0 / np.where(ok, den, 1.0)
    n = np.where(ok, w * h, 0)
    # per face: its first corner and the inverse of [v0 v1] (texel offset from the corner -> l1, l2),
    # gathered once per candidate
    coef = np.stack([a[:, 0], a[:, 1], v1[:, 1] * inv, -v1[:, 0] * inv, -v0[:, 1] * inv, v0[:, 0] * inv], 1)
    ends = np.cumsum(n)
    for s, e in _chunks(w * h, max_candidates):
        base = ends[s - 1] if s else 0
        f = np.repeat(np.arange(s, e), n[s:e])
        k = np.arange(len(f)) - np.repeat(ends[s:e] - n[s:e] - base, n[s:e])
        wf = w[f]
        dy = k // wf
        x, y = lo[f, 0] + (k - dy * wf), lo[f, 1] + dy
        c = coef[f]
        px, py = x - c[:, 0], y - c[:, 1]
        l1 = px * c[:, 2] + py * c[:, 3]
        l2 = px * c[:, 4] + py * c[:, 5]
        l0 = 1 - l1 - l2
        inside = (l0 >= -tol) & (l1 >= -tol) & (l2 >= -tol)
        yield f[inside], y[inside] * size + x[inside], np.stack([l0, l1, l2], -1)[inside]


def uv_to_texel(uv: np.ndarray, size: int) -> np.ndarray:
    """uv [..., 2] in [0, 1] (v up) -> texel-centre coordinates [..., 2] (x right, y down, float64)."""
    uv = uv.astype(np.float64)
    return np.stack([uv[..., 0] * size - 0.5, (1 - uv[..., 1]) * size - 0.5], -1)


def rasterize_uv(uv: np.ndarray, faces: np.ndarray, size: int, max_candidates: int = 1 << 22):
    """Which face covers each texel centre. uv [M, 2], faces [F, 3] -> (face [S, S] int64, -1 = none;
    bary [S, S, 3] float32), by texel_hits (a texel two faces cover goes to the later one)."""
    face = np.full(size * size, -1, np.int64)
    bary = np.zeros((size * size, 3), np.float32)
    for f, pix, b in texel_hits(uv_to_texel(uv[faces], size), size, max_candidates=max_candidates):
        face[pix] = f
        bary[pix] = b
    return face.reshape(size, size), bary.reshape(size, size, 3)
