"""Tiny, randomly initialised Stable-Diffusion-shaped components built from configs (no weights).

For tests and CPU plumbing runs (``--prior.model tiny-random``) only: a random UNet predicts noise
that has nothing to do with any image distribution, so SDS with it cannot add plausible content.
"""
from __future__ import annotations

import hashlib

import torch


class HashTokenizer:
    """Stand-in for CLIPTokenizer (whose vocabulary files cannot be downloaded here): word -> id by a
    stable hash. Same call signature as the transformers tokenizer for what SDSGuidance uses."""

    def __init__(self, vocab_size: int = 1000, model_max_length: int = 16):
        self.vocab_size, self.model_max_length = vocab_size, model_max_length
        self.bos, self.eos = vocab_size - 2, vocab_size - 1

    def _ids(self, text: str):
        words = text.lower().split()
        ids = [self.bos] + [int(hashlib.md5(w.encode()).hexdigest(), 16) % (self.vocab_size - 2) for w in words]
        ids = ids[: self.model_max_length - 1] + [self.eos]
        return ids + [self.eos] * (self.model_max_length - len(ids))

    def __call__(self, texts, padding="max_length", max_length=None, truncation=True, return_tensors="pt"):
        class _Out:
            pass

        out = _Out()
        out.input_ids = torch.tensor([self._ids(t) for t in texts], dtype=torch.long)
        return out


def tiny_components(seed: int = 0, in_channels: int = 4):
    """(unet, vae, text_encoder, tokenizer, scheduler) with SD 1.x/2.x shapes: 4 latent channels,
    VAE downsampling 8, cross-attention on CLIP-like text features, DDPM scaled-linear schedule.
    in_channels 9: an inpainting UNet (noisy latent, mask, masked-image latent), as SD 2 inpainting's."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4,
        sample_size=64,
    )
    text = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=16, bos_token_id=998,
                                        eos_token_id=999, pad_token_id=999))
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    return unet.eval(), vae.eval(), text.eval(), HashTokenizer(1000, 16), sched
