"""Meshes from a trained run: for each object (and the background) render object-alone median depth, alpha
and RGB from the training views plus orbit views around its box, keep pixels with alpha > 0.5, fuse into a
TSDF over the box, marching cubes, clean, colour. Then decimate to a face budget, unwrap (xatlas) and bake an
albedo texture from the same renders. Returns meshes in the input's world frame (build_meshes); writing them
is export/meshes.py's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

from ..config import MeshConfig
from ..errors import SceneError
from ..geometry import orbit_viewmats, panorama_cameras, pinhole_K
from ..render.api import render, use_gsplat_for
from .charts import chart_count
from .simplify import decimate
from .texture import BakeViews, bake, textured_mesh, unwrap
from .tsdf import TSDFVolume, clean_mesh

FREE = 1e6  # depth written for pixels an object does not cover (free space all along the ray)


def orbit_cameras(lo: np.ndarray, hi: np.ndarray, up: np.ndarray, n: int, W: int, H: int, fovy_deg: float = 45.0):
    """n cameras on two rings (elevation 15 and 50 degrees, alternating) around the box [lo, hi] ([3] each),
    looking at its centre from 1.1x the distance at which its bounding sphere fills the view height:
    viewmats [n,4,4], Ks [n,3,3]."""
    dist = float(np.linalg.norm(hi - lo)) / 2 / math.sin(math.radians(fovy_deg) / 2) * 1.1
    vms = orbit_viewmats((lo + hi) / 2, [dist] * n, [2 * math.pi * i / n for i in range(n)],
                         [math.radians(15 if i % 2 == 0 else 50) for i in range(n)], up)
    return vms, pinhole_K(fovy_deg, W, H)[None].repeat(n, 1, 1)


def room_cameras(room: Dict, n: int, W: int, H: int):
    """Inward views of a completed room (train/room.py's box): from its centre at mid-height, n horizontal
    directions plus straight down and up, 90-degree vertical FoV, so every face is seen. -> viewmats [n+2,4,4]
    (internal frame), Ks [n+2,3,3]."""
    box = room["box"]
    o, ax, size = (np.asarray(box[k], dtype=np.float64) for k in ("origin", "axes", "size"))
    a, b, up = ax
    c = o + a * size[0] / 2 + b * size[1] / 2 + up * size[2] / 2
    return panorama_cameras(c, a, b, up, n, W, H)


@torch.no_grad()
def mesh_for(params, mask: torch.Tensor, scene, cfg: MeshConfig, resolution: int, is_object: bool = True,
             sh_degree: int = 0, keep_fraction: float = 0.5, keep_views: Optional[list] = None,
             extra_views=None, view_batch: Optional[int] = None):
    """TSDF mesh (internal frame) of the Gaussians selected by mask [N] bool, or None.
    keep_views: a list that receives the fused renders as (viewmat [4,4], K [3,3], rgb [H,W,3], depth [H,W]
    with 0 = not covered), for baking a texture from the same views.

    is_object: add orbit views around the box; with cfg.object_mode "closed" also carve free space
    through the silhouettes and close the surface (a watertight solid), with "open" fuse only what the
    Gaussians render; otherwise (background) training views only, open surface, plus extra_views (viewmats
    [V,4,4], Ks [V,3,3]: a completed room's inward views) when given.

    Device: params on CUDA with gsplat usable -> gsplat renders (median depth from cuda_ext's kernel) and the
    TSDF on the GPU, view_batch (default 8) views per render call; else our CPU rasterizer, one view per
    render call by default, and the C++ TSDF, 16 views per fusion call (each voxel visited once per call:
    ~2x faster than one view at a time, same sums). Marching cubes, cleaning and the silhouette fit run on
    the CPU."""
    if cfg.object_mode not in ("closed", "open"):
        raise SceneError(f"--mesh.object_mode {cfg.object_mode}: unknown; use closed or open")
    carve = is_object and cfg.object_mode == "closed"
    # same definitions on both devices: tests/test_mesh.py::test_mesh_for_on_cuda_matches_cpu
    dev = params["means"].device
    on_gpu = use_gsplat_for("auto", dev)
    if not on_gpu:
        dev = torch.device("cpu")
    sel = {k: v.detach()[mask.to(v.device)].to(dev) for k, v in params.items()}
    if sel["means"].shape[0] < 4:
        return None
    pts = sel["means"].cpu().numpy()
    op = torch.sigmoid(sel["opacities"]).cpu().numpy()
    pts_w = pts[op > 0.1] if (op > 0.1).sum() > 10 else pts
    lo, hi = np.percentile(pts_w, 1, axis=0), np.percentile(pts_w, 99, axis=0)
    pad = (hi - lo) * cfg.box_pad + 1e-3
    lo, hi = lo - pad, hi + pad
    voxel = float((hi - lo).max()) / resolution
    vms, Ks = scene.viewmats[scene.train_idx], scene.Ks[scene.train_idx]
    W, H = scene.width, scene.height
    vol = TSDFVolume(lo, hi, voxel, cfg.trunc_voxels, device=dev)
    groups = [(vms, Ks, W, H)]
    if is_object and cfg.orbit_views > 0:
        ov, oK = orbit_cameras(lo, hi, scene.up.numpy(), cfg.orbit_views, W, H)
        groups.append((ov, oK, W, H))
    if extra_views is not None:
        groups.append((extra_views[0], extra_views[1], W, H))
    sil = []  # silhouettes (alpha > threshold) of the fused views, for the iso-level of a closed object
    batch = view_batch or (8 if on_gpu else 1)  # views per render call
    pending: list = []  # CPU: renders fused 16 views per call (the C++ kernel visits each voxel once per call)

    def fuse(force: bool = False):
        if pending and (force or on_gpu or len(pending) >= 16):
            vol.integrate(*(torch.cat(x) for x in zip(*pending)))
            pending.clear()

    for g, (gv, gK, gw, gh) in enumerate(groups):
        gv, gK = torch.as_tensor(gv, dtype=torch.float32), torch.as_tensor(gK, dtype=torch.float32)
        for b in range(0, gv.shape[0], batch):
            vm, K = gv[b:b + batch], gK[b:b + batch]  # [V,4,4], [V,3,3]
            vm_d, K_d = vm.to(dev), K.to(dev)
            out = render(sel, vm_d, K_d, gw, gh, sh_degree=sh_degree, backend="auto" if on_gpu else "cpu",
                         median=True, depth=False, normals=False)
            ok = out.alpha[..., 0] > cfg.alpha_thresh  # [V,H,W]
            med = out.median_depth[..., 0]
            # an object rendered alone: where it does not cover the pixel, the whole ray is free space
            # (depth = FREE carves it); the background has no such silhouette, its empty pixels carry no data
            dep = torch.where(ok, med, torch.full_like(med, FREE if carve else 0.0))
            rgb = (out.rgb / out.alpha.clamp(min=1e-3)).clamp(0, 1)
            pending.append((dep, K_d, vm_d, rgb))
            fuse()
            ok, rgb = ok.cpu(), rgb.cpu()
            covered = torch.where(ok, med, torch.zeros_like(med)).cpu()  # median depth, 0 = not covered
            for j in range(vm.shape[0]):
                if carve and g == 0:  # the training views: where the photos constrained the silhouettes
                    sil.append((ok[j], K[j], vm[j]))
                if keep_views is not None:
                    keep_views.append((vm[j], K[j], rgb[j], covered[j]))
    fuse(force=True)
    level = 0.0
    if carve and cfg.fit_silhouettes:
        level, _ = vol.silhouette_level(torch.stack([x[0] for x in sil]), torch.stack([x[1] for x in sil]),
                                        torch.stack([x[2] for x in sil]))
    # the background (open, seen from inside) is extended one voxel behind what was seen: grazing views of
    # floors and walls observe no voxel behind them and left holes (real3: 0.86% -> 0.54% of the pixels)
    mesh = clean_mesh(vol.extract(closed=carve, level=level, extend=0 if is_object else 1),
                      keep_fraction=keep_fraction)
    if mesh is not None:  # how far the surface sits outside the rendered median depths (internal units)
        mesh.metadata.update(iso_level=level, surface_offset=level * vol.trunc, voxel=vol.voxel)
    return mesh


def to_world_mesh(mesh, world_from_internal: torch.Tensor):
    m = mesh.copy()
    m.apply_transform(world_from_internal.double().numpy())
    return m


@dataclass
class MeshResult:
    """One mesh of build_meshes, in the input's world frame. textured: the decimated mesh with UVs and its
    albedo material (cfg.texture), else None; stats: faces, decimation, watertightness, bbox, iso level,
    texture figures (the manifest's per-mesh entry)."""
    id: int  # object id; 0 the background
    name: str
    mesh: object  # trimesh.Trimesh with vertex colours (None: too few Gaussians for a surface)
    textured: Optional[object] = None
    texture_image: Optional[np.ndarray] = None  # [T,T,3] uint8 albedo of `textured`
    stats: Dict = field(default_factory=dict)
    seconds: float = 0.0  # meshing time of this object


def build_meshes(params, scene, cfg: Optional[MeshConfig] = None, objects: Optional[List[int]] = None,
                 progress: bool = False, room: Optional[Dict] = None, room_views: int = 8) -> List[MeshResult]:
    """Per object (ids in `objects`, None: all objects and the background): TSDF -> decimation to the face
    budget -> (cfg.texture) xatlas unwrap + albedo baked from the same renders, in the world frame. room: a
    completion report with a box (train/room.py): the background is also fused from room_views + 2 inward
    views, so the completed room is meshed all around. Writes nothing (export/meshes.py writes them)."""
    from ..progress import track

    cfg = cfg or MeshConfig()
    labels = params["labels"].detach().cpu()
    out: List[MeshResult] = []
    todo = [(o.id, o.name) for o in scene.objects if objects is None or o.id in objects]
    if objects is None:
        todo.append((0, "background"))
    for oid, name in track(todo, "meshes", enabled=progress):
        t0 = time.time()
        views: list = []
        if oid == 0:
            inward = (room_cameras(room, room_views, scene.width, scene.height)
                      if room and "box" in room and room.get("added", 0) > 0 else None)
            m = mesh_for(params, labels == 0, scene, cfg, cfg.background_resolution, is_object=False,
                         keep_fraction=0.05, keep_views=views, extra_views=inward)
        else:
            m = mesh_for(params, labels == oid, scene, cfg, cfg.resolution, keep_views=views)
        if m is None:
            out.append(MeshResult(oid, name, None))
            continue
        full_faces, meta = int(len(m.faces)), dict(m.metadata)
        m = decimate(m, cfg.background_max_faces if oid == 0 else cfg.max_faces)
        mw = to_world_mesh(m, scene.world_from_internal)
        r = MeshResult(oid, name, mw, stats={
            "faces": int(len(mw.faces)), "faces_before_decimation": full_faces, "watertight": bool(mw.is_watertight),
            "boundary_edge_fraction": boundary_edge_fraction(mw), "bbox": mw.bounds.tolist(),
            "iso_level": meta.get("iso_level", 0.0)})
        if cfg.texture:
            size = cfg.background_texture_size if oid == 0 else cfg.texture_size
            tm, tex = _textured(params, labels == oid, m, views, size, meta, cfg)
            r.textured, r.texture_image = to_world_mesh(tm, scene.world_from_internal), tex["image"]
            r.stats["texture"] = {k: v for k, v in tex.items() if k != "image"}
        r.seconds = round(time.time() - t0, 2)
        out.append(r)
    return out


def _textured(params, mask, mesh, views, size: int, meta: Dict, cfg: MeshConfig):
    """Unwrap `mesh` (internal frame) and bake its albedo from `views` (mesh_for's renders). Returns the
    textured trimesh and {image, size, texels, seen_fraction, charts, unwrap_s, bake_s}."""
    from ..render.sh import sh_to_rgb

    t0 = time.time()
    vmap, f_uv, uv = unwrap(mesh.vertices, mesh.faces, size, cfg.unwrap_iterations, cfg.unwrap)
    t1 = time.time()
    verts = np.asarray(mesh.vertices)[vmap]
    bv = BakeViews(torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views]),
                   torch.stack([v[2] for v in views]), torch.stack([v[3] for v in views]))
    g = {k: v.detach().cpu()[mask] for k, v in params.items() if k in ("means", "opacities", "sh0")}
    keep = torch.sigmoid(g["opacities"]) > 0.1
    pts, cols = g["means"][keep].numpy(), sh_to_rgb(g["sh0"][keep][:, 0]).clamp(0, 1).numpy()
    diag = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
    # the rendered median depths sit surface_offset behind the mesh (the fitted iso-level), plus TSDF noise
    tol = 0.02 * diag + meta.get("surface_offset", 0.0) + 2 * meta.get("voxel", 0.0)
    img, stats = bake(verts, f_uv, uv, size, bv, pts, cols, depth_tol=tol)
    tm = textured_mesh(verts, f_uv, uv, img)
    return tm, {"image": img, "size": size, **stats, "charts": chart_count(f_uv), "unwrap_s": round(t1 - t0, 2),
                "bake_s": round(time.time() - t1, 2)}


def boundary_edge_fraction(mesh) -> float:
    """Fraction of edges used by only one face (0 for a watertight mesh): how 'nearly' watertight it is."""
    import trimesh

    e = mesh.edges_sorted
    if len(e) == 0:
        return 0.0
    groups = trimesh.grouping.group_rows(e, require_count=1)
    return float(len(groups)) / float(len(e) / 2)
