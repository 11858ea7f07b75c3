from .model import create_params, select, num_gaussians, PARAM_KEYS  # noqa: F401
