#!/usr/bin/env bash
# A non-editable install works outside the checkout: `pip install .` into a fresh venv, then `gs-recon train`
# from an empty directory, with the bundled preset by name, the C++ CPU extension JIT-built from the
# installed sources (fresh build folder), meshes extracted, and the CUDA kernel's sources installed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
python3 -m venv .venv-inst
.venv-inst/bin/pip install -q torch==2.13.0
.venv-inst/bin/pip install -q .
rm -rf build  # pip's in-tree build folder
WORK="$(mktemp -d)"
cd "$WORK"
export GS_RECON_BUILD_DIR="$WORK/.build"
"$REPO/.venv-inst/bin/gs-recon" train "$REPO/examples/demo_scene" --config tiny_cpu --guidance none \
  --train.iterations 60 --mesh.resolution 32 --mesh.background_resolution 32 --mesh.orbit_views 4 \
  --no-progress --output.out_dir run
test -f run/splats/scene.ply && test -f run/meshes/scene.glb
"$REPO/.venv-inst/bin/python" - <<'PY'
import gs_recon
from gs_recon.render._cuda_ext import SRC_DIR
from gs_recon.render._ext import load_cpu_ext
assert "site-packages" in gs_recon.__file__, gs_recon.__file__
assert load_cpu_ext() is not None, "the C++ CPU extension did not build from the installed sources"
assert "site-packages" in str(SRC_DIR) and (SRC_DIR / "visibility.cu").exists(), SRC_DIR
print(f"installed package OK: {gs_recon.__file__}, CUDA sources {SRC_DIR}")
PY
cd "$REPO" && rm -rf .venv-inst "$WORK"
