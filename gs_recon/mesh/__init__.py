from .tsdf import TSDFVolume, clean_mesh, fuse_depth_maps  # noqa: F401
