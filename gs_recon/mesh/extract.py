"""Meshes from a trained run: for each object (and the background, and the whole scene) render
object-alone median depth, alpha and RGB from the training views plus orbit views around its box,
keep pixels with alpha > 0.5, fuse into a TSDF over the box, marching cubes, clean, colour.
Writes meshes/objects/<id>_<name>.ply/.obj, meshes/background.ply, meshes/scene.ply and
meshes/scene.glb (one named node per object), all in the input's world frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..cameras import look_at
from ..io_utils import atomic_path
from ..render.api import render
from .tsdf import TSDFVolume, clean_mesh


@dataclass
class MeshConfig:
    resolution: int = 128  # voxels along the longest side of each object's box
    background_resolution: int = 192
    trunc_voxels: float = 5.0  # 2DGS default: truncation ~5 voxels
    orbit_views: int = 24  # extra views around each object's box
    alpha_thresh: float = 0.5
    box_pad: float = 0.1  # box padding, fraction of its size


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
def mesh_for(params, mask: torch.Tensor, scene, cfg: MeshConfig, resolution: int, orbit: bool = True,
             sh_degree: int = 0, keep_fraction: float = 0.5):
    """TSDF mesh (internal frame) of the Gaussians selected by mask [N] bool, or None."""
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
    if orbit and cfg.orbit_views > 0:
        ov, oK = orbit_cameras(lo, hi, scene.up.numpy(), cfg.orbit_views, W, H)
        groups.append((ov, oK, W, H))
    for gv, gK, gw, gh in groups:
        for i in range(gv.shape[0]):
            out = render(sel, gv[[i]], gK[[i]], gw, gh, sh_degree=sh_degree, backend="cpu")
            ok = out.alpha[0, ..., 0] > cfg.alpha_thresh
            dep = torch.where(ok, out.median_depth[0, ..., 0], torch.zeros_like(ok, dtype=torch.float32))
            rgb = (out.rgb[0] / out.alpha[0].clamp(min=1e-3)).clamp(0, 1)
            vol.integrate(dep, gK[i], gv[i], rgb)
    return clean_mesh(vol.extract(), keep_fraction=keep_fraction)


def to_world_mesh(mesh, world_from_internal: torch.Tensor):
    m = mesh.copy()
    m.apply_transform(world_from_internal.double().numpy())
    return m


def _export(mesh, path: Path) -> None:
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix[1:])


def extract_meshes(params, scene, out_dir: Path, cfg: Optional[MeshConfig] = None,
                   objects: Optional[List[int]] = None) -> List[Dict]:
    """Write per-object, background and scene meshes plus scene.glb. Returns manifest entries."""
    import trimesh

    from ..export.scene_export import object_file_stem

    cfg = cfg or MeshConfig()
    out_dir = Path(out_dir)
    labels = params["labels"].detach().cpu()
    entries, nodes = [], {}
    todo = [(o.id, o.name) for o in scene.objects if objects is None or o.id in objects]
    for oid, name in todo:
        m = mesh_for(params, labels == oid, scene, cfg, cfg.resolution)
        if m is None:
            entries.append({"id": oid, "name": name, "mesh": None})
            continue
        mw = to_world_mesh(m, scene.world_from_internal)
        stem = object_file_stem(oid, name)
        _export(mw, out_dir / "meshes" / "objects" / f"{stem}.ply")
        _export(mw, out_dir / "meshes" / "objects" / f"{stem}.obj")
        nodes[name] = mw
        entries.append({"id": oid, "name": name, "mesh": [f"meshes/objects/{stem}.ply", f"meshes/objects/{stem}.obj"],
                        "faces": int(len(mw.faces)), "watertight": bool(mw.is_watertight),
                        "bbox": mw.bounds.tolist()})
    if objects is None:
        bg = mesh_for(params, labels == 0, scene, cfg, cfg.background_resolution, orbit=False, keep_fraction=0.05)
        if bg is not None:
            bw = to_world_mesh(bg, scene.world_from_internal)
            _export(bw, out_dir / "meshes" / "background.ply")
            nodes["background"] = bw
            entries.append({"id": 0, "name": "background", "mesh": ["meshes/background.ply"], "faces": int(len(bw.faces))})
        if nodes:
            _export(trimesh.util.concatenate(list(nodes.values())), out_dir / "meshes" / "scene.ply")
    if nodes:
        sc = trimesh.Scene()
        for name, m in nodes.items():
            sc.add_geometry(m, node_name=name, geom_name=name)
        with atomic_path(out_dir / "meshes" / "scene.glb") as tmp:
            tmp.write_bytes(sc.export(file_type="glb"))
    return entries
