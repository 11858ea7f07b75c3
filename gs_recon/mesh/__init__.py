from .tsdf import TSDFVolume, fuse_depth_maps, clean_mesh  # noqa: F401
