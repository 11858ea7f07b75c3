"""Diffusion guidance for the prior stages: Stable Diffusion SDS (sd.py), tiny random models for tests
(tiny.py), novel cameras around objects and the background (cameras.py)."""
