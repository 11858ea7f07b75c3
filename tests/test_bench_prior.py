"""One small case of the prior benchmark (tools/bench_prior.py --quick): every variant runs end to end
from one shared reconstruction and yields seen/unseen mesh metrics (slow: ~4-6 minutes on 2 cores)."""
import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_prior_benchmark_quick(tmp_path):
    out = tmp_path / "rows.json"
    r = subprocess.run([sys.executable, "tools/bench_prior.py", "--quick", "--work", str(tmp_path / "w"),
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [x["variant"] for x in rows] == ["reconstruction only", "exemplar + visibility", "exemplar, no visibility",
                                           "exemplar, wrong category", "tiny random UNet"]
    for row in rows:
        assert set(row["objects"]) == {"box", "ball", "cylinder"}
        for o in row["objects"].values():
            assert 0.1 < o["unseen"]["fraction"] < 0.9  # the arc really leaves part of each object unseen
            for side in ("seen", "unseen"):
                assert math.isfinite(o[side]["chamfer_l1"]) and 0 <= o[side]["f5"] <= 1
        assert math.isfinite(row["psnr"]) and row["psnr"] > 15
    base = rows[0]["t"]
    assert "geometry_prior_s" not in base and all(x["t"]["geometry_prior_s"] > 0 for x in rows[1:])
    # the prior variants continued from the same stage-1 checkpoint: they differ from it, and from each other
    cds = [sum(o["unseen"]["chamfer_l1"] for o in x["objects"].values()) for x in rows]
    assert len(set(round(c, 6) for c in cds)) == 5
