import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = (ROOT / ".." / "shared" / "data").resolve()
DEMO = ROOT / "examples" / "demo_scene"

os.environ.setdefault("OMP_NUM_THREADS", "2")


def shared(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"shared test data {p} is absent (see ../shared/data/README.md)")
    return p


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for it in items:
        if "gpu" in it.keywords:
            it.add_marker(skip)


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A short tools/train.py-equivalent run on the bundled scene (350 steps, small meshes), shared by
    the export, mesh and eval tests."""
    from gs_recon.config import load_config
    from gs_recon.pipeline import run as run_pipeline

    out = tmp_path_factory.mktemp("run")
    cfg = load_config("configs/tiny_cpu.yaml", ["train.iterations=350", "train.refine_stop_iter=300",
                                                f"output.out_dir={out}", "train.checkpoint_every=100",
                                                "mesh.resolution=48", "mesh.background_resolution=48",
                                                "mesh.orbit_views=8"])
    m = run_pipeline(DEMO, cfg, progress=False)
    return m, out, cfg
