"""The guidance models the prior stages can use, by name (threestudio registers its guidance the same way):
`--prior.model` is a hub id or local diffusers folder (Stable Diffusion), "tiny-random" (a tiny randomly
initialised SD for tests; plumbing, not quality) or "exemplar:DIR" (the exemplar prior, no weights)."""
from __future__ import annotations

from typing import Callable, Dict

import torch

from .sd import SDSBase, SDSGuidance, load_components


def _exemplar(ref: str, guidance_scale: float, device: torch.device, dtype: torch.dtype) -> SDSBase:
    from .exemplar import ExemplarGuidance

    return ExemplarGuidance(ref, guidance_scale=guidance_scale, device=device)


def _tiny(ref: str, guidance_scale: float, device: torch.device, dtype: torch.dtype) -> SDSBase:
    from .tiny import tiny_components

    return SDSGuidance(*tiny_components(), guidance_scale=guidance_scale, device=device, dtype=torch.float32)


def _stable_diffusion(ref: str, guidance_scale: float, device: torch.device, dtype: torch.dtype) -> SDSBase:
    return SDSGuidance(*load_components(ref), guidance_scale=guidance_scale, device=device, dtype=dtype)


# prefix (or exact name) -> loader(rest of the string, guidance_scale, device, dtype); anything else is SD
GUIDANCE: Dict[str, Callable[..., SDSBase]] = {"exemplar:": _exemplar, "tiny-random": _tiny}


def load_guidance(model: str, guidance_scale: float = 50.0, device="cpu", fp16: bool = True) -> SDSBase:
    """The guidance model `model` names (see the module docstring); fp16 on CUDA for Stable Diffusion.
    Raises SceneError, naming the model and how to provide it, when its weights or files are not available."""
    dev = torch.device(device)
    dtype = torch.float16 if (fp16 and dev.type == "cuda") else torch.float32
    for key, loader in GUIDANCE.items():
        if model == key or (key.endswith(":") and model.startswith(key)):
            return loader(model[len(key):] if key.endswith(":") else model, guidance_scale, dev, dtype)
    return _stable_diffusion(model, guidance_scale, dev, dtype)
