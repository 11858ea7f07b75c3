"""Axis-projection UV charts (mesh/charts.py): the charts of a sphere, no flipped or out-of-range UVs, one
texel never shared by two layers of a surface, stretch bounded, and a real TSDF mesh's charts against xatlas's."""
from __future__ import annotations

import numpy as np
import pytest

from gs_recon.mesh.charts import axis_unwrap, chart_count
from gs_recon.mesh.texture import unwrap
from gs_recon.mesh.uv import texel_hits, uv_to_texel


def _signed_areas(uv, faces):
    e1, e2 = uv[faces[:, 1]] - uv[faces[:, 0]], uv[faces[:, 2]] - uv[faces[:, 0]]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def _layer_gaps(vertices, faces, vmap, f_uv, uv, size):
    """Per texel centre covered (clear of edges) by more than one face: the largest distance between the
    surface points that share it (world units)."""
    pts, pix = [], []
    src = np.asarray(vertices, np.float64)[vmap]
    for f, p, bary in texel_hits(uv_to_texel(uv[f_uv], size), size, tol=-1e-3):
        pts.append((src[f_uv[f]] * bary[..., None]).sum(1))
        pix.append(p)
    pts, pix = np.concatenate(pts), np.concatenate(pix)
    order = np.argsort(pix, kind="stable")
    pts, pix = pts[order], pix[order]
    starts = np.flatnonzero(np.r_[True, pix[1:] != pix[:-1]])
    counts = np.diff(np.r_[starts, len(pix)])
    gaps = []
    for s, c in zip(starts[counts > 1], counts[counts > 1]):
        q = pts[s:s + c]
        gaps.append(np.linalg.norm(q[:, None] - q[None], axis=-1).max())
    return np.array(gaps)


def _check_layout(mesh, vmap, f_uv, uv):
    """What every parameterisation must give: the faces unchanged through vmap, UVs inside [0, 1]."""
    assert np.array_equal(vmap[f_uv], np.asarray(mesh.faces))
    assert len(vmap) == len(uv) and uv.min() >= 0 and uv.max() <= 1


def test_sphere_gets_six_charts_unflipped_with_bounded_stretch():
    """A clean sphere: one chart per axis direction, every face counter-clockwise in UV as it is seen from
    outside (no flips), texel density within 1 / cos(54.7 deg) = sqrt(3) across faces, no texel shared."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=4)
    vmap, f_uv, uv = axis_unwrap(m.vertices, m.faces, 512)
    _check_layout(m, vmap, f_uv, uv)
    assert chart_count(f_uv) == 6
    a_uv = _signed_areas(uv.astype(np.float64), f_uv)
    assert (a_uv > 0).all()
    ratio = a_uv / m.area_faces
    assert ratio.max() / ratio.min() < np.sqrt(3) * 1.05
    assert len(_layer_gaps(m.vertices, m.faces, vmap, f_uv, uv, 512)) == 0
    # the charts fill the square sensibly (six discs' bounding boxes in shelves)
    assert a_uv.sum() > 0.3


def _spiral_ramp(turns=2.0, n_theta=160, n_r=6):
    """An open ramp winding `turns` times around the z axis (rising 0.15 per turn): every face looks up
    (+z), but the turns lie above one another, so one projection along z overlaps itself."""
    import trimesh

    th = np.linspace(0, 2 * np.pi * turns, n_theta)
    r = np.linspace(0.5, 1.0, n_r)
    T, R = np.meshgrid(th, r, indexing="ij")
    v = np.stack([R * np.cos(T), R * np.sin(T), 0.15 * T / (2 * np.pi)], -1).reshape(-1, 3)
    idx = np.arange(n_theta * n_r).reshape(n_theta, n_r)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    m = trimesh.Trimesh(v, faces, process=False)
    if m.face_normals[:, 2].mean() < 0:
        m.invert()
    return m


def test_a_surface_over_itself_is_cut_until_no_texel_is_shared():
    """The spiral ramp: projected whole, the upper turn covers the lower one (checked: max_rounds=0 leaves
    them sharing texels 0.15 apart); the unwrap cuts the chart until no texel shows two layers more than
    layer_tol x the diagonal apart."""
    m = _spiral_ramp()
    diag = float(np.linalg.norm(m.extents))
    one = axis_unwrap(m.vertices, m.faces, 256, max_rounds=0)
    assert chart_count(one[1]) == 1 and _layer_gaps(m.vertices, m.faces, *one, 256).max() > 0.1
    vmap, f_uv, uv = axis_unwrap(m.vertices, m.faces, 256)
    _check_layout(m, vmap, f_uv, uv)
    assert 2 <= chart_count(f_uv) <= 8
    gaps = _layer_gaps(m.vertices, m.faces, vmap, f_uv, uv, 256)
    assert len(gaps) == 0 or gaps.max() <= 0.02 * diag
    assert (_signed_areas(uv.astype(np.float64), f_uv) > 0).all()


def test_unknown_method_is_refused():
    import trimesh

    m = trimesh.creation.box()
    with pytest.raises(ValueError, match="xatlas or axis"):
        unwrap(m.vertices, m.faces, 64, method="lscm")


def test_real_tsdf_mesh_fewer_charts_than_xatlas_and_no_distant_layers_share_a_texel(bunny_tsdf):
    """The bunny as TSDF fusion + decimation leave it (noisy normals, small folds): the axis charts are a
    fraction of xatlas's, inside [0, 1], and texels shared by two faces (small folds kept in a chart) hold
    points at most layer_tol (2%) of the diagonal apart."""
    import time

    from gs_recon.mesh.simplify import decimate

    m = decimate(bunny_tsdf, 20000)
    diag = float(np.linalg.norm(m.extents))
    t0 = time.perf_counter()
    vmap, f_uv, uv = axis_unwrap(m.vertices, m.faces, 1024)
    t_axis = time.perf_counter() - t0
    _check_layout(m, vmap, f_uv, uv)
    t0 = time.perf_counter()
    xa = unwrap(m.vertices, m.faces, 1024, method="xatlas")
    t_xatlas = time.perf_counter() - t0
    n_axis, n_xatlas = chart_count(f_uv), chart_count(xa[1])
    gaps = _layer_gaps(m.vertices, m.faces, vmap, f_uv, uv, 1024)
    print(f"bunny {len(m.faces)} faces: axis {n_axis} charts in {t_axis:.2f} s, xatlas {n_xatlas} in {t_xatlas:.2f} s; "
          f"shared texels {len(gaps)}, largest gap {gaps.max() / diag if len(gaps) else 0:.4f} of the diagonal")
    assert n_axis < n_xatlas / 2
    assert len(gaps) == 0 or gaps.max() <= 0.021 * diag


def test_degenerate_input_gives_valid_uvs():
    """No faces; one face collapsed to a point; a sliver along a line: layouts of the right shapes in [0, 1]."""
    v, f = axis_unwrap(np.zeros((0, 3)), np.zeros((0, 3), np.int64), 64)[:2]
    assert v.shape == (0,) and f.shape == (0, 3)
    for verts in (np.zeros((3, 3)), np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]])):
        vmap, f_uv, uv = axis_unwrap(verts, np.array([[0, 1, 2]]), 64)
        assert np.array_equal(vmap[f_uv], [[0, 1, 2]]) and np.isfinite(uv).all() and 0 <= uv.min() <= uv.max() <= 1
