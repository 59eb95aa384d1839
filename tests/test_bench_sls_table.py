"""bench_sls.py's section from finished runs: MAC fractions from the runs' own MACs, the table's
rows in mean ± std over seeds, and the Reading made from those fractions (no training here)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_sls  # noqa: E402


def _run(method, budget, seed, macs, psnr, **extra):
    return {"method": method, "budget": budget, "seed": seed, "key": f"{method}_{budget}_s{seed}", "macs": macs,
            "psnr": psnr, "ssim": 0.9, "params": 1000, "seconds": 1.0, **extra}


@pytest.fixture
def results(tmp_path):
    args = argparse.Namespace(out=tmp_path / "RESULTS.md", jobs=2, quick=True, no_channels=True)
    cfg = {**bench_sls.QUICK, "seeds": 2, **bench_sls.TIMING["quick"]}
    return bench_sls.Results(args, cfg)


def test_section_follows_the_runs(results, capsys):
    results.add(_run("dense", 1.0, 0, 1000, 34.0))
    for seed, (sls, matched) in enumerate([(243, 242), (245, 244)]):
        results.add(_run("sls", 0.25, seed, sls, 33.8 + seed / 100, frozen=f"{100 + seed}/500"))
        results.add(_run("nm_matched", 0.25, seed, matched, 33.7))
        results.add(_run("nm", 0.25, seed, 199, 33.6))
    text = (results.args.out).read_text()   # written as the runs came in
    row = next(line for line in text.splitlines() if line.startswith("| SLS (learned N:M) | 0.25 | 2 |"))
    assert "| 0.2440 ± 0.0014 | 33.805 ± 0.007 |" in row and "100/500, 101/500" in row
    assert "| one-shot N:M, uniform N | 0.25 | 2 | 0.1990 ± 0.0000 |" in text
    assert "- Budget 0.25: SLS 33.805 ± 0.007 dB vs one-shot N:M, N per layer matched to SLS 33.700 ± 0.000 dB at equal MACs" in text
    assert "one-shot N:M, uniform N: not compared with SLS: it keeps 0.199" in text
    assert "use it fully" not in text and "every N:M row uses the budget" not in text


def test_follow_starts_the_matched_run_at_the_sls_runs_macs():
    base = {"cfg": {}, "folder": "/tmp", "latency_hw": (8, 8)}
    (job,) = bench_sls.follow({"method": "sls", "budget": 0.125, "seed": 2, "sls_fraction": 0.1183}, base)
    assert job == {**base, "method": "nm_matched", "budget": 0.125, "seed": 2, "target": 0.1183,
                   "key": "nm_matched_0.125_s2"}
    assert bench_sls.follow({"method": "nm", "budget": 0.125, "seed": 2}, base) == []
    assert bench_sls.follow({"method": "sls", "budget": 0.125, "seed": 2, "error": "out of reach"}, base) == []
