#!/usr/bin/env python
"""Benchmark mesh extraction.

(1) Extraction time of a 5-object synthetic scene at the default mesh settings: generates the scene
    (128x96, 24 views), trains it with the tiny CPU preset, then times tools/extract_mesh's work
    (every object + background + scene.ply + scene.glb), per part.
(2) Optional quality anchor: if Open3D is installed, TSDF-fuses the same true depth maps of real meshes
    (../shared/data/meshes, else trimesh primitives) with gs_recon's TSDFVolume and with Open3D's
    UniformTSDFVolume (see _o3d_fuse) at the same voxel size and truncation, and prints both times, the ratio, and
    Chamfer-L1 of each to the true mesh and between the two.

    python tools/bench_mesh.py [--steps 700] [--skip-scene] [--skip-open3d]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

try:
    import gs_recon  # noqa: F401  (installed)
except ModuleNotFoundError:  # a checkout that is not installed: the package sits beside tools/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT.parent / "shared" / "data" / "meshes"


def bench_scene(steps: int, work: Path) -> None:
    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.export.meshes import extract_meshes
    from gs_recon.data.synthetic import make_scene
    from gs_recon.train.recon import Trainer

    scene_dir = make_scene(work / "scene5", n_objects=5, views=24, priors=False)
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", [f"train.iterations={steps}"])
    scene = load_scene(scene_dir, cfg.data)
    t0 = time.time()
    tr = Trainer(scene, cfg)
    tr.fit(progress=True)
    print(f"trained {steps} steps in {time.time() - t0:.1f} s, {tr.params['means'].shape[0]} Gaussians")
    t0 = time.perf_counter()
    entries = extract_meshes(tr.params, scene, work / "run", cfg.mesh, progress=True)
    total = time.perf_counter() - t0
    for e in entries:
        if e["id"] >= 0:
            print(f"  {e['id']:>2} {e['name']:<12} {e.get('faces', 0):>8} faces  watertight={e.get('watertight')}")
    print(f"5-object scene, default mesh settings (object res {cfg.mesh.resolution}, background "
          f"{cfg.mesh.background_resolution}, {cfg.mesh.orbit_views} orbit views): extraction {total:.1f} s")


def _o3d_fuse(o3d, deps, Ks, vms, lo, hi, voxel, trunc):
    """Open3D's dense UniformTSDFVolume over the same (cubed) box. ScalableTSDFVolume, the one the issue
    names, returned an empty mesh for these exact inputs in open3d 0.20.0 (pip wheel) while the uniform
    volume and Open3D's own RGBD->point-cloud agree with the geometry, so the uniform one is used."""
    import trimesh

    length = float(np.max(np.asarray(hi) - np.asarray(lo)))
    vol = o3d.pipelines.integration.UniformTSDFVolume(
        length=length, resolution=int(np.ceil(length / voxel)), sdf_trunc=trunc,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8, origin=np.asarray(lo, np.float64))
    H, W = deps.shape[1:]
    for d, K, vm in zip(deps.numpy(), Ks.numpy(), vms.numpy()):
        # Open3D puts pixel centres at integers, gs_recon at +0.5: shift the principal point
        intr = o3d.camera.PinholeCameraIntrinsic(W, H, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) - 0.5,
                                                 float(K[1, 2]) - 0.5)
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.zeros((H, W, 3), np.uint8)), o3d.geometry.Image(np.ascontiguousarray(d)),
            depth_scale=1.0, depth_trunc=1e4, convert_rgb_to_intensity=False)
        vol.integrate(rgbd, intr, np.ascontiguousarray(vm, np.float64))
    m = vol.extract_triangle_mesh()
    return trimesh.Trimesh(np.asarray(m.vertices), np.asarray(m.triangles), process=False)


def bench_open3d() -> None:
    try:
        import open3d as o3d
    except Exception as e:  # optional: never a dependency
        print(f"Open3D comparison skipped: open3d not importable ({type(e).__name__}: {e})")
        return
    import trimesh

    from gs_recon.eval.mesh_metrics import mesh_metrics
    from gs_recon.mesh.tsdf import fuse_depth_maps
    from gs_recon.data.synthetic import depth_maps_around

    cands = [MESHES / "stanford-bunny.obj", MESHES / "spot" / "spot.obj",
             MESHES / "ycb_banana" / "textured_simple_reoriented.obj"]
    meshes = [(p.stem, trimesh.load(p, force="mesh")) for p in cands if p.exists()]
    if not meshes:
        meshes = [("icosphere", trimesh.creation.icosphere(4)), ("box", trimesh.creation.box((1, 0.6, 0.4)))]
    print(f"\nTSDF of true depth maps (30 views 160x160, voxel = diag/160, trunc 5 voxels), Open3D {o3d.__version__}")
    print(f"{'mesh':<22}{'ours s':>8}{'o3d s':>8}{'o3d/ours':>9}{'CD ours':>10}{'CD o3d':>10}{'CD ours-o3d':>13}  (CD / diag)")
    for name, gt in meshes:
        deps, Ks, vms = depth_maps_around(gt)
        diag = float(np.linalg.norm(gt.extents))
        voxel = diag / 160
        lo, hi = gt.bounds[0] - 0.05 * diag, gt.bounds[1] + 0.05 * diag
        fuse_depth_maps(deps[:1], Ks[:1], vms[:1], lo, hi, voxel)  # warm-up (extension load)
        t0 = time.perf_counter()
        ours = fuse_depth_maps(deps, Ks, vms, lo, hi, voxel)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = _o3d_fuse(o3d, deps, Ks, vms, lo, hi, voxel, 5 * voxel)
        t_o3d = time.perf_counter() - t0
        c1 = mesh_metrics(ours, gt, n=50000)["chamfer_l1"] / diag
        c2 = mesh_metrics(theirs, gt, n=50000)["chamfer_l1"] / diag
        c3 = mesh_metrics(ours, theirs, n=50000)["chamfer_l1"] / diag
        print(f"{name:<22}{t_ours:>8.2f}{t_o3d:>8.2f}{t_o3d / t_ours:>9.2f}{c1:>10.4f}{c2:>10.4f}{c3:>13.4f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--skip-scene", action="store_true")
    ap.add_argument("--skip-open3d", action="store_true")
    ap.add_argument("--work", default=None, help="folder for the generated scene and meshes (default: temp)")
    a = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        if not a.skip_scene:
            bench_scene(a.steps, work)
        if not a.skip_open3d:
            bench_open3d()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
