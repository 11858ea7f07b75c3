"""Meshes from a trained run: for each object (and the background, and the whole scene) render
object-alone median depth, alpha and RGB from the training views plus orbit views around its box,
keep pixels with alpha > 0.5, fuse into a TSDF over the box, marching cubes, clean, colour.
Writes meshes/objects/<id>_<name>.ply/.obj, meshes/background.ply, meshes/scene.ply and
meshes/scene.glb (one named node per object), all in the input's world frame.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..cameras import look_at
from ..config import MeshConfig
from ..data.errors import SceneError
from ..io_utils import atomic_path
from ..render.api import render
from .tsdf import TSDFVolume, clean_mesh

FREE = 1e6  # depth written for pixels an object does not cover (free space all along the ray)


def orbit_cameras(lo: np.ndarray, hi: np.ndarray, up: np.ndarray, n: int, W: int, H: int, fovy_deg: float = 45.0):
    """n cameras on two rings around the box, looking at its centre: viewmats [n,4,4], Ks [n,3,3]."""
    c = (lo + hi) / 2
    r = float(np.linalg.norm(hi - lo)) / 2
    f = 0.5 * H / math.tan(math.radians(fovy_deg) / 2)
    dist = r / math.sin(math.radians(fovy_deg) / 2) * 1.1
    up = up / max(np.linalg.norm(up), 1e-8)
    a = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    vms = []
    for i in range(n):
        el = math.radians(15 if i % 2 == 0 else 50)
        az = 2 * math.pi * i / n
        d = math.cos(el) * (math.cos(az) * a + math.sin(az) * b) + math.sin(el) * up
        vms.append(look_at(tuple(c + dist * d), tuple(c), up=tuple(up)))
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]])
    return torch.stack(vms), K[None].repeat(n, 1, 1)


@torch.no_grad()
def mesh_for(params, mask: torch.Tensor, scene, cfg: MeshConfig, resolution: int, is_object: bool = True,
             sh_degree: int = 0, keep_fraction: float = 0.5):
    """TSDF mesh (internal frame) of the Gaussians selected by mask [N] bool, or None.

    is_object: add orbit views around the box; with cfg.object_mode "closed" also carve free space
    through the silhouettes and close the surface (a watertight solid), with "open" fuse only what the
    Gaussians render; otherwise (background) training views only, open surface."""
    if cfg.object_mode not in ("closed", "open"):
        raise SceneError(f"--mesh.object_mode {cfg.object_mode}: unknown; use closed or open")
    carve = is_object and cfg.object_mode == "closed"
    sel = {k: v.detach().cpu()[mask] for k, v in params.items()}
    if sel["means"].shape[0] < 4:
        return None
    pts = sel["means"].numpy()
    op = torch.sigmoid(sel["opacities"]).numpy()
    pts_w = pts[op > 0.1] if (op > 0.1).sum() > 10 else pts
    lo, hi = np.percentile(pts_w, 1, axis=0), np.percentile(pts_w, 99, axis=0)
    pad = (hi - lo) * cfg.box_pad + 1e-3
    lo, hi = lo - pad, hi + pad
    voxel = float((hi - lo).max()) / resolution
    vms, Ks = scene.viewmats[scene.train_idx], scene.Ks[scene.train_idx]
    W, H = scene.width, scene.height
    vol = TSDFVolume(lo, hi, voxel, cfg.trunc_voxels)
    groups = [(vms, Ks, W, H)]
    if is_object and cfg.orbit_views > 0:
        ov, oK = orbit_cameras(lo, hi, scene.up.numpy(), cfg.orbit_views, W, H)
        groups.append((ov, oK, W, H))
    for gv, gK, gw, gh in groups:
        for i in range(gv.shape[0]):
            out = render(sel, gv[[i]], gK[[i]], gw, gh, sh_degree=sh_degree, backend="cpu")
            ok = out.alpha[0, ..., 0] > cfg.alpha_thresh
            # an object rendered alone: where it does not cover the pixel, the whole ray is free space
            # (depth = FREE carves it); the background has no such silhouette, its empty pixels carry no data
            empty = torch.full_like(ok, FREE if carve else 0.0, dtype=torch.float32)
            dep = torch.where(ok, out.median_depth[0, ..., 0], empty)
            rgb = (out.rgb[0] / out.alpha[0].clamp(min=1e-3)).clamp(0, 1)
            vol.integrate(dep, gK[i], gv[i], rgb)
    return clean_mesh(vol.extract(closed=carve), keep_fraction=keep_fraction)


def to_world_mesh(mesh, world_from_internal: torch.Tensor):
    m = mesh.copy()
    m.apply_transform(world_from_internal.double().numpy())
    return m


def _export(mesh, path: Path) -> None:
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix[1:])


def write_glb(nodes: Dict[str, object], path: Path) -> None:
    """A glTF binary scene with one node (and geometry) per entry, named after its key."""
    import trimesh

    sc = trimesh.Scene()
    for name, m in nodes.items():
        sc.add_geometry(m, node_name=name, geom_name=name)
    with atomic_path(path) as tmp:
        tmp.write_bytes(sc.export(file_type="glb"))


def extract_meshes(params, scene, out_dir: Path, cfg: Optional[MeshConfig] = None,
                   objects: Optional[List[int]] = None, progress: bool = False) -> List[Dict]:
    """Write per-object meshes (and, when `objects` is None, background, scene.ply) plus scene.glb.
    Returns manifest entries (paths relative to out_dir)."""
    import trimesh

    from ..export.scene_export import object_file_stem
    from ..progress import track

    cfg = cfg or MeshConfig()
    out_dir = Path(out_dir)
    labels = params["labels"].detach().cpu()
    entries, nodes = [], {}
    todo = [(o.id, o.name) for o in scene.objects if objects is None or o.id in objects]
    if objects is None:
        todo.append((0, "background"))
    for oid, name in track(todo, "meshes", enabled=progress):
        if oid == 0:
            m = mesh_for(params, labels == 0, scene, cfg, cfg.background_resolution, is_object=False, keep_fraction=0.05)
        else:
            m = mesh_for(params, labels == oid, scene, cfg, cfg.resolution)
        if m is None:
            entries.append({"id": oid, "name": name, "mesh": None})
            continue
        mw = to_world_mesh(m, scene.world_from_internal)
        if oid == 0:
            files = ["meshes/background.ply"]
        else:
            stem = object_file_stem(oid, name)
            files = [f"meshes/objects/{stem}.ply", f"meshes/objects/{stem}.obj"]
        for f in files:
            _export(mw, out_dir / f)
        nodes[name] = mw
        entries.append({"id": oid, "name": name, "mesh": files, "faces": int(len(mw.faces)),
                        "watertight": bool(mw.is_watertight), "boundary_edge_fraction": boundary_edge_fraction(mw),
                        "bbox": mw.bounds.tolist()})
    if objects is None and nodes:
        _export(trimesh.util.concatenate(list(nodes.values())), out_dir / "meshes" / "scene.ply")
        entries.append({"id": -1, "name": "scene", "mesh": ["meshes/scene.ply", "meshes/scene.glb"]})
    if nodes:
        write_glb(nodes, out_dir / "meshes" / "scene.glb")
    return entries


def boundary_edge_fraction(mesh) -> float:
    """Fraction of edges used by only one face (0 for a watertight mesh): how 'nearly' watertight it is."""
    import trimesh

    e = mesh.edges_sorted
    if len(e) == 0:
        return 0.0
    groups = trimesh.grouping.group_rows(e, require_count=1)
    return float(len(groups)) / float(len(e) / 2)
