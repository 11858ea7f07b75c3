"""The whole run for one scene: load, reconstruct (and later stages), evaluate, export, manifest."""
from __future__ import annotations

import gc
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Dict

import torch

from .config import Config
from .errors import SceneError
from .data.scene import load_scene
from .export.scene_export import export_splats, save_png
from .run.manifest import write_manifest
from .heap import gc_paused
from .io_utils import check_writable

log = logging.getLogger("gs_recon")


def default_out_dir(scene_dir: Path) -> Path:
    return Path("outputs") / Path(scene_dir).resolve().name / datetime.now().strftime("%Y%m%d-%H%M%S")


def run(scene_dir: str | Path, cfg: Config, resume: bool = False, progress: bool = True,
        keep_viewer: bool = False) -> Dict:
    """Reconstruct SCENE_DIR with `cfg`. Returns the manifest written to OUT_DIR/scene.json (plus "out_dir").

    With the live viewer on and `keep_viewer`, it is left serving and returned under "live_viewer" (not
    written): the caller hands its server to the finished-run viewer. Otherwise it is stopped here."""
    from . import dist

    t_start = time.time()
    try:
        if cfg.guidance not in ("none", "sd"):
            raise SceneError(f"--guidance {cfg.guidance}: unknown; use sd (diffusion prior) or none (reconstruction "
                             f"only)")
        with gc_paused(freeze=True):  # setup only grows the heap (gs_recon/heap.py)
            scene, trainer, guidance, inpainter, out = _set_up(scene_dir, cfg)
        live = open_live_viewer(scene, cfg) if dist.is_main() else None
        try:
            manifest = _train_and_write(scene_dir, scene, cfg, out, trainer, guidance, resume, progress, live, t_start,
                                        inpainter)
        except BaseException:
            if live is not None:
                live.stop()
            raise
        if live is not None:
            if keep_viewer:
                manifest["live_viewer"] = live
            else:
                live.stop()
        return manifest
    finally:
        gc.unfreeze()  # nothing is left frozen: what setup (and the train command's imports) froze is scanned again


def _set_up(scene_dir, cfg: Config):
    """The scene, the prior's models (first: a missing model fails before any training or output), the process
    group, the output folder and the Trainer with its initial Gaussians. Returns (scene, trainer, guidance,
    inpainter, out)."""
    from . import dist
    from .train.recon import Trainer, pick_device

    scene = load_scene(scene_dir, cfg.data)
    device = pick_device(cfg.train.device)
    guidance = inpainter = None
    if cfg.guidance == "sd":
        from .prior.models import load_guidance

        p = cfg.prior
        guidance = load_guidance(p.model, p.guidance_scale, device, p.fp16)
        if p.inpaint_iters > 0:
            from .prior.inpaint import load_inpainter

            inpainter = load_inpainter(p.inpaint_model, device, p.fp16, p.inpaint_guidance, p.inpaint_steps)
    dist.init_from_env(device)
    out = Path(cfg.output.out_dir) if cfg.output.out_dir else default_out_dir(Path(scene_dir))
    out = Path(dist.broadcast_object(str(out)))  # one timestamped folder for all ranks
    if dist.is_main():
        check_writable(out)
    if cfg.train.distributed and not dist.active():
        log.warning("--distributed: a single process; run under torchrun --nproc_per_node=N to shard stage 1")
    return scene, Trainer(scene, cfg, out), guidance, inpainter, out


def open_live_viewer(scene, cfg: Config):
    """The live viewer (--viewer.enabled true) on rank 0, or None."""
    if not cfg.viewer.enabled:
        return None
    from .viewer.live import LiveViewer

    v = cfg.viewer
    live = LiveViewer(scene, v.host, v.port, v.refresh_every)
    log.warning("live viewer on %s (refreshes every %d steps)", live.url, live.refresh_every)
    return live


def _train_and_write(scene_dir, scene, cfg: Config, out: Path, trainer, guidance, resume: bool, progress: bool,
                     live, t_start: float, inpainter=None) -> Dict:
    """Stages, evaluation, exports, meshes and scene.json (rank 0); the other ranks return after training."""
    from . import dist

    main, sharded = dist.is_main(), trainer.sharded
    ckpt = out / "checkpoints" / "last.pt"
    timings = {"setup_s": time.time() - t_start}  # scene loading, the prior's models, the initial Gaussians
    t0 = time.time()
    if live is not None:
        trainer.monitor = live.update
    # stage 1 on rank 0 only, or on every rank's block of the Gaussians with --distributed (gs_recon/dist.py)
    if main or sharded:
        if resume:
            if main:
                for stale in out.rglob(".*.tmp"):  # left by a hard kill in the middle of an atomic write
                    stale.unlink()
            if sharded:
                dist.barrier()
            trainer.load(ckpt)
            log.info("resumed from %s at step %d", ckpt, trainer.step)
        trainer.fit(cfg.train.iterations, progress=progress and main, ckpt_path=ckpt)
        if sharded:
            n_block = trainer.params["means"].shape[0]
            trainer.unshard()  # from here on every rank holds the whole scene
            log.warning("rank %d of %d: stage 1 trained a block of %d Gaussians; %d in all", dist.rank(),
                        dist.world(), n_block, trainer.params["means"].shape[0])
        if "room" not in trainer.extra:  # once, at the end of stage 1 (a resumed run keeps the checkpoint's)
            from .train.room import complete_room

            t1 = time.time()
            trainer.extra["room"] = complete_room(trainer.params, scene, cfg.background)
            if trainer.extra["room"].get("added") or trainer.extra["room"].get("dropped"):
                trainer.gaussians_replaced()
            timings["room_s"] = time.time() - t1
        trainer.save(ckpt)
    dist.barrier()
    if not main and not sharded:
        trainer.load(ckpt)
    timings["reconstruction_s"] = time.time() - t0
    if guidance is not None:
        from .prior.stages import PriorStages

        stages = PriorStages(trainer, guidance, cfg.prior, inpainter)
        timings.update(stages.run(progress=progress and main, ckpt_path=ckpt))
        if dist.active():
            _check_ranks_agree(trainer.params, stages.history)
        trainer.save(ckpt)
    if not main:
        dist.barrier()
        return {"rank": dist.rank(), "out_dir": str(out)}

    t0 = time.time()
    metrics = {"train": trainer.evaluate(scene.train_idx[:: max(1, len(scene.train_idx) // 8)]),
               "test": trainer.evaluate(scene.test_idx)}
    if cfg.output.save_test_renders:
        with torch.no_grad():
            for i in scene.test_idx:
                r = trainer.render_views([i], sh_degree=cfg.model.sh_degree)
                save_png(out / "renders" / "test" / f"{Path(scene.image_names[i]).stem}.png", r.rgb[0])
    timings["eval_s"] = time.time() - t0
    t0 = time.time()
    entries = export_splats(trainer.params, scene, out, formats=["ply"] + ["splat"] * cfg.output.export_splat
                           + ["spz"] * cfg.output.export_spz)
    timings["export_s"] = time.time() - t0
    meshes = None
    if cfg.mesh.extract:
        from .export.meshes import extract_meshes

        if live is not None:
            live.finish("training done; **extracting meshes**")
        t0 = time.time()
        meshes = extract_meshes(trainer.params, scene, out, cfg.mesh, progress=progress,
                                room=trainer.extra.get("room"), room_views=cfg.background.mesh_views)
        timings["mesh_s"] = time.time() - t0
    timings["total_s"] = time.time() - t_start
    if live is not None:
        timings["viewer_s"] = live.seconds  # time the training loop spent in the live viewer
    try:
        import resource

        timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    except (ImportError, AttributeError):
        pass
    if torch.cuda.is_available():
        timings["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    manifest = {
        "scene": scene.name,
        "scene_dir": str(Path(scene_dir).resolve()),
        "source": scene.source,
        "world_from_internal": scene.world_from_internal.tolist(),
        **({"world_frame": scene.world_frame} if scene.world_frame else {}),
        **({"sfm": scene.sfm} if scene.sfm else {}),
        **({"mask_association": scene.association} if scene.association else {}),
        "up": scene.up.tolist(),
        "objects": entries,
        "meshes": meshes,
        "cameras": {"train": [scene.image_names[i] for i in scene.train_idx],
                    "test": [scene.image_names[i] for i in scene.test_idx],
                    "width": scene.width, "height": scene.height,
                    # every view in the input's world frame (the viewer opens at the first training view)
                    "names": list(scene.image_names),
                    "world_to_camera": [[round(float(x), 7) for x in vm.reshape(-1)] for vm in scene.viewmats_world()],
                    "K": [[round(float(x), 5) for x in k.reshape(-1)] for k in scene.Ks]},
        "config": cfg.to_dict(),
        "metrics": metrics,
        "timings": timings,
        "steps": trainer.step,
        # model-free room completion (train/room.py): planes, the room's box (internal frame), counts
        **({"room": trainer.extra["room"]} if "room" in trainer.extra else {}),
        # monocular depth priors aligned across the training views (train/depth_align.py): used?, residual, maps
        **({"depth_alignment": trainer.depth_alignment} if trainer.depth_alignment else {}),
    }
    write_manifest(out, manifest)
    manifest["out_dir"] = str(out)
    dist.barrier()
    return manifest


def _check_ranks_agree(params, picks) -> None:
    """After data-parallel prior stages every rank must hold the same Gaussians; log each rank's shard."""
    import torch.distributed as tdist

    from . import dist

    digest = torch.stack([params[k].detach().double().sum().cpu() for k in sorted(params)])
    gathered = [torch.zeros_like(digest) for _ in range(dist.world())]
    tdist.all_gather(gathered, digest)
    if not all(torch.allclose(g, gathered[0], rtol=1e-6, atol=1e-6) for g in gathered):
        raise RuntimeError("distributed prior stages: ranks hold different Gaussians")
    log.warning("rank %d of %d: prior steps took round-robin objects %s; all ranks agree",
                dist.rank(), dist.world(), sorted(set(picks)))
