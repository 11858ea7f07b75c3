"""Stages 2 and 3: the generative prior (DP-Recon on Gaussians). See docs/PRIOR.md.

Stage 2 (geometry): one object per step, round-robin, background included; the object rendered alone
from novel cameras gives DP-Recon's 4-channel geometry latent (camera-space normals from the rendered
depth, in DP-Recon's camera convention, over a (0, 0, 1) background, and 2 * opacity - 1), resized to the
latent grid and used directly as SD latents (no VAE); SDS weighted per pixel by w(V). Geometry parameters
train from fresh Adam moments with the means LR raised to prior.lr_means; reconstruction losses stay on.
Stage 3 (appearance): objects only (background appearance SDS invents objects); RGB renders through the
VAE; SDS only where V < 0.3; only colours (sh0, shN) train, the reconstruction RGB loss is kept strong.
Visibility: each Gaussian's best single-view visibility at the end of stage 1, frozen in per-label grids
indexed by position (visibility.VisibilityGrid) and read at the Gaussians' current positions.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import PriorConfig
from ..geometry import horizontal_basis, panorama_cameras, quantile_box
from .cameras import background_cameras, object_cameras, scene_cameras
from .latents import _on_grid, geometry_latent, surface_normals
from .sd import SDSGuidance, prompts_for, timestep_range
from ..render.api import render
from .visibility import VisibilityGrid, appearance_weight, geometry_weight, max_view_visibility

log = logging.getLogger("gs_recon")

GEOMETRY_KEYS = ("means", "scales", "quats", "opacities")
APPEARANCE_KEYS = ("sh0", "shN")


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient of row i by w[i]."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(w)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: Tensor):
        (w,) = ctx.saved_tensors
        return g * w.view(-1, *([1] * (g.dim() - 1))).to(g.dtype), None


def scale_gaussian_grads(params: Dict[str, Tensor], w: Tensor, keys) -> Dict[str, Tensor]:
    """A view of params whose `keys` pass gradients scaled per Gaussian by w [N] (forward unchanged)."""
    out = dict(params)
    for k in keys:
        if out[k].requires_grad:
            out[k] = _ScaleGrad.apply(out[k], w.detach())
    return out


class PriorStages:
    """Drives stages 2 and 3 on a reconstruction Trainer with an SDSGuidance."""

    def __init__(self, trainer, guidance: SDSGuidance, cfg: PriorConfig, inpainter=None):
        self.tr, self.g, self.cfg, self.inpainter = trainer, guidance, cfg, inpainter
        s = trainer.scene
        self.prompts, self.app_prompts = prompts_for(s), prompts_for(s, "appearance")
        self.category = {o.id: o.category for o in s.objects}
        self.objects = self._objects_seen()
        self.geo_ids = self.objects + ([0] if cfg.background_geometry else [])
        self.gen = torch.Generator().manual_seed(trainer.cfg.train.seed + 17)
        self._rr = 0
        self._stage_cache: Dict = {}  # _per_stage: object indices, boxes, seen surfaces, measured once per stage
        self._grad_acc: Optional[Tensor] = None  # [N, 2] geometry stage: summed |SDS d loss / d mean|, count
        self.added = 0  # Gaussians added by the geometry stage's densification
        self.history: List[int] = []  # round-robin indices this rank took (tests check the sharding)
        from .. import dist

        # the same camera / timestep draws on every rank would make ranks redundant: offset by rank
        self.gen.manual_seed(trainer.cfg.train.seed + 17 + 1000 * dist.rank())

    def _objects_seen(self) -> List[int]:
        """Objects with Gaussians and at least a few mask pixels in the training views; warns for others."""
        s, labels = self.tr.scene, self.tr.params["labels"]
        ids = []
        for o in s.objects:
            seen = s.instance is None or int((s.instance[s.train_idx] == o.id).sum()) >= 16
            if not seen or int((labels == o.id).sum()) < 4:
                log.warning("object %d (%s) is visible in no training view: skipping its prior", o.id, o.name)
                continue
            ids.append(o.id)
        return ids

    # ------------------------------------------------------------------ visibility
    @property
    def vis_grid(self) -> VisibilityGrid:
        """The frozen position-indexed visibility (built at the first call, i.e. at the end of stage 1;
        kept in the trainer's checkpoint, so a resumed run reads the same grid)."""
        tr = self.tr
        if "visibility_grid" not in tr.extra:
            s, p = tr.scene, tr.params
            idx = s.train_idx
            with torch.no_grad():
                v = max_view_visibility(p, s.viewmats[idx].to(tr.device), s.Ks[idx].to(tr.device), s.width,
                                        s.height, backend=tr.cfg.train.backend)
            grid = VisibilityGrid.build(p["means"], p["labels"], v, self.cfg.vis_grid_resolution)
            tr.extra["visibility_grid"] = grid.state_dict()
            log.info("visibility frozen after reconstruction: mean best-view v %.3f over %d Gaussians",
                     float(v.mean()), v.numel())
        if getattr(self, "_grid_src", None) is not tr.extra["visibility_grid"]:
            self._grid_src = tr.extra["visibility_grid"]
            self._grid = VisibilityGrid.from_state_dict(self._grid_src)
        return self._grid

    @property
    def floor(self):
        """The background's floor plane (normal [3] list, offset) in the internal frame, or None: found once at
        the end of stage 1 (train/room.py::floor_plane) and kept in the checkpoint like the visibility grid."""
        tr = self.tr
        if "floor" not in tr.extra:
            from ..train.room import floor_plane

            p = floor_plane(tr.params, tr.scene, tr.cfg.background.plane_thresh)
            tr.extra["floor"] = None if p is None else [p.normal.tolist(), p.offset]
            log.info("object boxes stand on %s", "no floor (none found)" if p is None else "the background's floor")
        return tr.extra["floor"]

    def refresh_visibility(self) -> None:
        """params["visibility"] = the frozen grid at the Gaussians' current positions."""
        p = self.tr.params
        with torch.no_grad():
            p["visibility"].data.copy_(self.vis_grid.query(p["means"], p["labels"]).to(p["visibility"]))

    def _per_stage(self, key, compute):
        """compute() once per stage for `key` (object indices, boxes, seen surfaces: measuring them every step
        would wait for the GPU). Densification drops the index entries when it changes the Gaussians."""
        if key not in self._stage_cache:
            self._stage_cache[key] = compute()
        return self._stage_cache[key]

    def _clear_caches(self) -> None:
        """A stage starts: object indices and boxes are measured again."""
        self._stage_cache.clear()

    def _index(self, oid: int) -> Tensor:
        """Indices [n] of object oid's Gaussians (index_select instead of a boolean-mask gather)."""
        return self._per_stage(("index", oid), lambda: (self.tr.params["labels"] == oid).nonzero()[:, 0])

    def _object_gaussians(self, oid: int):
        """Centres [n,3] and largest axis [n] of object oid's Gaussians with opacity > 0.1 (all of them when
        fewer than 11 are that opaque)."""
        p = self.tr.params
        m = p["labels"] == oid
        pts = p["means"].detach()[m]
        size = torch.exp(p["scales"].detach()[m]).max(1).values
        keep = torch.sigmoid(p["opacities"].detach()[m]) > 0.1
        if int(keep.sum()) > 10:
            pts, size = pts[keep], size[keep]
        return pts, size

    def _box(self, oid: int):
        """The object's box (2-98% quantiles of its opaque centres), measured once per stage: its cameras look at
        a fixed box, as DP-Recon's do (and no per-step quantile and host copy)."""
        return self._per_stage(("box", oid), lambda: self._measure_box(oid))

    def _measure_box(self, oid: int):
        pts, _ = self._object_gaussians(oid)
        lo, hi = quantile_box(pts)
        return lo.cpu(), hi.cpu()

    def cameras(self, oid: int, n: int, size: int, progress: float):
        s, c = self.tr.scene, self.cfg
        if oid == 0:
            cen = s.camera_centres()
            if c.background_cameras == "dprecon":
                return scene_cameras(cen, cen.mean(0), s.up, n, size, self.gen, c.background_fovy)
            return background_cameras(cen, cen.mean(0), s.up, n, size, self.gen, c.background_fovy)
        lo, hi = self._box(oid)
        return object_cameras(lo, hi, s.up, n, size, progress, self.gen, c.elevation, c.elevation_end, c.fovy, c.fill)

    def render_alone(self, oid: int, vms: Tensor, Ks: Tensor, size: int, sh_degree: int = 0,
                     background: Optional[Tensor] = None):
        """Object `oid` alone, with its visibility image V (the frozen grid at its Gaussians' current
        positions, composited) as the extra channel. With cfg.gaussian_gate > 0, Gaussians whose v reaches
        the gate pass no SDS gradient (a binary gate; the weighting itself is per pixel)."""
        p = self.tr.params
        idx = self._index(oid)
        sub = {k: v.index_select(0, idx) for k, v in p.items()}
        v = self.vis_grid.query_label(sub["means"], oid)
        if self.cfg.gaussian_gate > 0:
            sub = scale_gaussian_grads(sub, (v < self.cfg.gaussian_gate).float(), self.tr.trainable)
        if self._grad_acc is not None and sub["means"].requires_grad:
            sub["means"].register_hook(lambda g, idx=idx: self._accumulate(idx, g))
        dev = self.tr.device
        return render(sub, vms.to(dev), Ks.to(dev), size, size, sh_degree=sh_degree, background=background,
                      extra=v[:, None], backend=self.tr.cfg.train.backend)

    # ------------------------------------------------------------------ bounded densification (geometry stage)
    def _accumulate(self, idx: Tensor, g: Tensor) -> None:
        """Hook on an object-alone render's means: per Gaussian, sum |grad| [n] and count the steps."""
        with torch.no_grad():
            self._grad_acc.index_add_(0, idx, torch.stack([g.norm(dim=1), torch.ones_like(g[:, 0])], 1))

    def densify(self, local_step: int, iters: int) -> int:
        """Every prior.densify_every steps until densify_stop of the stage: per object, of its Gaussians whose
        centres lie inside its box, those with the largest mean SDS position gradient (at most densify_frac
        of its count, under train.cap_max) are duplicated (largest axis <= 1% of the scene scale, as gsplat's
        grow_scale3d) or split in two (larger). Returns how many Gaussians were added."""
        from .. import dist

        c, tr = self.cfg, self.tr
        if c.densify_every <= 0 or dist.active():  # ranks would decide differently: off when data-parallel
            return 0
        n = tr.params["means"].shape[0]
        if self._grad_acc is None or self._grad_acc.shape[0] != n:
            self._grad_acc = torch.zeros(n, 2, device=tr.params["means"].device)
            return 0
        if local_step == 0 or local_step % c.densify_every or local_step > c.densify_stop * iters:
            return 0
        room = tr.cfg.train.cap_max - n
        pick = torch.zeros(n, dtype=torch.bool, device=self._grad_acc.device)
        with torch.no_grad():
            mean_g = self._grad_acc[:, 0] / self._grad_acc[:, 1].clamp(min=1)
            for oid in self.objects:
                idx = self._index(oid)
                centre, ext, B = (t.to(idx.device, torch.float32) for t in self.upright_box(oid))
                u = (tr.params["means"][idx] - centre) @ B.T
                inside = (u.abs() <= ext / 2).all(1) & (self._grad_acc[idx, 1] > 0)
                k = min(int(c.densify_frac * len(idx)), int(inside.sum()), max(0, room - int(pick.sum())))
                if k > 0:
                    g = torch.where(inside, mean_g[idx], torch.full_like(mean_g[idx], -1.0))
                    pick[idx[torch.topk(g, k).indices]] = True
            big = torch.exp(tr.params["scales"]).max(1).values > 0.01 * tr.scene_scale
        added = int(pick.sum())
        if added:
            is_split = pick & big
            tr.densifier.clone(tr.params, tr.optimizers, pick & ~big)
            # clone appended rows: extend the split mask with False for them
            tr.densifier.split(tr.params, tr.optimizers,
                               torch.cat([is_split, torch.zeros(int((pick & ~big).sum()), dtype=torch.bool, device=pick.device)]))
            tr.set_trainable(tr.trainable)
            tr.snapshot_good()
            for key in [k for k in self._stage_cache if k[0] == "index"]:
                del self._stage_cache[key]
            log.info("geometry prior step %d: %d Gaussians cloned or split inside object boxes (%d in all)",
                     local_step, added, tr.params["means"].shape[0])
        self._grad_acc = torch.zeros(tr.params["means"].shape[0], 2, device=tr.params["means"].device)
        return added

    def _pick(self) -> int:
        """Round-robin index of this step's object; with several ranks, each rank takes its own shard."""
        from .. import dist

        k = self._rr * dist.world() + dist.rank()
        self._rr += 1
        self.history.append(k)
        return k

    # ------------------------------------------------------------------ SDS terms
    def geometry_sds(self, progress: float) -> Dict[str, Tensor]:
        c = self.cfg
        oid = self.geo_ids[self._pick() % len(self.geo_ids)]
        vms, Ks = self.cameras(oid, c.views_per_step, c.geometry_render, progress)
        out = self.render_alone(oid, vms, Ks, c.geometry_render)
        x = geometry_latent(surface_normals(out, Ks.to(out.depth)), out.alpha)  # [B,4,H,W]
        z = F.interpolate(x, size=(c.geometry_latent, c.geometry_latent), mode="bilinear", align_corners=False)
        w = None
        if c.pixel_weighting:
            w = geometry_weight(_on_grid(out.extra, z).clamp(0, 1), c.none_vis_max, c.vis_max)
        t_range = timestep_range(c.geo_t_start, c.geo_t_end, progress, hold=c.geo_t_hold)
        self._prepare("geometry", oid, vms, Ks, c.geometry_render, c.geometry_latent)
        loss = c.sds_geometry_lambda * self.g.sds_loss(z, self.prompts[oid], t_range, w, generator=self.gen)
        return {"sds_geo": loss}

    def _prepare(self, kind: str, oid: int, vms: Tensor, Ks: Tensor, render_size: int, size: int) -> None:
        """Guidance that needs the step's cameras (the exemplar prior renders its exemplars there):
        prepare(kind, category, viewmats [B,4,4], Ks [B,3,3] for a size x size latent image, the object's
        upright_box (None for the background))."""
        prep = getattr(self.g, "prepare", None)
        if prep is not None:
            K = Ks.clone().float()
            K[:, :2] *= size / render_size
            if oid > 0:
                prep(kind, self.category.get(oid, ""), vms, K, size, self.upright_box(oid), self.seen_surface(oid),
                     background=self.tr.bg if kind == "appearance" else None)
            else:
                prep(kind, self.category.get(oid, ""), vms, K, size, None)

    def seen_surface(self, oid: int) -> Tensor:
        """Points [P,3] (internal frame, CPU) of object oid's surface as the training views see it: the rendered
        expected depth back-projected over the object's mask pixels (eroded by one pixel: silhouette pixels mix
        depths) where the render is opaque (alpha > 0.9). Measured once per stage for every object (one render
        per training view)."""
        return self._per_stage(("surfaces",), self._measure_surfaces).get(oid, torch.zeros(0, 3))

    def _measure_surfaces(self) -> Dict[int, Tensor]:
        s, tr = self.tr.scene, self.tr
        if s.instance is None:
            return {}
        ys, xs = torch.meshgrid(torch.arange(s.height) + 0.5, torch.arange(s.width) + 0.5, indexing="ij")
        pts: Dict[int, List[Tensor]] = {}
        with torch.no_grad():
            for i in s.train_idx:
                r = render(tr.params, s.viewmats[[i]].to(tr.device), s.Ks[[i]].to(tr.device), s.width, s.height,
                           normals=False, backend=tr.cfg.train.backend)
                d, a = r.depth[0, ..., 0].cpu(), r.alpha[0, ..., 0].cpu()
                K, vm = s.Ks[i].float(), s.viewmats[i].float()
                cam = torch.stack([(xs - K[0, 2]) / K[0, 0] * d, (ys - K[1, 2]) / K[1, 1] * d, d], -1)
                for oid in self.objects:
                    m = (s.instance[i] == oid) & (a > 0.9)
                    inner = torch.zeros_like(m)
                    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
                    if int(inner.sum()):
                        pts.setdefault(oid, []).append((cam[inner] - vm[:3, 3]) @ vm[:3, :3])  # R^T (x - t)
        return {oid: torch.cat(v) for oid, v in pts.items()}

    def upright_box(self, oid: int):
        """The object's box in an upright frame: (centre [3] internal, extents [3] along the basis, basis
        [3,3] whose rows are two horizontal axes and the scene's up). The horizontal axes are the yaw that
        gives the smallest horizontal box (a box-shaped object's faces). Extents are the 2-98% quantiles of
        the centres padded by 1.5 median Gaussian sizes on each side (the centres of a surface's Gaussians sit
        inside it: a 0.40 m ball's span 0.32 m). The visual hull leaves never-seen Gaussians below the floor
        (0.49 m tall for a 0.35 m box in the benchmark scenes): a box that reaches below the background's
        floor (self.floor) stands on it instead. Measured once per stage, like _box."""
        return self._per_stage(("upright", oid), lambda: self._measure_upright_box(oid))

    def _measure_upright_box(self, oid: int):
        import math

        pts, size = (t.float().cpu() for t in self._object_gaussians(oid))
        a, b, up = horizontal_basis(self.tr.scene.up.float())
        h = pts @ torch.stack([a, b]).T  # [n, 2] horizontal coordinates
        best = None
        for k in range(45):  # yaw in 2 degree steps over a quarter turn
            th = math.pi / 2 * k / 45
            ax = torch.tensor([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])
            q = h @ ax.T
            ext = torch.quantile(q, 0.98, dim=0) - torch.quantile(q, 0.02, dim=0)
            if best is None or float(ext.prod()) < best[0]:
                best = (float(ext.prod()), ax)
        ax = best[1]
        B = torch.stack([ax[0, 0] * a + ax[0, 1] * b, ax[1, 0] * a + ax[1, 1] * b, up])
        u = pts @ B.T
        pad = 1.5 * float(size.median())
        lo, hi = torch.quantile(u, 0.02, dim=0) - pad, torch.quantile(u, 0.98, dim=0) + pad
        floor = self.floor
        if floor is not None:  # the hull below the floor is never-seen volume: the object stands on the floor
            n, d = torch.tensor(floor[0], dtype=u.dtype), float(floor[1])
            mid = B.T @ torch.cat([(lo[:2] + hi[:2]) / 2, torch.zeros(1)])
            h = (d - float(n @ mid)) / max(float(n @ up), 1e-6)  # floor height under the box's centre
            if float(lo[2]) < h < float(hi[2]):
                lo[2] = h
        return B.T @ ((lo + hi) / 2), hi - lo, B

    def appearance_sds(self, progress: float) -> Dict[str, Tensor]:
        c = self.cfg
        oid = self.objects[self._pick() % len(self.objects)]
        vms, Ks = self.cameras(oid, c.views_per_step, c.appearance_res, 1.0)
        out = self.render_alone(oid, vms, Ks, c.appearance_res, sh_degree=self.tr.cfg.model.sh_degree,
                                background=self.tr.bg)
        z = self.g.encode_images(out.rgb.clamp(0, 1))
        w = None
        if c.pixel_weighting:
            w = appearance_weight(_on_grid(out.extra, z), c.appearance_vis_thresh)
        self._prepare("appearance", oid, vms, Ks, c.appearance_res, z.shape[-1])
        loss = c.sds_appearance_lambda * self.g.sds_loss(z, self.app_prompts[oid], c.app_t, w, generator=self.gen)
        return {"sds_app": loss}

    # ------------------------------------------------------------------ stages
    def _run_stage(self, keys, start: int, iters: int, label: str, sds, progress: bool, ckpt_path,
                   rgb_weight: float = 1.0) -> float:
        """Train `keys` from global step `start` for `iters` steps with the SDS term sds(progress in [0,1])
        added to the reconstruction losses; visibility is recomputed first. Returns seconds spent."""
        import time

        tr = self.tr
        t0 = time.time()
        if tr.step <= start:  # a fresh stage (a resumed one keeps its checkpointed moments and LRs)
            tr.start_stage(keys, {"means": self.cfg.lr_means * tr.scene_scale})
        else:
            tr.set_trainable(keys)
        self.refresh_visibility()
        self._clear_caches()
        grow = keys == GEOMETRY_KEYS and self.cfg.densify_every > 0

        def step(gen):
            if grow:
                self.added += self.densify(tr.step - start, iters)
            return tr.train_step(gen, extra_losses=lambda: sds((tr.step - start) / max(1, iters)), densify=False,
                                 rgb_weight=rgb_weight)

        tr.fit(start + iters, progress=progress, ckpt_path=ckpt_path, stage=label, step_fn=step)
        self._grad_acc = None
        return time.time() - t0

    def run_geometry(self, progress: bool = True, ckpt_path=None) -> float:
        """Stage 2 up to global step iterations + geometry_iters. Returns seconds spent."""
        c = self.cfg
        if c.geometry_iters <= 0 or not self.geo_ids:
            return 0.0
        if c.densify_every > 0:
            log.info("geometry prior: densifying every %d steps (<= %.0f%% of an object per event)", c.densify_every,
                     100 * c.densify_frac)
        return self._run_stage(GEOMETRY_KEYS, self.tr.cfg.train.iterations, c.geometry_iters, "geometry prior",
                               self.geometry_sds, progress, ckpt_path)

    def run_appearance(self, progress: bool = True, ckpt_path=None) -> float:
        """Stage 3 up to global step iterations + geometry_iters + appearance_iters."""
        c = self.cfg
        if c.appearance_iters <= 0 or not self.objects:
            return 0.0
        return self._run_stage(APPEARANCE_KEYS, self.tr.cfg.train.iterations + c.geometry_iters, c.appearance_iters,
                               "appearance prior", self.appearance_sds, progress, ckpt_path,
                               rgb_weight=c.appearance_rgb_lambda)

    # ------------------------------------------------------------------ background inpainting
    def inpaint_targets(self) -> Dict[str, Tensor]:
        """The painted views, made once (kept in the checkpoint, so a resumed run fits the same images):
        viewmats [V,4,4], Ks [V,3,3], rgb [V,R,R,3], mask [V,R,R,1] (1 = painted: unseen or empty background),
        fit [V,R,R,1] (painted and covered by background Gaussians: where the colour fit applies)."""
        tr, c = self.tr, self.cfg
        if "inpaint" not in tr.extra:
            import time

            t0 = time.time()
            a, b, up = horizontal_basis(tr.scene.up.float())
            vms, Ks = panorama_cameras(tr.scene.camera_centres().mean(0), a, b, up, c.inpaint_views, c.inpaint_res,
                                       c.inpaint_res)
            with torch.no_grad():
                out = self.render_alone(0, vms, Ks, c.inpaint_res, sh_degree=tr.cfg.model.sh_degree,
                                        background=tr.bg)
                covered = (out.alpha >= 0.5).cpu()
                mask = ((out.extra.cpu() < c.appearance_vis_thresh) | ~covered).float()
                rgb = out.rgb.clamp(0, 1).cpu()
            painted = self.inpainter(rgb, mask, prompts_for(tr.scene)[0], self.gen)
            # colours can only be fitted where background Gaussians are: painted and covered
            tr.extra["inpaint"] = {"viewmats": vms, "Ks": Ks, "rgb": painted, "mask": mask,
                                   "fit": mask * covered.float()}
            log.info("background inpainting: %d views at %d px, %.0f%% of their pixels painted, %.0f%% fitted "
                     "(%.1f s)", len(vms), c.inpaint_res, 100 * float(mask.mean()),
                     100 * float(tr.extra["inpaint"]["fit"].mean()), time.time() - t0)
        return tr.extra["inpaint"]

    def inpaint_loss(self, progress: float) -> Dict[str, Tensor]:
        """L1 between the background rendered alone and the painted images, over the painted pixels that
        background Gaussians cover ('fit'; prior.views_per_step views per step)."""
        c, tr = self.cfg, self.tr
        t = self.inpaint_targets()
        pick = torch.randint(0, len(t["rgb"]), (c.views_per_step,), generator=self.gen)
        out = self.render_alone(0, t["viewmats"][pick], t["Ks"][pick], c.inpaint_res,
                                sh_degree=tr.cfg.model.sh_degree, background=tr.bg)
        m = t["fit"][pick].to(out.rgb.device)
        err = (out.rgb - t["rgb"][pick].to(out.rgb.device)).abs() * m
        return {"inpaint": c.inpaint_lambda * err.sum() / (3 * m.sum()).clamp(min=1.0)}

    def run_inpaint(self, progress: bool = True, ckpt_path=None) -> float:
        """Background inpainting after stage 3, up to global step iterations + geometry + appearance + inpaint
        iters: only colours train (as in stage 3)."""
        c = self.cfg
        if c.inpaint_iters <= 0 or self.inpainter is None:
            return 0.0
        start = self.tr.cfg.train.iterations + c.geometry_iters + c.appearance_iters
        return self._run_stage(APPEARANCE_KEYS, start, c.inpaint_iters, "background inpainting", self.inpaint_loss,
                               progress, ckpt_path)

    def run(self, progress: bool = True, ckpt_path=None) -> Dict[str, float]:
        """Stages 2 and 3 (and background inpainting) after reconstruction (global steps continue; a resumed run
        skips what is done)."""
        times = {"geometry_prior_s": self.run_geometry(progress, ckpt_path),
                 "appearance_prior_s": self.run_appearance(progress, ckpt_path),
                 "inpaint_prior_s": self.run_inpaint(progress, ckpt_path)}
        self.tr.set_trainable(tuple(self.tr.optimizers))
        self.refresh_visibility()
        return times
