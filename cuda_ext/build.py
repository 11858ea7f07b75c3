#!/usr/bin/env python
"""Compile and link the CUDA visibility extension, without needing a GPU (CI runs this).

    CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0 python cuda_ext/build.py

Needs a CUDA build of torch. Prints the compiler commands and the built module's path.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.render._cuda_ext import build, cuda_home  # noqa: E402  (imports torch only)


def main() -> int:
    import torch

    if torch.version.cuda is None:
        print(f"error: torch {torch.__version__} is a CPU build; install a CUDA build to compile cuda_ext",
              file=sys.stderr)
        return 2
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), CUDA_HOME={cuda_home()}, "
          f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '9.0 (default)')}")
    t0 = time.time()
    mod = build(verbose=True)
    print(f"built and linked {mod.__file__} in {time.time() - t0:.1f} s; exports: "
          f"{[n for n in dir(mod) if not n.startswith('_')]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
