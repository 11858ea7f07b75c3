"""Build/load the C++ CPU kernels: projection, rasterizer, visibility, TSDF integration, UV rasterisation, texture
baking.

JIT-compiled once with torch.utils.cpp_extension, then cached."""
from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache
from pathlib import Path

_SRC = Path(__file__).parent / "csrc" / "raster_cpu.cpp"
_SRC_PROJ = Path(__file__).parent / "csrc" / "projection_cpu.cpp"
_SRC_TSDF = Path(__file__).parent.parent / "mesh" / "csrc" / "tsdf_cpu.cpp"
_SRC_UV = Path(__file__).parent.parent / "mesh" / "csrc" / "uv_cpu.cpp"
_SRC_BAKE = Path(__file__).parent.parent / "mesh" / "csrc" / "bake_cpu.cpp"


def build_dir(kind: str) -> Path:
    """Where the JIT builds of `kind` ("ext", "cuda_ext") go: ~/.cache/gs_recon (GS_RECON_BUILD_DIR overrides
    it) / kind-<hash of this checkout's path>. Two checkouts (a git worktree, a clean clone) would otherwise
    share one build folder and rebuild it for each other on every import, or race on it."""
    root = Path(os.environ.get("GS_RECON_BUILD_DIR", Path.home() / ".cache" / "gs_recon"))
    tag = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:10]
    out = root / f"{kind}-{tag}"
    out.mkdir(parents=True, exist_ok=True)
    return out


@lru_cache(maxsize=1)
def load_cpu_ext():
    """Return the compiled extension module, or None (with one warning) if it cannot be built.

    Without it the pure-torch reference rasterizer is used: identical results, much slower.
    """
    if os.environ.get("GS_RECON_NO_CPP") == "1":
        return None
    try:
        from torch.utils.cpp_extension import load

        return load(
            name="gs_recon_raster_cpu",
            sources=[str(_SRC), str(_SRC_PROJ), str(_SRC_TSDF), str(_SRC_UV), str(_SRC_BAKE)],
            extra_cflags=["-O3", "-ffast-math", "-fopenmp"] if os.name != "nt" else ["/O2"],
            extra_ldflags=["-fopenmp"] if os.name != "nt" else [],
            build_directory=str(build_dir("ext")),
            verbose=False,
        )
    except Exception as e:  # compiler missing, headers missing, ...
        warnings.warn(
            f"gs_recon: could not build the C++ CPU rasterizer ({type(e).__name__}: {str(e)[:200]}); "
            "falling back to the pure-torch reference (slow). Install a C++ compiler (g++) to fix.",
            stacklevel=2,
        )
        return None
