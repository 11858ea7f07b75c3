from .recon import Trainer  # noqa: F401
