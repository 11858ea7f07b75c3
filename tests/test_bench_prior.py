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


def test_doc_sections_replace_only_their_own_text(tmp_path):
    """The benchmarks share docs/BENCHMARKS.md: each rewrites only its own marked section."""
    from gs_recon.eval.bench import write_doc_section

    doc = tmp_path / "B.md"
    write_doc_section(doc, "a", "<!-- a:begin -->\nA1\n<!-- a:end -->")
    write_doc_section(doc, "b", "<!-- b:begin -->\nB1\n<!-- b:end -->")
    write_doc_section(doc, "a", "<!-- a:begin -->\nA2\n<!-- a:end -->")
    text = doc.read_text()
    assert "A2" in text and "A1" not in text and "B1" in text
    assert text.index("A2") < text.index("B1")  # replaced in place, not appended
