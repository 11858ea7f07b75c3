"""Score Distillation Sampling with a Stable Diffusion model from diffusers (DreamFusion, as in
threestudio's stable-diffusion guidance, with DP-Recon's settings).

For latents z [B,4,h,w] and a prompt: t ~ U[t_min, t_max], eps ~ N(0, I),
z_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps, classifier-free guidance
eps_hat = eps_u + s (eps_c - eps_u) (s = 50), and the SDS gradient
    dL/dz = W * w(t) * (eps_hat - eps),   w(t) = sqrt(abar_t) (1 - abar_t)
where W [B,1,h,w] is an optional per-pixel weight (the visibility mapping). The UNet is not
differentiated; the gradient reaches the renderer through z (geometry stage: z is the resized render
itself) or through the VAE encoder (appearance stage: z = scaling_factor * E(2 rgb - 1), the encoder's
mean, so the gradient is deterministic).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SceneError


class SDSBase:
    """The SDS machinery shared by every guidance model: timestep and noise draws, w(t), the gradient and
    the 'target = z - g' loss. A model provides predict_noise(z_t, t, prompt) (classifier-free guided)."""

    def __init__(self, alphas_cumprod: Tensor, guidance_scale: float, device):
        self.device = torch.device(device)
        self.alphas_cumprod = alphas_cumprod.to(self.device, torch.float32)  # [T]
        self.num_train_timesteps = int(alphas_cumprod.shape[0])
        self.guidance_scale = guidance_scale

    def predict_noise(self, z_t: Tensor, t: Tensor, prompt: str) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    # ------------------------------------------------------------------ SDS
    def w(self, t: Tensor) -> Tensor:
        """w(t) = sqrt(abar_t) (1 - abar_t), t [B] long -> [B]."""
        ab = self.alphas_cumprod[t]
        return ab.sqrt() * (1 - ab)

    def sds_grad(self, z: Tensor, prompt: str, t: Tensor, noise: Optional[Tensor] = None,
                 weight: Optional[Tensor] = None) -> Tensor:
        """The SDS gradient dL/dz [B,4,h,w] (no graph). weight: [B,1,h,w] per-pixel weights or None."""
        z = z.detach().float()
        eps = torch.randn_like(z) if noise is None else noise
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        z_t = ab.sqrt() * z + (1 - ab).sqrt() * eps
        g = self.w(t).view(-1, 1, 1, 1) * (self.predict_noise(z_t, t, prompt) - eps)
        if weight is not None:
            g = g * weight
        return torch.nan_to_num(g)

    def sds_loss(self, z: Tensor, prompt: str, t_range, weight: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None, noise: Optional[Tensor] = None,
                 t: Optional[Tensor] = None) -> Tensor:
        """A scalar whose gradient w.r.t. z is sds_grad (the usual 'target = z - g' trick), averaged over
        the batch. t_range = (t_min, t_max) timesteps; t or noise can be fixed (tests)."""
        B = z.shape[0]
        if t is None:
            t = torch.randint(int(t_range[0]), int(t_range[1]) + 1, (B,), generator=generator).to(self.device)
        if noise is None and generator is not None:  # reproducible: all draws from the stage's generator
            noise = torch.randn(z.shape, generator=generator).to(self.device)
        g = self.sds_grad(z, prompt, t, noise, weight)
        target = (z.float() - g).detach()
        return 0.5 * F.mse_loss(z.float(), target, reduction="sum") / B


class SDSGuidance(SDSBase):
    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, guidance_scale: float = 50.0,
                 device="cpu", dtype=torch.float32):
        super().__init__(scheduler.alphas_cumprod, guidance_scale, device)
        self.dtype = dtype
        cast = (lambda m: m.to(self.device)) if dtype == torch.float32 else (lambda m: m.to(self.device, dtype))
        self.unet = cast(unet).eval().requires_grad_(False)
        self.vae = cast(vae).eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(self.device).eval().requires_grad_(False)
        self.tokenizer, self.scheduler = tokenizer, scheduler
        self.scaling = float(getattr(vae.config, "scaling_factor", 0.18215))
        self._emb: Dict[str, Tensor] = {}

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def embed(self, prompt: str) -> Tensor:
        """[2, L, D] (unconditional, conditional) text embeddings, computed once per prompt and cached."""
        if prompt not in self._emb:
            tok = self.tokenizer(["", prompt], padding="max_length",
                                 max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt")
            self._emb[prompt] = self.text_encoder(tok.input_ids.to(self.device))[0].to(self.dtype)
        return self._emb[prompt]

    def guided_eps(self, unet_in: Tensor, t: Tensor, prompt: str, scale: float) -> Tensor:
        """Classifier-free guidance: eps_u + scale (eps_c - eps_u) from one UNet call on the batch twice.
        unet_in [B,C,h,w] (C = 4 for SD, 9 for an inpainting UNet), t [B] -> [B,4,h,w]."""
        B = unet_in.shape[0]
        emb = self.embed(prompt)
        ctx = torch.cat([emb[:1].expand(B, -1, -1), emb[1:].expand(B, -1, -1)])
        out = self.unet(torch.cat([unet_in, unet_in]).to(self.dtype), torch.cat([t, t]), encoder_hidden_states=ctx).sample
        eps_u, eps_c = out.float().chunk(2)
        return eps_u + scale * (eps_c - eps_u)

    @torch.no_grad()
    def predict_noise(self, z_t: Tensor, t: Tensor, prompt: str) -> Tensor:
        """Classifier-free-guided noise prediction eps_hat [B,4,h,w] for noisy latents z_t at t [B]."""
        return self.guided_eps(z_t, t, prompt, self.guidance_scale)

    def encode_images(self, rgb: Tensor) -> Tensor:
        """rgb [B,H,W,3] in [0,1] (H, W multiples of 8) -> latents [B,4,H/8,W/8], differentiable."""
        x = (rgb.permute(0, 3, 1, 2) * 2 - 1).to(self.device, self.dtype)
        return self.vae.encode(x).latent_dist.mean.float() * self.scaling


def load_components(model: str, option: str = "--prior.model", off: str = "--guidance none runs reconstruction only"):
    """(unet, vae, text_encoder, tokenizer, scheduler) of a diffusers Stable Diffusion model (text-to-image or
    inpainting) from a hub id (HF cache first, then one download attempt) or a local folder. Raises SceneError,
    naming the model, how to provide it (`option` takes a folder) and how to do without (`off`), when the
    weights are not available."""
    try:
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as e:
        raise SceneError(f"{option} {model} needs diffusers and transformers ({e.name} missing): "
                         "pip install -e '.[prior]'") from None
    local = Path(model).expanduser()
    is_path = local.exists() or model.startswith((".", "/", "~"))
    if is_path and not (local / "unet").is_dir():
        raise SceneError(f"{local}: not a diffusers Stable Diffusion folder (no unet/); point {option} at "
                         "a folder saved with save_pretrained, or at a hub id such as stabilityai/stable-diffusion-2-1-base")
    src = str(local) if is_path else model
    kw = {} if is_path else {"local_files_only": True}

    def _load():
        return (UNet2DConditionModel.from_pretrained(src, subfolder="unet", **kw),
                AutoencoderKL.from_pretrained(src, subfolder="vae", **kw),
                CLIPTextModel.from_pretrained(src, subfolder="text_encoder", **kw),
                CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", **kw),
                DDPMScheduler.from_pretrained(src, subfolder="scheduler", **kw))

    try:
        parts = _load()
    except Exception as first:  # not in the HF cache: one online attempt for hub ids
        if is_path:
            raise SceneError(f"{src}: could not load the diffusion model ({type(first).__name__}: {str(first)[:150]})") from None
        try:
            kw = {}
            parts = _load()
        except Exception as e:
            raise SceneError(
                f"diffusion model '{model}' is not available offline and could not be downloaded "
                f"({type(e).__name__}). Get it once on a machine with internet: "
                f"`huggingface-cli download {model}` (fills the HF cache, ~/.cache/huggingface), or pass "
                f"{option} /path/to/a/diffusers/folder; {off}") from None
    return parts


def prompts_for(scene, stage: str = "geometry") -> Dict[int, str]:
    """Prompt per object id (objects.json 'prompt', else 'a photo of a {name}'; the appearance stage uses
    the appearance prompt where the layout gives one, DP-Recon's *_prompt_texture.json); 0 = background."""
    return {0: "a photo of an empty room, walls and floor",
            **{o.id: o.appearance_prompt if stage == "appearance" else o.prompt for o in scene.objects}}


def timestep_range(start: List[int], end: List[int], progress: float, hold: float = 0.0):
    """(t_min, t_max): `start` while progress < hold, then linear to `end` at progress 1 (DP-Recon's
    geometry.yaml holds [0.2, 0.98] of T until step 2500 of 5000, then anneals to [0.02, 0.40])."""
    p = min(max((progress - hold) / max(1e-8, 1.0 - hold), 0.0), 1.0)
    return (round(start[0] + (end[0] - start[0]) * p), round(start[1] + (end[1] - start[1]) * p))
