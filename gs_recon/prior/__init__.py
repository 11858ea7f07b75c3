"""The generative prior (DP-Recon's stages 2 and 3 on Gaussians; docs/PRIOR.md): the guidance models by name
(models.py: Stable Diffusion SDS in sd.py, the exemplar prior in exemplar.py, tiny random models for tests in
tiny.py, background inpainting in inpaint.py), the geometry latent (latents.py), per-Gaussian visibility
(visibility.py), novel cameras (cameras.py) and the stages that train with them (stages.py)."""
