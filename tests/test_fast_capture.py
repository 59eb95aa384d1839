"""The size-blind capture (fxprune.fast_capture): used only where it is exact, and then it yields
the graph torch.export yields (same ops, arguments, module paths and channel groups)."""
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxprune
from fxprune.analysis import build_channel_graph
from fxprune.fast_capture import capture_size_blind
from fxprune.models import build, names

trace_module = importlib.import_module("fxprune.trace")

X = torch.randn(1, 3, 32, 32)
# Zoo models whose forward reads no size (plain CNNs); the others pad to a multiple or cut windows.
SIZE_BLIND = {"edsr", "rcan", "srresnet", "carn", "imdn", "espcn", "fsrcnn", "dncnn", "vdsr"}


def _export_graph(model: nn.Module) -> torch.fx.GraphModule:
    gm, _ = trace_module._export(trace_module._copy_structure(model), (X,), True)
    return gm


def _ops(gm: torch.fx.GraphModule) -> list[tuple[str, str, str, str]]:
    """Every op with its arguments and module path (export's input-guard module aside)."""
    return sorted((n.name, str(n.target), str(n.args), str(dict(n.meta.get("nn_module_stack") or {})))
                  for n in gm.graph.nodes if n.op != "call_module")


def _groups(gm: torch.fx.GraphModule) -> list[tuple]:
    graph = build_channel_graph(gm)
    return [(g.kind, g.channels, g.unit, g.prunable, g.producers, g.consumers, g.params) for g in graph.groups]


@pytest.mark.parametrize("name", names())
def test_zoo_model_takes_the_path_it_should(name):
    model = build(name).eval()
    gm = capture_size_blind(trace_module._copy_structure(model), (X,))
    assert (gm is not None) == (name in SIZE_BLIND)


@pytest.mark.parametrize("name", sorted(SIZE_BLIND))
def test_same_graph_and_groups_as_torch_export(name):
    torch.manual_seed(0)
    model = build(name).eval()
    fast = capture_size_blind(trace_module._copy_structure(model), (X,))
    exported = _export_graph(model)
    assert _ops(fast) == _ops(exported)
    assert _groups(fast) == _groups(exported)
    other = torch.randn(3, 3, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(fast(other), model(other))
        torch.testing.assert_close(fast(X), exported(X))


def test_trace_uses_it_and_marks_the_sizes_free():
    gm = fxprune.trace(build("edsr", blocks=2, channels=8).eval(), X)
    image = next(n for n in gm.graph.nodes if n.op == "placeholder").meta["val"]
    assert [isinstance(size, int) for size in image.shape] == [False, True, False, False]
    assert image.device == X.device and image.dtype == X.dtype
    info = gm.meta["fxprune_capture"]
    assert info.dynamic_hw and info.dynamic_batch
    static = fxprune.trace(build("edsr", blocks=2, channels=8).eval(), X, dynamic_hw=False)
    image = next(n for n in static.graph.nodes if n.op == "placeholder").meta["val"]
    assert [isinstance(size, int) for size in image.shape] == [False, True, True, True]


class _ReadsShape(nn.Module):
    def __init__(self, read):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.read = read

    def forward(self, x):
        return self.read(self.conv(x))


READS = {
    "shape": lambda y: y.reshape(y.shape[0], 4, -1).mean(-1),
    "size(dim)": lambda y: y[..., : y.size(2) // 2],
    "len": lambda y: y * len(y),
    "iterate": lambda y: torch.stack([t * 2 for t in y]),
    "numel": lambda y: y / y.numel(),
    "interpolate to a size": lambda y: F.interpolate(y, size=(y.shape[2] * 2, y.shape[3]), mode="nearest"),
    "unbind batch": lambda y: torch.stack(y.unbind(0)),
    "split height": lambda y: torch.cat(y.split(4, dim=2), dim=1),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_forward_that_reads_a_size_is_left_to_torch_export(read):
    model = _ReadsShape(READS[read]).eval()
    assert capture_size_blind(model, (X,)) is None
    if read == "len":  # y * len(y) fixes the batch, and slice by slice a batch of 2 would be y * 1
        with pytest.warns(UserWarning, match="not independent"):
            gm = fxprune.trace(model, X)
        assert not gm.meta["fxprune_capture"].slices_match
    else:
        gm = fxprune.trace(model, X)  # torch.export's dynamic graph: right at other sizes too
    other = torch.randn(1, 3, 32, 40)  # (export guards the height a split reads; len() reads the batch)
    with torch.no_grad():
        torch.testing.assert_close(gm(other), model(other))


SIZE_FREE = {
    "interpolate by a factor": lambda y: F.interpolate(y, scale_factor=2.0, mode="nearest"),
    "adaptive pooling": lambda y: y * F.adaptive_avg_pool2d(y, 1).sigmoid(),
    "chunk channels": lambda y: torch.mul(*y.chunk(2, dim=1)),
    "split channels": lambda y: torch.cat(y.split([1, 3], dim=1)[::-1], dim=1),
}


@pytest.mark.parametrize("op", sorted(SIZE_FREE))
def test_size_free_ops_are_captured_and_right_at_other_sizes(op):
    model = _ReadsShape(SIZE_FREE[op]).eval()
    gm = capture_size_blind(model, (X,))
    assert gm is not None
    other = torch.randn(3, 3, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(gm(other), model(other))


def test_batch_norm_in_training_is_not_a_size_read():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1)).train()
    assert capture_size_blind(model, (X.expand(2, 3, 32, 32),)) is not None


def test_names_follow_torch_export_for_digit_modules_and_builtin_arguments():
    """nn.Sequential's children are "0", "1", ... and its forward's argument is ``input``."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()
    fast = capture_size_blind(trace_module._copy_structure(model), (X,))
    exported = _export_graph(model)
    named = lambda gm: [(n.op, n.name, n.target) for n in gm.graph.nodes if n.op in ("get_attr", "placeholder")]
    assert named(fast) == named(exported)
    assert _ops(fast) == _ops(exported)
    assert _groups(fast) == _groups(exported)
