import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

# Hypothesis profiles. "ci" (the default) is derandomized: the same examples on every run, so a
# failure in CI reproduces and a pass means the same thing each time. "dev" draws fresh random
# examples, ten times as many per test: HYPOTHESIS_PROFILE=dev pytest tests/test_slice.py
DEV_EXAMPLE_FACTOR = 10
settings.register_profile("ci", derandomize=True, max_examples=20, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=20 * DEV_EXAMPLE_FACTOR, deadline=None, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def _share_the_cores() -> None:
    """Under xdist, give each worker its share of the cores for torch's intra-op threads (and the
    CLI subprocesses it starts, through OMP_NUM_THREADS): with ``-n 2`` on two cores, two threads
    per worker put four spinning OpenMP threads on two cores, and a zoo compress ran 5-20x slower
    (test_compress.py, 224 s -> 71 s on one thread). A run without xdist keeps torch's default."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 1 or "PYTEST_XDIST_WORKER" not in os.environ:
        return
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:  # the caller's choice stands
        threads = int(given)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


_share_the_cores()


def _module_fixture_owner(item: pytest.Item) -> str | None:
    """The test's module if the test uses a module-scoped fixture defined in that module."""
    module = item.nodeid.split("::")[0]
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        if definitions[-1].scope == "module" and definitions[-1].baseid == module:
            return module
    return None


# Zoo-wide tests that capture the default zoo model ``name`` at 1x3x16x16 (dynamic, and static for
# the MAC counts): one worker runs all of a model's tests in a row, so the per-process capture cache
# (fxprune/capture_cache.py) serves every capture after the first. Spread over two workers in
# collection order, each test captured the model again (the cache holds 8 graphs; ~14 models lie
# between two tests of one model). test_capture_cache.py is left out: it clears the cache on purpose.
ZOO_SHARED_CAPTURE = {
    ("test_assl.py", "test_gated_model_equals_original_on_every_zoo_model"),
    ("test_budget.py", "test_mac_model_equals_slice_and_count_on_the_zoo"),
    ("test_compress.py", "test_compress_makes_every_zoo_model_smaller"),
    ("test_counting.py", "test_zoo_conv_linear_macs_match_torch_pruning"),
    ("test_fresh_shapes.py", "test_compress_analyze_compress_assl_chain"),
    ("test_slice.py", "test_zoo_sliced_equals_masked"),
    ("test_zoo_groups.py", "test_default_model_has_no_diagnostics"),
}


def _zoo_capture_group(item: pytest.Item) -> str | None:
    """``zoo-NAME`` for a zoo-wide test of ZOO_SHARED_CAPTURE, else None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "name" not in callspec.params:
        return None
    if (Path(str(item.fspath)).name, getattr(item, "originalname", item.name)) not in ZOO_SHARED_CAPTURE:
        return None
    return f"zoo-{callspec.params['name']}"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep on one xdist worker the tests of a module that share an expensive module fixture (a
    route run, the zoo's ONNX exports, the README's command sequence): spread over two workers,
    each worker builds the fixture again (``--dist loadgroup`` in pyproject.toml). xdist schedules
    these groups first (the largest first), the single tests fill in around them. The zoo-wide
    tests of one model form a group too (ZOO_SHARED_CAPTURE).

    Under "dev", scale the example count of tests that set their own ``max_examples`` too."""
    for item in items:
        owner = _module_fixture_owner(item) if hasattr(item, "_fixtureinfo") else None
        owner = owner or _zoo_capture_group(item)
        if owner is not None:
            item.add_marker(pytest.mark.xdist_group(owner))
    if PROFILE != "dev":
        return
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)  # where @settings stores a test's settings
        if own is not None and hasattr(test, "hypothesis"):
            test._hypothesis_internal_use_settings = settings(own, max_examples=own.max_examples * DEV_EXAMPLE_FACTOR)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small tensors run far faster on one thread when the shared cores are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
