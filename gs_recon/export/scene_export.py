"""Write a run's decomposed outputs: per-object / background / scene splats, test renders, scene.json."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..geometry import transform_gaussians
from ..io_utils import atomic_path, check_writable
from ..run.layout import object_file_stem
from .splats import valid_mask, write_ply, write_splat, write_spz


SPLAT_WRITERS = {"ply": write_ply, "splat": write_splat, "spz": write_spz}


def export_splats(params, scene, out_dir: Path, formats=("ply", "splat", "spz"), objects: List[int] | None = None,
                  whole: bool = True) -> List[Dict]:
    """Export (in the input's world frame) the whole scene and background (when `whole`) and each object
    whose label is in `objects` (default all), in each of `formats` (3DGS .ply, antimatter15 .splat,
    Niantic .spz) under OUT_DIR/splats/. With `objects` given and not `whole`, also writes
    splats/selection.* holding just those objects. Returns manifest entries."""
    g = {k: v.detach().cpu() for k, v in params.items()}
    gw = transform_gaussians(g, scene.world_from_internal)
    ok = valid_mask(gw)
    labels = gw["labels"]
    d = Path(out_dir) / "splats"
    entries = []

    def write(mask, rel: str):
        sub = {k: v[mask & ok] for k, v in gw.items()}
        n, files = int(sub["means"].shape[0]), []
        for fmt in formats:
            SPLAT_WRITERS[fmt](d / f"{rel}.{fmt}", sub)
            files.append(f"splats/{rel}.{fmt}")
        pts = sub["means"]
        bbox = [pts.min(0).values.tolist(), pts.max(0).values.tolist()] if n else None
        return n, files, bbox

    if whole:
        n, files, bbox = write(torch.ones_like(ok), "scene")
        entries.append({"id": -1, "name": "scene", "gaussians": n, "bbox": bbox, "files": files})
        n, files, bbox = write(labels == 0, "background")
        entries.append({"id": 0, "name": "background", "gaussians": n, "bbox": bbox, "files": files})
    elif objects is not None:
        n, files, bbox = write(torch.isin(labels, torch.tensor(objects, dtype=labels.dtype)), "selection")
        entries.append({"id": -2, "name": "selection", "objects": list(objects), "gaussians": n, "bbox": bbox,
                        "files": files})
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


def export_selection(run, fmt: str, objects: List[int] | None, out_dir: Path) -> List[Path]:
    """tools/export.py: write `run`'s objects (ids, None = all) as fmt 'ply' | 'splat' | 'glb' under
    out_dir. Returns the written paths."""
    from ..errors import SceneError

    out_dir = Path(out_dir)
    check_writable(out_dir)
    if fmt in SPLAT_WRITERS:
        entries = export_splats(run.params, run.scene, out_dir, formats=(fmt,),
                                objects=objects, whole=objects is None)
        return [out_dir / f for e in entries for f in e["files"]]
    if fmt != "glb":
        raise SceneError(f"--format {fmt}: unknown; use ply, splat, spz or glb")
    from ..mesh.extract import build_meshes
    from ..mesh.texture import load_mesh
    from .meshes import glb_node, write_glb

    ids = objects if objects is not None else [o.id for o in run.scene.objects]
    nodes, missing = {}, []
    for oid in ids:
        stem = run.path / "meshes" / "objects" / object_file_stem(oid, run.scene.object_name(oid))
        # the textured OBJ when the run has one (its .mtl beside it), else the vertex-coloured PLY
        p = stem.with_suffix(".obj") if stem.with_suffix(".mtl").exists() else stem.with_suffix(".ply")
        if p.exists():
            nodes[run.scene.object_name(oid)] = load_mesh(p)
        else:
            missing.append(oid)
    if missing:  # meshed now, in memory
        for r in build_meshes(run.params, run.scene, run.cfg.mesh, objects=missing):
            if r.mesh is not None:
                nodes[r.name] = glb_node(r, object_file_stem(r.id, r.name))
    if not nodes:
        raise SceneError(f"{run.path}: no mesh could be made for objects {ids} (too few Gaussians)")
    path = out_dir / "selection.glb"
    write_glb(nodes, path)
    return [path]
