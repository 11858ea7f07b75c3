"""COLMAP sparse models: read and write, binary (.bin) and text (.txt), as COLMAP itself lays them out.

Poses are COLMAP's: world-to-camera rotation (qw, qx, qy, qz) and translation, OpenCV camera axes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..errors import SceneError

# model id -> (name, number of params)
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
}
MODEL_IDS = {v[0]: k for k, v in CAMERA_MODELS.items()}


@dataclass
class Camera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # model-specific, COLMAP order


@dataclass
class Image:
    id: int
    qvec: np.ndarray  # [4] w, x, y, z (world-to-camera)
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Model:
    cameras: Dict[int, Camera]
    images: Dict[int, Image]
    points: np.ndarray  # [P, 3]
    colors: np.ndarray  # [P, 3] uint8
    point_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _read(f, fmt: str):
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack("<" + fmt, data)


def read_model(path: Path) -> Model:
    """Read a COLMAP model folder (cameras/images/points3D, .bin preferred over .txt)."""
    path = Path(path)
    ext = ".bin" if (path / "cameras.bin").exists() else ".txt"
    for n in ("cameras", "images"):
        if not (path / f"{n}{ext}").exists():
            raise SceneError(f"{path}: missing {n}{ext}; a COLMAP model needs cameras, images (and points3D)")
    try:
        if ext == ".bin":
            cams = _read_cameras_bin(path / "cameras.bin")
            imgs = _read_images_bin(path / "images.bin")
            pts = _read_points_bin(path / "points3D.bin") if (path / "points3D.bin").exists() else None
        else:
            cams = _read_cameras_txt(path / "cameras.txt")
            imgs = _read_images_txt(path / "images.txt")
            pts = _read_points_txt(path / "points3D.txt") if (path / "points3D.txt").exists() else None
    except SceneError:
        raise
    except (EOFError, struct.error, ValueError, IndexError, UnicodeDecodeError) as e:
        raise SceneError(f"{path}: corrupt COLMAP model ({type(e).__name__}: {e}); re-export it with COLMAP") from None
    if pts is None:
        pts = (np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0, np.int64))
    return Model(cams, imgs, pts[0], pts[1], pts[2])


def _read_cameras_bin(p: Path) -> Dict[int, Camera]:
    out = {}
    with open(p, "rb") as f:
        (n,) = _read(f, "Q")
        for _ in range(n):
            cid, mid, w, h = _read(f, "iiQQ")
            if mid not in CAMERA_MODELS:
                raise SceneError(f"{p}: unknown COLMAP camera model id {mid}")
            name, npar = CAMERA_MODELS[mid]
            out[cid] = Camera(cid, name, int(w), int(h), np.array(_read(f, "d" * npar)))
    return out


def _read_images_bin(p: Path) -> Dict[int, Image]:
    out = {}
    with open(p, "rb") as f:
        (n,) = _read(f, "Q")
        for _ in range(n):
            iid, qw, qx, qy, qz, tx, ty, tz, cid = _read(f, "idddddddi")
            name = b""
            while True:
                ch = f.read(1)
                if ch in (b"\x00", b""):
                    break
                name += ch
            (npts,) = _read(f, "Q")
            raw = np.frombuffer(f.read(24 * npts), dtype=np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]))
            out[iid] = Image(iid, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cid, name.decode(),
                             np.stack([raw["x"], raw["y"]], -1), raw["id"].astype(np.int64))
    return out


def _read_points_bin(p: Path):
    xyz, rgb, ids = [], [], []
    with open(p, "rb") as f:
        (n,) = _read(f, "Q")
        for _ in range(n):
            pid, x, y, z, r, g, b, _err, tl = _read(f, "QdddBBBdQ")
            f.seek(8 * tl, 1)
            xyz.append((x, y, z))
            rgb.append((r, g, b))
            ids.append(pid)
    return np.array(xyz, np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3), np.array(ids, np.int64)


def _lines(p: Path) -> List[str]:
    return [ln.strip() for ln in open(p, encoding="utf-8") if ln.strip() and not ln.startswith("#")]


def _read_cameras_txt(p: Path) -> Dict[int, Camera]:
    out = {}
    for ln in _lines(p):
        e = ln.split()
        if e[1] not in MODEL_IDS:
            raise SceneError(f"{p}: unknown COLMAP camera model {e[1]}")
        out[int(e[0])] = Camera(int(e[0]), e[1], int(e[2]), int(e[3]), np.array([float(v) for v in e[4:]]))
    return out


def _read_images_txt(p: Path) -> Dict[int, Image]:
    out = {}
    raw = [ln.rstrip("\n") for ln in open(p, encoding="utf-8") if not ln.startswith("#")]
    i = 0
    while i < len(raw):
        if not raw[i].strip():
            i += 1
            continue
        e = raw[i].split()
        pts = raw[i + 1].split() if i + 1 < len(raw) else []
        arr = np.array([float(v) for v in pts]).reshape(-1, 3) if pts else np.zeros((0, 3))
        iid = int(e[0])
        out[iid] = Image(iid, np.array([float(v) for v in e[1:5]]), np.array([float(v) for v in e[5:8]]), int(e[8]),
                         " ".join(e[9:]), arr[:, :2], arr[:, 2].astype(np.int64))
        i += 2
    return out


def _read_points_txt(p: Path):
    xyz, rgb, ids = [], [], []
    for ln in _lines(p):
        e = ln.split()
        ids.append(int(e[0]))
        xyz.append([float(v) for v in e[1:4]])
        rgb.append([int(v) for v in e[4:7]])
    return np.array(xyz, np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3), np.array(ids, np.int64)


def write_model(model: Model, path: Path, binary: bool = True) -> None:
    """Write a COLMAP model (cameras, images without 2D points, points3D with empty tracks)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pids = model.point_ids if len(model.point_ids) == len(model.points) else np.arange(1, len(model.points) + 1)
    if binary:
        with open(path / "cameras.bin", "wb") as f:
            f.write(struct.pack("<Q", len(model.cameras)))
            for c in model.cameras.values():
                f.write(struct.pack("<iiQQ", c.id, MODEL_IDS[c.model], c.width, c.height))
                f.write(struct.pack("<" + "d" * len(c.params), *c.params))
        with open(path / "images.bin", "wb") as f:
            f.write(struct.pack("<Q", len(model.images)))
            for im in model.images.values():
                f.write(struct.pack("<idddddddi", im.id, *im.qvec, *im.tvec, im.camera_id))
                f.write(im.name.encode() + b"\x00")
                f.write(struct.pack("<Q", 0))
        with open(path / "points3D.bin", "wb") as f:
            f.write(struct.pack("<Q", len(model.points)))
            for pid, x, c in zip(pids, model.points, model.colors):
                f.write(struct.pack("<QdddBBBdQ", int(pid), *map(float, x), *map(int, c), 0.0, 0))
    else:
        with open(path / "cameras.txt", "w") as f:
            f.write("# Camera list with one line of data per camera:\n")
            for c in model.cameras.values():
                f.write(f"{c.id} {c.model} {c.width} {c.height} " + " ".join(repr(float(v)) for v in c.params) + "\n")
        with open(path / "images.txt", "w") as f:
            f.write("# Image list with two lines of data per image:\n")
            for im in model.images.values():
                f.write(f"{im.id} " + " ".join(repr(float(v)) for v in (*im.qvec, *im.tvec)) + f" {im.camera_id} {im.name}\n\n")
        with open(path / "points3D.txt", "w") as f:
            f.write("# 3D point list with one line of data per point:\n")
            for pid, x, c in zip(pids, model.points, model.colors):
                f.write(f"{int(pid)} {float(x[0])!r} {float(x[1])!r} {float(x[2])!r} {int(c[0])} {int(c[1])} {int(c[2])} 0.0\n")


def intrinsics(cam: Camera) -> Tuple[np.ndarray, np.ndarray]:
    """(K [3,3], distortion [k1, k2, p1, p2]) for the supported models; SceneError otherwise."""
    p = cam.params
    dist = np.zeros(4)
    if cam.model == "SIMPLE_PINHOLE":
        f, cx, cy = p
        fx = fy = f
    elif cam.model == "PINHOLE":
        fx, fy, cx, cy = p
    elif cam.model == "SIMPLE_RADIAL":
        f, cx, cy, k1 = p
        fx = fy = f
        dist[0] = k1
    elif cam.model == "RADIAL":
        f, cx, cy, k1, k2 = p
        fx = fy = f
        dist[:2] = (k1, k2)
    elif cam.model == "OPENCV":
        fx, fy, cx, cy, k1, k2, p1, p2 = p
        dist[:] = (k1, k2, p1, p2)
    else:
        raise SceneError(
            f"camera {cam.id}: COLMAP model {cam.model} is not supported (use PINHOLE, SIMPLE_PINHOLE, "
            "SIMPLE_RADIAL, RADIAL or OPENCV; run colmap image_undistorter for others)"
        )
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    return K, dist
