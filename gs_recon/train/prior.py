"""Stages 2 and 3: the generative prior (DP-Recon on Gaussians). See docs/PRIOR.md.

Stage 2 (geometry): one object per step, round-robin, background included; the object rendered alone
from novel cameras gives camera-space normals + opacity (4 channels), resized to the latent grid and used
directly as SD latents (no VAE); SDS weighted per pixel by geometry_weight(V) and, per Gaussian, its
gradients scaled by geometry_weight(v). Geometry parameters train; reconstruction losses stay on.
Stage 3 (appearance): objects only (background appearance SDS invents objects); RGB renders through the
VAE; SDS only where V < 0.3 (per pixel) and on Gaussians with v < 0.3; only colours (sh0, shN) train, the
reconstruction RGB loss is kept strong.
Visibility v is recomputed from the training views at each stage boundary.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import PriorConfig
from ..guidance.cameras import background_cameras, object_cameras
from ..guidance.sd import SDSGuidance, prompts_for, timestep_range
from ..render.api import render
from ..visibility import appearance_weight, geometry_weight, update_params_visibility

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


def _on_grid(V: Tensor, z: Tensor) -> Tensor:
    """Visibility image V [B,H,W,1] area-resampled to the latent grid of z [B,4,h,w] -> [B,1,h,w]."""
    return F.interpolate(V.permute(0, 3, 1, 2), size=z.shape[-2:], mode="area")


class PriorStages:
    """Drives stages 2 and 3 on a reconstruction Trainer with an SDSGuidance."""

    def __init__(self, trainer, guidance: SDSGuidance, cfg: PriorConfig):
        self.tr, self.g, self.cfg = trainer, guidance, cfg
        s = trainer.scene
        self.prompts = prompts_for(s)
        self.objects = self._objects_seen()
        self.geo_ids = self.objects + ([0] if cfg.background_geometry else [])
        self.gen = torch.Generator().manual_seed(trainer.cfg.train.seed + 17)
        self._rr = 0
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

    # ------------------------------------------------------------------ helpers
    def refresh_visibility(self) -> None:
        with torch.no_grad():
            update_params_visibility(self.tr.params, self.tr.scene, self.cfg.vis_count_thresh)

    def _box(self, oid: int):
        p = self.tr.params
        m = p["labels"] == oid
        pts = p["means"].detach()[m]
        op = torch.sigmoid(p["opacities"].detach()[m])
        if int((op > 0.1).sum()) > 10:
            pts = pts[op > 0.1]
        q = torch.tensor([0.02, 0.98], device=pts.device)
        lo, hi = torch.quantile(pts, q[0], dim=0), torch.quantile(pts, q[1], dim=0)
        return lo.cpu(), hi.cpu()

    def cameras(self, oid: int, n: int, size: int, progress: float):
        s, c = self.tr.scene, self.cfg
        if oid == 0:
            cen = s.camera_centres()
            return background_cameras(cen, cen.mean(0), s.up, n, size, self.gen, c.background_fovy)
        lo, hi = self._box(oid)
        return object_cameras(lo, hi, s.up, n, size, progress, self.gen, c.elevation, c.elevation_end, c.fovy, c.fill)

    def render_alone(self, oid: int, vms: Tensor, Ks: Tensor, size: int, gweight: Optional[Callable] = None,
                     sh_degree: int = 0, background: Optional[Tensor] = None):
        """Object `oid` alone, with its visibility image V as the extra channel. gweight(v) -> [N] scales
        each Gaussian's gradients (cfg.gaussian_weighting)."""
        p = self.tr.params
        m = p["labels"] == oid
        sub = {k: v[m] for k, v in p.items()}
        if gweight is not None and self.cfg.gaussian_weighting:
            sub = scale_gaussian_grads(sub, gweight(sub["visibility"].detach()), self.tr.trainable)
        dev = self.tr.device
        return render(sub, vms.to(dev), Ks.to(dev), size, size, sh_degree=sh_degree, background=background,
                      extra=sub["visibility"].detach()[:, None], backend=self.tr.cfg.train.backend)

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
        out = self.render_alone(oid, vms, Ks, c.geometry_render, gweight=geometry_weight)
        x = torch.cat([out.normals, out.alpha], -1).permute(0, 3, 1, 2)  # [B,4,H,W]
        z = F.interpolate(x, size=(c.geometry_latent, c.geometry_latent), mode="bilinear", align_corners=False)
        w = None
        if c.pixel_weighting:
            w = geometry_weight(_on_grid(out.extra, z).clamp(0, 1))
        t_range = timestep_range(c.geo_t_start, c.geo_t_end, progress)
        loss = c.sds_geometry_lambda * self.g.sds_loss(z, self.prompts[oid], t_range, w, generator=self.gen)
        return {"sds_geo": loss}

    def appearance_sds(self, progress: float) -> Dict[str, Tensor]:
        c = self.cfg
        oid = self.objects[self._pick() % len(self.objects)]
        vms, Ks = self.cameras(oid, c.views_per_step, c.appearance_res, 1.0)
        out = self.render_alone(oid, vms, Ks, c.appearance_res,
                                gweight=lambda v: appearance_weight(v, c.appearance_vis_thresh),
                                sh_degree=self.tr.cfg.model.sh_degree, background=self.tr.bg)
        z = self.g.encode_images(out.rgb.clamp(0, 1))
        w = None
        if c.pixel_weighting:
            w = appearance_weight(_on_grid(out.extra, z), c.appearance_vis_thresh)
        loss = c.sds_appearance_lambda * self.g.sds_loss(z, self.prompts[oid], c.app_t, w, generator=self.gen)
        return {"sds_app": loss}

    # ------------------------------------------------------------------ stages
    def _run_stage(self, keys, start: int, iters: int, label: str, sds, progress: bool, ckpt_path,
                   rgb_weight: float = 1.0) -> float:
        """Train `keys` from global step `start` for `iters` steps with the SDS term sds(progress in [0,1])
        added to the reconstruction losses; visibility is recomputed first. Returns seconds spent."""
        import time

        tr = self.tr
        t0 = time.time()
        tr.set_trainable(keys)
        self.refresh_visibility()
        tr.fit(start + iters, progress=progress, ckpt_path=ckpt_path, stage=label,
               step_fn=lambda gen: tr.train_step(gen, extra_losses=lambda: sds((tr.step - start) / max(1, iters)),
                                                 densify=False, rgb_weight=rgb_weight))
        return time.time() - t0

    def run_geometry(self, progress: bool = True, ckpt_path=None) -> float:
        """Stage 2 up to global step iterations + geometry_iters. Returns seconds spent."""
        c = self.cfg
        if c.geometry_iters <= 0 or not self.geo_ids:
            return 0.0
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

    def run(self, progress: bool = True, ckpt_path=None) -> Dict[str, float]:
        """Stages 2 and 3 after reconstruction (global steps continue; a resumed run skips what is done)."""
        times = {"geometry_prior_s": self.run_geometry(progress, ckpt_path),
                 "appearance_prior_s": self.run_appearance(progress, ckpt_path)}
        self.tr.set_trainable(tuple(self.tr.optimizers))
        self.refresh_visibility()
        return times
