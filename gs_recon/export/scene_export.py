"""Write a run's decomposed outputs: per-object / background / scene splats, test renders, scene.json."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..io_utils import atomic_path, write_json
from .splats import to_world, valid_mask, write_ply, write_splat


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "object"


def object_file_stem(oid: int, name: str) -> str:
    return f"{oid}_{slug(name)}"


def export_splats(params, scene, out_dir: Path, splat: bool = True, objects: List[int] | None = None) -> List[Dict]:
    """Export scene, background and each object (labels in `objects`, default all). Returns manifest entries."""
    g = {k: v.detach().cpu() for k, v in params.items()}
    gw = to_world(g, scene.world_from_internal)
    ok = valid_mask(gw)
    labels = gw["labels"]
    d = Path(out_dir) / "splats"
    entries = []

    def write(mask, rel: str):
        sub = {k: v[mask & ok] for k, v in gw.items()}
        n = write_ply(d / f"{rel}.ply", sub)
        files = [f"splats/{rel}.ply"]
        if splat:
            write_splat(d / f"{rel}.splat", sub)
            files.append(f"splats/{rel}.splat")
        pts = sub["means"]
        bbox = [pts.min(0).values.tolist(), pts.max(0).values.tolist()] if n else None
        return n, files, bbox

    n, files, bbox = write(torch.ones_like(ok), "scene")
    entries.append({"id": -1, "name": "scene", "gaussians": n, "bbox": bbox, "files": files})
    n, files, bbox = write(labels == 0, "background")
    entries.append({"id": 0, "name": "background", "gaussians": n, "bbox": bbox, "files": files})
    for o in scene.objects:
        if objects is not None and o.id not in objects:
            continue
        n, files, bbox = write(labels == o.id, f"objects/{object_file_stem(o.id, o.name)}")
        entries.append({"id": o.id, "name": o.name, "prompt": o.prompt, "gaussians": n, "bbox": bbox, "files": files})
    return entries


def save_png(path: Path, img: torch.Tensor) -> None:
    """img [H, W, 3] float in [0,1] -> PNG (atomic)."""
    from PIL import Image

    arr = (img.detach().cpu().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def write_manifest(out_dir: Path, manifest: Dict) -> None:
    write_json(Path(out_dir) / "scene.json", manifest)
