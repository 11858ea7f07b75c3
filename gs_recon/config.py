"""Dataclass configs, YAML presets and ``--key.sub value`` CLI overrides.

Every constant the method uses lives here with a comment saying where it comes from.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from .data.errors import SceneError


@dataclass
class DataConfig:
    downscale: float = 1.0  # images are resized by 1/downscale on load
    white_background: bool = True  # RGBA images are composited on white (NeRF-synthetic convention) or black
    test_every: int = 8  # without split.json: every 8th image is a test view (mip-NeRF 360 convention)
    max_size: int = 1600  # images wider than this are downscaled further (3DGS does the same at 1600 px)


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
    iterations: int = 7000
    batch_size: int = 1  # views per step
    lr_means: float = 1.6e-4  # 3DGS learning rates (means scaled by scene extent)
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    ssim_lambda: float = 0.2  # 3DGS: (1 - 0.2) L1 + 0.2 D-SSIM
    mask_lambda: float = 0.1  # per-object alpha vs instance mask (BCE)
    depth_lambda: float = 0.0  # scale/shift-invariant depth prior loss (needs depth/)
    normal_lambda: float = 0.0  # normal prior loss (needs normal/)
    scale_reg_lambda: float = 0.01  # penalise scales larger than scale_reg_max (fraction of scene extent)
    scale_reg_max: float = 0.05
    # densification (gsplat DefaultStrategy); iteration fields are scaled for short runs
    refine_start_iter: int = 500
    refine_stop_iter: int = 15000
    refine_every: int = 100
    reset_every: int = 3000
    grow_grad2d: float = 0.0002
    prune_opa: float = 0.005
    cap_max: int = 1_000_000  # hard cap on Gaussian count (after growth, the lowest-opacity ones are pruned)
    checkpoint_every: int = 1000
    seed: int = 0
    backend: str = "auto"  # auto | cpu | gsplat
    # torchrun only: shard stage 1's Gaussians over the ranks (gsplat's distributed-rasterization scheme,
    # arXiv:2406.18533); off: rank 0 reconstructs alone and the ranks share only the prior stages
    distributed: bool = False
    device: str = "auto"  # auto | cpu | cuda
    eval_every: int = 0  # 0 = only at the end


@dataclass
class OutputConfig:
    out_dir: Optional[str] = None  # default outputs/<scene>/<timestamp>
    export_splat: bool = True
    save_test_renders: bool = True


@dataclass
class MeshConfig:
    extract: bool = True  # extract meshes automatically at the end of training
    resolution: int = 128  # voxels along the longest side of each object's box
    background_resolution: int = 192
    trunc_voxels: float = 5.0  # 2DGS default: truncation ~5 voxels
    orbit_views: int = 24  # extra views around each object's box (two rings, 15 and 50 deg elevation)
    alpha_thresh: float = 0.5  # only pixels the object covers with alpha > 0.5 are fused
    box_pad: float = 0.1  # box padding, fraction of its size
    # objects: "closed" carves free space through the object-alone silhouettes and fills never-observed
    # voxels (watertight solids); "open" fuses only the surfaces the Gaussians render (what the Gaussians
    # did, nothing filled in: the benchmark's prior table uses it)
    object_mode: str = "closed"


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
    app_t: List[int] = field(default_factory=lambda: [20, 980])
    sds_geometry_lambda: float = 1.0e-3  # SDS loss weight next to the reconstruction losses
    sds_appearance_lambda: float = 1.0e-3
    appearance_rgb_lambda: float = 10.0  # reconstruction RGB loss kept strong in stage 3
    appearance_vis_thresh: float = 0.3  # appearance SDS only where V < 0.3
    pixel_weighting: bool = True  # per-pixel SDS weights w(V) from the rendered visibility V (DP-Recon)
    none_vis_max: float = 20.0  # w(V) at V = 0 (geometry.yaml none_vis_region_max)
    vis_max: float = 0.1  # w(V) at V = 0.5+ is vis_max (2 - 2V) (geometry.yaml vis_region_max; paper: 1)
    gaussian_gate: float = 0.0  # > 0: Gaussians with v >= this get no SDS gradient (binary; ours, off)
    vis_grid_resolution: int = 48  # cells per side of each label's frozen visibility grid
    # means LR at each prior stage's start (x scene scale): 10% of 3DGS's initial 1.6e-4. Stage 1 decays it
    # to 1%, where 2000 Adam steps move a mean by ~3e-3 of the scene and SDS cannot move surfaces; at 100%
    # the geometry stage cost ~1 dB more test PSNR than at 10% in every variant (docs/PRIOR.md, measured)
    lr_means: float = 1.6e-5
    elevation: List[float] = field(default_factory=lambda: [5.0, 30.0])  # object cameras, degrees ...
    elevation_end: List[float] = field(default_factory=lambda: [5.0, 80.0])  # ... widening to this
    fovy: List[float] = field(default_factory=lambda: [40.0, 45.0])
    fill: float = 0.8  # the object's longest side fills ~80% of the view
    background_fovy: List[float] = field(default_factory=lambda: [70.0, 85.0])
    background_geometry: bool = True  # background geometry SDS (never background appearance SDS)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    guidance: str = "none"  # none | sd (the diffusion-prior stages, docs/PRIOR.md)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: str, typ: Any, key: str):
    t = typ if isinstance(typ, type) else None
    s = str(typ)
    try:
        if t is bool or s == "bool":
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if t is int or s == "int":
            return int(float(value)) if "e" in value.lower() else int(value)
        if t is float or s == "float":
            return float(value)
        if "Optional[str]" in s or t is str or s == "str":
            return None if value.lower() in ("none", "null") else value
        if "List" in s:
            items = [v for v in value.split(",") if v]
            conv = int if "List[int]" in s else float if "List[float]" in s else str
            return [conv(v) for v in items]
    except ValueError:
        raise SceneError(f"config: --{key} expects {s}, got {value!r}") from None
    return value


# Keys earlier versions had: a run's saved scene.json or an old preset may still hold them. They are
# skipped with a warning when read from a file, and a clear error on the command line.
RETIRED = {
    "prior.gaussian_weighting": "the per-Gaussian SDS weighting was replaced by per-pixel weighting only "
                                "(DP-Recon); --prior.gaussian_gate is the optional binary per-Gaussian gate",
    "prior.vis_count_thresh": "visibility for the prior is the best view's ratio, which no count threshold changes",
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
            setattr(obj, k, v)


def config_from_dict(d: Dict[str, Any], source: str = "config") -> Config:
    """A Config from ``Config.to_dict()`` output (e.g. the copy saved in a run's scene.json)."""
    cfg = Config()
    _apply(cfg, d or {}, "", source)
    return cfg


def load_config(path: Optional[str | Path] = None, overrides: Optional[List[str]] = None) -> Config:
    """Defaults, then a YAML preset, then ``key.sub=value`` / ``--key.sub value`` overrides."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise SceneError(f"{p}: config file not found (presets live in configs/)")
        try:
            d = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise SceneError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(d, dict):
            raise SceneError(f"{p}: a config file must be a YAML mapping")
        _apply(cfg, d, "", str(p))
    for key, value in parse_overrides(overrides or []):
        apply_override(cfg, key, value)
    return cfg


def apply_override(cfg: Config, key: str, value: str) -> None:
    """Set ``key`` ('train.iterations') to ``value`` (a string, coerced to the field's type)."""
    if key in RETIRED:
        raise SceneError(f"command line: --{key} is retired ({RETIRED[key]})")
    obj, parts = cfg, key.split(".")
    for part in parts[:-1]:
        if not hasattr(obj, part) or not dataclasses.is_dataclass(getattr(obj, part)):
            raise SceneError(f"command line: unknown config key '{key}'")
        obj = getattr(obj, part)
    fmap = {f.name: f for f in dataclasses.fields(obj)}
    if parts[-1] not in fmap:
        raise SceneError(f"command line: unknown config key '{key}' (valid here: {', '.join(sorted(fmap))})")
    setattr(obj, parts[-1], _coerce(value, fmap[parts[-1]].type, key))


def parse_overrides(args: List[str]):
    """['--a.b', '1', '--c=2', 'd.e=3'] -> [('a.b','1'), ('c','2'), ('d.e','3')]."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            a = a[2:]
        if "=" in a:
            k, v = a.split("=", 1)
            out.append((k, v))
            i += 1
        else:
            if i + 1 >= len(args):
                raise SceneError(f"command line: --{a} needs a value")
            out.append((a, args[i + 1]))
            i += 2
    return out
