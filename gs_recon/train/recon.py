"""Stage 1, reconstruction: fit labeled Gaussians to the training photos and instance masks.

Losses: (1-l) L1 + l D-SSIM, per-object mask loss, optional depth/normal priors, scale regulariser.
Densification: train/strategy.py (gsplat's DefaultStrategy on the params dict, labels ride along, plus the cap).
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import Tensor

from ..config import Config
from ..data.scene import Scene
from ..eval.metrics import psnr, psnr_tensor, ssim
from ..gaussians.init import initial_points, vote_labels
from ..gaussians.model import PARAM_KEYS, create_params
from ..render.api import RenderOutput, normals_from_depth, render
from .checkpoint import (
    load_checkpoint,
    merge_states,
    save_checkpoint,
    shard_bounds,
    shard_state,
    to_cpu,
)
from .optim import adam_step
from .losses import (continuous, depth_normal_loss, depth_prior_loss, flatten_loss, mask_loss, normal_prior_loss,
                     rgb_loss, scale_reg, sparse_depth_loss, sparse_depth_targets)
from .strategy import Densifier

log = logging.getLogger("gs_recon")


def _take(t: Tensor, idx: List[int]) -> Tensor:
    """t[idx] along dim 0 without a host-to-device index copy for the usual one-view batch (a view)."""
    if len(idx) == 1:
        return t[idx[0]:idx[0] + 1]
    return t[torch.tensor(idx, device=t.device)]


def metrics_to_floats(pending: List[Dict]) -> List[Dict[str, float]]:
    """Steps' metrics (0-d tensors or floats) -> floats, with one device-to-host transfer for all of them."""
    vals = [v for m in pending for v in m.values() if isinstance(v, Tensor)]
    flat = iter(torch.stack([v.float() for v in vals]).tolist() if vals else [])
    return [{k: (next(flat) if isinstance(v, Tensor) else float(v)) for k, v in m.items()} for m in pending]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Owns params, optimizers and the densification strategy for one scene."""

    def __init__(self, scene: Scene, cfg: Config, out_dir: Optional[Path] = None):
        self.scene, self.cfg = scene, cfg
        self.out_dir = Path(out_dir) if out_dir else None
        self.device = pick_device(cfg.train.device)
        self.step = 0
        self.scene_scale = 1.1 * float(scene.camera_centres().norm(dim=1).max().clamp(min=1e-3))
        from .. import dist

        # --distributed under torchrun: this rank owns a block of the Gaussians during stage 1
        self.sharded = bool(cfg.train.distributed) and dist.active()
        torch.manual_seed(cfg.train.seed)
        pts, cols, labs = initial_points(scene, cfg.model, seed=cfg.train.seed)  # the same on every rank
        if self.sharded:
            lo, hi = shard_bounds(len(pts), dist.rank(), dist.world())
            pts, cols, labs = pts[lo:hi], cols[lo:hi], labs[lo:hi]
        self.params = create_params(pts, cols, labs, cfg.model.sh_degree, cfg.model.init_opacity,
                                    cfg.model.init_scale, self.device)
        self.set_trainable(PARAM_KEYS)
        self._make_optimizers()
        self.densifier = Densifier(cfg.train, self.scene_scale)
        self.densifier.check(self.params, self.optimizers)
        self.nan_events = 0
        self._good: Optional[Dict] = None
        self._gen: Optional[torch.Generator] = None  # fit()'s view sampler while it runs (checkpointed)
        self._gen_resume: Optional[Tensor] = None  # a loaded sampler state the next fit() continues from
        self.extra: Dict[str, Any] = {}  # checkpointed state of later stages (vis. grid, floor, room, inpainting)
        # everything a step reads, resident on the training device (no host-to-device copy per step)
        self.gt = scene.images.to(self.device)
        self.bg = scene.background_color.to(self.device)
        self.viewmats, self.Ks = scene.viewmats.to(self.device), scene.Ks.to(self.device)
        on_dev = lambda x: x.to(self.device) if x is not None else None  # noqa: E731
        self.instance, self.depth_prior, self.normal_prior = (
            on_dev(scene.instance), on_dev(scene.depth_prior), on_dev(scene.normal_prior))
        # training view index -> the SfM points it sees (pixels, depths), for train.sfm_depth_lambda
        self.sfm_targets: Optional[Dict[int, tuple]] = None
        if cfg.train.sfm_depth_lambda > 0 and scene.points is not None and len(scene.points):
            tr = scene.train_idx
            vm, K = scene.viewmats[tr], scene.Ks[tr]
            inst = scene.instance[tr] if scene.instance is not None else None
            # the points' labels, as initialisation votes them
            labels = vote_labels(scene.points, inst, vm, K, scene.n_labels) if inst is not None else None
            targets = sparse_depth_targets(scene.points, vm, K, scene.width, scene.height, labels=labels, instance=inst)
            self.sfm_targets = {i: (pix.to(self.device), z.to(self.device)) for i, (pix, z) in zip(tr, targets)}
        # per-view affine maps of the monocular depth priors [n_views,2] (train.depth_align), None: fitted per step
        self.depth_affine: Optional[Tensor] = None
        self.depth_alignment: Optional[Dict[str, Any]] = None  # what the alignment found (the manifest's)
        if self.depth_prior is not None and cfg.train.depth_lambda > 0 and cfg.train.depth_align:
            self._align_depth_priors(scene)
        self.history: List[Dict[str, float]] = []
        self.extra_keys: tuple = ()  # the last step's extra_losses() keys (the prior stages' terms), for fit()'s bar
        # called as monitor(trainer, stage, metrics, total) after every step of fit() (the live viewer)
        self.monitor: Optional[Callable[["Trainer", str, Dict[str, float], int], None]] = None

    # ------------------------------------------------------------------ setup
    def _align_depth_priors(self, scene) -> None:
        """train.depth_align: the training views' depth priors aligned to each other once (depth_align.py);
        the maps are held when the views agree (median relative residual <= train.depth_align_max_residual),
        else the per-step fit stays, with a note of why."""
        from .depth_align import align_depth_priors

        t0 = time.time()
        tr = scene.train_idx
        res = align_depth_priors(scene.depth_prior[tr], scene.viewmats[tr], scene.Ks[tr])
        info: Dict[str, Any] = {"seconds": round(time.time() - t0, 2), "views": len(tr)}
        if res is not None:
            info["residual"] = round(res.residual, 5)
        limit = self.cfg.train.depth_align_max_residual
        if res is None or not res.residual <= limit:
            info["used"] = False
            if res is None:
                log.warning("depth priors: too little overlap between the training views to align them; fitting "
                            "them to the render every step instead")
            else:
                log.info("depth priors: the training views agree only to %.1f%% (train.depth_align_max_residual "
                         "%.1f%%); fitting them to the render every step instead, the better choice for priors "
                         "this inexact", 100 * res.residual, 100 * limit)
        else:
            aff = torch.full((scene.viewmats.shape[0], 2), float("nan"), dtype=torch.float32)
            aff[tr] = res.affine.float().cpu()
            self.depth_affine = aff.to(self.device)
            info.update(used=True, pixels=res.pixels,
                        scale=[round(float(x), 5) for x in res.affine[:, 0]],
                        shift=[round(float(x), 5) for x in res.affine[:, 1]])
            log.info("depth priors aligned across %d views in %.1f s (median residual %.2f%%)", len(tr),
                     info["seconds"], 100 * res.residual)
        self.depth_alignment = info

    def _make_optimizers(self):
        t = self.cfg.train
        lrs = {"means": t.lr_means * self.scene_scale, "scales": t.lr_scales, "quats": t.lr_quats,
               "opacities": t.lr_opacities, "sh0": t.lr_sh0, "shN": t.lr_shN}
        # one kernel per parameter instead of a chain of elementwise ops (CPU too, since torch 2.4: 5x faster)
        fused = self.device.type in ("cuda", "cpu")
        self.optimizers = {
            k: torch.optim.Adam([{"params": self.params[k], "lr": lrs[k], "name": k}], eps=1e-15, fused=fused)
            for k in PARAM_KEYS
        }
        self.means_gamma = 0.01 ** (1.0 / max(1, t.iterations))  # 3DGS: means lr decays to 1% over training

    def start_stage(self, keys, lrs: Dict[str, float]) -> None:
        """A new training stage: only `keys` train, from fresh Adam moments, at learning rates `lrs`
        (key -> lr; others keep theirs). Stage 1's decayed means LR would otherwise stay at 1%."""
        self.set_trainable(keys)
        for k in keys:
            o = self.optimizers[k]
            o.state.clear()
            if k in lrs:
                for g in o.param_groups:
                    g["lr"] = lrs[k]

    def gaussians_replaced(self) -> None:
        """self.params gained or lost Gaussians outside an optimizer (room completion): fresh optimizers and
        densification state for the new count, and a new good snapshot."""
        trainable = getattr(self, "trainable", set(PARAM_KEYS))
        lrs = {k: o.param_groups[0]["lr"] for k, o in self.optimizers.items()}  # e.g. stage 1's decayed means LR
        self._make_optimizers()
        for k, o in self.optimizers.items():
            o.param_groups[0]["lr"] = lrs[k]
        self.densifier.reset()
        self.set_trainable(trainable)
        self.snapshot_good()

    def set_trainable(self, keys) -> None:
        """Only `keys` receive gradients and optimizer steps (stages switch this)."""
        for k in PARAM_KEYS:
            self.params[k].requires_grad_(k in keys)
        self.trainable = set(keys)

    # ------------------------------------------------------------------ render
    def sh_degree_now(self) -> int:
        m = self.cfg.model
        return min(m.sh_degree, self.step // max(1, m.sh_degree_interval))

    def render_views(self, idx: List[int], mask: Optional[Tensor] = None, sh_degree: Optional[int] = None,
                     extra: Optional[Tensor] = None, depth: bool = True, normals: bool = True) -> RenderOutput:
        """Render training views idx; depth / normals as in render() (the step asks only for what it reads)."""
        s = self.scene
        sh = self.sh_degree_now() if sh_degree is None else sh_degree
        vm, K = _take(self.viewmats, idx), _take(self.Ks, idx)
        if self.sharded:  # every rank renders its own views with all ranks' Gaussians
            from ..render.sharded import render_sharded

            assert mask is None and extra is None, "sharded rendering: whole scene, no extra channels"
            return render_sharded(self.params, vm, K, s.width, s.height, sh_degree=sh, background=self.bg,
                                  n_labels=s.n_labels, backend=self.cfg.train.backend)
        return render(self.params, vm, K, s.width, s.height, sh_degree=sh, background=self.bg,
                      n_labels=s.n_labels, mask=mask, extra=extra, backend=self.cfg.train.backend, depth=depth,
                      normals=normals)

    # ------------------------------------------------------------------ losses
    def _surface_on(self) -> bool:
        """Depth-normal consistency is on from geometry_from of stage 1's iterations (and in later stages)."""
        t = self.cfg.train
        return t.depth_normal_lambda > 0 and self.step >= t.geometry_from * t.iterations

    def _priors(self):
        """(depth, normals): whether the monocular depth / normal prior losses are on."""
        t = self.cfg.train
        return (self.depth_prior is not None and t.depth_lambda > 0,
                self.normal_prior is not None and t.normal_lambda > 0)

    def _needs(self):
        """(depth, normals): the feature channels the reconstruction losses read."""
        surface = self._surface_on()
        use_depth, use_normals = self._priors()
        return surface or use_depth or self.sfm_targets is not None, surface or use_normals

    def recon_loss(self, idx: List[int], out: RenderOutput) -> Dict[str, Tensor]:
        t = self.cfg.train
        gt = _take(self.gt, idx)
        losses = {"rgb": rgb_loss(out.rgb, gt, t.ssim_lambda)}
        if self.instance is not None and t.mask_lambda > 0:
            losses["mask"] = t.mask_lambda * mask_loss(out.object_alpha, _take(self.instance, idx))
        use_depth, use_normals = self._priors()
        fg = out.alpha[..., 0] > 0.5
        if use_depth:
            aff = _take(self.depth_affine, idx) if self.depth_affine is not None else None
            losses["depth"] = t.depth_lambda * depth_prior_loss(out.depth[..., 0], _take(self.depth_prior, idx), fg, aff)
        if use_normals:
            losses["normal"] = t.normal_lambda * normal_prior_loss(out.normals, _take(self.normal_prior, idx), fg)
        # surface terms, on the background (the objects' closed meshes come from carving): depth-normal
        # consistency where the background covers the pixel and the depth is continuous, flattening of
        # the background's Gaussians
        if self._surface_on():
            dn = normals_from_depth(out.depth, _take(self.Ks, idx))
            w = out.object_alpha[..., 0] * continuous(out.depth)
            losses["depth_normal"] = t.depth_normal_lambda * depth_normal_loss(out.normals, dn, w)
        if self.sfm_targets is not None:
            # background pixels only: at an object's edge the expected depth mixes the object's Gaussians in,
            # and pulling it to the wall behind erodes the object (box F@5cm 0.94 -> 0.76 on prims3)
            free = out.object_alpha[..., 1:].sum(-1).detach() < 0.05
            losses["sfm_depth"] = t.sfm_depth_lambda * sparse_depth_loss(
                out.depth, [self.sfm_targets[i] for i in idx], where=free)
        if t.flatten_lambda > 0:
            bg = self.params["labels"] == 0
            losses["flatten"] = t.flatten_lambda * flatten_loss(self.params["scales"][bg], self.scene_scale)
        if t.scale_reg_lambda > 0:
            losses["scale"] = t.scale_reg_lambda * scale_reg(self.params["scales"], t.scale_reg_max * self.scene_scale)
        return losses

    # ------------------------------------------------------------------ step
    def train_step(self, gen: torch.Generator, extra_losses: Optional[Callable[[], Dict[str, Tensor]]] = None,
                   densify: bool = True, rgb_weight: float = 1.0) -> Dict[str, Tensor]:
        """One step: reconstruction losses on a random training view, plus `extra_losses()` (the prior
        stages' SDS terms), backward, optimizer steps for the trainable keys, and (when `densify`)
        gsplat's densification. A non-finite loss or gradient skips the step.

        Returns the step's metrics (loss, psnr and each loss term) as 0-d tensors on the training device:
        nothing here waits for the GPU except one combined finite check (loss and every gradient in one
        flag). fit() turns them into floats on logging steps. Parameters that the update made non-finite
        are caught by the next step's check (their loss is non-finite) or before the next good snapshot,
        and the last good state is restored.

        When ranks communicate in the step (sharded stage 1, data-parallel prior stages) the skip/restore
        decisions are collective: one rank's bad step is every rank's, so none waits in a collective
        the others skipped."""
        from .. import dist

        t = self.cfg.train
        together = self.sharded or (not densify and dist.active())
        tr = self.scene.train_idx
        idx = [tr[int(i)] for i in torch.randint(0, len(tr), (min(t.batch_size, len(tr)),), generator=gen)]
        depth, normals = self._needs()
        out = self.render_views(idx, depth=depth, normals=normals)
        if densify:
            self.densifier.pre_backward(self.params, self.optimizers, self.step, out.meta)
        losses = self.recon_loss(idx, out)
        losses["rgb"] = rgb_weight * losses["rgb"]
        if extra_losses is not None:
            extra = extra_losses()
            self.extra_keys = tuple(extra)  # shown on the progress bar by fit()
            losses.update(extra)
        loss = sum(losses.values())
        loss.backward()
        if not densify:  # prior stages: data-parallel across ranks (a no-op in a single process)
            dist.average_grads([self.params[k] for k in sorted(self.trainable)])
        grads = {k: self.params[k].grad for k in sorted(self.trainable) if self.params[k].grad is not None}
        # one flag for the loss and every gradient: a NaN or Inf anywhere makes its norm non-finite
        norms = torch._foreach_norm(list(grads.values())) if grads else []
        ok = torch.isfinite(torch.stack([loss.detach().float()] + [n.float() for n in norms])).all()
        if dist.any_rank(not bool(ok), together):  # the step's one host sync
            if not torch.isfinite(loss):
                return self._skip("non-finite loss")
            bad = [k for k, g in grads.items() if not torch.isfinite(g).all()]
            return self._skip(f"non-finite gradient in {', '.join(bad) or 'another rank'}")
        adam_step(self.optimizers, [k for k in self.optimizers if k in self.trainable])  # and clears the grads
        if densify:
            # exponential decay of the means' LR (what torch's ExponentialLR does, without its wrapper on step())
            self.optimizers["means"].param_groups[0]["lr"] *= self.means_gamma
            self.densifier.post_backward(self.params, self.optimizers, self.step, out.meta, self.cap())
        self.step += 1
        if self.step % self.GOOD_EVERY == 0:
            bad = [k for k in self.trainable if not torch.isfinite(self.params[k]).all()]
            if bad:  # local: a shard or an identical data-parallel copy goes back on its own
                self._restore_good(f"non-finite parameters in {', '.join(bad)} after the update")
                return {"loss": float("nan")}
            self.snapshot_good()
        with torch.no_grad():
            p = psnr_tensor(out.rgb.detach(), _take(self.gt, idx))
        return {"loss": loss.detach(), "psnr": p, **{k: v.detach() for k, v in losses.items()}}

    GOOD_EVERY = 50  # steps between in-memory snapshots of the last good state (NaN guard)
    LOG_EVERY = 10  # steps between reads of the metrics (progress bar, history): the only other host syncs

    def snapshot_good(self) -> None:
        """The NaN guard's in-memory copy of the current state (also after the Gaussians changed in number)."""
        self._good = copy.deepcopy(self.state_dict())  # deep: state_dict() shares storage on CPU

    def _skip(self, why: str) -> Dict[str, float]:
        """NaN guard, first line: drop this step's gradients, change nothing, log it."""
        log.warning("step %d: %s; step skipped", self.step, why)
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)
        bad = [k for k in PARAM_KEYS if not torch.isfinite(self.params[k]).all()]
        if bad:  # the parameters themselves went bad (e.g. by an earlier in-place edit): go back
            self._restore_good(f"non-finite parameters in {', '.join(bad)}")
        else:
            self.nan_events += 1
        self.step += 1
        return {"loss": float("nan")}

    def _restore_good(self, why: str) -> None:
        """NaN guard, second line: the update itself produced non-finite values; go back to the last good
        in-memory snapshot (taken every GOOD_EVERY steps) and keep counting steps from here."""
        step = self.step
        if getattr(self, "_good", None) is None:
            raise RuntimeError(f"step {step}: {why} and no good state to restore yet")
        self._load_state(copy.deepcopy(self._good))
        self.set_trainable(self.trainable)
        self.step = step
        self.nan_events += 1
        log.warning("step %d: %s; restored the state of step %d", step, why, int(self._good["step"]))

    def cap(self) -> int:
        """The most Gaussians this process may hold (train.cap_max; per shard when stage 1 is sharded)."""
        from .. import dist

        return self.cfg.train.cap_max // (dist.world() if self.sharded else 1)

    # ------------------------------------------------------------------ loop
    def fit(self, iterations: Optional[int] = None, progress: bool = True, ckpt_path: Optional[Path] = None,
            stage: str = "reconstruction", step_fn: Optional[Callable[[torch.Generator], Dict[str, float]]] = None
            ) -> None:
        """Run steps until the global step count reaches `iterations` (a total: stages continue the count).
        step_fn(gen) does one step (default: reconstruction). Ctrl-C saves a checkpoint and re-raises."""
        from ..progress import make_progress

        total = self.cfg.train.iterations if iterations is None else iterations
        from .. import dist

        # each rank its own view sequence (the same one in a single process); a run resumed from a
        # checkpoint written inside fit() continues the interrupted sequence, so it is bit-identical
        gen = torch.Generator().manual_seed(self.cfg.train.seed + self.step + 7919 * dist.rank())
        if self._gen_resume is not None:
            gen.set_state(self._gen_resume)
            self._gen_resume = None
        self._gen = gen
        every = self.cfg.train.checkpoint_every
        t0, s0 = time.time(), self.step
        pending: List[Dict] = []  # this stretch's metrics, still on the device: read every LOG_EVERY steps
        with make_progress(stage, progress) as bar:
            task = bar.add_task(stage, total=total, completed=self.step, info="")
            try:
                while self.step < total:
                    pending.append((step_fn or self.train_step)(gen))
                    log_now = self.step % self.LOG_EVERY == 0 or self.step == total
                    if log_now:
                        self.history.extend(metrics_to_floats(pending))
                        pending.clear()
                    m = self.history[-1] if log_now else pending[-1]
                    if self.monitor is not None:  # the live viewer (gs_recon/viewer/live.py)
                        self.monitor(self, stage, m, total)
                    if log_now:
                        rate = (self.step - s0) / max(time.time() - t0, 1e-6)
                        info = (f"loss {m['loss']:.4f}  PSNR {m.get('psnr', float('nan')):5.2f}  "
                                + "".join(f"{k} {m[k]:.3g}  " for k in self.extra_keys if k in m)
                                + f"N {self.params['means'].shape[0]}  {rate:5.1f} it/s")
                        bar.update(task, completed=self.step, info=info)
                    if ckpt_path and every > 0 and self.step % every == 0:
                        self.save(ckpt_path)
            except KeyboardInterrupt:
                self._interrupted_save(ckpt_path)
                raise
            finally:
                self.history.extend(metrics_to_floats(pending))
                self._gen = None

    def _interrupted_save(self, ckpt_path: Optional[Path]) -> None:
        """Ctrl-C inside fit(): write a checkpoint (single process) and say how to go on."""
        if self.sharded:  # a checkpoint would need every rank, and they are going down too
            log.warning("interrupted at step %d; rerun with --resume to continue from the last "
                        "periodic checkpoint (train.checkpoint_every)", self.step)
        elif ckpt_path:
            self.save(ckpt_path)
            log.warning("interrupted at step %d; checkpoint saved to %s (rerun with --resume)", self.step, ckpt_path)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict:
        """Everything a resumed run needs to continue bit-identically: parameters, Adam moments and LRs (the
        means' decayed LR is its optimizer's), densification statistics, and (single process) the random state:
        fit()'s view sampler and torch's global generator (gsplat's splits draw from it)."""
        st = {
            "step": self.step,
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optim": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy": {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in self.densifier.state.items()},
        }
        if self.extra:
            st["extra"] = self.extra
        if not self.sharded:  # per-rank streams: a merged checkpoint keeps none (resume re-seeds)
            st["rng"] = {"torch": torch.get_rng_state(),
                         "sampler": self._gen.get_state() if self._gen is not None else torch.zeros(0, dtype=torch.uint8)}
        return st

    def save(self, path: Path) -> None:
        """Rank 0 writes. Sharded: a collective that merges every rank's block into one full state (the
        same file a single process writes, so a run may resume with any number of ranks)."""
        from .. import dist

        if self.sharded:
            states = dist.gather_object(to_cpu(self.state_dict()))
            if dist.is_main():
                save_checkpoint(path, merge_states(states))
        elif dist.is_main():  # one writer; every rank holds the same state
            save_checkpoint(path, self.state_dict())

    def load(self, path: Path) -> None:
        """Load a full checkpoint (sharded: this rank's block of it)."""
        from .. import dist

        ck = load_checkpoint(path)
        rng = ck.pop("rng", None)
        if self.sharded:
            ck = shard_state(ck, dist.rank(), dist.world())
        self._load_state(ck)
        if rng is not None and not self.sharded:
            torch.set_rng_state(rng["torch"])
            self._gen_resume = rng["sampler"] if rng["sampler"].numel() else None

    def unshard(self) -> None:
        """End of sharded stage 1: every rank gathers all blocks and holds the whole scene from here on."""
        from .. import dist

        if not self.sharded:
            return
        full = merge_states(dist.gather_object(to_cpu(self.state_dict()), all_ranks=True))
        self.sharded = False
        trainable = self.trainable
        self._load_state(full)
        self.set_trainable(trainable)
        self._good = copy.deepcopy(self.state_dict())

    def _load_state(self, ck: Dict) -> None:
        for k, v in ck["params"].items():
            self.params[k] = torch.nn.Parameter(v.to(self.device), requires_grad=self.params[k].requires_grad if k in self.params else False)
        self._make_optimizers()
        for k, o in self.optimizers.items():
            o.load_state_dict(ck["optim"][k])
        self.densifier.state = {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in ck["strategy"].items()}
        self.extra = dict(ck.get("extra", {}))
        self.step = int(ck["step"])

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, idx: List[int]) -> Dict[str, float]:
        """Mean PSNR / SSIM over views `idx`, rendered one at a time at the full SH degree, clamped to [0, 1]
        as the saved images are and as eval/evaluate.py scores them (scene.json and eval.json agree)."""
        if not idx:
            return {}
        ps, ss = [], []
        for i in idx:
            out = self.render_views([i], sh_degree=self.cfg.model.sh_degree if self.step >= self.cfg.train.iterations else None)
            rgb = out.rgb.clamp(0, 1)
            ps.append(psnr(rgb, self.gt[[i]]))
            ss.append(float(ssim(rgb, self.gt[[i]])))
        return {"psnr": sum(ps) / len(ps), "ssim": sum(ss) / len(ss), "n_views": len(idx)}
