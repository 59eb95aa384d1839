"""A compressed model carries the shapes it computes (fxprune.shapes): a second stage can run on it."""
from __future__ import annotations

import copy
import time

import pytest
import torch
import torch.fx as fx

import fxprune
from fxprune.models import build
from fxprune.record import record_of
from fxprune.shapes import STALE

from helpers import SMALL_ZOO_CONFIG, params_of, zoo_names

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = torch.randn(1, 3, 16, 16)
L1 = fxprune.Spec(method="l1", ratio=0.5, round_to=1)
# The chain checks the mechanics of a second stage on a compressed model, which the op kinds decide,
# not the depth: the smaller zoo configurations (tests/helpers.py).
SMALL = SMALL_ZOO_CONFIG


def real_shapes(gm: fx.GraphModule, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor a real run of ``gm`` computes, by node name."""
    shapes = {}

    class Record(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                shapes[n.name] = tuple(out.shape)
            return out

    with torch.no_grad():
        Record(gm).run(x)
    return shapes


def assert_metadata_matches_a_run(gm: fx.GraphModule, x: torch.Tensor) -> None:
    """Every concrete dim in ``node.meta["val"]`` / ``["tensor_meta"]`` is what a real run gives
    (height and width stay symbolic)."""
    shapes = real_shapes(gm, x)
    checked = 0
    for node in gm.graph.nodes:
        if node.name not in shapes:
            continue
        for meta in (node.meta.get("val"), node.meta.get("tensor_meta")):
            assert meta is not None, node.name
            assert len(meta.shape) == len(shapes[node.name]), node.name
            for dim, (want, got) in enumerate(zip(shapes[node.name], meta.shape)):
                if isinstance(got, int):
                    assert got == want, f"{node.name}[dim {dim}]: metadata says {got}, a run gives {want}"
                    checked += 1
    assert checked


def sliced_counts_are_seen(graph: fxprune.ChannelGraph, small: fx.GraphModule) -> None:
    """Every parameter member of every group has the size the sliced parameter has."""
    params = dict(small.named_parameters())
    members = [m for g in graph.groups for m in g.members if m.param in params]
    assert members
    for m in members:
        assert m.size == params[m.param].shape[m.dim], (m.param, m.dim, m.size, params[m.param].shape)


def test_converted_model_metadata_matches_what_it_computes():
    torch.manual_seed(0)
    small = fxprune.compress(build("rcan").eval(), L1, X)
    assert STALE not in small.meta
    assert_metadata_matches_a_run(small, X)
    graph = fxprune.analyze(small)  # no example input needed: the metadata is the capture
    sliced_counts_are_seen(graph, small)
    assert fxprune.count_macs(small, X) == fxprune.count_macs(fxprune.trace(small, X), X)


def test_a_failed_refresh_makes_analyze_capture_again(monkeypatch):
    from fxprune import shapes

    def broken(self, n):
        raise NotImplementedError("no fake kernel")

    monkeypatch.setattr(shapes._Propagate, "run_node", broken)
    small = fxprune.compress(build("edsr").eval(), L1, X)
    assert "no fake kernel" in small.meta[STALE]
    sliced_counts_are_seen(fxprune.analyze(small, X), small)
    again = fxprune.compress(small, L1, X)  # on a fresh capture of it, which keeps its record
    assert [r.method for r in record_of(again).chain()] == ["l1", "l1"]
    fresh = fxprune.trace(small, X)
    assert STALE not in fresh.meta and record_of(fresh) == record_of(small)
    twin = copy.deepcopy(small)
    del twin.meta["fxprune"]
    assert "fxprune" not in fxprune.trace(twin, X).meta  # the cached capture of small lends it no record


@pytest.mark.parametrize("name", zoo_names())
def test_compress_analyze_compress_assl_chain(name):
    """compress → analyze sees the sliced counts → compress again → ASSL on the result → convert."""
    start = time.perf_counter()
    torch.manual_seed(0)
    model = build(name, **SMALL.get(name, {})).eval()
    with torch.no_grad():
        want = model(X)
    first = fxprune.compress(model, L1, X)
    sliced_counts_are_seen(fxprune.analyze(first, X), first)

    second = fxprune.compress(first, L1, X)
    assert params_of(second) < params_of(first) < params_of(model)

    pruner = fxprune.prepare(second, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=3), X)
    assert pruner.groups
    with torch.no_grad():
        torch.testing.assert_close(pruner.model(X), second(X))  # gated at init == its input
    optimizer = torch.optim.Adam(pruner.model.parameters(), lr=1e-3)
    for _ in range(pruner.schedule.total):
        loss = (pruner.model(X) - want).abs().mean() + pruner.penalty()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        pruner.step()
    third = fxprune.convert(pruner)

    with torch.no_grad():
        assert third(X).shape == want.shape
        assert torch.isfinite(third(X)).all()
    assert params_of(third) < params_of(second)
    macs = [fxprune.count_macs(m, X) for m in (fxprune.trace(model, X), first, second, third)]  # cached capture
    assert macs == sorted(macs, reverse=True) and macs[-1] < macs[-2]
    sliced_counts_are_seen(fxprune.analyze(third, X), third)
    record = record_of(third)
    assert record.method == "assl" and [r.method for r in record.history] == ["l1", "l1"]
    assert record.history[0].capture["model_class"] == type(model).__name__
    print(f"{name}: params {params_of(model)} → {params_of(first)} → {params_of(second)} → {params_of(third)}, "
          f"MACs {' → '.join(str(m) for m in macs)}, {time.perf_counter() - start:.1f} s")


def test_exports_a_twice_compressed_model_to_onnx(tmp_path):
    torch.manual_seed(0)
    model = build("nafnet", **SMALL["nafnet"]).eval()
    small = fxprune.compress(fxprune.compress(model, L1, X), L1, X)
    report = fxprune.export_onnx(small, tmp_path / "small.onnx", (X,))
    assert report.max_abs_error < 1e-3
