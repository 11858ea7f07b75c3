from .splats import read_ply, to_world, valid_mask, write_ply, write_splat  # noqa: F401
