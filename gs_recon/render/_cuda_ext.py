"""Build/load gs_recon's CUDA kernels (cuda_ext/: the visibility accumulator and median depth).

JIT-compiled with torch.utils.cpp_extension on first use and cached under
~/.cache/gs_recon/cuda_ext-<checkout hash> (_ext.build_dir; GS_RECON_BUILD_DIR overrides the parent). Needs a CUDA build of
torch and the CUDA toolkit (CUDA_HOME, or nvcc on the PATH). ``python cuda_ext/build.py`` compiles
and links it without a GPU (CI does this so a build break fails CI).
"""
from __future__ import annotations

import os
import shutil
import warnings
from functools import lru_cache
from pathlib import Path

from ._ext import build_dir

# cuda_ext/ of a checkout, or its installed copy gs_recon/cuda_ext (setup.py package_dir)
SRC_DIR = next((d for d in (Path(__file__).resolve().parents[1] / "cuda_ext", Path(__file__).resolve().parents[2] / "cuda_ext")
                if (d / "visibility.cu").exists()), Path(__file__).resolve().parents[2] / "cuda_ext")
SOURCES = ("binding.cpp", "visibility.cu", "median_depth.cu")


def cuda_home() -> str | None:
    """CUDA_HOME, else the toolkit folder behind `nvcc` on the PATH (following wrapper scripts that
    exec /path/to/cuda/bin/nvcc)."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if not nvcc:
        return None
    real = Path(nvcc).resolve()
    try:  # a wrapper script: find the real nvcc it runs
        text = real.read_text(errors="ignore") if real.stat().st_size < 10000 else ""
        for tok in text.replace('"', " ").split():
            if tok.endswith("/bin/nvcc") and Path(tok).exists():
                real = Path(tok).resolve()
                break
    except OSError:
        pass
    return str(real.parent.parent)


def build(verbose: bool = False):
    """Compile + link (+ import) the extension; raises on failure. Works without a GPU."""
    from torch.utils import cpp_extension

    home = cuda_home()
    if home is None:
        raise RuntimeError("no CUDA toolkit: set CUDA_HOME or put nvcc on the PATH")
    os.environ["CUDA_HOME"] = home
    cpp_extension.CUDA_HOME = home  # read at import time by torch; refresh it
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    missing = [s for s in SOURCES if not (SRC_DIR / s).exists()]
    if missing:
        raise RuntimeError(f"{SRC_DIR}: sources {missing} missing (install gs_recon from a source checkout)")
    return cpp_extension.load(
        name="gs_recon_cuda",
        sources=[str(SRC_DIR / s) for s in SOURCES],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3", "--use_fast_math"],
        build_directory=str(build_dir("cuda_ext")),
        verbose=verbose,
    )


@lru_cache(maxsize=1)
def load_cuda_ext():
    """The compiled module, or None (one warning) when there is no GPU or it cannot be built; callers
    then use the torch reference."""
    import torch

    if not torch.cuda.is_available() or os.environ.get("GS_RECON_NO_CUDA_EXT") == "1":
        return None
    try:
        return build()
    except Exception as e:
        warnings.warn(f"gs_recon: CUDA kernels (visibility, median depth) unavailable ({type(e).__name__}: {str(e)[:200]}); "
                      "using the CPU/torch routes (slower)", stacklevel=2)
        return None
