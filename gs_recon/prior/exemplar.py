"""The exemplar prior: SDS with the exact (minimum-error) denoiser of a finite set of exemplar renders.

A diffusion model trained to convergence on a finite data set {x_k} has the denoiser
    E[x0 | z_t] = sum_k softmax_k( -|z_t - sqrt(abar_t) x_k|^2 / (2 (1 - abar_t)) ) x_k
and the noise prediction eps_hat = (z_t - sqrt(abar_t) E[x0 | z_t]) / sqrt(1 - abar_t). Here the x_k are
DP-Recon geometry latents (normal + opacity, prior/latents.py::geometry_latent) of exemplar meshes of the
object's category, fitted into the object's box (upright, four yaw rotations), ray cast at the SDS camera
of the step. Classifier-free guidance as with Stable Diffusion: the category's exemplars are the
conditional set, all categories' exemplars the unconditional set. Everything else (timesteps, noise,
w(t), per-pixel visibility weights) is the SDS path Stable Diffusion uses (prior/sd.py::SDSBase).

It needs no weights: a user with a few CAD models of the right kind (DIR/<category>/*.obj|ply|glb|stl,
+z up) gets completion offline. Its knowledge is exactly those shapes: it pulls an object towards the
nearest exemplar (after fitting into the object's box), so it cannot invent detail the library lacks.
It guides geometry, and appearance where the category's exemplars have colours (texture, vertex or face
colours; the appearance latent is then the stand-in 2 rgb - 1 averaged over 8 x 8 pixels, for renders and
exemplars alike, since no VAE exists here); background steps get no gradient from it.
"""
from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SceneError
from .latents import geometry_latent
from .sd import SDSBase

log = logging.getLogger("gs_recon")

MESH_EXTS = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")


def sd_alphas_cumprod(n: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """Stable Diffusion's 'scaled_linear' DDPM schedule: abar_t for t = 0..n-1, [n]."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


class _Exemplar:
    """One mesh in canonical form (bounding-box centre at the origin, +z up) with its ray intersector."""

    def __init__(self, path: Path, category: str):
        import trimesh

        m = trimesh.load(path, force="mesh", process=True)
        if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
            raise SceneError(f"{path}: no triangles (exemplar meshes must be triangle meshes)")
        m.apply_translation(-m.bounds.mean(0))
        self.mesh, self.category, self.path = m, category, Path(path)
        self.samples = np.asarray(m.sample(4000, seed=0) if _sample_takes_seed() else m.sample(4000))  # [4000,3]
        self.face_rgb = _face_colours(m)  # [F,3] in [0,1], or None: a mesh without colours
        try:
            from trimesh.ray.ray_pyembree import RayMeshIntersector
        except Exception:  # no embree: trimesh's pure-python intersector (slow)
            from trimesh.ray.ray_triangle import RayMeshIntersector
        self.rmi = RayMeshIntersector(m)

    def extents(self, R: np.ndarray) -> np.ndarray:
        """[3] box extents of the mesh rotated by R [3,3]."""
        return np.ptp(self.mesh.vertices @ R.T, axis=0)


def _face_colours(m) -> Optional[np.ndarray]:
    """Per-face RGB [F,3] in [0,1] from a mesh's texture (sampled at its vertices) or vertex/face colours;
    None when it has none."""
    kind = getattr(m.visual, "kind", None)
    if kind is None:
        return None
    try:
        if kind == "face":
            fc = np.asarray(m.visual.face_colors, dtype=np.float64)[:, :3]
        else:  # vertex colours (a texture sampled at the vertices' UVs): each face takes its corners' mean
            vc = np.asarray((m.visual.to_color() if kind == "texture" else m.visual).vertex_colors, dtype=np.float64)
            fc = vc[np.asarray(m.faces)][..., :3].mean(1)
    except Exception:  # a texture trimesh cannot sample (no image, no UVs): no colours
        return None
    return fc / 255.0 if len(fc) == len(m.faces) else None


def _sample_takes_seed() -> bool:
    import inspect

    import trimesh

    return "seed" in inspect.signature(trimesh.Trimesh.sample).parameters


def register(samples: np.ndarray, data: np.ndarray, scale: np.ndarray, iters: int = 30, robust: float = 0.05,
             proportions: float = 0.05, anchor: float = 0.001, bound: float = 0.3, max_points: int = 2000):
    """Fit an exemplar to an object's seen surface: per-axis scale s [3] and offset t [3] placing model points
    q [M,3] (exemplar surface samples, yawed, canonical frame) at s * q + t, given data points p [P,3] (the
    seen surface, box frame). ICP: each data point is matched to its nearest model point (only data -> model
    distances count: the exemplar's unseen parts may be anywhere) and weighted w = 1 / (1 + (d / delta)^2)
    (delta = `robust` x the start box's diagonal: reconstruction fuzz and the exemplar's own differences count
    less), then one weighted linear least-squares solve of
      sum w |s * q + t - p|^2                           the seen surface,
      + proportions * W * r^2 * sum_a (s_a - sigma)^2   the exemplar's own proportions (sigma: a free common scale),
      + anchor * W * r^2 * sum_a (s_a - scale_a)^2      the box fit (`scale`, also the start): without it the
                                                        common scale is free when no axis was seen on both sides,
    with W = sum w and r the RMS radius of q (solved by its 7 x 7 normal equations), on at most max_points data
    points (a fixed random subset). s stays within (1 +- bound) x scale. (A floor term, bottom at the
    background's floor, was tried and dropped: the floor plane found in a stage-1 background is a few cm off
    under some objects, and on the benchmark scene it made the unseen side worse, 2.14 -> 2.66 cm.)
    Returns (s [3], t [3], weighted RMS residual)."""
    from scipy.spatial import cKDTree

    if len(data) > max_points:  # a fixed subset: the fit needs the shape, not every pixel's point
        data = data[np.random.default_rng(0).choice(len(data), max_points, replace=False)]
    s, t = scale.astype(np.float64).copy(), np.zeros(3)
    lo, hi = scale * (1 - bound), scale * (1 + bound)
    r2 = float((samples ** 2).sum(1).mean())
    delta = robust * float(np.linalg.norm(scale * np.ptp(samples, 0)))
    res = float("inf")
    for _ in range(iters):
        d, j = cKDTree(samples * s + t).query(data, workers=-1)
        w = 1.0 / (1.0 + (d / delta) ** 2)
        q, W = samples[j], float(w.sum())
        # normal equations of the least squares above; unknowns [s_x, s_y, s_z, t_x, t_y, t_z, sigma]
        M, b = np.zeros((7, 7)), np.zeros(7)
        for a in range(3):
            M[a, a] = (w * q[:, a] ** 2).sum()
            M[a, 3 + a] = M[3 + a, a] = (w * q[:, a]).sum()
            M[3 + a, 3 + a] = W
            b[a], b[3 + a] = (w * q[:, a] * data[:, a]).sum(), (w * data[:, a]).sum()
        kp, ka = proportions * W * r2, anchor * W * r2
        for a in range(3):  # kp (s_a - sigma)^2 + ka (s_a - scale_a)^2
            M[a, a] += kp + ka
            M[a, 6] -= kp
            M[6, a] -= kp
            M[6, 6] += kp
            b[a] += ka * scale[a]
        sol = np.linalg.solve(M, b)
        s_new = np.clip(sol[:3], lo, hi)
        t_new = sol[3:6]
        res = float(np.sqrt((w * d ** 2).sum() / W))
        done = np.abs(s_new - s).max() < 1e-4 * s.max() and np.abs(t_new - t).max() < 1e-4 * s.max()
        s, t = s_new, t_new
        if done:
            break
    return s, t, res


def _yaw(a: float) -> np.ndarray:
    """Rotation [3,3] by a about +z."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def load_library(root: Path) -> List[_Exemplar]:
    """DIR/<category>/<mesh files> -> exemplars; clear errors for a missing or empty library."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise SceneError(f"{root}: exemplar library not found; --prior.model exemplar:DIR needs DIR/<category>/*.obj")
    out = []
    for cat in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cat.iterdir()):
            if f.suffix.lower() in MESH_EXTS:
                out.append(_Exemplar(f, cat.name))
    if not out:
        raise SceneError(f"{root}: no exemplar meshes ({', '.join(MESH_EXTS)}) in any DIR/<category>/ folder")
    return out


_FITS: Dict[tuple, list] = {}  # ExemplarGuidance._fits, keyed by content (_fit_key)


class ExemplarGuidance(SDSBase):
    """Exact denoiser of exemplar geometry latents, used through the same SDS code as Stable Diffusion."""

    def __init__(self, root: str | Path, guidance_scale: float = 50.0, device="cpu", yaws: int = 4,
                 supersample: int = 2):
        super().__init__(sd_alphas_cumprod(), guidance_scale, device)
        self.library = load_library(Path(root))
        self.categories = sorted({e.category for e in self.library})
        self.yaws = [_yaw(2 * math.pi * k / yaws) for k in range(yaws)]
        self.supersample = supersample
        # what the fits depend on besides box and surface: the meshes as loaded (path, mtime) and the yaws
        self._lib_key = (tuple((str(e.path), e.path.stat().st_mtime_ns) for e in self.library), yaws)
        self.x: Optional[Tensor] = None  # [K, B, 4, h, w] exemplar latents at this step's cameras
        self.cond: Optional[Tensor] = None  # [K] bool: in the object's category
        self._warned: Dict[str, bool] = {}
        log.info("exemplar prior: %d meshes in %d categories (%s)", len(self.library), len(self.categories),
                 ", ".join(self.categories))

    # ------------------------------------------------------------------ exemplar renders
    @torch.no_grad()
    def prepare(self, kind: str, category: str, viewmats: Tensor, Ks: Tensor, size: int, box,
                surface: Optional[Tensor] = None, background: Optional[Tensor] = None) -> None:
        """Render every exemplar, fitted to the object at each yaw, from the step's cameras viewmats [B,4,4],
        Ks [B,3,3] (for a size x size latent image): geometry latents for kind "geometry"; for "appearance",
        the exemplars that have colours (texture, vertex or face colours) as the appearance stand-in latent
        (encode_images: 2 rgb - 1 averaged over 8 x 8 pixels) over `background` [3]. box: (centre [3], extents
        [3], basis [3,3] rows = two horizontal axes and up), internal frame; None: background (no guidance).
        surface [P,3]: points of the object's seen surface (internal frame); with it each exemplar x yaw is
        registered to them (register: per-axis scale and offset, starting from the box), else it is stretched
        into the box. Fits are kept per (library, box, surface) content, i.e. per object and stage."""
        self.x = self.cond = None
        if box is None:
            self._warn_once("background", "exemplar prior: no guidance for background steps (it knows objects only)")
            return
        lib = [e for e in self.library if kind == "geometry" or e.face_rgb is not None]
        if category not in {e.category for e in lib}:
            have = sorted({e.category for e in lib})
            self._warn_once((kind, category), f"exemplar prior: no {'' if kind == 'geometry' else 'coloured '}"
                            f"exemplars of category '{category}' (library has {', '.join(have) or 'none'}): that "
                            f"object gets no {kind} prior")
            return
        fit = dict(zip(((id(e), k) for e in self.library for k in range(len(self.yaws))), self._fits(box, surface)))
        rays = self._rays(viewmats, Ks, size)  # the same for every exemplar and yaw
        bg = np.zeros(3) if background is None else background.detach().double().cpu().numpy()
        self.x = torch.stack([self._render(e, R, *fit[(id(e), k)], rays, size, kind, bg)
                              for e in lib for k, R in enumerate(self.yaws)]).to(self.device)  # [K, B, C, h, w]
        self.cond = torch.tensor([e.category == category for e in lib for _ in self.yaws], device=self.device)

    def _warn_once(self, key, msg: str) -> None:
        if not self._warned.get(key):
            self._warned[key] = True
            log.warning(msg)

    def _fits(self, box, surface: Optional[Tensor]):
        """Per exemplar x yaw (library order): (centre [3], scale [3], basis [3,3]) placing it on the object:
        x_internal = centre + basis^T (scale * R x_canonical)."""
        key = self._fit_key(box, surface)
        if key in _FITS:
            return _FITS[key]
        centre, ext, basis = (t.double().cpu().numpy() for t in box[:3])
        data = None if surface is None or len(surface) < 50 else (surface.double().cpu().numpy() - centre) @ basis.T
        fits = []
        for e in self.library:
            for R in self.yaws:
                scale = ext / np.maximum(e.extents(R), 1e-9)
                if data is not None:
                    scale, t, _ = register(e.samples @ R.T, data, scale)
                    fits.append((centre + basis.T @ t, scale, basis))
                else:
                    fits.append((centre, scale, basis))
        if len(_FITS) > 64:  # stale stages' objects
            _FITS.clear()
        _FITS[key] = fits
        return fits

    def _fit_key(self, box, surface: Optional[Tensor]) -> tuple:
        """The fits depend on the library, the yaws, the box and the seen surface only: keyed by their content,
        so every guidance in a process shares them (runs resumed from one checkpoint, e.g. the benchmark's
        variants, register once)."""
        h = hashlib.sha1()
        for t in (*box[:3], surface if surface is not None else torch.zeros(0)):
            h.update(t.detach().double().cpu().numpy().tobytes())
        return self._lib_key, h.hexdigest()

    def _rays(self, viewmats: Tensor, Ks: Tensor, size: int):
        """Per camera (supersampled pixel grid): (world-to-camera rotation [3,3], centre [3], camera-frame
        directions [S*S,3], world directions [S*S,3])."""
        S = size * self.supersample
        ys, xs = np.meshgrid(np.arange(S) + 0.5, np.arange(S) + 0.5, indexing="ij")
        rays = []
        for vm, K in zip(viewmats.double().numpy(), Ks.double().numpy()):
            Kf = K.copy()
            Kf[:2] *= self.supersample
            d_cam = np.stack([(xs - Kf[0, 2]) / Kf[0, 0], (ys - Kf[1, 2]) / Kf[1, 1], np.ones_like(xs)], -1).reshape(-1, 3)
            Rw = vm[:3, :3]
            rays.append((Rw, -Rw.T @ vm[:3, 3], d_cam, d_cam @ Rw))  # world directions (rows): R^T d
        return rays

    def _render(self, e: _Exemplar, R: np.ndarray, centre, scale, basis, rays, size: int, kind: str = "geometry",
                background: Optional[np.ndarray] = None) -> Tensor:
        """Latent [B,C,size,size] of exemplar e (yawed by R about up, scaled per axis by scale [3] along the
        upright basis) by ray casting `rays` (from _rays) at supersample x resolution, area-averaged (as the
        Gaussian render is resized): geometry (C = 4) or its colours over background [3] as 2 rgb - 1 (C = 3;
        kind "appearance": the appearance latent at 8x lower resolution, supersample samples per latent pixel
        side instead of 8). Canonical -> internal: x = centre + basis^T diag(scale) R x_can."""
        A = R.T @ np.diag(1.0 / scale) @ basis  # internal -> canonical: x_can = A (x_int - centre)
        S = size * self.supersample
        out = []
        for Rw, o_w, d_cam, d_w in rays:
            o_c = A @ (o_w - centre)
            d_c = d_w @ A.T
            tri, ray = e.rmi.intersects_id(np.broadcast_to(o_c, d_c.shape), d_c, multiple_hits=False)
            if kind != "geometry":
                col = np.array(np.broadcast_to(background, (S * S, 3)), dtype=np.float64)
                col[ray] = e.face_rgb[tri]
                lat = torch.from_numpy(col).float().view(1, S, S, 3).permute(0, 3, 1, 2) * 2 - 1
                out.append(F.avg_pool2d(lat, self.supersample) if self.supersample > 1 else lat)
                continue
            n_cam = np.zeros((S * S, 3))
            hit = np.zeros(S * S, bool)
            if len(ray):
                n_can = e.mesh.face_normals[tri]  # canonical normals -> internal: A^T n (inverse transpose)
                n_int = n_can @ A
                n_int /= np.linalg.norm(n_int, axis=1, keepdims=True) + 1e-12
                nc = n_int @ Rw.T  # world -> camera
                flip = (nc * d_cam[ray]).sum(1) > 0  # face the camera
                nc[flip] *= -1
                n_cam[ray], hit[ray] = nc, True
            n = torch.from_numpy(n_cam).float().view(1, S, S, 3)
            a = torch.from_numpy(hit).float().view(1, S, S, 1)
            lat = geometry_latent(n, a)  # [1,4,S,S]
            out.append(F.avg_pool2d(lat, self.supersample) if self.supersample > 1 else lat)
        return torch.cat(out)

    # ------------------------------------------------------------------ the exact denoiser
    def x0_hat(self, z_t: Tensor, ab: Tensor, subset: Tensor) -> Tensor:
        """E[x0 | z_t] over the exemplars in `subset` [K] bool. z_t [B,4,h,w], ab [B] -> [B,4,h,w]."""
        x = self.x[subset]  # [k, B, 4, h, w]
        sa = ab.sqrt().view(1, -1, 1, 1, 1)
        d2 = ((z_t[None] - sa * x) ** 2).flatten(2).sum(-1)  # [k, B]
        logits = -d2 / (2 * (1 - ab).view(1, -1))
        w = torch.softmax(logits, dim=0)  # over exemplars, per batch element
        return (w[..., None, None, None] * x).sum(0)

    @torch.no_grad()
    def predict_noise(self, z_t: Tensor, t: Tensor, prompt: str) -> Tensor:
        if self.x is None:
            raise RuntimeError("exemplar prior: predict_noise before prepare()")
        ab = self.alphas_cumprod[t]
        sa, s1 = ab.sqrt().view(-1, 1, 1, 1), (1 - ab).sqrt().view(-1, 1, 1, 1)
        eps_c = (z_t - sa * self.x0_hat(z_t, ab, self.cond)) / s1
        eps_u = (z_t - sa * self.x0_hat(z_t, ab, torch.ones_like(self.cond))) / s1
        return eps_u + self.guidance_scale * (eps_c - eps_u)

    def sds_loss(self, z: Tensor, prompt: str, t_range, weight: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None, noise: Optional[Tensor] = None,
                 t: Optional[Tensor] = None) -> Tensor:
        """SDSBase.sds_loss; zero (no gradient) where prepare() found nothing to guide with."""
        if self.x is None:
            return (z * 0).sum()
        return super().sds_loss(z, prompt, t_range, weight, generator, noise, t)

    def encode_images(self, rgb: Tensor) -> Tensor:
        """Appearance steps: the stand-in latent [B,3,H/8,W/8] = 2 rgb - 1 averaged over 8 x 8 pixels (the
        coloured exemplars are rendered the same way; objects without coloured exemplars get zero SDS).
        rgb [B,H,W,3] in [0,1]."""
        x = rgb.permute(0, 3, 1, 2) * 2 - 1
        return F.avg_pool2d(x, 8)
