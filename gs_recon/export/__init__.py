from .splats import read_ply, valid_mask, write_ply, write_splat  # noqa: F401
