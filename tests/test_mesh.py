"""TSDF fusion: true depth maps of real meshes reproduce them; meshes from a trained run."""

import math

import numpy as np
import pytest
import torch
from conftest import DEMO, shared


def _chamfer(a, b):
    from gs_recon.eval.mesh_metrics import mesh_metrics

    return mesh_metrics(a, b, n=30000)["chamfer_l1"]


@pytest.mark.parametrize("name", ["stanford-bunny.obj", "spot/spot_triangulated.obj", "ycb_banana/textured.obj"])
def test_tsdf_of_true_depth_reproduces_mesh(name):
    """Acceptance (mesh issue) 1: Chamfer-L1 below 1% of the bounding-box diagonal."""
    import trimesh

    from gs_recon.mesh import fuse_depth_maps
    from gs_recon.data.synthetic import depth_maps_around

    root = shared("meshes")
    p = root / name
    if not p.exists():
        cands = sorted((root / name.split("/")[0]).glob("*.obj")) if "/" in name else []
        if not cands:
            pytest.skip(f"shared test data {p} is absent")
        p = cands[0]
    gt = trimesh.load(p, force="mesh")
    deps, Ks, vms = depth_maps_around(gt)
    diag = float(np.linalg.norm(gt.extents))
    lo, hi = gt.bounds[0] - 0.05 * diag, gt.bounds[1] + 0.05 * diag
    rec = fuse_depth_maps(deps, Ks, vms, lo, hi, voxel=diag / 160)
    assert rec is not None and len(rec.faces) > 1000
    ch = _chamfer(rec, gt)
    # the issue asks < 1%. Measured: bunny 0.48%, spot 0.29%, banana 0.23% (Open3D's TSDF on the same
    # maps: 0.46/0.23/0.19%); with the marching-cubes mask one voxel off they were 0.64/0.54/0.43%
    assert ch < 0.005 * diag, (name, ch / diag)


def test_marching_cubes_skips_cubes_with_unobserved_corners():
    """A plane z = 2.5 observed everywhere except voxel (3,3,3): exactly the 4 cubes having that voxel as
    a corner lose their faces (scikit-image reads a cube's mask entry at its far corner)."""
    from gs_recon.mesh.tsdf import TSDFVolume

    vol = TSDFVolume([0, 0, 0], [8, 8, 8], 1.0)
    z = (torch.arange(8).float() + 0.5 - 3.0)  # voxel centres at k + 0.5 -> zero crossing at z = 3.0
    vol.tsdf_sum = z[None, None, :].expand(8, 8, 8).reshape(-1).clone()
    vol.weight = torch.ones(8 ** 3)
    vol.weight.view(8, 8, 8)[3, 3, 3] = 0
    m = vol.extract(extend=0)  # (extend=1 would fill such a voxel from its neighbours: see the grazing test)
    assert len(m.faces) == 2 * (7 * 7 - 4)
    c = m.triangles_center - 0.5  # back to voxel-index coordinates
    in_hole = (c[:, 0] > 2) & (c[:, 0] < 4) & (c[:, 1] > 2) & (c[:, 1] < 4)
    assert not in_hole.any()
    assert np.allclose(m.vertices[:, 2], 3.0, atol=1e-5)


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


def _sphere_object(n: int = 3000, views: int = 6, seed: int = 0):
    """Opaque flat Gaussians on a sphere (radius 0.3, label 1) and a scene-like namespace of `views` training
    cameras around it (64x48): what mesh_for reads."""
    from types import SimpleNamespace

    from gs_recon.geometry import orbit_viewmats, pinhole_K

    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    z = torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
    # quaternion turning z onto the normal d: the Gaussians' thin axis (z) is the surface normal
    q = torch.nn.functional.normalize(torch.cat([1 + (d * z).sum(-1, keepdim=True), torch.cross(z, d, dim=-1)], -1),
                                      dim=-1)
    params = {"means": 0.3 * d, "quats": q, "scales": torch.log(torch.tensor([0.03, 0.03, 0.003])).expand(n, 3).clone(),
              "opacities": torch.full((n,), 4.0), "sh0": torch.rand(n, 1, 3, generator=g), "shN": torch.zeros(n, 0, 3),
              "labels": torch.ones(n, dtype=torch.long)}
    vms = orbit_viewmats([0, 0, 0], [1.5] * views, [2 * math.pi * i / views for i in range(views)],
                         [math.radians(20)] * views)
    scene = SimpleNamespace(viewmats=vms, Ks=pinhole_K(45.0, 64, 48)[None].repeat(views, 1, 1),
                            train_idx=list(range(views)), width=64, height=48, up=torch.tensor([0.0, 0.0, 1.0]))
    return params, scene


def test_mesh_for_batched_views_match_one_at_a_time():
    """mesh_for renders several views per call on the GPU (one at a time on the CPU by default): batching
    must not change the fused volume, the silhouettes it fits the iso-level to, or the views kept for baking."""
    from gs_recon.config import MeshConfig
    from gs_recon.mesh.extract import mesh_for

    params, scene = _sphere_object()
    cfg = MeshConfig(resolution=48, orbit_views=5)
    kept1, kept4 = [], []
    m1 = mesh_for(params, params["labels"] == 1, scene, cfg, 48, keep_views=kept1)
    m4 = mesh_for(params, params["labels"] == 1, scene, cfg, 48, keep_views=kept4, view_batch=4)
    assert m1 is not None and m1.is_watertight
    # a round closed surface around the sphere of radius 0.3 (the discs' soft rims widen every silhouette,
    # which puts it ~3 cm out: 0.336 here)
    r = np.linalg.norm(m1.vertices, axis=1)
    assert 0.29 < np.median(r) < 0.36 and r.std() < 0.03 * np.median(r), (np.median(r), r.std())
    assert np.array_equal(m1.faces, m4.faces) and np.allclose(m1.vertices, m4.vertices)
    assert m1.metadata["iso_level"] == m4.metadata["iso_level"]
    assert len(kept1) == len(kept4) == 6 + 5
    for a, b in zip(kept1, kept4):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.gpu
def test_mesh_for_on_cuda_matches_cpu():
    """On CUDA tensors mesh_for renders with gsplat + cuda_ext's median kernel and fuses on the GPU; the mesh
    matches the CPU path's (same definitions; __expf rounding may move a few pixels' median crossings)."""
    from gs_recon.config import MeshConfig
    from gs_recon.mesh.extract import mesh_for
    from gs_recon.render.api import use_gsplat_for

    assert use_gsplat_for("auto", torch.device("cuda")), "gsplat not usable on this CUDA machine"
    params, scene = _sphere_object()
    cfg = MeshConfig(resolution=48, orbit_views=5)
    cpu = mesh_for(params, params["labels"] == 1, scene, cfg, 48)
    gpu = mesh_for({k: v.cuda() for k, v in params.items()}, (params["labels"] == 1).cuda(), scene, cfg, 48)
    assert gpu is not None and gpu.is_watertight
    assert gpu.metadata["iso_level"] == cpu.metadata["iso_level"]
    assert abs(len(gpu.faces) - len(cpu.faces)) <= 0.02 * len(cpu.faces)
    from scipy.spatial import cKDTree

    d = cKDTree(cpu.vertices).query(gpu.vertices)[0]
    assert np.percentile(d, 99) < 0.25 * cpu.metadata["voxel"], np.percentile(d, 99)


@pytest.mark.slow
def test_meshes_from_trained_run(tmp_path):
    """Acceptance (mesh issue) 2: tools/train.py on the bundled scene with the demo preset and the default
    mesh settings; every object mesh is watertight, overlaps its true box with IoU >= 0.5 and is within
    3 cm Chamfer-L1 of the true mesh; scene.glb has one node per object named after it."""
    import json
    import subprocess
    import sys

    import trimesh
    from conftest import ROOT

    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "tools/train.py", str(DEMO), "--config", "configs/tiny_cpu.yaml",
                        "--no-progress", "--output.out_dir", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    entries = json.loads((out / "scene.json").read_text())["meshes"]
    for e in entries:
        if e["id"] <= 0:
            continue
        m = trimesh.load(out / e["mesh"][0], force="mesh")
        assert m.is_watertight, e["name"]
        gt = trimesh.load(next((DEMO / "gt" / "objects").glob(f"{e['id']}_*.ply")), force="mesh")
        lo, hi = np.maximum(m.bounds[0], gt.bounds[0]), np.minimum(m.bounds[1], gt.bounds[1])
        inter = np.prod(np.clip(hi - lo, 0, None))
        union = np.prod(m.extents) + np.prod(gt.extents) - inter
        assert inter / union >= 0.5, (e["name"], inter / union)
        assert _chamfer(m, gt) < 0.03, (e["name"], _chamfer(m, gt))
    sc = trimesh.load(out / "meshes" / "scene.glb")
    names = set(sc.graph.nodes_geometry)
    assert {"box", "ball", "cylinder", "background"} <= names


def _known_shape(kind):
    import trimesh

    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    m = trimesh.creation.box(extents=(0.8, 0.5, 0.3))
    m.apply_transform(trimesh.transformations.rotation_matrix(0.4, [0.3, 1.0, 0.2]))
    return m


@pytest.mark.parametrize("kind", ["sphere", "box"])
@pytest.mark.parametrize("closed", [False, True])
def test_tsdf_of_known_shapes(kind, closed):
    """TSDF fusion + marching cubes of ray-cast depth maps of shapes made with trimesh (no ../shared).

    Open path (closed=False): empty pixels carry no data; the surface is within 0.4% of the diagonal
    (Chamfer-L1; measured ~0.2%). Closed-object path (what object meshes use): empty pixels are free space
    all along the ray (depth = FREE) and unobserved voxels count as inside, so the mesh is watertight and
    its volume is the shape's to within 3% (measured ~1%)."""
    from gs_recon.mesh.extract import FREE
    from gs_recon.mesh.tsdf import TSDFVolume, clean_mesh
    from gs_recon.data.synthetic import depth_maps_around

    gt = _known_shape(kind)
    deps, Ks, vms = depth_maps_around(gt, n_views=24, size=96)
    diag = float(np.linalg.norm(gt.extents))
    lo, hi = gt.bounds[0] - 0.1 * diag, gt.bounds[1] + 0.1 * diag
    vol = TSDFVolume(lo, hi, diag / 100, 5.0)
    if closed:
        deps = torch.where(deps > 0, deps, torch.full_like(deps, FREE))
    vol.integrate(deps, Ks, vms)
    rec = clean_mesh(vol.extract(closed=closed))
    ch = _chamfer(rec, gt)
    assert ch < 0.004 * diag, (kind, closed, ch / diag)
    if closed:
        assert rec.is_watertight and rec.is_winding_consistent
        assert rec.volume > 0  # faces wound counter-clockwise seen from outside: normals point out
        assert abs(rec.volume - gt.volume) < 0.03 * gt.volume, (rec.volume, gt.volume)
    # open surfaces too: the normals face the cameras that saw them (outward from the shape's centre)
    out = ((rec.triangles_center - gt.centroid) * rec.face_normals).sum(1)
    assert (out > 0).mean() > 0.95


def test_open_surface_seen_at_a_grazing_angle_keeps_few_holes():
    """A floor seen from 30 cm above, out to 8 m: behind the far floor the voxels lie further than the truncation
    along the rays, no view observes them, and marching cubes skipped every cube touching them (holes in a
    quarter of the floor). Extending the observed voxels by one behind the surface (what mesh_for does for the
    background) closes most of them and adds nothing off the plane."""
    from gs_recon.mesh.tsdf import TSDFVolume

    W, H, f = 160, 120, 120.0
    eye, target = np.array([0.0, -0.5, 0.3]), np.array([0.0, 6.0, 0.0])
    fw = (target - eye) / np.linalg.norm(target - eye)
    r = np.cross(fw, [0, 0, 1.0])
    r /= np.linalg.norm(r)
    R = np.stack([r, np.cross(fw, r), fw], 1)  # camera-to-world rotation (OpenCV axes)
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R.T, -R.T @ eye
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    dw = np.stack([(xs - W / 2) / f, (ys - H / 2) / f, np.ones_like(xs)], -1) @ R.T  # rays with camera z = 1
    t = np.where(dw[..., 2] < -1e-6, -eye[2] / np.minimum(dw[..., 2], -1e-6), np.inf)  # to the plane z = 0
    p = eye + t[..., None] * dw
    floor = np.isfinite(t) & (np.abs(p[..., 0]) < 1.8) & (p[..., 1] > 0.2) & (p[..., 1] < 7.8)
    vol = TSDFVolume([-2, 0, -0.5], [2, 8, 0.5], 0.05)
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]])
    vol.integrate(torch.tensor(np.where(floor, t, 0.0), dtype=torch.float32)[None], K[None],
                  torch.tensor(w2c, dtype=torch.float32)[None])
    cover = {}
    for ext in (0, 1):
        m = vol.extract(extend=ext)
        _, ray, _ = m.ray.intersects_id(np.broadcast_to(eye, (H * W, 3)), dw.reshape(-1, 3), multiple_hits=False,
                                        return_locations=True)
        hit = np.zeros(H * W, bool)
        hit[ray] = True
        cover[ext] = hit[floor.reshape(-1)].mean()
        assert np.abs(m.vertices[:, 2]).max() <= 0.5 * vol.voxel + 1e-4  # on the plane, no lips below it
    assert cover[0] < 0.85 and cover[1] > 0.93, cover
