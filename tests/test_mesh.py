"""TSDF fusion: true depth maps of real meshes reproduce them; meshes from a trained run."""
import math

import numpy as np
import pytest
import torch

from conftest import DEMO, shared


def _chamfer(a, b, n=30000):
    from scipy.spatial import cKDTree

    pa, pb = a.sample(n), b.sample(n)
    return 0.5 * (cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean())


def _depth_maps(mesh, n_views=30, size=160):
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    from gs_recon.cameras import look_at_c2w

    rmi = RayMeshIntersector(mesh)
    c = mesh.bounds.mean(0)
    r = float(np.linalg.norm(mesh.extents))
    f = size * 1.1
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    dc = np.stack([(xs - size / 2) / f, (ys - size / 2) / f, np.ones_like(xs)], -1).reshape(-1, 3)
    deps, vms = [], []
    for i in range(n_views):
        az, el = 2 * math.pi * i / n_views, math.radians([-35, 5, 40][i % 3])
        cam = c + 1.4 * r * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        c2w = look_at_c2w(cam, c)
        d = dc @ c2w[:3, :3].T
        _, ray, loc = rmi.intersects_id(np.broadcast_to(cam, d.shape), d / np.linalg.norm(d, axis=1, keepdims=True),
                                        multiple_hits=False, return_locations=True)
        dep = np.zeros(size * size, np.float32)
        dep[ray] = ((loc - cam) @ c2w[:3, :3])[:, 2]
        deps.append(dep.reshape(size, size))
        vms.append(np.linalg.inv(c2w))
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]).float()
    return torch.tensor(np.stack(deps)), K[None].repeat(n_views, 1, 1), torch.tensor(np.stack(vms)).float()


@pytest.mark.parametrize("name", ["stanford-bunny.obj", "spot/spot_triangulated.obj", "ycb_banana/textured.obj"])
def test_tsdf_of_true_depth_reproduces_mesh(name):
    """Acceptance (mesh issue) 1: Chamfer-L1 below 1% of the bounding-box diagonal."""
    import trimesh

    from gs_recon.mesh import fuse_depth_maps

    root = shared("meshes")
    p = root / name
    if not p.exists():
        cands = sorted((root / name.split("/")[0]).glob("*.obj")) if "/" in name else []
        if not cands:
            pytest.skip(f"{p} absent")
        p = cands[0]
    gt = trimesh.load(p, force="mesh")
    deps, Ks, vms = _depth_maps(gt)
    diag = float(np.linalg.norm(gt.extents))
    lo, hi = gt.bounds[0] - 0.05 * diag, gt.bounds[1] + 0.05 * diag
    rec = fuse_depth_maps(deps, Ks, vms, lo, hi, voxel=diag / 160)
    assert rec is not None and len(rec.faces) > 1000
    ch = _chamfer(rec, gt)
    assert ch < 0.01 * diag, (name, ch / diag)


def test_tsdf_torch_path_matches_cpp():
    """The C++ integrator and the chunked torch loop compute the same volume."""
    import os

    from gs_recon.mesh.tsdf import TSDFVolume

    g = torch.Generator().manual_seed(0)
    deps = 2.0 + 0.3 * torch.rand(3, 20, 24, generator=g)
    K = torch.tensor([[20.0, 0, 12], [0, 20.0, 10], [0, 0, 1]])[None].repeat(3, 1, 1)
    vms = torch.eye(4)[None].repeat(3, 1, 1)
    vms[:, 2, 3] = 2.0
    vms[1, 0, 3] = 0.1
    cols = torch.rand(3, 20, 24, 3, generator=g)
    a = TSDFVolume([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5], 0.05)
    a.integrate(deps, K, vms, cols)
    os.environ["GS_RECON_NO_CPP"] = "1"
    from gs_recon.render._ext import load_cpu_ext

    load_cpu_ext.cache_clear()
    try:
        b = TSDFVolume([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5], 0.05)
        b.integrate(deps, K, vms, cols)
    finally:
        del os.environ["GS_RECON_NO_CPP"]
        load_cpu_ext.cache_clear()
    assert a.weight.sum() > 100
    assert torch.allclose(a.weight, b.weight) and torch.allclose(a.tsdf, b.tsdf, atol=1e-5)
    assert torch.allclose(a.color, b.color, atol=1e-5)


@pytest.mark.slow
def test_meshes_from_trained_run(tmp_path):
    """Acceptance (mesh issue) 2 with the demo's tiny_cpu schedule (700 steps; at 300 steps the cylinder's
    mesh is not yet reliable): object meshes overlap their true boxes with IoU >= 0.5, scene.glb has one
    node per object named after it."""
    import trimesh

    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.mesh.extract import MeshConfig, extract_meshes
    from gs_recon.train.recon import Trainer

    cfg = load_config("configs/tiny_cpu.yaml")
    scene = load_scene(DEMO)
    t = Trainer(scene, cfg)
    t.fit(progress=False)
    entries = extract_meshes(t.params, scene, tmp_path, MeshConfig(resolution=64, background_resolution=64,
                                                                   orbit_views=12))
    for e in entries:
        if e["id"] <= 0:
            continue
        m = trimesh.load(tmp_path / e["mesh"][0], force="mesh")
        gt = trimesh.load(next((DEMO / "gt" / "objects").glob(f"{e['id']}_*.ply")), force="mesh")
        lo, hi = np.maximum(m.bounds[0], gt.bounds[0]), np.minimum(m.bounds[1], gt.bounds[1])
        inter = np.prod(np.clip(hi - lo, 0, None))
        union = np.prod(m.extents) + np.prod(gt.extents) - inter
        assert inter / union >= 0.5, (e["name"], inter / union)
    sc = trimesh.load(tmp_path / "meshes" / "scene.glb")
    names = set(sc.graph.nodes_geometry)
    assert {"box", "ball", "cylinder", "background"} <= names
