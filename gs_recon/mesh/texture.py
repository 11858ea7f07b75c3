"""UV textures for the meshes: the unwrap (mesh/charts.py or xatlas), an albedo baked from the Gaussians' own
renders (texels found by mesh/uv.py), seam padding, and a small ray-cast renderer of textured meshes
(benchmarks and tests compare it with the splat renders).

Texture images are stored row 0 = top, so a texel (x, y) sits at uv = ((x + 0.5) / S, 1 - (y + 0.5) / S)
(OBJ and glTF both read v upwards; trimesh flips v when it writes glTF)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .charts import axis_unwrap
from .uv import rasterize_uv


@dataclass
class BakeViews:
    """Renders of one Gaussian set (an object alone, or the background) to bake from, in the mesh's frame."""
    viewmats: Tensor  # [V, 4, 4] OpenCV world-to-camera
    Ks: Tensor  # [V, 3, 3]
    rgb: Tensor  # [V, H, W, 3] colour divided by alpha (the surface colour, not its coverage)
    depth: Tensor  # [V, H, W] median depth where covered (alpha > threshold), 0 elsewhere


def unwrap(vertices: np.ndarray, faces: np.ndarray, resolution: int = 1024, iterations: int = 0,
           method: str = "axis"):
    """UV charts + packing. vertices [N, 3], faces [F, 3] -> (vmapping [M] index into vertices, faces [F, 3]
    into the M new vertices, uv [M, 2] in [0, 1]). Vertices on chart seams are duplicated.
    method (MeshConfig.unwrap) "axis": axis-projection charts (mesh/charts.py); "xatlas": xatlas's charts,
    iterations its chart optimisation passes (ChartOptions.max_iterations; MeshConfig.unwrap_iterations)."""
    if method == "axis":
        return axis_unwrap(vertices, faces, resolution)
    if method != "xatlas":
        raise ValueError(f"unknown unwrap method {method!r} (xatlas or axis)")
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = 2  # texels between charts, so bilinear lookups near a seam stay inside the chart
    pack.bilinear = True
    pack.blockAlign = True  # faster packing
    charts = xatlas.ChartOptions()
    charts.max_iterations = int(iterations)
    atlas.generate(charts, pack)
    vmap, idx, uv = atlas[0]
    return vmap.astype(np.int64), idx.astype(np.int64), uv.astype(np.float32)


def _bilinear(img: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """img [H, W, C], pixel coordinates u, v [P] (pixel centres at +0.5) -> [P, C]."""
    H, W = img.shape[:2]
    grid = torch.stack([2 * u / W - 1, 2 * v / H - 1], -1)[None, None].to(img.dtype)  # align_corners=False
    out = torch.nn.functional.grid_sample(img.permute(2, 0, 1)[None], grid, mode="bilinear",
                                          padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def bake(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int, views: BakeViews,
         fallback_points: np.ndarray, fallback_colors: np.ndarray, depth_tol: float, power: float = 4.0,
         pad: int = 8):
    """Albedo texture [S, S, 3] uint8 of the mesh (vertices [M, 3], faces [F, 3], uv [M, 2]).

    Each texel's surface point is projected into every view; a view counts where the point is the visible
    surface there (|rendered median depth - point depth| < depth_tol) and faces the camera, weighted by
    cos(normal, view direction)^power (grazing views blur). Texels no view sees take the colour of the
    nearest of fallback_points [P, 3] (fallback_colors [P, 3] in [0, 1], e.g. the Gaussians' DC colour).
    Empty texels within `pad` texels of a chart take its nearest texel's colour (seam padding), the rest the
    mean colour. Returns (image [S, S, 3] uint8, stats dict)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    face, bary = rasterize_uv(uv, faces, size)
    used = face >= 0
    fid, bw = face[used], torch.from_numpy(bary[used]).double()
    V = torch.from_numpy(np.asarray(vertices, np.float64))
    F = torch.from_numpy(np.asarray(faces, np.int64))
    tri = V[F[torch.from_numpy(fid)]]  # [T, 3, 3]
    p = (tri * bw[..., None]).sum(1)
    fn = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    n = fn / fn.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # face normals (outward: meshes are wound so)
    p, n = p.float(), n.float()
    acc, wsum = _accumulate_views(p, n, views, depth_tol, power)
    seen = wsum > 0
    col = torch.zeros(len(p), 3)
    col[seen] = acc[seen] / wsum[seen, None]
    if bool((~seen).any()) and len(fallback_points):
        nn = cKDTree(fallback_points).query(p[~seen].numpy(), k=min(4, len(fallback_points)))[1]
        col[~seen] = torch.from_numpy(np.asarray(fallback_colors, np.float32)[nn].reshape(len(nn), -1, 3).mean(1))
    img = np.zeros((size, size, 3), np.float32)
    img[used] = col.clamp(0, 1).numpy()
    if used.any():
        # seam padding: the empty texels within `pad` (chessboard distance) of a chart take the colour of the
        # nearest chart texel, so bilinear lookups near a seam do not reach the background; the rest the mean
        dist, (iy, ix) = ndimage.distance_transform_cdt(~used, metric="chessboard", return_indices=True)
        grow = ~used & (dist <= pad)
        img[grow] = img[iy[grow], ix[grow]]
        img[~used & ~grow] = img[used].mean(0)
    stats = {"texels": int(used.sum()), "seen_fraction": float(seen.float().mean()) if len(seen) else 0.0}
    return (img * 255 + 0.5).astype(np.uint8), stats


def _accumulate_views(p: Tensor, n: Tensor, views: BakeViews, depth_tol: float, power: float):
    """bake's colour sums: texel points p [T, 3] and face normals n [T, 3] (float32) -> (acc [T, 3], wsum [T]),
    the cos^power-weighted colours of the views that see each point and the weights' sum. The C++ kernel
    (mesh/csrc/bake_cpu.cpp: texels in parallel; 5x the torch loop on 2 cores for 175k texels x 12 views) when
    the extension is built, else the torch reference below (same definition; parity: tests/test_texture.py)."""
    from ..render._ext import load_cpu_ext

    ext = load_cpu_ext()
    if ext is None:
        return _accumulate_views_torch(p, n, views, depth_tol, power)
    acc, wsum = torch.zeros(len(p), 3), torch.zeros(len(p))
    ext.texture_bake(p.contiguous(), n.contiguous(), views.viewmats.float(), views.Ks.float(), views.rgb.float(),
                     views.depth.float(), float(depth_tol), float(power), acc, wsum)
    return acc, wsum


def _accumulate_views_torch(p: Tensor, n: Tensor, views: BakeViews, depth_tol: float, power: float):
    """_accumulate_views in torch, one view at a time (the reference for the C++ kernel)."""
    acc = torch.zeros(len(p), 3)
    wsum = torch.zeros(len(p))
    H, W = views.depth.shape[1:]
    for i in range(views.viewmats.shape[0]):
        R, t, K = views.viewmats[i, :3, :3].float(), views.viewmats[i, :3, 3].float(), views.Ks[i].float()
        pc = torch.addmm(t, p, R.T)  # [T, 3] camera frame
        z = pc[:, 2]
        zc = z.clamp(min=1e-6)
        u = K[0, 0] * pc[:, 0] / zc + K[0, 2]
        v = K[1, 1] * pc[:, 1] / zc + K[1, 2]
        # the rest only on the texels in front of the view and inside its image (a fraction of them)
        idx = ((z > 1e-4) & (u >= 0) & (u < W) & (v >= 0) & (v < H)).nonzero()[:, 0]
        z, u, v = z[idx], u[idx], v[idx]
        d = views.depth[i][v.long(), u.long()]
        keep = (d > 0) & ((d - z).abs() < depth_tol)
        idx, u, v = idx[keep], u[keep], v[keep]
        dirs = -R.T @ t - p[idx]  # towards the camera centre
        cos = (n[idx] * dirs).sum(-1) / dirs.norm(dim=-1).clamp(min=1e-9)
        facing = cos > 0.05
        if not bool(facing.any()):
            continue
        idx, u, v, w = idx[facing], u[facing], v[facing], cos[facing] ** power
        acc.index_add_(0, idx, w[:, None] * _bilinear(views.rgb[i].float(), u, v))
        wsum.index_add_(0, idx, w)
    return acc, wsum


def textured_mesh(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, image: np.ndarray, name: str = "albedo",
                  pbr: bool = False):
    """A trimesh.Trimesh carrying uv [M, 2] and the texture image [S, S, 3] uint8. pbr=False: a plain
    diffuse material (OBJ/MTL: Kd 1, map_Kd); pbr=True: glTF metallic-roughness with metallic 0 and
    roughness 1 (glTF's default metallic is 1, which renders an albedo as dark metal)."""
    import trimesh
    from PIL import Image

    img = Image.fromarray(image)
    if pbr:
        mat = trimesh.visual.material.PBRMaterial(name=name, baseColorTexture=img, metallicFactor=0.0,
                                                  roughnessFactor=1.0)
    else:
        mat = trimesh.visual.material.SimpleMaterial(image=img, diffuse=(255, 255, 255, 255),
                                                     ambient=(255, 255, 255, 255), specular=(0, 0, 0, 255), name=name)
    return trimesh.Trimesh(vertices, faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=mat), process=False)


def as_glb_node(mesh):
    """A textured mesh as read back from OBJ/MTL (diffuse material) -> the same with the glTF material
    textured_mesh(pbr=True) writes; other meshes unchanged."""
    vis = getattr(mesh, "visual", None)
    if getattr(vis, "kind", None) != "texture" or vis.uv is None:
        return mesh
    mat = vis.material
    img = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
    if img is None:
        return mesh
    return textured_mesh(mesh.vertices, mesh.faces, vis.uv, np.asarray(img.convert("RGB")), name=mat.name, pbr=True)


def mesh_file(entry) -> str:
    """Which file of a scene.json mesh entry to show or re-export: the textured OBJ when the entry has a
    texture, else its first file (the vertex-coloured PLY)."""
    objs = [f for f in entry["mesh"] if f.endswith(".obj")] if entry.get("texture") else []
    return (objs or entry["mesh"])[0]


def load_mesh(path):
    """trimesh of a run's mesh file, vertices as written (no welding); a textured OBJ comes with its albedo as
    the glTF material (as_glb_node), what glb writers and the viewer send on."""
    import trimesh

    return as_glb_node(trimesh.load(path, force="mesh", process=False))


def render_textured(meshes, viewmat: Tensor, K: Tensor, width: int, height: int, background=None):
    """Ray-cast the textured meshes (trimesh with TextureVisuals) from one camera (viewmat [4, 4] OpenCV
    world-to-camera, K [3, 3]). Returns rgb [H, W, 3] float in [0, 1] (background [3], default black, where
    no mesh is hit), hit [H, W] bool, depth [H, W]."""
    import trimesh

    c2w = torch.linalg.inv(viewmat.double()).numpy()
    ys, xs = np.mgrid[0:height, 0:width]
    Kn = K.double().numpy()
    d_cam = np.stack([(xs + 0.5 - Kn[0, 2]) / Kn[0, 0], (ys + 0.5 - Kn[1, 2]) / Kn[1, 1], np.ones_like(xs, float)], -1)
    dirs = d_cam.reshape(-1, 3) @ c2w[:3, :3].T
    origin = np.broadcast_to(c2w[:3, 3], dirs.shape)
    rgb = np.zeros((height * width, 3))
    if background is not None:
        rgb[:] = np.asarray(background, float).reshape(1, 3)
    depth = np.full(height * width, np.inf)
    for m in meshes:
        tri, ray, loc = m.ray.intersects_id(origin, dirs, multiple_hits=False, return_locations=True)
        if len(ray) == 0:
            continue
        z = ((loc - c2w[:3, 3]) @ c2w[:3, 2])
        closer = z < depth[ray]
        tri, ray, loc, z = tri[closer], ray[closer], loc[closer], z[closer]
        bc = trimesh.triangles.points_to_barycentric(m.triangles[tri], loc)
        uv = (m.visual.uv[m.faces[tri]] * bc[..., None]).sum(1)
        mat = m.visual.material
        tex = mat.baseColorTexture if hasattr(mat, "baseColorTexture") else mat.image
        img = np.asarray(tex.convert("RGB"), np.float64) / 255
        S_h, S_w = img.shape[:2]
        t = torch.from_numpy(img)
        rgb[ray] = _bilinear(t, torch.from_numpy(uv[:, 0] * S_w), torch.from_numpy((1 - uv[:, 1]) * S_h)).numpy()
        depth[ray] = z
    hit = np.isfinite(depth)
    return (torch.from_numpy(rgb.reshape(height, width, 3)).float(), torch.from_numpy(hit.reshape(height, width)),
            torch.from_numpy(np.where(hit, depth, 0).reshape(height, width)).float())
