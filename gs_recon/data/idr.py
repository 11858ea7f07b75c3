"""IDR-style scene folders: DP-Recon / MonoSDF / ObjectSDF++ scans and NeuS / IDR DTU scans.

Both store one 3x4 projection per image as ``world_mat_i`` and a normalisation ``scale_mat_i`` in an npz;
``P = world_mat_i @ scale_mat_i`` maps the *normalised* frame (the scene inside the unit sphere) to
pixels, and is decomposed into K and an OpenCV world-to-camera pose (``decompose_projection``). Poses
are returned in that normalised frame, which is the frame DP-Recon trains in; ``scale_mat_0`` maps it
back to the capture's original frame (DP-Recon's evaluation moves meshes there before comparing them
with its GT meshes). Both transforms are reported in scene.json (``world_frame``).

DP-Recon / MonoSDF scan (code/datasets/scene_dataset.py in DP-Recon):
    *_rgb.png (sorted), *_depth.npy [H, W] (monocular, scale/shift unknown), *_normal.npy [3, H, W] in
    [0, 1] (x2-1 -> OpenCV camera frame), optional *_mask.npy (valid-depth mask), instance_mask/*.png
    (sorted; ids, 255 = background), instance_id.json (name -> id; object k = the k-th entry, ids not
    listed are background), cameras.npz, optional *_prompt_geometry.json / *_prompt_texture.json
    (object index -> prompt), optional eval-novel-views/ (cameras.npz, rgb/, instance_mask/): the test views.
NeuS / IDR DTU scan: image/*.png (or images/), mask/*.png (one object), cameras_sphere.npz.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..errors import SceneError
from .types import Frame, ObjectInfo


def decompose_projection(P: np.ndarray, where: str = "P") -> Tuple[np.ndarray, np.ndarray]:
    """P [3, 4] (or [4, 4]) = K [R | t] up to scale -> (K [3, 3] with K[2, 2] = 1 and a positive
    diagonal, viewmat [4, 4] OpenCV world-to-camera). RQ decomposition of P[:, :3]."""
    from scipy.linalg import rq

    P = np.asarray(P, dtype=np.float64)[:3, :4]
    M = P[:, :3]
    if not np.isfinite(P).all() or abs(np.linalg.det(M)) < 1e-12 * max(1.0, np.abs(M).max() ** 3):
        raise SceneError(f"{where}: singular or non-finite projection matrix; re-export the cameras")
    if np.linalg.det(M) < 0:  # P is defined up to scale: pick the sign that makes R a rotation
        P, M = -P, -M
    K, R = rq(M)
    D = np.diag(np.sign(np.diag(K)))
    K, R = K @ D, D @ R  # D @ D = I: positive focal lengths, R stays a rotation (det D = +1 here)
    centre = -np.linalg.solve(M, P[:, 3])
    vm = np.eye(4)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ centre
    return K / K[2, 2], vm


def read_cameras(path: Path, n: int) -> Tuple[List[np.ndarray], List[np.ndarray], np.ndarray]:
    """cameras.npz / cameras_sphere.npz with n images -> (Ks, viewmats in the normalised frame,
    scale_mat_0 [4, 4]: normalised -> original frame). One-line errors naming the file."""
    try:
        d = np.load(path, allow_pickle=False)
        keys = set(d.files)
    except (OSError, ValueError) as e:
        raise SceneError(f"{path}: unreadable npz ({type(e).__name__}); re-export the cameras") from None
    n_cams = len([k for k in keys if k.startswith("world_mat_") and not k.startswith("world_mat_inv")])
    if n_cams != n:
        raise SceneError(f"{path}: {n_cams} cameras (world_mat_i) for {n} images; each image needs "
                         "world_mat_i and scale_mat_i, i = 0..N-1 in sorted image order")
    Ks, vms, scale0 = [], [], None
    for i in range(n):
        for k in (f"world_mat_{i}", f"scale_mat_{i}"):
            if k not in keys:
                raise SceneError(f"{path}: missing key {k} (have {', '.join(sorted(keys)[:6])}...); each image "
                                 "needs world_mat_i and scale_mat_i")
        W, S = d[f"world_mat_{i}"].astype(np.float64), d[f"scale_mat_{i}"].astype(np.float64)
        if W.shape not in ((4, 4), (3, 4)) or S.shape != (4, 4):
            raise SceneError(f"{path}: world_mat_{i} {W.shape} / scale_mat_{i} {S.shape}: expected 4x4 (or 3x4) and 4x4")
        K, vm = decompose_projection(W[:3, :4] @ S, f"{path}: world_mat_{i} @ scale_mat_{i}")
        Ks.append(K)
        vms.append(vm)
        scale0 = S if scale0 is None else scale0
    return Ks, vms, scale0


def world_frame(scale_mat: np.ndarray, source: Path) -> Dict:
    """scene.json's record of the frame the outputs are in (IDR normalised) and the way back."""
    return {"kind": "idr_normalised", "source": str(source),
            "note": "outputs are in the normalised frame (world_mat @ scale_mat); original = original_from_world @ x",
            "original_from_world": scale_mat.tolist(), "world_from_original": np.linalg.inv(scale_mat).tolist()}


def _size(path: Path) -> Tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def center_crop_K(K: np.ndarray, size: Tuple[int, int], mode: str, where: Path) -> np.ndarray:
    """DP-Recon's ``center_crop_type``: images centre-cropped to a square of the original height and
    resized (Replica 1200x680 -> 384x384), with cameras.npz still at the original size. 'auto' applies it
    when the principal point says the calibration was for a larger photo (cx > 0.75 W)."""
    w, h = size
    K = K.copy()
    orig_w, orig_h = 2 * round(K[0, 2] + 0.25), 2 * round(K[1, 2] + 0.25)  # even sizes: cx = W/2 or (W-1)/2
    crop = mode == "on" or (mode == "auto" and (orig_w > 1.5 * w or orig_h > 1.5 * h) and w == h)
    if not crop:
        return K
    side = min(orig_w, orig_h)
    K[0, 2] -= (orig_w - side) / 2
    K[1, 2] -= (orig_h - side) / 2
    K[:2] *= w / side
    return K


def _labels_from(mapping: Dict[int, int]):
    def relabel(raw: np.ndarray) -> np.ndarray:
        out = np.zeros_like(raw)
        for r, k in mapping.items():
            out[raw == r] = k
        return out

    return relabel


def find_dprecon(root: Path) -> bool:
    return (root / "cameras.npz").exists() and any(root.glob("*_rgb.png"))


def find_neus(root: Path) -> bool:
    return (root / "cameras_sphere.npz").exists() and ((root / "image").is_dir() or (root / "images").is_dir())


def _objects(root: Path):
    p = root / "instance_id.json"
    if not p.exists():
        raise SceneError(f"{root}: DP-Recon layout without instance_id.json (name -> instance id); add it")
    try:
        ids = json.loads(p.read_text())
        items = [(str(k), int(v)) for k, v in ids.items()]
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
        raise SceneError(f"{p}: malformed ({type(e).__name__}); expected {{\"name\": id, ...}}") from None
    prompts = {}
    for kind in ("geometry", "texture"):
        f = sorted(root.glob(f"*_prompt_{kind}.json"))
        if f:
            try:
                prompts[kind] = {int(k): str(v) for k, v in json.loads(f[0].read_text()).items()}
            except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
                raise SceneError(f"{f[0]}: malformed ({type(e).__name__}); expected {{\"1\": \"a prompt\", ...}}") from None
    objects = {}
    for k, (name, _) in enumerate(items, start=1):  # DP-Recon's label_mapping = [0] + ids: object k is entry k
        prompt = prompts.get("geometry", {}).get(k) or f"a photo of a {name}"
        objects[k] = ObjectInfo(k, name, prompt)
        objects[k].appearance_prompt = prompts.get("texture", {}).get(k, "")
    mapping = {raw: k for k, (_, raw) in enumerate(items, start=1)}
    return objects, mapping, {o.id: raw for o, (_, raw) in zip(objects.values(), items)}


def _view_set(rgb: List[Path], cams: Path, masks_dir: Path, relabel, center_crop: str,
              prefix: str, priors: bool) -> Tuple[List[Frame], np.ndarray]:
    """Frames for one set of photos and its cameras npz, and that npz's scale_mat_0."""
    Ks, vms, scale0 = read_cameras(cams, len(rgb))
    masks = sorted(masks_dir.glob("*.png")) if masks_dir.is_dir() else []
    if masks and len(masks) != len(rgb):
        raise SceneError(f"{masks_dir}: {len(masks)} masks for {len(rgb)} images; one per image, in sorted order")
    frames = []
    for i, p in enumerate(rgb):
        size = _size(p)
        extra = {}
        if masks:
            extra.update(instance_path=masks[i], relabel=relabel)
        if priors:
            stem = p.name[: -len("_rgb.png")]
            for key, suffix in (("depth_path", "_depth.npy"), ("normal_path", "_normal.npy"),
                                ("depth_mask_path", "_mask.npy")):
                q = p.with_name(stem + suffix)
                if q.exists():
                    extra[key] = q
            extra["normal_encoding"] = "chw01"  # [3, H, W] in [0, 1]: x2-1
        frames.append(Frame(f"{prefix}{p.name}", p, vms[i], center_crop_K(Ks[i], size, center_crop, cams),
                            size[0], size[1], str(cams), **extra))
    return frames, scale0


def parse_dprecon(root: Path, center_crop: str = "auto"):
    """-> (frames, None, None, split or None, extra) with extra: objects, world_frame, instance ids."""
    rgb = sorted(root.glob("*_rgb.png"))
    objects, mapping, raw_ids = _objects(root)
    relabel = _labels_from(mapping)  # 255 and unlisted ids -> background
    frames, scale0 = _view_set(rgb, root / "cameras.npz", root / "instance_mask", relabel, center_crop, "", True)
    split = None
    ev = root / "eval-novel-views"
    if (ev / "cameras.npz").exists() and (ev / "rgb").is_dir():
        erg = sorted((ev / "rgb").glob("*.png"))
        frames += _view_set(erg, ev / "cameras.npz", ev / "instance_mask", relabel, center_crop,
                            "eval-novel-views/rgb/", False)[0]
        split = {"train": [f.name for f in frames[: len(rgb)]], "test": [f.name for f in frames[len(rgb):]]}
    wf = world_frame(scale0, root / "cameras.npz")
    wf["instance_ids"] = {str(k): v for k, v in raw_ids.items()}
    return frames, None, None, split, {"objects": objects, "world_frame": wf, "format": "dprecon"}


def parse_neus(root: Path):
    """NeuS / IDR DTU: image/ (or images/), mask/ (foreground = object 1), cameras_sphere.npz."""
    img_dir = root / "image" if (root / "image").is_dir() else root / "images"
    rgb = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not rgb:
        raise SceneError(f"{img_dir}: no images")
    cams = root / "cameras_sphere.npz"
    frames, scale0 = _view_set(rgb, cams, root / "mask", lambda m: (m > 127).astype(m.dtype), "off",
                       f"{img_dir.name}/", False)
    name = root.name or "object"
    objects = {1: ObjectInfo(1, name, f"a photo of a {name}")} if (root / "mask").is_dir() else {}
    if not objects:
        warnings.warn(f"gs_recon: {root}: no mask/ folder; the scan is reconstructed as background only", stacklevel=3)
    return frames, None, None, None, {"objects": objects, "world_frame": world_frame(scale0, cams), "format": "neus"}


def write_cameras(path: Path, Ks: List[np.ndarray], viewmats: List[np.ndarray], scale_mat: np.ndarray) -> None:
    """The inverse of read_cameras (the synthetic layouts' writer). ``viewmats`` [4, 4] are in the ORIGINAL
    frame: world_mat_i = K [R | t] projects original coordinates, and world_mat_i @ scale_mat_i (x_original =
    scale_mat @ x_normalised) projects the normalised ones, as IDR defines them."""
    out = {}
    for i, (K, vm) in enumerate(zip(Ks, viewmats)):
        P = np.eye(4)
        P[:3, :4] = K @ vm[:3, :4]
        out[f"world_mat_{i}"] = P
        out[f"scale_mat_{i}"] = scale_mat
    np.savez(path, **out)
