"""Camera poses from raw photos: structure from motion with pycolmap (COLMAP's own library, CPU).

SIFT features, matching chosen by the image count (exhaustive up to `exhaustive_max` images, else sequential
with loop detection off: photos taken in order), incremental mapping, the largest model written to
SCENE_DIR/sparse/0 in COLMAP's binary format; from there the scene loads as any COLMAP scene (undistortion
included). One camera is shared by all photos when they have one size (one phone, one lens), else one per
image. The work folder (database, partial models) lives beside sparse/ and is removed when done.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Dict, Optional

from ..errors import SceneError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"}


def photo_names(image_dir: Path):
    return sorted(p.name for p in Path(image_dir).iterdir() if p.suffix in IMAGE_EXTS)


def estimate_poses(root: Path, image_dir: Optional[Path] = None, exhaustive_max: int = 150, seed: int = 0,
                   progress: bool = True, min_registered: float = 0.5) -> Dict:
    """Run SfM on root/images (or image_dir) and write root/sparse/0. Returns a report
    {images, registered, points, matching, seconds, unregistered: [names]}.

    Raises SceneError (one line) when pycolmap is missing, when there are fewer than 3 photos, or when fewer
    than min_registered of the photos end up in the model; nothing is left behind in that case."""
    try:
        import pycolmap
    except ImportError:
        raise SceneError(f"{root}: no cameras found and pycolmap is not installed; `pip install pycolmap` to "
                         f"estimate poses from the photos, or provide COLMAP sparse/ or transforms.json") from None
    from PIL import Image

    root = Path(root)
    image_dir = Path(image_dir) if image_dir else root / "images"
    names = photo_names(image_dir) if image_dir.is_dir() else []
    if len(names) < 3:
        raise SceneError(f"{image_dir}: {len(names)} photos; structure from motion needs at least 3 overlapping photos")
    sizes = {Image.open(image_dir / n).size for n in names}
    work = root / "sparse" / ".sfm_work"
    final = root / "sparse" / "0"
    if final.exists():
        raise SceneError(f"{final} exists already; remove it to estimate the poses again")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.time()
    say = print if progress else (lambda *a, **k: None)
    old_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 3  # COLMAP's own log (glog) is hundreds of lines; our lines say what happens
    try:
        db = work / "database.db"
        mode = pycolmap.CameraMode.SINGLE if len(sizes) == 1 else pycolmap.CameraMode.PER_IMAGE
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "SIMPLE_RADIAL"  # focal, principal point, one radial term: phones and compact lenses
        say(f"sfm: extracting features from {len(names)} photos ({'one camera' if len(sizes) == 1 else 'one camera per photo'})")
        ext = pycolmap.FeatureExtractionOptions()
        ext.num_threads = -1
        pycolmap.extract_features(db, image_dir, image_names=names, camera_mode=mode, reader_options=reader,
                                  extraction_options=ext, device=pycolmap.Device.cpu)
        matching = "exhaustive" if len(names) <= exhaustive_max else "sequential"
        say(f"sfm: {matching} matching")
        if matching == "exhaustive":
            pycolmap.match_exhaustive(db, device=pycolmap.Device.cpu)
        else:
            pycolmap.match_sequential(db, device=pycolmap.Device.cpu)
        say("sfm: incremental mapping")
        opts = pycolmap.IncrementalPipelineOptions()
        opts.random_seed = seed
        opts.multiple_models = False
        models = pycolmap.incremental_mapping(db, image_dir, work / "models", opts)
        best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
        n_reg = best.num_reg_images() if best is not None else 0
        if n_reg < max(3, min_registered * len(names)):
            raise SceneError(
                f"{image_dir}: structure from motion registered {n_reg} of {len(names)} photos; take more photos "
                f"with more overlap (each part of the scene in 3+ photos, textured surfaces), or bring poses from "
                f"another tool as COLMAP sparse/ or transforms.json")
        tmp = root / "sparse" / ".0.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        best.write(tmp)
        tmp.rename(final)
        reg = {best.image(i).name for i in best.reg_image_ids()}
        report = {"images": len(names), "registered": n_reg, "points": best.num_points3D(), "matching": matching,
                  "cameras": best.num_cameras(), "seconds": round(time.time() - t0, 1),
                  "unregistered": [n for n in names if n not in reg]}
        say(f"sfm: registered {n_reg} of {len(names)} photos, {report['points']} points, {report['seconds']} s "
            f"-> {final}")
        return report
    finally:
        pycolmap.logging.minloglevel = old_level
        shutil.rmtree(work, ignore_errors=True)
