"""Synthetic multi-object scenes with exact ground truth, rendered by CPU ray casting (trimesh + embree).

A room (floor and three walls) holds several objects: real meshes from ``../shared/data/meshes`` when
given, else trimesh primitives. Colours are procedural and the shading is baked (view independent), so
a correct reconstruction can match the images closely. Writes the scene folder contract:
images/, instance/, depth/ and normal/ (optional), sparse/0 (COLMAP binary and text; SfM-like points only
where two training photos see the surface), transforms.json (with sparse_pc.ply, the same points, named by
its ply_file_path as nerfstudio does),
objects.json, split.json and gt/ (meshes in the scene's world frame, metres).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from ..geometry import look_at_c2w, ring_direction, rotmat_to_quat
from . import colmap

PALETTE = [(0.85, 0.25, 0.2), (0.2, 0.55, 0.85), (0.95, 0.75, 0.2), (0.3, 0.75, 0.35), (0.7, 0.35, 0.8),
           (0.9, 0.5, 0.15)]


@dataclass
class SceneObject:
    name: str
    mesh: "object"  # trimesh.Trimesh in world coordinates
    color: tuple
    prompt: str


def _load_mesh(path: Path, size: float):
    import trimesh

    m = trimesh.load(path, force="mesh", process=True)
    m.apply_translation(-m.bounds.mean(0))
    m.apply_scale(size / float(max(m.extents)))
    return m


def default_objects(mesh_paths: Sequence[str] = (), n: int = 3, seed: int = 0) -> List[SceneObject]:
    """Objects on the floor (z = 0) laid out on a circle of radius 0.55 m; z is up."""
    import trimesh

    rng = np.random.default_rng(seed)
    objs = []
    prims = [
        ("box", lambda: trimesh.creation.box((0.35, 0.35, 0.35)), "a red wooden box"),
        ("ball", lambda: trimesh.creation.icosphere(subdivisions=3, radius=0.2), "a blue ball"),
        ("cylinder", lambda: trimesh.creation.cylinder(radius=0.14, height=0.45, sections=32), "a yellow can"),
        ("cone", lambda: trimesh.creation.cone(radius=0.2, height=0.4, sections=32), "a green cone"),
        ("capsule", lambda: trimesh.creation.capsule(height=0.25, radius=0.12), "a purple capsule"),
    ]
    for i in range(n):
        if i < len(mesh_paths):
            p = Path(mesh_paths[i])
            name = p.stem.replace("-", "_")
            m = _load_mesh(p, 0.45)
            prompt = f"a photo of a {name.replace('_', ' ')}"
        else:
            name, make, prompt = prims[(i - len(mesh_paths)) % len(prims)]
            m = make()
        ang = 2 * math.pi * i / n + 0.3
        m.apply_translation([0.55 * math.cos(ang), 0.55 * math.sin(ang), -m.bounds[0, 2]])
        m.apply_transform(_rotz(float(rng.uniform(0, 2 * math.pi)), m.bounds.mean(0)))
        m.apply_translation([0, 0, -m.bounds[0, 2]])
        objs.append(SceneObject(name, m, PALETTE[i % len(PALETTE)], prompt))
    return objs


def _rotz(a: float, centre) -> np.ndarray:
    T = np.eye(4)
    c, s = math.cos(a), math.sin(a)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = np.asarray(centre) - T[:3, :3] @ np.asarray(centre)
    return T


def room_mesh(half: float = 3.0, height: float = 2.2):
    """Floor plus three walls (open towards -y so cameras on the arc are inside), normals inward."""
    import trimesh

    parts = [trimesh.creation.box((2 * half, 2 * half, 0.02), transform=_tr(0, 0, -0.01))]
    parts.append(trimesh.creation.box((2 * half, 0.02, height), transform=_tr(0, half, height / 2)))
    parts.append(trimesh.creation.box((0.02, 2 * half, height), transform=_tr(half, 0, height / 2)))
    parts.append(trimesh.creation.box((0.02, 2 * half, height), transform=_tr(-half, 0, height / 2)))
    return trimesh.util.concatenate(parts)


def _tr(x, y, z):
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def arc_cameras(n: int, arc_deg: float, radius: float, elev_deg: float, centre, start_deg: float = -90.0,
                jitter: float = 0.0, seed: int = 0) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        az = math.radians(start_deg - arc_deg / 2 + (arc_deg * (i + 0.5) / n if arc_deg < 360 else 360.0 * i / n))
        el = math.radians(elev_deg + (rng.uniform(-jitter, jitter) if jitter else 0))
        cam = radius * ring_direction(az, el, *np.eye(3))  # z up
        out.append(look_at_c2w(cam + centre * [1, 1, 0], np.asarray(centre, float)))
    return out


def _shade(normals: np.ndarray, base: np.ndarray, points: np.ndarray, floor_pattern: bool) -> np.ndarray:
    light = np.array([0.4, -0.5, 0.77])
    light /= np.linalg.norm(light)
    lam = np.abs(normals @ light)  # two-sided, view independent
    col = base * (0.55 + 0.45 * lam[:, None])
    if floor_pattern:  # smooth procedural variation so the background has texture
        col = col * (0.85 + 0.15 * np.sin(points[:, :1] * 3.0) * np.cos(points[:, 1:2] * 3.0))
    return np.clip(col, 0, 1)


def sfm_like_points(mesh, n: int, c2ws: List[np.ndarray], K: np.ndarray, depth: np.ndarray, rgb: np.ndarray,
                    min_views: int = 2, seed: int = 0, noise: float = 0.003):
    """SfM-like points on `mesh`'s surface: n points [n,3] (Gaussian noise of `noise` m) and uint8 colours
    [n,3], only where at least `min_views` of the cameras (c2ws, OpenCV; K [3,3]; their ray-cast z-depth
    [V,H,W] and images [V,H,W,3]) see the surface unoccluded (a real SfM model has no points where fewer
    than two photos looked), coloured by the mean of those views' pixels; and the faces they lie on [n].
    min_views 0: n points anywhere, colour 0 (the caller colours them). Fewer than n come back when the
    seen surface is small."""
    import torch
    import trimesh

    from ..geometry import lookup, project_points

    rng = np.random.default_rng(seed)
    vms = torch.from_numpy(np.linalg.inv(np.stack(c2ws)))  # [V,4,4] world-to-camera
    Ks = torch.from_numpy(np.broadcast_to(K, (len(c2ws), 3, 3)).copy())
    dmaps, imgs = torch.from_numpy(np.asarray(depth, np.float64)), torch.from_numpy(np.asarray(rgb, np.float64))
    got_p, got_c, got_f, total, draw = [], [], [], 0, (4 * n if min_views > 0 else n)
    for attempt in range(6):  # oversample the surface until n seen points are found
        p, fidx = trimesh.sample.sample_surface(mesh, draw, seed=seed + attempt)
        if min_views <= 0:
            got_p.append(p), got_c.append(np.zeros((len(p), 3))), got_f.append(fidx)
            break
        # the pixel each point falls in (float64, so the test matches the scenes the benchmarks were made from)
        uv, z = project_points(torch.from_numpy(p), vms, Ks)
        d, inside = lookup(dmaps, uv, z)
        ok = (inside & ((d - z).abs() < 0.02 * z + 0.02)).numpy()  # the ray-cast surface there is this point's
        cnt = ok.sum(0)
        col = (lookup(imgs, uv, z)[0].numpy() * ok[..., None]).sum(0)
        keep = cnt >= min_views
        got_p.append(p[keep]), got_c.append(col[keep] / cnt[keep, None]), got_f.append(fidx[keep])
        total += int(keep.sum())
        if total >= n:
            break
        draw *= 2
    pts, cols, faces = np.concatenate(got_p)[:n], np.concatenate(got_c)[:n], np.concatenate(got_f)[:n]
    pts = pts + rng.normal(0, noise, pts.shape)
    return pts, (cols.clip(0, 1) * 255 + 0.5).astype(np.uint8), faces


def render_views(objects: List[SceneObject], room, c2ws: List[np.ndarray], K: np.ndarray, W: int, H: int):
    """Ray-cast RGB [V,H,W,3], instance [V,H,W], z-depth [V,H,W], camera normals [V,H,W,3]."""
    import trimesh

    meshes = [room] + [o.mesh for o in objects]
    ids = np.concatenate([np.full(len(m.faces), k) for k, m in enumerate(meshes)])
    scene_mesh = trimesh.util.concatenate(meshes)
    try:
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        rmi = RayMeshIntersector(scene_mesh)
    except Exception:  # embree missing: slow pure-python intersector
        rmi = trimesh.ray.ray_triangle.RayMeshIntersector(scene_mesh)
    bases = [np.array((0.78, 0.74, 0.68))] + [np.array(o.color) for o in objects]
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    dirs_c = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1).reshape(-1, 3)
    rgbs, insts, depths, normals = [], [], [], []
    for c2w in c2ws:
        d = dirs_c @ c2w[:3, :3].T
        o = np.broadcast_to(c2w[:3, 3], d.shape)
        tri, ray, loc = rmi.intersects_id(o, d / np.linalg.norm(d, axis=1, keepdims=True), multiple_hits=False,
                                          return_locations=True)
        rgb = np.ones((H * W, 3)) * 0.95
        inst = np.zeros(H * W, np.uint8)
        dep = np.zeros(H * W, np.float32)
        nrm = np.zeros((H * W, 3), np.float32)
        if len(tri):
            fn = scene_mesh.face_normals[tri]
            lab = ids[tri]
            col = np.stack([bases[k] for k in lab]) if len(lab) else np.zeros((0, 3))
            col = np.where((lab == 0)[:, None], _shade(fn, col, loc, True), _shade(fn, col, loc, False))
            rgb[ray] = col
            inst[ray] = lab
            pc = (loc - c2w[:3, 3]) @ c2w[:3, :3]
            dep[ray] = pc[:, 2]
            nc = fn @ c2w[:3, :3]
            nc = np.where((nc * pc).sum(1, keepdims=True) > 0, -nc, nc)
            nrm[ray] = nc
        rgbs.append(rgb.reshape(H, W, 3))
        insts.append(inst.reshape(H, W))
        depths.append(dep.reshape(H, W))
        normals.append(nrm.reshape(H, W, 3))
    return np.stack(rgbs), np.stack(insts), np.stack(depths), np.stack(normals)


def monocular_like_depth(depth: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Exact z-depth [V,H,W] (0: no surface) made to err as a monocular estimator's does, for testing what
    reads depth priors: per view, a smooth multiplicative field exp(level * f) (f: unit-variance noise on a
    3x4 grid, bicubic), a compressed range z ** g (g uniform in [1 - 2 level, 1]: far depth too near), edges
    blurred by a Gaussian of level * 0.15 W pixels, then an unknown affine map (prior = (z' - b) / a, a in
    [0.5, 2], b within +-0.3). level 0 gives the exact depth through the affine map only. level 0.08 leaves a
    mean relative error of ~5% after each view's best affine fit to the truth, the order monocular
    estimators' published affine-invariant errors have on indoor scenes (AbsRel 0.04-0.1)."""
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    V, H, W = depth.shape
    out = np.zeros_like(depth, dtype=np.float32)
    for v in range(V):
        z = depth[v].astype(np.float64)
        ok = z > 0
        grid = rng.standard_normal((3, 4))
        field = zoom(grid, (H / 3, W / 4), order=3, mode="nearest")[:H, :W]
        g = 1 - 2 * level * rng.random()
        zz = np.where(ok, np.maximum(z, 1e-3), np.median(z[ok]) if ok.any() else 1.0) ** g * np.exp(level * field)
        if level > 0:
            zz = gaussian_filter(zz, level * 0.15 * W, mode="nearest")
        a, b = 0.5 + 1.5 * rng.random(), 0.6 * rng.random() - 0.3
        out[v] = np.where(ok, (zz - b) / a, 0.0)
    return out


def make_scene(out: Path, mesh_paths: Sequence[str] = (), n_objects: int = 3, views: int = 24, arc: float = 360.0,
               test_views: int = 0, width: int = 128, height: int = 96, fov_deg: float = 60.0, radius: float = 2.4,
               elevation: float = 30.0, priors: bool = True, n_points: int = 3000, seed: int = 0,
               layout: str = "default", points_min_views: int = 2, depth_errors: float = 0.0) -> Path:
    """Generate a scene folder at `out`. With test_views > 0, extra test cameras all around the scene are
    written and split.json makes them the test set; otherwise every 8th arc view is a test view.
    n_points SfM-like points lie only where at least `points_min_views` training views see the surface (as
    COLMAP triangulates only what two photos show), coloured from those photos (`sfm_like_points`); 0 gives
    the generator's points before 2026-11-28: on every surface, seen or not, in the meshes' base colours.
    layout: "default" (README input contract), "dprecon" (DP-Recon / MonoSDF scan) or "neus" (NeuS / DTU
    scan; the objects' union is its one mask): the same views, cameras and ground truth in that layout.
    depth_errors > 0: the depth priors err as a monocular estimator's do (`monocular_like_depth` at that
    level, unknown scale and shift per view); 0: the exact ray-cast depth."""
    from PIL import Image

    out = Path(out)
    objects = default_objects(mesh_paths, n_objects, seed)
    room = room_mesh()
    centre = np.array([0.0, 0.0, 0.2])
    c2ws = arc_cameras(views, arc, radius, elevation, centre, jitter=5.0, seed=seed)
    names = [f"train_{i:03d}.png" for i in range(views)]
    if test_views:
        c2ws += arc_cameras(test_views, 360.0, radius, elevation + 5, centre, start_deg=0.0, seed=seed + 1)
        names += [f"test_{i:03d}.png" for i in range(test_views)]
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    rgb, inst, dep, nrm = render_views(objects, room, c2ws, K, width, height)
    dep_prior = monocular_like_depth(dep, depth_errors, seed) if depth_errors > 0 else dep
    if layout != "default":
        return _write_idr_layout(out, layout, objects, room, c2ws, K, rgb, inst, dep_prior, nrm, views, priors)
    for sub in ("images", "instance") + (("depth", "normal") if priors else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        Image.fromarray((rgb[i] * 255 + 0.5).astype(np.uint8)).save(out / "images" / n)
        Image.fromarray(inst[i]).save(out / "instance" / n)
        if priors:
            np.save(out / "depth" / f"{Path(n).stem}.npy", dep_prior[i])
            np.save(out / "normal" / f"{Path(n).stem}.npy", nrm[i])
    # cameras: COLMAP (binary + text) and transforms.json
    cams = {1: colmap.Camera(1, "PINHOLE", width, height, np.array([f, f, width / 2, height / 2]))}
    imgs = {}
    for i, (n, c2w) in enumerate(zip(names, c2ws)):
        w2c = np.linalg.inv(c2w)
        imgs[i + 1] = colmap.Image(i + 1, rotmat_to_quat(w2c[:3, :3]), w2c[:3, 3], 1, n)
    allm = [room] + [o.mesh for o in objects]
    import trimesh

    pts, pcol, fidx = sfm_like_points(trimesh.util.concatenate(allm), n_points, c2ws[:views], K, dep[:views],
                                      rgb[:views], points_min_views, seed)
    if points_min_views <= 0:  # the generator before 2026-11-28: every surface, the meshes' base colours
        fid = np.concatenate([np.full(len(m.faces), k) for k, m in enumerate(allm)])[fidx]
        bases = [np.array((0.78, 0.74, 0.68))] + [np.array(o.color) for o in objects]
        pcol = (np.stack([bases[k] for k in fid]) * 255).astype(np.uint8)
    model = colmap.Model(cams, imgs, pts, pcol, np.arange(1, len(pts) + 1))
    colmap.write_model(model, out / "sparse" / "0", binary=True)
    colmap.write_model(model, out / "sparse" / "0", binary=False)
    frames = []
    for n, c2w in zip(names, c2ws):
        gl = c2w.copy()
        gl[:3, 1:3] *= -1
        frames.append({"file_path": f"images/{n}", "transform_matrix": gl.tolist()})
    # the same points for the transforms.json layout, as nerfstudio's ns-process-data writes them
    from plyfile import PlyData, PlyElement

    vert = np.empty(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for k, col in zip(("x", "y", "z"), pts.T):
        vert[k] = col
    for k, col in zip(("red", "green", "blue"), pcol.T):
        vert[k] = col
    PlyData([PlyElement.describe(vert, "vertex")]).write(str(out / "sparse_pc.ply"))
    (out / "transforms.json").write_text(json.dumps(
        {"fl_x": f, "fl_y": f, "cx": width / 2, "cy": height / 2, "w": width, "h": height,
         "ply_file_path": "sparse_pc.ply", "frames": frames}, indent=1))
    (out / "objects.json").write_text(json.dumps(
        {"objects": [{"id": i + 1, "name": o.name, "prompt": o.prompt} for i, o in enumerate(objects)]}, indent=1))
    if test_views:
        (out / "split.json").write_text(json.dumps({"train": names[:views], "test": names[views:]}, indent=1))
    gt = out / "gt"
    (gt / "objects").mkdir(parents=True, exist_ok=True)
    for i, o in enumerate(objects):
        o.mesh.export(gt / "objects" / f"{i + 1}_{o.name}.ply")
    room.export(gt / "background.ply")
    trimesh.util.concatenate(allm).export(gt / "scene.ply")
    return out


def _write_idr_layout(out: Path, layout: str, objects, room, c2ws, K, rgb, inst, dep, nrm, views: int,
                      priors: bool) -> Path:
    """The DP-Recon (MonoSDF) or NeuS (IDR DTU) scan layout of a rendered scene (see gs_recon/data/idr.py).
    Cameras go to cameras.npz with a non-trivial scale_mat (normalised frame = the room centre, 1/3 scale);
    ground truth stays in the original frame (GTmesh/ for DP-Recon, gt/ for NeuS), as those datasets ship it."""
    import trimesh
    from PIL import Image

    from .idr import write_cameras

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scale_mat = np.diag([3.0, 3.0, 3.0, 1.0])
    scale_mat[:3, 3] = (0.1, -0.2, 0.6)  # normalised -> original
    w2cs = [np.linalg.inv(c) for c in c2ws]
    n_test = len(c2ws) - views
    raw = {k: 10 * k + 3 for k in range(1, len(objects) + 1)}  # instance ids as a dataset has them (not 1..K)
    allm = [room] + [o.mesh for o in objects]
    if layout == "dprecon":
        def ids(lab):
            m = np.full(lab.shape, 255, np.uint8)
            for k, r in raw.items():
                m[lab == k] = r
            return m

        (out / "instance_mask").mkdir(exist_ok=True)
        for i in range(views):
            Image.fromarray((rgb[i] * 255 + 0.5).astype(np.uint8)).save(out / f"{i:06d}_rgb.png")
            Image.fromarray(ids(inst[i])).save(out / "instance_mask" / f"{i:06d}.png")
            if priors:
                np.save(out / f"{i:06d}_depth.npy", dep[i].astype(np.float32))
                np.save(out / f"{i:06d}_normal.npy", ((nrm[i].transpose(2, 0, 1) + 1) / 2).astype(np.float32))
        write_cameras(out / "cameras.npz", [K] * views, w2cs[:views], scale_mat)
        if n_test:
            ev = out / "eval-novel-views"
            for sub in ("rgb", "instance_mask"):
                (ev / sub).mkdir(parents=True, exist_ok=True)
            for j in range(n_test):
                Image.fromarray((rgb[views + j] * 255 + 0.5).astype(np.uint8)).save(ev / "rgb" / f"{j:06d}.png")
                Image.fromarray(ids(inst[views + j])).save(ev / "instance_mask" / f"{j:06d}.png")
            write_cameras(ev / "cameras.npz", [K] * n_test, w2cs[views:], scale_mat)
        (out / "instance_id.json").write_text(json.dumps({o.name: raw[k + 1] for k, o in enumerate(objects)}, indent=1))
        (out / "synthetic_scan1_prompt_geometry.json").write_text(
            json.dumps({str(k + 1): o.prompt for k, o in enumerate(objects)}, indent=1))
        gt = out / "GTmesh"
        gt.mkdir(exist_ok=True)
        for k, o in enumerate(objects):
            o.mesh.export(gt / f"obj_{k + 1}.ply")
        room.export(gt / "bg_repair.ply")
        trimesh.util.concatenate(allm).export(gt / "scene_mesh.ply")
        return out
    if layout != "neus":
        raise ValueError(f"layout {layout!r}: use default, dprecon or neus")
    if n_test:
        raise ValueError("the NeuS layout has no test-view set: use test_views=0")
    for sub in ("image", "mask"):
        (out / sub).mkdir(exist_ok=True)
    for i in range(views):
        Image.fromarray((rgb[i] * 255 + 0.5).astype(np.uint8)).save(out / "image" / f"{i:06d}.png")
        m = np.where(inst[i] > 0, 255, 0).astype(np.uint8)
        Image.fromarray(np.stack([m] * 3, -1)).save(out / "mask" / f"{i:03d}.png")  # 3-channel, as DTU ships
    write_cameras(out / "cameras_sphere.npz", [K] * views, w2cs, scale_mat)
    gt = out / "gt"
    (gt / "objects").mkdir(parents=True, exist_ok=True)
    trimesh.util.concatenate([o.mesh for o in objects]).export(gt / "objects" / f"1_{out.name or 'object'}.ply")
    room.export(gt / "background.ply")
    trimesh.util.concatenate(allm).export(gt / "scene.ply")
    return out


def depth_maps_around(mesh, n_views: int = 30, size: int = 160, dist: float = 1.4, fx: float = 1.1):
    """Ray-cast z-depth maps of `mesh` from n_views cameras on three rings (elevation -35, 5, 40 deg) at
    dist x its bbox diagonal, looking at its centre. Returns depths [V, size, size] (0 = miss),
    Ks [V, 3, 3], viewmats [V, 4, 4] (OpenCV world-to-camera), all torch float32."""
    import torch
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    rmi = RayMeshIntersector(mesh)
    c = mesh.bounds.mean(0)
    r = float(np.linalg.norm(mesh.extents))
    f = size * fx
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    dc = np.stack([(xs - size / 2) / f, (ys - size / 2) / f, np.ones_like(xs)], -1).reshape(-1, 3)
    deps, vms = [], []
    for i in range(n_views):
        az, el = 2 * math.pi * i / n_views, math.radians([-35, 5, 40][i % 3])
        cam = c + dist * r * ring_direction(az, el, *np.eye(3))
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


# ---------------------------------------------------------------- exemplar libraries (prior/exemplar.py)
# Shapes "of the same kind" as each generator object, never the exact one placed in the scene: other
# proportions, bevels, radii, facet counts for the primitives; other real meshes of the same kind for the
# real ones (../shared/data/meshes: four-legged animals cow + spot, figures homer + cheburashka).
SAME_KIND = {"spot": ["cow.obj"], "cow": ["spot/spot.obj"],
             "homer": ["cheburashka.obj"], "cheburashka": ["homer.obj"],
             "stanford_bunny": ["cow.obj", "spot/spot.obj"]}


def _variants(name: str):
    """Procedural variants of a default_objects primitive (trimesh meshes, +z up)."""
    import trimesh

    def chamfered_box(ext, cut):
        e = np.asarray(ext) / 2
        pts = []
        for sx in (-1, 1):
            for sy in (-1, 1):
                for sz in (-1, 1):
                    c = np.array([sx, sy, sz]) * e
                    for ax in range(3):  # three points per corner, pulled in along each axis
                        q = c.copy()
                        q[ax] -= np.sign(c[ax]) * cut
                        pts.append(q)
        return trimesh.convex.convex_hull(np.array(pts))

    def frustum(r0, r1, h, n=32):
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ring = lambda r, z: np.stack([r * np.cos(a), r * np.sin(a), np.full(n, z)], 1)  # noqa: E731
        return trimesh.convex.convex_hull(np.concatenate([ring(r0, 0.0), ring(max(r1, 1e-3), h)]))

    def scaled(m, s):
        m = m.copy()
        m.apply_transform(np.diag([*s, 1.0]))
        return m

    if name == "box":
        return [trimesh.creation.box((0.30, 0.40, 0.35)), trimesh.creation.box((0.38, 0.33, 0.30)),
                chamfered_box((0.35, 0.35, 0.35), 0.06)]
    if name == "ball":
        return [scaled(trimesh.creation.icosphere(3, 0.2), (1.0, 1.0, 0.85)),
                scaled(trimesh.creation.icosphere(3, 0.2), (1.1, 0.95, 1.0)), trimesh.creation.icosphere(1, 0.21)]
    if name == "cylinder":
        return [trimesh.creation.cylinder(0.12, 0.5, sections=32), trimesh.creation.cylinder(0.16, 0.40, sections=32),
                trimesh.creation.cylinder(0.14, 0.45, sections=10)]
    if name == "cone":
        return [trimesh.creation.cone(0.17, 0.45, sections=32), frustum(0.2, 0.05, 0.4), trimesh.creation.cone(0.22, 0.36, sections=12)]
    if name == "capsule":
        return [trimesh.creation.capsule(0.30, 0.10), trimesh.creation.capsule(0.20, 0.14),
                scaled(trimesh.creation.capsule(0.25, 0.12), (1.0, 0.85, 1.0))]
    return []


def write_exemplars(out: Path, objects: List[SceneObject], meshes_dir: Path | None = None) -> Path:
    """An exemplar library for the objects' categories (their names): out/<name>/<variant>.ply. Real
    meshes come from meshes_dir (SAME_KIND) when it exists; a category with no exemplar is left out."""
    out = Path(out)
    for o in objects:
        found = _variants(o.name)
        if not found and meshes_dir is not None:
            for rel in SAME_KIND.get(o.name, []):
                p = Path(meshes_dir) / rel
                if p.exists():
                    m = _load_mesh(p, 0.45)
                    found.append(m)
                    # a second, other-proportioned copy: the library should not be one shape per kind
                    m2 = m.copy()
                    m2.apply_transform(np.diag([1.1, 0.9, 1.05, 1.0]))
                    found.append(m2)
        if not found:
            continue
        (out / o.name).mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(found):
            m.export(out / o.name / f"{i}.ply")
    return out
