"""Dataclass configs and YAML presets.

Every constant the method uses lives here with a comment saying where it comes from; the comments are
also the command line's help (gs_recon/config/options.py generates ``--key.sub value`` options from these
dataclasses with tyro, so a field's type, default and comment are what ``--help`` shows).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
import typing
from typing import Any, Dict, List, Literal, Optional

from ..errors import SceneError


@dataclass
class DataConfig:
    downscale: float = 1.0  # images are resized by 1/downscale on load
    white_background: bool = True  # RGBA images are composited on white (NeRF-synthetic convention) or black
    test_every: int = 8  # without split.json: every 8th image is a test view (mip-NeRF 360 convention)
    max_size: int = 1600  # images wider than this are downscaled further (3DGS does the same at 1600 px)
    # camera layout of SCENE_DIR: auto detects it (COLMAP sparse/, transforms.json, DP-Recon/MonoSDF scan
    # with cameras.npz, NeuS/DTU scan with cameras_sphere.npz; README "Input contract")
    format: Literal["auto", "colmap", "blender", "dprecon", "neus"] = "auto"
    # DP-Recon's center_crop_type: photos centre-cropped to a square and resized while cameras.npz is at the
    # original size (Replica). auto: when the principal point says so (cx > 0.75 W on a square photo)
    center_crop: Literal["auto", "on", "off"] = "auto"
    # photos in images/ and no cameras: estimate poses with pycolmap (SIFT, matching, incremental mapping)
    # into sparse/0 before loading (gs-recon pose does only this step)
    sfm: bool = True
    # instance/ ids: "consistent" = the same id is the same object in every photo (README input contract);
    # "per_image" = each photo numbered on its own (a segmenter run per photo): tied across views through
    # the SfM points (data/associate.py); objects.json is then ignored
    masks: Literal["consistent", "per_image"] = "consistent"
    # no instance/ folder: make per-photo masks with SAM (transformers; hub id such as facebook/sam-vit-base,
    # or a local folder; "tiny-random" = random weights, plumbing tests only), then masks = per_image
    segmenter: Optional[str] = None


@dataclass
class ModelConfig:
    sh_degree: int = 3  # max SH degree (0..3); raised by one every sh_degree_interval steps
    sh_degree_interval: int = 1000  # 3DGS schedule
    init_opacity: float = 0.1  # 3DGS initial opacity
    init_scale: float = 1.0  # multiplier on the mean 3-NN distance
    hull_points_per_object: int = 3000  # visual-hull samples per object when no SfM points cover it
    background_points: int = 4000  # random background points for scenes without SfM points
    hull_resolution: int = 64  # voxels per side of each object's carving grid


@dataclass
class TrainConfig:
    iterations: int = 7000  # stage-1 reconstruction steps (3DGS's 30k schedule shortened to its 7k checkpoint)
    batch_size: int = 1  # views per step
    lr_means: float = 1.6e-4  # 3DGS learning rates (means scaled by scene extent)
    lr_scales: float = 5e-3  # 3DGS
    lr_quats: float = 1e-3  # 3DGS
    lr_opacities: float = 5e-2  # 3DGS
    lr_sh0: float = 2.5e-3  # 3DGS (colour DC term)
    lr_shN: float = 2.5e-3 / 20  # 3DGS: higher SH bands at 1/20 of the DC rate
    ssim_lambda: float = 0.2  # 3DGS: (1 - 0.2) L1 + 0.2 D-SSIM
    mask_lambda: float = 0.1  # per-object alpha vs instance mask (BCE)
    # monocular priors, used whenever the scene has them (depth/, normal/, DP-Recon's *_depth/_normal.npy);
    # DP-Recon's weights: depth 0.1 (scale/shift-invariant), normal 0.05 on L1 + (1 - cos). 0 turns one off
    depth_lambda: float = 0.1
    normal_lambda: float = 0.05
    # align the monocular depth priors across the training views once, before training (train/depth_align.py:
    # the posed views fix each prior's scale and shift), and hold those maps fixed when the views agree within
    # depth_align_max_residual (median relative disagreement: ~ the priors' own error); else, and with false,
    # MonoSDF's per-step scale/shift fit to the render. Held maps beat the per-step fit only for accurate
    # priors (prims3: 2.4% error yes, 4.9% no; docs/BENCHMARKS.md)
    depth_align: bool = True
    depth_align_max_residual: float = 0.035
    scale_reg_lambda: float = 0.01  # penalise scales larger than scale_reg_max (fraction of scene extent)
    scale_reg_max: float = 0.05  # ours: 5% of the scene extent
    # surface terms on the background (docs/BENCHMARKS.md, "Background benchmark", has their ablation):
    # flatten pulls each background Gaussian's shortest axis to zero (discs, as 2DGS / PGSR); depth_normal is
    # 2DGS's depth-normal consistency where the background covers a pixel, from geometry_from of the
    # iterations on (2DGS: 7k of 30k)
    flatten_lambda: float = 0.0
    depth_normal_lambda: float = 0.0
    geometry_from: float = 0.3
    # sparse SfM depth (DS-NeRF, depth-regularised 3DGS): rendered depth at the SfM points' pixels vs their
    # depths (COLMAP scenes: the points the z-buffer keeps per view); relative L1, capped at 20% per point
    sfm_depth_lambda: float = 0.0
    # densification (gsplat DefaultStrategy); iteration fields are scaled for short runs
    refine_start_iter: int = 500  # 3DGS / gsplat DefaultStrategy
    refine_stop_iter: int = 15000  # 3DGS / gsplat DefaultStrategy
    refine_every: int = 100  # 3DGS / gsplat DefaultStrategy
    reset_every: int = 3000  # opacity reset period (3DGS / gsplat DefaultStrategy)
    grow_grad2d: float = 0.0002  # screen-space gradient threshold for clone/split (3DGS)
    prune_opa: float = 0.005  # prune below this opacity (3DGS)
    cap_max: int = 1_000_000  # hard cap on Gaussian count (after growth, the lowest-opacity ones are pruned)
    checkpoint_every: int = 1000  # steps between checkpoints (a hard kill loses at most this many)
    seed: int = 0  # seeds torch, the view sampler and the prior's noise (runs are reproducible)
    backend: Literal["auto", "cpu", "gsplat"] = "auto"  # auto: gsplat on CUDA, our C++ rasterizer on CPU
    # torchrun only: shard stage 1's Gaussians over the ranks (gsplat's distributed-rasterization scheme,
    # arXiv:2406.18533); off: rank 0 reconstructs alone and the ranks share only the prior stages
    distributed: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available


@dataclass
class OutputConfig:
    out_dir: Optional[str] = None  # default outputs/<scene>/<timestamp>
    export_splat: bool = True  # also write antimatter15 .splat files beside the .ply
    export_spz: bool = True  # also write Niantic .spz (v3, ~10x smaller than .ply; SuperSplat, Spark, three.js)
    save_test_renders: bool = True  # write the test views' renders to RUN_DIR/renders/test/


@dataclass
class MeshConfig:
    extract: bool = True  # extract meshes automatically at the end of training
    resolution: int = 128  # voxels along the longest side of each object's box
    background_resolution: int = 192  # voxels along the background box's longest side
    trunc_voxels: float = 5.0  # 2DGS default: truncation ~5 voxels
    orbit_views: int = 24  # extra views around each object's box (two rings, 15 and 50 deg elevation)
    alpha_thresh: float = 0.5  # only pixels the object covers with alpha > 0.5 are fused
    box_pad: float = 0.1  # box padding, fraction of its size
    # objects: "closed" carves free space through the object-alone silhouettes and fills never-observed
    # voxels (watertight solids); "open" fuses only the surfaces the Gaussians render (what the Gaussians
    # did, nothing filled in: the benchmark's prior table uses it)
    object_mode: Literal["closed", "open"] = "closed"
    # closed objects: take the TSDF iso-level (0 to 0.9 of the truncation) whose solid matches the Gaussians'
    # silhouettes best; median depth sits a layer into the Gaussians, so level 0 shrinks every object
    # (demo: object silhouettes 11% smaller than the photos' at level 0; docs/BENCHMARKS.md)
    fit_silhouettes: bool = True
    # face budgets (quadric decimation after marching cubes; 0 keeps every face). 20k faces keep an object
    # within ~0.1% of its bbox diagonal of the full mesh (docs/BENCHMARKS.md) and unwrap in ~1 s at 1024 px;
    # the background is mostly large planes: 40k faces
    max_faces: int = 20000
    background_max_faces: int = 40000
    # UV texture: unwrap (below) + albedo baked from the Gaussians' renders (OBJ+MTL+PNG, textured glb);
    # sizes as DP-Recon (1024 objects, 2048 background). false: vertex colours only
    texture: bool = True
    texture_size: int = 1024
    background_texture_size: int = 2048
    # UV charts: "axis" (mesh/charts.py: faces grouped by the axis their smoothed normal points along and
    # projected onto its plane; 180-600 charts per 20k-face TSDF object) or "xatlas" (1,000-3,000 there).
    # Same textured renders (demo 27.76 -> 27.74 dB, real3 22.84 -> 22.83), unwrap 3.7-6.7x faster
    # (docs/BENCHMARKS.md "UV charts")
    unwrap: Literal["axis", "xatlas"] = "axis"
    # unwrap xatlas only: its chart optimisation passes (ChartOptions.max_iterations; xatlas's default is 1).
    # 0 grows the charts once and packs them: 2-5x faster unwrap for ~20% more charts, textured renders
    # unchanged (demo 28.81 -> 28.80 dB, real3 22.11 -> 22.12; docs/BENCHMARKS.md "Textured meshes")
    unwrap_iterations: int = 0


@dataclass
class PriorConfig:
    """The diffusion-prior stages (DP-Recon settings as defaults). See docs/PRIOR.md."""
    # hub id or local diffusers folder; "exemplar:DIR" the exemplar prior (DIR/<category>/*.obj, no weights);
    # "tiny-random" builds a tiny randomly initialised UNet/VAE/CLIP
    # from configs (tests and CPU plumbing only: it cannot add plausible content)
    model: str = "stabilityai/stable-diffusion-2-1-base"
    guidance_scale: float = 50.0  # classifier-free guidance (DreamFusion / DP-Recon)
    fp16: bool = True  # half precision UNet/VAE on GPU (always fp32 on CPU)
    geometry_iters: int = 2000  # stage 2 steps (after reconstruction)
    appearance_iters: int = 1000  # stage 3 steps
    views_per_step: int = 2  # novel views per SDS step
    geometry_render: int = 128  # object-alone normal+opacity render size, resized to the latent grid
    geometry_latent: int = 64  # the 4-channel render is used directly as a 64x64 latent (no VAE)
    appearance_res: int = 512  # RGB render size fed to the VAE
    geo_t_start: List[int] = field(default_factory=lambda: [200, 980])  # timestep range, held for ...
    geo_t_hold: float = 0.5  # ... this fraction of the stage, then annealed linearly ...
    geo_t_end: List[int] = field(default_factory=lambda: [20, 400])  # ... to this (geometry.yaml: 2500 of 5000)
    app_t: List[int] = field(default_factory=lambda: [20, 980])  # appearance-stage timestep range (DreamFusion)
    sds_geometry_lambda: float = 1.0e-3  # SDS loss weight next to the reconstruction losses
    sds_appearance_lambda: float = 1.0e-3  # as sds_geometry_lambda, for the appearance stage
    appearance_rgb_lambda: float = 10.0  # reconstruction RGB loss kept strong in stage 3
    appearance_vis_thresh: float = 0.3  # appearance SDS only where V < 0.3
    pixel_weighting: bool = True  # per-pixel SDS weights w(V) from the rendered visibility V (DP-Recon)
    none_vis_max: float = 20.0  # w(V) at V = 0 (geometry.yaml none_vis_region_max)
    vis_max: float = 0.1  # w(V) at V = 0.5+ is vis_max (2 - 2V) (geometry.yaml vis_region_max; paper: 1)
    gaussian_gate: float = 0.5  # > 0: Gaussians with v >= this get no SDS gradient (binary; ours; 0 = off)
    vis_grid_resolution: int = 48  # cells per side of each label's frozen visibility grid
    # means LR at each prior stage's start (x scene scale): 10% of 3DGS's initial 1.6e-4. Stage 1 decays it
    # to 1%, where 2000 Adam steps move a mean by ~3e-3 of the scene and SDS cannot move surfaces; at 100%
    # the geometry stage cost ~1 dB more test PSNR than at 10% in every variant (docs/PRIOR.md, measured)
    lr_means: float = 1.6e-5
    elevation: List[float] = field(default_factory=lambda: [5.0, 30.0])  # object cameras, degrees ...
    elevation_end: List[float] = field(default_factory=lambda: [5.0, 80.0])  # ... widening to this
    fovy: List[float] = field(default_factory=lambda: [40.0, 45.0])  # object cameras' vertical FoV, degrees (DP-Recon)
    fill: float = 0.8  # the object's longest side fills ~80% of the view
    background_fovy: List[float] = field(default_factory=lambda: [70.0, 85.0])  # background cameras' FoV, degrees
    background_geometry: bool = True  # background geometry SDS (never background appearance SDS)
    # background SDS cameras (gs_recon/prior/cameras.py): "dprecon" = DP-Recon's scene cameras (at a training
    # camera or the scene centre, looking at a random point of the unit ball, elevation up to +-90 degrees);
    # "outward" = from the training cameras, looking away from the scene centre (+-60 degrees, small pitch)
    background_cameras: Literal["dprecon", "outward"] = "dprecon"
    # background inpainting (DP-Recon's route for the unseen background; docs/PRIOR.md): after the appearance
    # stage, a ring of views from the training cameras' centroid (inpaint_views horizontal + down + up) renders
    # the background alone; where it is unseen (V < appearance_vis_thresh) or empty, an inpainting diffusion
    # model paints it once; then inpaint_iters steps fit the background's colours to those images there.
    # 0 iters = off (default: it needs a second model's weights, ~5 GB, and is unmeasured here)
    inpaint_model: str = "stabilityai/stable-diffusion-2-inpainting"  # hub id, local folder or "tiny-random"
    inpaint_iters: int = 0
    inpaint_views: int = 8
    inpaint_res: int = 512  # square views; a multiple of 8
    inpaint_steps: int = 25  # DDIM steps
    inpaint_guidance: float = 7.5  # classifier-free guidance of the inpainting model
    inpaint_lambda: float = 1.0  # L1 weight of the painted pixels next to the reconstruction losses
    # bounded densification in the geometry stage (ours; DP-Recon's SDF needs none): every densify_every steps,
    # an object's Gaussians inside its box with the largest mean SDS position gradients are cloned (small) or
    # split (large): at most densify_frac of its count each time, until densify_stop of the stage, under
    # train.cap_max. 0 = off
    densify_every: int = 50
    densify_frac: float = 0.05
    densify_stop: float = 0.8


@dataclass
class BackgroundConfig:
    # model-free room completion after stage 1 (gs_recon/train/room.py): the background's floor, walls and
    # ceiling found as planes (RANSAC), never-seen background Gaussians dropped, the unseen rest of the room
    # filled with flat Gaussians coloured by inpainting the photos' colours. auto: on when the background has
    # a floor (>= 10% of its opaque Gaussians) and a wall (>= 5%); on / off force it. Off by default: it
    # needs an accurate seen background to find the walls (with --train.sfm_depth_lambda 0.5 on the
    # background benchmark, prims3: completeness 34.5 -> 4.7 cm, 360-degree PSNR 27.63 -> 31.59 dB;
    # docs/BENCHMARKS.md, "Background benchmark"), and where an open side of the room ends is a guess
    completion: Literal["auto", "on", "off"] = "off"
    # move seen background Gaussians onto their plane and flatten them along its normal: costs 1.6 dB of
    # 360-degree test PSNR and lowers the seen F-score once sparse SfM depth is on (background benchmark)
    snap_seen: bool = False
    # with the completion: drop the background Gaussians no training view reaches (never trained: e.g. SfM
    # points where no training photo looked) and fill their cells like any other unseen cell (background
    # benchmark: -0.01 to +0.09 dB over keeping them now that its SfM points lie only where photos look; +0.18 to
    # +0.45 dB when they also covered the unseen room)
    drop_unseen: bool = True
    # with the completion: background Gaussians only one training view sees (the others together give < 1/4 of
    # its weight) move along that view's rays onto the room's floor, walls or ceiling behind them, grown with
    # the distance (nothing triangulates them: the few-view floaters in front of the cameras; background
    # benchmark: +0.28 / +0.09 / +0.79 dB of 360-degree test PSNR on prims3 / real3 / mixed5)
    one_view_to_room: bool = True
    grid: int = 64  # completion cells along the room's longest horizontal side
    plane_thresh: float = 0.03  # RANSAC inlier distance, as a fraction of the background's median distance to the cameras
    mesh_views: int = 8  # horizontal directions of the inward views that mesh a completed room (+ up and down)


@dataclass
class ViewerConfig:
    # serve the live viewer (viser) while training: the splats refresh as they train, the panel shows the
    # stage, step, loss and PSNR; when training ends the finished-run viewer takes over (README: overhead)
    enabled: bool = False
    host: str = "127.0.0.1"  # bind address (this machine only; 0.0.0.0 serves the network)
    port: int = 8080  # the next free port is taken when this one is busy
    refresh_every: int = 25  # training steps between splat refreshes (measured: README "Live viewer")
    keep_open: bool = True  # after training, serve the finished run (meshes too) until Ctrl-C


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    guidance: Literal["none", "sd"] = "none"  # sd: add the diffusion-prior stages (docs/PRIOR.md); none: reconstruction only

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# Keys earlier versions had: a run's saved scene.json or an old preset may still hold them. They are
# skipped with a warning when read from a file, and a clear error on the command line.
RETIRED = {
    "prior.gaussian_weighting": "the per-Gaussian SDS weighting was replaced by per-pixel weighting only "
                                "(DP-Recon); --prior.gaussian_gate is the optional binary per-Gaussian gate",
    "prior.vis_count_thresh": "visibility for the prior is the best view's ratio, which no count threshold changes",
    "train.eval_every": "it was never read: the test views are evaluated once, at the end",
}


def _apply(obj, d: Dict[str, Any], prefix: str, source: str):
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for k, v in d.items():
        if f"{prefix}{k}" in RETIRED:
            warnings.warn(f"gs_recon: {source}: '{prefix}{k}' is retired and ignored ({RETIRED[prefix + k]})",
                          stacklevel=2)
            continue
        if k not in fields:
            raise SceneError(f"{source}: unknown config key '{prefix}{k}' (valid: {', '.join(sorted(fields))})")
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise SceneError(f"{source}: '{prefix}{k}' must be a mapping")
            _apply(cur, v, f"{prefix}{k}.", source)
        else:
            setattr(obj, k, _typed(v, typing.get_type_hints(type(obj))[k], f"{prefix}{k}", source))


def _typed(v: Any, typ: Any, key: str, source: str) -> Any:
    """A value read from YAML/JSON checked against its field's type (ints pass as floats, lists as lists)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    ok = v
    if origin is typing.Union and type(None) in args:  # Optional[X]
        return None if v is None else _typed(v, next(a for a in args if a is not type(None)), key, source)
    if origin is Literal:
        if v not in args:
            raise SceneError(f"{source}: '{key}' is {v!r}; choose one of {', '.join(map(str, args))}")
        return v
    if origin in (list, List):
        if isinstance(v, list):
            return [_typed(x, args[0], key, source) for x in v]
        ok = None
    elif typ is bool:
        ok = v if isinstance(v, bool) else None
    elif typ is int:
        ok = v if isinstance(v, int) and not isinstance(v, bool) else (
            int(v) if isinstance(v, float) and float(v).is_integer() else None)
    elif typ is float:
        ok = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                ok = float(v)
            except ValueError:
                pass
    elif typ is str:
        ok = v if isinstance(v, str) else None
    if ok is None:
        name = getattr(typ, "__name__", str(typ))
        raise SceneError(f"{source}: '{key}' expects {name}, got {v!r}")
    return ok


def config_from_dict(d: Dict[str, Any], source: str = "config") -> Config:
    """A Config from ``Config.to_dict()`` output (e.g. the copy saved in a run's scene.json)."""
    cfg = Config()
    _apply(cfg, d or {}, "", source)
    return cfg


MODEL_FORMS = ("a Hugging Face hub id (owner/name, e.g. stabilityai/stable-diffusion-2-1-base)",
               "a local diffusers folder", "exemplar:DIR", "tiny-random")


def validate(cfg: Config) -> Config:
    """Checks that span a field's type: --prior.model's forms (its other choices are Literal types); with
    background inpainting on, --prior.inpaint_model's forms and --prior.inpaint_res (a multiple of 8)."""
    import re

    def diffusers_ref(m: str) -> bool:  # tiny-random, a hub id or a local folder
        return (m == "tiny-random" or Path(m).expanduser().exists() or m.startswith((".", "/", "~"))
                or re.fullmatch(r"[\w.-]+/[\w.-]+", m) is not None)

    m = cfg.prior.model
    if not ((m.startswith("exemplar:") and len(m) > 9) or diffusers_ref(m)):
        raise SceneError(f"--prior.model {m!r}: expected {', '.join(MODEL_FORMS)}")
    p = cfg.prior
    if p.inpaint_iters > 0:
        if not diffusers_ref(p.inpaint_model):
            raise SceneError(f"--prior.inpaint_model {p.inpaint_model!r}: expected a hub id (owner/name), a local "
                             "diffusers folder or tiny-random")
        if p.inpaint_res % 8 or p.inpaint_res < 8:
            raise SceneError(f"--prior.inpaint_res {p.inpaint_res}: must be a positive multiple of 8 (the VAE's)")
    return cfg


def preset_path(path: str | Path) -> Path:
    """A YAML file, or the name of a bundled preset ('tiny_cpu' or 'tiny_cpu.yaml' -> configs/tiny_cpu.yaml;
    configs/ is installed with the package as gs_recon/presets)."""
    p = Path(path)
    if p.exists():
        return p
    for d in PRESET_DIRS:
        q = d / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
        if q.exists():
            return q
    names = sorted({q.stem for d in PRESET_DIRS if d.is_dir() for q in d.glob("*.yaml")})
    raise SceneError(f"{p}: config file not found (a YAML path, or a bundled preset: {', '.join(names)})")


# configs/ in a checkout; gs_recon/presets/ in an installed package (setup.py maps configs/ there)
PRESET_DIRS = [Path(__file__).resolve().parents[1] / "presets", Path(__file__).resolve().parents[2] / "configs"]
