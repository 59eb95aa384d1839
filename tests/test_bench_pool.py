"""benchmarks/bench_common.run_pool: real spawned workers; ``follow`` adds jobs that need a result."""
from __future__ import annotations

import operator
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_common import run_pool  # noqa: E402


def test_follow_up_jobs_run_after_the_result_they_need():
    def follow(result):   # runs in the parent: a job per result below 10
        return [{"x": result * 10}] if result < 10 else []

    results = list(run_pool(operator.itemgetter("x"), [{"x": 1}, {"x": 2}], 2, follow=follow))
    assert sorted(results) == [1, 2, 10, 20]
    assert results.index(10) > results.index(1) and results.index(20) > results.index(2)
    assert sorted(run_pool(operator.itemgetter("x"), [{"x": 3}], 1)) == [3]
