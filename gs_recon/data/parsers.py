"""Input parsers: each turns one camera-file format into the same neutral list of frames.

A frame is a data.types.Frame: name, path, viewmat [4,4] (OpenCV world-to-camera, float64), K [3,3] at the
file's resolution, dist [4] (k1, k2, p1, p2), width, height, source. Conventions are converted here, once;
nothing downstream knows the source format.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..errors import SceneError
from ..geometry import quat_to_rotmat
from . import colmap
from .types import Frame

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def find_colmap_dir(root: Path) -> Optional[Path]:
    for cand in (root / "sparse" / "0", root / "sparse"):
        if (cand / "cameras.bin").exists() or (cand / "cameras.txt").exists():
            return cand
    return None


def find_transforms(root: Path) -> List[Path]:
    if (root / "transforms.json").exists():
        return [root / "transforms.json"]
    found = [root / f"transforms_{s}.json" for s in ("train", "val", "test")]
    return [p for p in found if p.exists()]


def parse_colmap(root: Path, images_dir: Path):
    """-> (frames, points [P,3] or None, colors [P,3] uint8 or None)."""
    sp = find_colmap_dir(root)
    model = colmap.read_model(sp)
    frames = []
    for im in sorted(model.images.values(), key=lambda i: i.name):
        if im.camera_id not in model.cameras:
            raise SceneError(f"{sp}: image {im.name} refers to missing camera {im.camera_id}")
        cam = model.cameras[im.camera_id]
        try:
            K, dist = colmap.intrinsics(cam)
        except SceneError as e:
            f = sp / "cameras.bin" if (sp / "cameras.bin").exists() else sp / "cameras.txt"
            raise SceneError(f"{f}: {e}") from None
        vm = np.eye(4)
        vm[:3, :3] = quat_to_rotmat(torch.from_numpy(np.asarray(im.qvec, dtype=np.float64))).numpy()
        vm[:3, 3] = im.tvec
        frames.append(Frame(im.name, images_dir / im.name, vm, K, cam.width, cam.height, str(sp), dist=dist))
    pts = model.points if len(model.points) else None
    cols = model.colors if len(model.points) else None
    return frames, pts, cols


def _resolve_image(root: Path, file_path: str) -> Path:
    p = (root / file_path).resolve() if not Path(file_path).is_absolute() else Path(file_path)
    if p.suffix in IMAGE_EXTS:
        return p
    for ext in IMAGE_EXTS:  # Blender files list paths without extension
        if p.with_name(p.name + ext).exists():
            return p.with_name(p.name + ext)
    return p.with_name(p.name + ".png")


def _intrinsics_from(d: dict, fallback: dict, w: Optional[int], h: Optional[int], where: str) -> Tuple[np.ndarray, int, int]:
    get = lambda k: d.get(k, fallback.get(k))  # noqa: E731
    w = int(get("w") or w or 0)
    h = int(get("h") or h or 0)
    if get("fl_x") is not None:
        fx = float(get("fl_x"))
        fy = float(get("fl_y") if get("fl_y") is not None else fx)
    elif get("camera_angle_x") is not None:
        if not w:
            raise SceneError(f"{where}: camera_angle_x given but image width unknown")
        fx = 0.5 * w / math.tan(0.5 * float(get("camera_angle_x")))
        fy = 0.5 * h / math.tan(0.5 * float(get("camera_angle_y"))) if get("camera_angle_y") is not None else fx
    else:
        raise SceneError(f"{where}: no intrinsics (need fl_x/fl_y or camera_angle_x)")
    cx = float(get("cx")) if get("cx") is not None else w / 2.0
    cy = float(get("cy")) if get("cy") is not None else h / 2.0
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), w, h


def read_point_cloud(path: Path, where: str):
    """A PLY point cloud (nerfstudio's sparse_pc.ply: vertex x, y, z and optionally red, green, blue) ->
    (points [P,3] float64, colours [P,3] uint8; grey where the file has none). where: the file naming it."""
    from plyfile import PlyData

    if not path.is_file():
        raise SceneError(f"{where}: ply_file_path {path} not found; fix the path or remove the key")
    try:
        v = PlyData.read(str(path))["vertex"]
        pts = np.stack([np.asarray(v[k], np.float64) for k in ("x", "y", "z")], 1)
    except Exception as e:  # plyfile raises several types on bad files
        raise SceneError(f"{path}: not a readable PLY point cloud with vertex x, y, z ({type(e).__name__}: {e}); "
                         f"re-export it or remove ply_file_path from {where}") from None
    names = v.data.dtype.names
    if all(k in names for k in ("red", "green", "blue")):
        cols = np.stack([np.asarray(v[k]) for k in ("red", "green", "blue")], 1)
        cols = (cols * 255 if cols.dtype.kind == "f" else cols).clip(0, 255).astype(np.uint8)
    else:
        cols = np.full((len(pts), 3), 128, np.uint8)
    ok = np.isfinite(pts).all(1)
    return pts[ok], cols[ok]


def parse_transforms(root: Path):
    """nerfstudio / instant-ngp / Blender transforms files -> (frames, points [P,3] or None, colours [P,3] uint8
    or None, split or None). Points: the PLY named by a file's "ply_file_path" (nerfstudio's ns-process-data
    writes sparse_pc.ply there, in the frame of the transform matrices), relative to that file's folder."""
    files = find_transforms(root)
    frames, split = [], {}
    pts = cols = None
    for fp in files:
        try:
            meta = json.loads(fp.read_text())
        except json.JSONDecodeError as e:
            raise SceneError(f"{fp}: invalid JSON ({e.msg} at line {e.lineno}); fix or re-export the file") from None
        if "frames" not in meta or not isinstance(meta["frames"], list):
            raise SceneError(f"{fp}: no 'frames' list; expected a nerfstudio/Blender transforms file")
        sname = fp.stem.replace("transforms_", "") if fp.stem != "transforms" else None
        if meta.get("ply_file_path") and pts is None:
            pts, cols = read_point_cloud(fp.parent / str(meta["ply_file_path"]), str(fp))
        for i, fr in enumerate(meta["frames"]):
            if "file_path" not in fr or "transform_matrix" not in fr:
                raise SceneError(f"{fp}: frame {i} lacks file_path or transform_matrix")
            path = _resolve_image(fp.parent, fr["file_path"])
            w = h = None
            if not (fr.get("w") or meta.get("w")) and path.exists():
                from PIL import Image as PILImage

                with PILImage.open(path) as im:
                    w, h = im.size
            K, w, h = _intrinsics_from(fr, meta, w, h, f"{fp} frame {i}")
            c2w = np.array(fr["transform_matrix"], dtype=np.float64)
            if c2w.shape == (3, 4):
                c2w = np.vstack([c2w, [0, 0, 0, 1]])
            if c2w.shape != (4, 4):
                raise SceneError(f"{fp}: frame {i} transform_matrix must be 4x4")
            c2w[:3, 1:3] *= -1  # OpenGL (x right, y up, z back) -> OpenCV (x right, y down, z forward)
            vm = np.linalg.inv(c2w) if np.isfinite(c2w).all() else np.full((4, 4), np.nan)
            dist = np.array([float(fr.get(k, meta.get(k, 0.0)) or 0.0) for k in ("k1", "k2", "p1", "p2")])
            name = str(Path(fr["file_path"]).with_suffix(path.suffix)).lstrip("./") if path.suffix else fr["file_path"]
            frames.append(Frame(name, path, vm, K, w, h, str(fp), dist=dist))
            if sname:
                split.setdefault(sname, []).append(name)
    split_out = None
    if "train" in split:
        split_out = {"train": split["train"], "test": split.get("test", []) + split.get("val", [])}
    if pts is not None and not len(pts):
        pts = cols = None
    return frames, pts, cols, split_out
