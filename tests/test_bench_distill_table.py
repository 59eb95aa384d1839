"""bench_distill.py's section from finished runs (no training): mean ± std per method and targets,
and the Reading's verdict on the default from the seed spread."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_distill  # noqa: E402


def _run(method, targets, seed, psnr):
    return {"method": method, "targets": targets, "seed": seed, "psnr": psnr, "ssim": 0.9, "fidelity": 40.0 + seed,
            "one_shot": 30.0 if (method, seed, targets) == ("l1_ft", 0, "hr") else None, "seconds": 1.0}


@pytest.fixture
def results(tmp_path):
    args = argparse.Namespace(out=tmp_path / "RESULTS.md", jobs=2, quick=True)
    hr = torch.rand(3, 16, 16)
    return bench_distill.Results(args, dict(bench_distill.QUICK), [(hr[:, ::2, ::2].contiguous(), hr)])


def _add(results, lift):
    """Two seeds per (method, targets): HR at 33.0/33.2, HR + teacher ``lift`` above, teacher-only 0.5 below."""
    for seed in range(2):
        for method in bench_distill.METHODS:
            results.add(_run(method, "hr", seed, 33.0 + 0.2 * seed))
            results.add(_run(method, "hr_teacher", seed, 33.0 + 0.2 * seed + lift))
            results.add(_run(method, "teacher", seed, 32.5 + 0.2 * seed))


def test_table_rows_and_a_teacher_that_helps(results):
    _add(results, lift=0.5)
    text = results.args.out.read_text()
    assert "| L1 one-shot + fine-tune | HR | 33.10 ± 0.14 | 2 | 40.50 ± 0.71 | 30.00 |" in text
    assert "| ASSL | HR + teacher (w = 1.0) | 33.60 ± 0.14 | 2 |" in text
    # two seed stds of HR alone: 2 · 0.1414 = 0.28 dB; +0.50 is above it, −0.50 below
    assert "ASSL, HR + teacher (w = 1.0): +0.50 dB against HR alone (above two seed stds of HR alone, 0.28 dB)" in text
    assert "teacher only, unseen images: -0.50 dB against HR alone (below" in text
    assert "could be on by default" in text


def test_a_teacher_within_the_spread_leaves_the_default_off(results):
    _add(results, lift=0.1)
    text = results.args.out.read_text()
    assert "(within two seed stds of HR alone" in text and "keeps it off with HR targets" in text
