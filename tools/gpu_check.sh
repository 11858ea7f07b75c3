#!/usr/bin/env bash
# Everything gs_recon checks on a GPU, in one command, on a machine with no network:
#   1. missing Python packages from .whl/ (wheels carried along; see docs/GPU.md for how they are fetched)
#   2. gsplat's CUDA backend and gs_recon's kernels (cuda_ext/) JIT-built, side by side
#   3. pytest -m gpu (gsplat vs CPU parity, CUDA kernels vs references, sync count of a step, sharded gsplat)
#   4. tools/bench_visibility.py (1M Gaussians x 20 views, 512x384)
#   5. tools/bench_train.py (ms per step, 128x96 / 512x384, 20k / 200k Gaussians, vs the bare gsplat floor)
#   6. the README demo with the tiny prior, end to end (tiny_prior_cpu preset on the GPU)
# Run from the repository root:  bash tools/gpu_check.sh [OUT_DIR]   (default: $OUT, else ./gpu_check_out)
# Writes OUT_DIR/summary.md (the figures the docs quote) and one log per part. Budget: 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT_DIR"
S="$OUT_DIR/summary.md"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gs_site .whl/*.whl \
    || { echo "wheel install failed" | tee -a "$S"; exit 1; }
  export PYTHONPATH="/tmp/gs_site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
T0=$(date +%s)
SKIP=" ${GPU_CHECK_SKIP:-} "  # e.g. GPU_CHECK_SKIP="visibility baseline demo"
want() { [[ "$SKIP" != *" $1 "* ]]; }
part() {  # part NAME TIMEOUT CMD...: run, log, record rc and seconds
  local name=$1 limit=$2; shift 2
  local t=$(date +%s)
  timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  echo "- $name: rc $rc, $(( $(date +%s) - t )) s" | tee -a "$S"
  return $rc
}
{
  echo "# gpu_check $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
} | tee "$S"

# 2. both builds at once (gsplat ~72 s with 16 jobs; ours ~20 s)
part build_gs_recon_kernels 300 python3 -c "import time; t=time.time(); from gs_recon.render._cuda_ext import build; build(); print(f'built in {time.time()-t:.1f} s')" &
BUILD_PID=$!
part build_gsplat 400 python3 -c "import time; t=time.time(); from gsplat.cuda._backend import _C; assert _C is not None; print(f'built in {time.time()-t:.1f} s')"
wait $BUILD_PID

IGNORE=""
python3 -c "import viser" 2>/dev/null || IGNORE="--ignore=tests/test_viewer.py"  # no GPU tests there; viser absent
part pytest_gpu 300 python3 -m pytest -m gpu -q -rs -p no:cacheprovider -s $IGNORE tests/
grep -E "passed|failed|error|host syncs per step" "$OUT_DIR/pytest_gpu.log" | tail -4 | sed 's/^/    /' | tee -a "$S"

if want visibility; then
  part bench_visibility 240 python3 tools/bench_visibility.py
  sed 's/^/    /' "$OUT_DIR/bench_visibility.log" | tail -7 | tee -a "$S"
fi

if want train; then
  part bench_train 360 python3 tools/bench_train.py --json "$OUT_DIR/bench_train.json" ${BENCH_TRAIN_ARGS:-}
  grep -E "^\||bench_train:" "$OUT_DIR/bench_train.log" | sed 's/^/    /' | tee -a "$S"
fi

if want baseline && [ -d .baseline/gs_recon ]; then  # an older gs_recon carried along: the same benchmark on it, same machine
  part bench_train_baseline 240 env PYTHONPATH="$PWD/.baseline:$PYTHONPATH" python3 tools/bench_train.py --no-prior \
    --steps 30 --warmup 5 --json "$OUT_DIR/bench_train_baseline.json"
  grep -E "^\|" "$OUT_DIR/bench_train_baseline.log" | sed 's/^/    baseline /' | tee -a "$S"
fi

want demo || { echo "total $(( $(date +%s) - T0 )) s" | tee -a "$S"; exit 0; }
DEMO_OUT=$(mktemp -d)
part demo_tiny_prior 300 python3 -m gs_recon train examples/demo_scene --config tiny_prior_cpu --guidance sd \
  --output.out_dir "$DEMO_OUT/run" --no_progress
python3 - "$DEMO_OUT/run" <<'EOF' | sed 's/^/    /' | tee -a "$S"
import json, sys
from pathlib import Path
p = Path(sys.argv[1]) / "scene.json"
if p.exists():
    s = json.loads(p.read_text())
    keys = ("timings", "test_metrics", "metrics", "n_gaussians")
    print(json.dumps({k: s[k] for k in keys if k in s})[:600])
EOF
echo "total $(( $(date +%s) - T0 )) s" | tee -a "$S"
