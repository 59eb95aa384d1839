"""A few derandomized cases of benchmarks/fuzz_compress.py: no case may end "broken"."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_compress.py"


@pytest.fixture(scope="module")
def fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_compress", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_compress"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_fuzz_cases_are_exact_or_rejected(fuzz_module):
    done = fuzz_module.fuzz(cases=3, seed=0, log=None)
    assert len(done) == 3
    broken = [(c.spec, c.detail) for c in done if c.outcome == "broken"]
    assert not broken, broken
    assert any(c.outcome == "exact" for c in done)


def test_a_wrong_model_is_reported_broken(fuzz_module, monkeypatch):
    """The harness itself: a compressed model that differs from the masked one counts as broken."""
    import fxprune

    real = fxprune.compress

    def off_by_a_bit(*args, **kwargs):
        small = real(*args, **kwargs)
        tail = small.get_parameter("tail.bias")
        tail.data += 0.1
        return small

    monkeypatch.setattr(fuzz_module.fxprune, "compress", off_by_a_bit)
    from randomnets import Step

    case = fuzz_module.Case([Step("conv", (0,), 8, 3), Step("relu", (1,), 8)], {"method": "l1", "ratio": 0.5,
                                                                              "round_to": 1}, seed=0)
    fuzz_module.run_case(case, Path("/nonexistent"))
    assert case.outcome == "broken" and "mismatch" in case.detail
