"""Inpainting with a diffusion model: what no photo of the background saw, painted by Stable Diffusion 2
inpainting (DP-Recon's route for the unseen background, there on a panorama; here on a ring of views from
the room's centre). See docs/PRIOR.md, "Background inpainting".

The model is a diffusers Stable Diffusion inpainting model: a UNet with 9 input channels (the noisy latent
[4], the mask at latent resolution [1], the VAE latent of the image with the hole blanked [4]). Sampling is
plain DDIM with classifier-free guidance; the result keeps every unmasked pixel of the input exactly.
'tiny-random' builds a tiny randomly initialised inpainting UNet / VAE / text encoder from configs (tests and
CPU plumbing only: it paints noise, not rooms).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .sd import SDSGuidance, load_components

DEFAULT_MODEL = "stabilityai/stable-diffusion-2-inpainting"


class Inpainter(SDSGuidance):
    """An inpainting diffusion model (SDSGuidance's components, text embeddings and guided noise prediction
    reused; nothing here is differentiated)."""

    def __init__(self, *parts, guidance_scale: float = 7.5, steps: int = 25, device="cpu", dtype=torch.float32):
        super().__init__(*parts, guidance_scale=guidance_scale, device=device, dtype=dtype)
        if self.unet.config.in_channels != 9:
            raise ValueError(f"an inpainting UNet takes 9 input channels, this one {self.unet.config.in_channels}")
        self.steps = steps

    @torch.no_grad()
    def __call__(self, rgb: Tensor, mask: Tensor, prompt: str, generator: Optional[torch.Generator] = None) -> Tensor:
        """rgb [B,H,W,3] in [0,1] (H, W multiples of 8), mask [B,H,W,1] (1 = paint) -> [B,H,W,3] in [0,1], equal
        to rgb where mask is 0."""
        from diffusers import DDIMScheduler

        B, H, W, _ = rgb.shape
        dev, dt = self.device, self.dtype
        m = (mask > 0.5).float().permute(0, 3, 1, 2).to(dev)  # [B,1,H,W]
        x = (rgb.permute(0, 3, 1, 2).to(dev) * 2 - 1) * (1 - m)  # the hole blanked (SD inpainting: 0 = grey)
        z_img = self.vae.encode(x.to(dt)).latent_dist.mean.float() * self.scaling
        m_lat = F.interpolate(m, size=z_img.shape[-2:])
        sched = DDIMScheduler.from_config(self.scheduler.config)
        sched.set_timesteps(self.steps)
        z = torch.randn(z_img.shape, generator=generator).to(dev) * sched.init_noise_sigma
        for t in sched.timesteps:
            inp = torch.cat([sched.scale_model_input(z, t), m_lat, z_img], 1)
            eps = self.guided_eps(inp, t.expand(B).to(dev), prompt, self.guidance_scale)
            z = sched.step(eps, t, z).prev_sample
        img = (self.vae.decode((z / self.scaling).to(dt)).sample.float().clamp(-1, 1) + 1) / 2
        out = m * img + (1 - m) * rgb.permute(0, 3, 1, 2).to(dev)
        return out.permute(0, 2, 3, 1).cpu()


def load_inpainter(model: str = DEFAULT_MODEL, device="cpu", fp16: bool = True, guidance_scale: float = 7.5,
                   steps: int = 25) -> Inpainter:
    """An Inpainter from a hub id or a local diffusers folder ('tiny-random': tiny random components).
    Raises SceneError naming the model and how to get it (or to skip: --prior.inpaint_iters 0)."""
    dev = torch.device(device)
    if model == "tiny-random":
        from .tiny import tiny_components

        return Inpainter(*tiny_components(in_channels=9), guidance_scale=guidance_scale, steps=steps, device=dev)
    dtype = torch.float16 if (fp16 and dev.type == "cuda") else torch.float32
    parts = load_components(model, "--prior.inpaint_model", "--prior.inpaint_iters 0 skips background inpainting")
    return Inpainter(*parts, guidance_scale=guidance_scale, steps=steps, device=dev, dtype=dtype)
