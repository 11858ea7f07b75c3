"""The neutral structures every parser fills (whatever the input format)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np


@dataclass
class Frame:
    """One photo and its camera as every parser returns it (nerfstudio's neutral frame): conventions are
    converted by the parser, once; nothing downstream knows the source format."""
    name: str  # the image's name relative to the scene (split files and outputs use it)
    path: Path  # the photo
    viewmat: np.ndarray  # [4, 4] float64, OpenCV world-to-camera (x right, y down, z forward)
    K: np.ndarray  # [3, 3] intrinsics at (width, height)
    width: int  # the camera file's image size (0 = take the photo's)
    height: int
    source: str  # the camera file it came from (named in error messages)
    dist: np.ndarray = field(default_factory=lambda: np.zeros(4))  # [4] k1, k2, p1, p2
    # files the parser paired with this photo (layouts with per-image masks / monocular priors)
    instance_path: Optional[Path] = None
    relabel: Optional[Callable[[np.ndarray], np.ndarray]] = None  # the layout's mask ids -> object ids
    depth_path: Optional[Path] = None
    normal_path: Optional[Path] = None
    depth_mask_path: Optional[Path] = None  # MonoSDF's valid-depth mask
    normal_encoding: str = "hwc"  # "chw01": [3, H, W] in [0, 1] (DP-Recon / MonoSDF), else [H, W, 3] unit
    # set by load_scene's photo step, read by the mask and prior steps (they resample the same way)
    file_size: Optional[Tuple[int, int]] = None  # (h, w) of the photo on disk
    K_file: Optional[np.ndarray] = None  # [3, 3] at the photo's size on disk (undistorts photo and masks)
    scale_xy: Optional[Tuple[float, float]] = None  # resize factors applied to the photo
    crop: Optional[Tuple[int, int]] = None  # (x, y) offset of the common-size crop


@dataclass
class ObjectInfo:
    id: int
    name: str
    prompt: str
    category: str = ""  # objects.json "category" (the exemplar prior's folder), else the name
    appearance_prompt: str = ""  # the appearance stage's prompt (DP-Recon's *_prompt_texture.json), else prompt

    def __post_init__(self):
        self.category = self.category or self.name
        self.appearance_prompt = self.appearance_prompt or self.prompt
