"""Load a scene folder (see README "Input contract") into one neutral ``Scene``.

Everything is converted once here: OpenCV world-to-camera poses, one common image size (centre crop to
the smallest, intrinsics shifted accordingly), distortion removed, and the world normalised so the camera
centres lie within a unit sphere around the origin (``world_from_internal`` undoes it on export).
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from ..errors import SceneError
from .idr import find_dprecon, find_neus, parse_dprecon, parse_neus
from .parsers import find_colmap_dir, find_transforms, parse_colmap, parse_transforms
from .types import Frame, ObjectInfo

log = logging.getLogger("gs_recon")


@dataclass
class Scene:
    name: str
    root: Path
    image_names: List[str]
    images: Tensor  # [C, H, W, 3] float32 in [0, 1]
    viewmats: Tensor  # [C, 4, 4] OpenCV world-to-camera, internal (normalised) frame
    Ks: Tensor  # [C, 3, 3]
    width: int
    height: int
    train_idx: List[int]
    test_idx: List[int]
    objects: List[ObjectInfo]  # objects (id > 0); background is label 0
    instance: Optional[Tensor] = None  # [C, H, W] int64 labels, 0 = background
    alpha: Optional[Tensor] = None  # [C, H, W] float foreground alpha from RGBA images
    depth_prior: Optional[Tensor] = None  # [C, H, W] float
    normal_prior: Optional[Tensor] = None  # [C, H, W, 3] float
    points: Optional[Tensor] = None  # [P, 3] SfM points, internal frame
    point_colors: Optional[Tensor] = None  # [P, 3] in [0, 1]
    world_from_internal: Tensor = field(default_factory=lambda: torch.eye(4))  # [4, 4] similarity
    up: Tensor = field(default_factory=lambda: torch.tensor([0.0, 0.0, 1.0]))  # [3] scene up, internal frame
    background_color: Tensor = field(default_factory=lambda: torch.ones(3))
    source: str = ""
    # the frame outputs are in when it is not the input's own (IDR cameras: the normalised frame, with the
    # transform back to the original); {} otherwise. Written to scene.json as world_frame
    world_frame: Dict = field(default_factory=dict)
    sfm: Dict = field(default_factory=dict)  # when the poses were estimated on load: data/sfm.py's report
    association: Dict = field(default_factory=dict)  # --data.masks per_image: data/associate.py's report

    @property
    def n_labels(self) -> int:
        return 1 + max([o.id for o in self.objects], default=0)

    @property
    def scale(self) -> float:
        """Internal units per world unit."""
        return float(1.0 / self.world_from_internal[0, :3].norm())

    def camera_centres(self) -> Tensor:
        """[C, 3] camera centres in the internal frame."""
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3:]
        return -(R.transpose(1, 2) @ t)[..., 0]

    def viewmats_world(self) -> Tensor:
        """[C, 4, 4] world-to-camera in the input's world frame (for rendering exported files)."""
        s = self.scale
        c = self.world_from_internal[:3, 3]
        vm = self.viewmats.clone()
        R = vm[:, :3, :3]
        vm[:, :3, 3] = (vm[:, :3, 3] - s * (R @ c)) / s
        return vm

    def object_name(self, oid: int) -> str:
        for o in self.objects:
            if o.id == oid:
                return o.name
        return "background" if oid == 0 else f"object_{oid}"


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                return np.asarray(im.convert("RGBA"))
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise SceneError(f"{path}: unreadable or corrupt image ({type(e).__name__}); replace or delete it") from None


def _load_label(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            a = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise SceneError(f"{path}: unreadable instance mask ({type(e).__name__})") from None
    if a.ndim == 3:
        a = a[..., 0]
    return a.astype(np.int64)


def _resize(a: np.ndarray, size, nearest: bool) -> np.ndarray:
    from PIL import Image

    w, h = size
    if a.shape[1] == w and a.shape[0] == h:
        return a
    if nearest:
        im = Image.fromarray(a.astype(np.int32), mode="I")
        return np.asarray(im.resize((w, h), Image.NEAREST)).astype(a.dtype)
    if a.dtype == np.uint8:
        return np.asarray(Image.fromarray(a).resize((w, h), Image.LANCZOS))
    chans = [np.asarray(Image.fromarray(a[..., i].astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
             for i in range(a.shape[-1])] if a.ndim == 3 else [np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))]
    return np.stack(chans, -1) if a.ndim == 3 else chans[0]


def undistort(img: np.ndarray, K: np.ndarray, dist: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Resample an image [H,W,(C)] taken with OpenCV radial-tangential distortion (k1,k2,p1,p2) to the
    pinhole camera K with the same size: each output pixel looks up where the lens put that ray."""
    from scipy.ndimage import map_coordinates

    H, W = img.shape[:2]
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    x = (xs - K[0, 2]) / K[0, 0]
    y = (ys - K[1, 2]) / K[1, 1]
    k1, k2, p1, p2 = dist
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u = xd * K[0, 0] + K[0, 2] - 0.5
    v = yd * K[1, 1] + K[1, 2] - 0.5
    order = 0 if nearest else 1
    if img.ndim == 2:
        return map_coordinates(img, [v, u], order=order, mode="nearest").astype(img.dtype)
    return np.stack([map_coordinates(img[..., c], [v, u], order=order, mode="nearest") for c in range(img.shape[2])], -1).astype(img.dtype)


def estimate_up(vms: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Scene up [3] (world = internal axes; unit). The mean camera up vector (-y in OpenCV axes) is biased
    towards the scene when cameras look down from a partial arc (11 degrees for 10 views on 150 degrees at
    30 degrees elevation); when the camera centres spread in a plane (an orbit or arc at one height:
    smallest singular value < 15% of the middle one), that plane's normal, on the mean up's side, is exact.
    A plane normal more than 30 degrees from the mean up (cameras on a vertical plane) is not used."""
    mean_up = -vms[:, 1, :3].mean(0)  # rows of R are the camera axes in world coordinates
    mean_up = mean_up / max(np.linalg.norm(mean_up), 1e-8)
    if len(centres) >= 4:
        _, sv, vt = np.linalg.svd(centres - centres.mean(0), full_matrices=False)
        if sv[1] > 1e-6 and sv[2] < 0.15 * sv[1]:
            n = vt[2] * np.sign(vt[2] @ mean_up)
            if n @ mean_up > np.cos(np.radians(30)):
                return n / np.linalg.norm(n)
    return mean_up


def _read_objects(root: Path) -> Dict[int, ObjectInfo]:
    p = root / "objects.json"
    if not p.exists():
        return {}
    try:
        d = json.loads(p.read_text())
        objs = d["objects"] if isinstance(d, dict) else d
        out = {}
        for o in objs:
            oid = int(o["id"])
            if oid <= 0:
                raise SceneError(f"{p}: object id {oid} must be > 0 (0 is the background)")
            name = str(o.get("name") or f"object_{oid}")
            out[oid] = ObjectInfo(oid, name, str(o.get("prompt") or f"a photo of a {name}"), str(o.get("category") or ""))
        return out
    except SceneError:
        raise
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise SceneError(f"{p}: malformed ({type(e).__name__}: {e}); expected {{\"objects\": [{{\"id\": 1, \"name\": ...}}]}}") from None


def _frames(root: Path, fmt: str = "auto", center_crop: str = "auto", sfm: bool = False):
    """fmt: DataConfig.format (auto: the first layout whose camera file is present). sfm: photos in images/
    and no cameras at all -> estimate poses into sparse/0 first (data/sfm.py).
    -> (frames, points, colors, split, extra): extra may hold objects, world_frame, format."""
    report = None
    if sfm and fmt in ("auto", "colmap") and not _has_cameras(root) and (root / "images").is_dir():
        from .sfm import estimate_poses

        report = estimate_poses(root)  # writes sparse/0: the COLMAP branch below reads it
    if fmt in ("auto", "colmap") and find_colmap_dir(root) is not None:
        frames, pts, cols = parse_colmap(root, root / "images")
        return frames, pts, cols, None, {"format": "colmap", **({"sfm": report} if report else {})}
    if fmt in ("auto", "blender") and find_transforms(root):
        return (*parse_transforms(root), {"format": "blender"})
    if fmt in ("auto", "dprecon") and find_dprecon(root):
        return parse_dprecon(root, center_crop)
    if fmt in ("auto", "neus") and find_neus(root):
        return parse_neus(root)
    expected = {"colmap": "sparse/0/ or sparse/ (COLMAP)", "blender": "transforms.json / transforms_train.json",
                "dprecon": "*_rgb.png + cameras.npz (DP-Recon / MonoSDF scan)",
                "neus": "image/ + cameras_sphere.npz (NeuS / IDR DTU scan)"}
    want = " or ".join(v for k, v in expected.items() if fmt in ("auto", k))
    raise SceneError(f"{root}: no cameras found for --data.format {fmt}; expected {want}")


def _has_cameras(root: Path) -> bool:
    return bool(find_colmap_dir(root) is not None or find_transforms(root) or find_dprecon(root) or find_neus(root))


def load_scene(root: str | Path, cfg=None) -> Scene:
    """Load SCENE_DIR. cfg: DataConfig (defaults when None). The steps, in order: the format's parser
    (frames), checks, photos (decoded, undistorted, downscaled, cropped to a common size), instance masks
    (or alpha), depth/normal priors, normalisation into the unit sphere, the train/test split."""
    from ..config import DataConfig

    cfg = cfg or DataConfig()
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: scene folder not found; pass a folder with images/ and sparse/ or transforms.json")
    frames, pts, cols, split, extra = _frames(root, cfg.format, cfg.center_crop, cfg.sfm)
    frames = _checked(root, frames)
    objects = _read_objects(root) or dict(extra.get("objects") or {})
    bg = np.ones(3) if cfg.white_background else np.zeros(3)
    images, alpha, Ks, sizes, (W, H) = _load_photos(frames, cfg, bg)
    inst, objects, assoc = _load_masks(root, frames, cfg, sizes, (W, H), Ks, pts, objects, alpha)
    depth_prior = _load_priors(root / "depth", frames, sizes, (W, H), 1, "depth_path")
    normal_prior = _load_priors(root / "normal", frames, sizes, (W, H), 3, "normal_path")
    if depth_prior is not None and any(fr.depth_mask_path is not None for fr in frames):  # MonoSDF's valid-depth masks
        valid = _load_priors(root / "_none", frames, sizes, (W, H), 1, "depth_mask_path")
        if valid is not None:
            depth_prior[valid < 0.5] = float("nan")
    vms = np.stack([fr.viewmat for fr in frames])
    vms_int, centre, s, w_from_i, up = _normalise(vms, pts)
    names = [fr.name for fr in frames]
    train_idx, test_idx = _split(root, names, split, cfg.test_every)
    return Scene(
        name=root.resolve().name, root=root, image_names=names, images=images,
        viewmats=torch.from_numpy(vms_int).float(), Ks=torch.from_numpy(np.stack(Ks)).float(), width=W, height=H,
        train_idx=train_idx, test_idx=test_idx, objects=sorted(objects.values(), key=lambda o: o.id),
        instance=inst, alpha=alpha, depth_prior=depth_prior, normal_prior=normal_prior,
        points=torch.from_numpy((pts - centre) * s).float() if pts is not None else None,
        point_colors=torch.from_numpy(cols / 255.0).float() if cols is not None else None,
        world_from_internal=torch.from_numpy(w_from_i).float(), up=torch.from_numpy(up).float(),
        background_color=torch.from_numpy(bg).float(), source=frames[0].source,
        world_frame=extra.get("world_frame") or {}, sfm=extra.get("sfm") or {}, association=assoc,
    )


def _checked(root: Path, frames: List[Frame]) -> List[Frame]:
    """Frames with finite cameras whose photo exists (missing photos skipped with a warning)."""
    if not frames:
        raise SceneError(f"{root}: the camera file lists no images")
    kept = []
    for fr in frames:
        if not np.isfinite(fr.viewmat).all() or not np.isfinite(fr.K).all():
            raise SceneError(f"{fr.source}: non-finite (NaN/inf) pose or intrinsics for image {fr.name}; fix the camera file")
        if not fr.path.exists():
            warnings.warn(f"gs_recon: {fr.path} is listed in {fr.source} but missing; skipping it", stacklevel=3)
            continue
        kept.append(fr)
    if not kept:
        raise SceneError(f"{root}: none of the {len(frames)} images listed in {frames[0].source} exist (looked in {frames[0].path.parent})")
    if len(kept) == 1:
        warnings.warn(f"gs_recon: {root}: only one view; it is used for training, there is no test view and "
                      "geometry is unconstrained in depth", stacklevel=3)
    return kept


def _load_photos(frames: List[Frame], cfg, bg: np.ndarray):
    """Decode, undistort and downscale every photo, then centre-crop all to the smallest size (W, H).
    Returns images [C,H,W,3] in [0,1] (RGBA composited over bg), alpha [C,H,W] or None, Ks (list of [3,3]),
    each photo's downscaled size (w, h), and (W, H). Records per frame: file_size, K_file, scale_xy, crop."""
    imgs, alphas, Ks, sizes = [], [], [], []
    ds = float(cfg.downscale)
    for fr in frames:
        a = _load_image(fr.path)
        h0, w0 = a.shape[:2]
        fr.file_size = (h0, w0)  # as on disk, for checking the instance masks
        K = fr.K.copy()
        if fr.width and fr.height and (fr.width, fr.height) != (w0, h0):
            K[0] *= w0 / fr.width
            K[1] *= h0 / fr.height
        fr.K_file = K.copy()  # at the photo's size on disk: what undistorts the photo and its masks
        if np.any(fr.dist != 0):
            a = undistort(a, K, fr.dist)
        s = max(ds, w0 / cfg.max_size, 1.0)
        w, h = max(1, round(w0 / s)), max(1, round(h0 / s))
        a = _resize(a, (w, h), nearest=False)
        K[0] *= w / w0
        K[1] *= h / h0
        imgs.append(a)
        Ks.append(K)
        sizes.append((w, h))
        fr.scale_xy = (w / w0, h / h0)
    W, H = min(s[0] for s in sizes), min(s[1] for s in sizes)
    rgb_list = []
    for i, a in enumerate(imgs):
        h, w = a.shape[:2]
        oy, ox = (h - H) // 2, (w - W) // 2
        a = a[oy : oy + H, ox : ox + W]
        Ks[i][0, 2] -= ox
        Ks[i][1, 2] -= oy
        frames[i].crop = (ox, oy)
        f = a.astype(np.float32) / 255.0
        if f.shape[-1] == 4:
            al = f[..., 3:4]
            alphas.append(al[..., 0])
            f = f[..., :3] * al + bg * (1 - al)
        else:
            alphas.append(None)
        rgb_list.append(f[..., :3])
    images = torch.from_numpy(np.stack(rgb_list)).float()
    alpha = torch.from_numpy(np.stack(alphas)).float() if all(a is not None for a in alphas) else None
    return images, alpha, Ks, sizes, (W, H)


def _load_masks(root: Path, frames: List[Frame], cfg, sizes, size, Ks, pts, objects: Dict[int, ObjectInfo],
                alpha: Optional[Tensor]):
    """Instance masks [C,H,W] int64 (0 background, -1 unknown) through the photos' undistortion, scaling and
    crop: from instance/ or the parser's per-frame masks, made by --data.segmenter when there are none,
    tied across views when ids are per photo; else alpha > 0.5 as object 1; None without either.
    Returns (masks, objects completed with unnamed ids, the association's report)."""
    W, H = size
    inst = None
    assoc = {}  # --data.masks per_image: the association's report
    inst_dir = root / "instance"
    per_frame = any(fr.instance_path is not None for fr in frames)  # the parser paired masks with images
    mask_mode = cfg.masks
    if cfg.segmenter and not per_frame and not inst_dir.is_dir():  # no masks: a segmenter makes per-photo ones
        from .segment import segment_scene

        segment_scene(root, [fr.path for fr in frames], cfg.segmenter)
        mask_mode = "per_image"
    if per_frame or inst_dir.is_dir():
        labs = []
        for i, fr in enumerate(frames):
            if per_frame:
                p = fr.instance_path
                if p is None:  # a view without a mask (e.g. a test view): -1 = unknown, never an object id
                    labs.append(np.full((H, W), -1, np.int64))
                    continue
            else:
                stem = Path(fr.name).stem
                cands = [inst_dir / f"{stem}.png", inst_dir / f"{Path(fr.name).name}.png"]
                p = next((c for c in cands if c.exists()), None)
                if p is None:
                    raise SceneError(f"{inst_dir}: no instance mask for image {fr.name} (expected {cands[0].name})")
            lab = _load_label(p)
            if fr.relabel is not None:  # the layout's ids -> object ids (DP-Recon: 255 and unlisted ids = background)
                lab = fr.relabel(lab)
            src = fr.file_size
            if lab.shape != src:
                raise SceneError(f"{p}: mask size {lab.shape[1]}x{lab.shape[0]} does not match image {fr.path.name} "
                                 f"({src[1]}x{src[0]}); masks must have the image's size")
            if np.any(fr.dist != 0):
                lab = undistort(lab, fr.K_file, fr.dist, nearest=True)
            w, h = sizes[i]
            lab = _resize(lab, (w, h), nearest=True)
            ox, oy = fr.crop
            labs.append(lab[oy : oy + H, ox : ox + W])
        inst = torch.from_numpy(np.stack(labs)).long()
        if mask_mode == "per_image":  # ids per photo: tie them together through the SfM points
            from .associate import associate

            lab_np, assoc = associate(inst.numpy(), np.stack([fr.viewmat for fr in frames]), np.stack(Ks), pts)
            inst = torch.from_numpy(lab_np)
            objects = {k: ObjectInfo(k, f"object_{k}", "a photo of an object") for k in range(1, assoc["objects"] + 1)}
        present = set(int(v) for v in torch.unique(inst).tolist()) - {0, -1}
        inst_dir = inst_dir if not per_frame else Path(str(frames[0].instance_path)).parent
        for k in sorted(present - set(objects)):
            warnings.warn(f"gs_recon: label {k} appears in {inst_dir} but not in objects.json; naming it object_{k}", stacklevel=3)
            objects[k] = ObjectInfo(k, f"object_{k}", "a photo of an object")
        for k in sorted(set(objects) - present):
            warnings.warn(f"gs_recon: object {k} ({objects[k].name}) in objects.json never appears in {inst_dir}; it will have no Gaussians", stacklevel=3)
    elif alpha is not None:
        inst = (alpha > 0.5).long()
        if 1 not in objects:
            objects[1] = ObjectInfo(1, root.name or "object", f"a photo of a {root.name or 'object'}")
    return inst, objects, assoc


def _normalise(vms: np.ndarray, pts: Optional[np.ndarray]):
    """Camera centres into the unit sphere: (internal viewmats [C,4,4], centre [3], scale s, world_from_internal
    [4,4] (the similarity back), up [3] (estimated from the cameras))."""
    centres = -np.einsum("cji,cj->ci", vms[:, :3, :3], vms[:, :3, 3])
    centre = centres.mean(0)
    radius = float(np.linalg.norm(centres - centre, axis=1).max())
    if radius < 1e-8:
        radius = float(np.linalg.norm(pts - centre, axis=1).max()) if pts is not None and len(pts) else 1.0
    s = 1.0 / max(radius, 1e-8)
    vms_int = vms.copy()
    vms_int[:, :3, 3] = s * (np.einsum("cij,j->ci", vms[:, :3, :3], centre) + vms[:, :3, 3])
    w_from_i = np.eye(4)
    w_from_i[:3, :3] /= s
    w_from_i[:3, 3] = centre
    return vms_int, centre, s, w_from_i, estimate_up(vms, centres)


def _load_priors(d: Path, frames, sizes, size, ch: int, key: str) -> Optional[Tensor]:
    """Monocular priors per frame, resampled like the photos: [C, H, W] (ch 1) or [C, H, W, 3].
    Files: the path the parser paired with each frame (Frame.<key>), else d/<image stem>.npy. Views
    without one (test views of the DP-Recon layout) are NaN. Normals: our layout [H, W, 3] (or [3, H, W])
    in [-1, 1]; DP-Recon's (normal_encoding 'chw01') [3, H, W] in [0, 1], mapped x2-1. Both are OpenCV
    camera-frame normals facing the camera (MonoSDF rotates its rendered normals into that frame)."""
    paired = any(getattr(fr, key) is not None for fr in frames)
    if not paired and not d.is_dir():
        return None
    out = []
    W, H = size
    for i, fr in enumerate(frames):
        p = getattr(fr, key) if paired else d / f"{Path(fr.name).stem}.npy"
        if paired and p is None:
            out.append(np.full((H, W) if ch == 1 else (H, W, 3), np.nan, np.float32))
            continue
        if not p.exists():
            warnings.warn(f"gs_recon: {d} lacks {p.name}; ignoring the {d.name} priors", stacklevel=2)
            return None
        try:
            a = np.load(p, allow_pickle=False).astype(np.float32)
        except (ValueError, OSError) as e:
            raise SceneError(f"{p}: unreadable .npy ({e})") from None
        if ch == 3 and a.ndim == 3 and a.shape[0] == 3:
            a = a.transpose(1, 2, 0)
        if ch == 3 and fr.normal_encoding == "chw01":
            a = a * 2.0 - 1.0
        if ch == 1 and a.ndim == 3:
            a = a[..., 0] if a.shape[-1] == 1 else a[0]
        is_depth = ch == 1 and key == "depth_path"  # its holes must not blend into the depths around them
        resample = _resample_depth if is_depth else (lambda x, fn: fn(x))  # noqa: E731
        if np.any(fr.dist != 0):  # estimated on the distorted photo: same resampling as the photo
            h0, w0 = fr.file_size
            K = fr.K_file * np.array([[a.shape[1] / w0], [a.shape[0] / h0], [1.0]])
            a = resample(a, lambda x: undistort(x, K, fr.dist))
        a = resample(a, lambda x: _resize(x, sizes[i], nearest=False))
        ox, oy = fr.crop
        out.append(a[oy : oy + H, ox : ox + W])
    return torch.from_numpy(np.stack(out)).float()


def _resample_depth(a: np.ndarray, fn) -> np.ndarray:
    """Resample a depth prior [H, W] with fn (a bilinear resize or undistortion) without letting its holes
    (NaN, or <= 0: sensor depth's 'no reading') blend into the depths around them: the depth and its validity
    are resampled alike, and only pixels drawn wholly from valid ones keep a depth (the rest are NaN)."""
    valid = np.isfinite(a) & (a > 0)
    if valid.all():
        return fn(a)
    w = fn(valid.astype(np.float32))
    d = fn(np.where(valid, a, 0.0).astype(np.float32))
    return np.where(w > 0.999, d / np.maximum(w, 1e-6), np.nan).astype(np.float32)


def _split(root: Path, names: List[str], split, test_every: int):
    sp = root / "split.json"
    explicit = sp.exists()
    if explicit:
        try:
            split = json.loads(sp.read_text())
        except json.JSONDecodeError as e:
            raise SceneError(f"{sp}: invalid JSON ({e.msg})") from None
    if split:
        def idx(lst):
            s = {Path(n).name for n in lst} | set(lst)
            return [i for i, n in enumerate(names) if n in s or Path(n).name in s]
        tr = idx(split.get("train", []))
        te = idx(split.get("test", []))
        if tr and (te or explicit):
            return tr, te
    if len(names) < 2 or test_every <= 0:
        return list(range(len(names))), []
    te = [i for i in range(len(names)) if i % test_every == 0]
    tr = [i for i in range(len(names)) if i % test_every != 0]
    return tr, te
