from .model import PARAM_KEYS, create_params, num_gaussians, select  # noqa: F401
