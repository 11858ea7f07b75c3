from .splats import read_ply, write_ply, write_splat, to_world, valid_mask  # noqa: F401
