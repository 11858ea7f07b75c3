"""Open a finished run folder (written by tools/train.py): its manifest, config, scene and Gaussians.

Shared by the post-training tools (extract_mesh, export, eval, view) so each reads a run the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..config import Config, config_from_dict, parse_config_overrides
from ..errors import SceneError
from ..io_utils import write_json


@dataclass
class Run:
    path: Path
    manifest: Dict
    cfg: Config
    scene: object  # gs_recon.data.scene.Scene
    params: Dict[str, torch.Tensor]  # as in gaussians.model, internal frame, on CPU

    def save_manifest(self) -> None:
        write_manifest(self.path, self.manifest)


def write_manifest(run_dir: str | Path, manifest: Dict) -> None:
    """RUN_DIR/scene.json (atomic): the one writer of a run's manifest (training, mesh extraction, the viewer's
    save). The in-memory "out_dir" key (pipeline.run's return value) is not written."""
    write_json(Path(run_dir) / "scene.json", {k: v for k, v in manifest.items() if k != "out_dir"})


def read_manifest(run_dir: str | Path) -> Dict:
    mp = Path(run_dir) / "scene.json"
    if not mp.exists():
        raise SceneError(f"{mp}: not found; RUN_DIR must be a finished tools/train.py output folder")
    try:
        m = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise SceneError(f"{mp}: invalid JSON ({e.msg} at line {e.lineno}); rerun training to rewrite it") from None
    if not isinstance(m, dict) or "scene_dir" not in m or "config" not in m:
        raise SceneError(f"{mp}: not a gs_recon run manifest (no scene_dir/config); rerun training")
    return m


def open_run(run_dir: str | Path, overrides: Optional[List[str]] = None,
             cfg: Optional[Config] = None) -> Run:
    """Manifest + config + scene + final Gaussians. The config is ``cfg`` when given (a command line parsed
    over the saved one), else the saved one with ``['--mesh.resolution', '64']``-style overrides."""
    from ..data.scene import load_scene
    from ..train.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    if cfg is None:
        cfg = config_from_dict(man["config"], str(run_dir / "scene.json"))
        if overrides:
            cfg = parse_config_overrides(cfg, overrides)
    scene_dir = Path(man["scene_dir"])
    if not scene_dir.exists():
        raise SceneError(f"{run_dir / 'scene.json'}: its scene folder {scene_dir} is gone; restore it or edit scene_dir")
    scene = load_scene(scene_dir, cfg.data)
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return Run(run_dir, man, cfg, scene, {k: v.cpu() for k, v in ck["params"].items()})


def parse_ids(text: Optional[str], scene) -> Optional[List[int]]:
    """'1,3' -> [1, 3], checked against the scene's objects; None/'' -> None (all)."""
    if not text:
        return None
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SceneError(f"--objects expects comma-separated integer ids, got {text!r}") from None
    known = {o.id for o in scene.objects}
    bad = [i for i in ids if i not in known]
    if bad:
        raise SceneError(f"--objects: unknown id(s) {bad}; this scene has {sorted(known)}")
    return ids
