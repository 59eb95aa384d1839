"""MAC and parameter counting: hand-computed layers, the zoo against Torch-Pruning, masks, slicing.

Every expected number in the small-module tests is worked out by hand in the comment next to it:
conv ``Cout·(Cin/groups)·prod(k)·N·prod(out spatial)``, transposed conv
``Cin·(Cout/groups)·prod(k)·N·prod(in spatial)``, products ``output.numel()·K``; biases are free.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

import fxprune
from fxprune.counting import LayerMacs, MacReport, count_macs, count_params
from fxprune.models import build, names
from fxprune.passes.slice_channels import slice_channels
from helpers import random_keep, zoo_names


def _macs(model: nn.Module, *shape: int) -> int:
    torch.manual_seed(0)
    return count_macs(model.eval(), (torch.randn(*shape),))


# ------------------------------------------------------------------------ hand-computed layers
def test_single_conv():
    # 8 filters · 3 input channels · 3·3 kernel, at 16·16 output positions.
    assert _macs(nn.Conv2d(3, 8, 3, padding=1), 1, 3, 16, 16) == 8 * 3 * 9 * 16 * 16 == 55296
    # The bias add is not counted: the same conv without a bias costs the same.
    assert _macs(nn.Conv2d(3, 8, 3, padding=1, bias=False), 1, 3, 16, 16) == 55296


def test_strided_rectangular_conv_with_batch():
    # out H = (17 - 3) // 2 + 1 = 8, out W = (21 - 5) // 2 + 1 = 9; batch 2 counts twice.
    assert _macs(nn.Conv2d(4, 6, (3, 5), stride=2), 2, 4, 17, 21) == 6 * 4 * 15 * 2 * 8 * 9 == 51840


def test_dilated_conv():
    # kernel 3, dilation 2, no padding: out = 12 - 2·2 = 8 per side.
    assert _macs(nn.Conv2d(2, 5, 3, dilation=2), 1, 2, 12, 12) == 5 * 2 * 9 * 8 * 8 == 5760


def test_depthwise_conv():
    # groups == channels: each of the 16 filters sees 1 channel.
    assert _macs(nn.Conv2d(16, 16, 3, padding=1, groups=16), 1, 16, 10, 10) == 16 * 1 * 9 * 100 == 14400


def test_grouped_conv():
    # 12 filters, each over 8 / 4 = 2 input channels.
    assert _macs(nn.Conv2d(8, 12, 3, padding=1, groups=4), 1, 8, 10, 10) == 12 * 2 * 9 * 100 == 21600


def test_conv1d_and_conv3d():
    # Conv1d: out length 10 - 3 + 1 = 8.
    assert _macs(nn.Conv1d(4, 8, 3), 1, 4, 10) == 8 * 4 * 3 * 8 == 768
    # Conv3d: padding keeps 4·4·4 positions.
    assert _macs(nn.Conv3d(2, 4, 3, padding=1), 1, 2, 4, 4, 4) == 4 * 2 * 27 * 64 == 13824


def test_conv_transpose():
    # Every one of the 5·5 input pixels is multiplied by the whole 8·4·4·4 kernel; the 10·10
    # output size (stride 2) does not enter the count.
    assert _macs(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), 1, 8, 5, 5) == 8 * 4 * 16 * 25 == 12800
    # Grouped, with output_padding: Cin·(Cout/groups)·k² per input pixel, batch 3.
    model = nn.ConvTranspose2d(8, 6, 3, stride=2, groups=2, output_padding=1)
    assert _macs(model, 3, 8, 7, 7) == 8 * 3 * 9 * 3 * 49 == 31752


def test_linear_on_tokens():
    # Linear on [B, N, C]: every one of the B·N tokens does C·out multiply-accumulates.
    assert _macs(nn.Linear(8, 4), 2, 5, 8) == 2 * 5 * 8 * 4 == 320
    assert _macs(nn.Linear(8, 4, bias=False), 2, 5, 8) == 320


def test_pixel_shuffle_network():
    model = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(3, 3, 3, padding=1))
    report = count_macs(model, torch.randn(1, 3, 8, 8), per_layer=True)
    # conv 0 at 8·8: 12·3·9·64 = 20736; the shuffle moves data (free); conv 2 at 16·16: 3·3·9·256 = 20736.
    assert [(r.module, r.op, r.macs) for r in report.layers] == [("0", "conv2d", 20736), ("2", "conv2d", 20736)]
    assert report.total == int(report) == 41472


class _Mixed(nn.Module):
    """One of each priced non-conv op on a 1×4×6×6 input."""

    def __init__(self):
        super().__init__()
        self.bn, self.gn, self.ln = nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.LayerNorm(4)

    def forward(self, x):
        c = self.bn(x) + self.gn(x)  # norms 144 + 144, add 144
        e = torch.relu(c * 0.5 + 1)  # scalar arithmetic and activations: 0
        p = F.max_pool2d(e, 2)  # 4·3·3 = 36
        u = F.interpolate(p, scale_factor=2, mode="nearest")  # 4·6·6 = 144
        g = u * torch.sigmoid(u.mean((2, 3), keepdim=True))  # mean: 4 outputs; mul (broadcast): 144
        t = self.ln(g.flatten(2).transpose(1, 2))  # [1, 36, 4]: 144
        s = torch.softmax(t @ t.transpose(1, 2), -1)  # matmul 36·36 outputs · K=4 = 5184; softmax 1296
        return s @ t  # 36·4 outputs · K=36 = 5184


def test_norm_elementwise_pool_resample_softmax_matmul():
    report = count_macs(_Mixed().eval(), torch.randn(1, 4, 6, 6), per_layer=True)
    assert report.by_kind() == {"norm": 3 * 144, "elementwise": 2 * 144, "pool": 36 + 4, "resample": 144,
                                "matmul": 2 * 5184, "softmax": 1296}
    assert report.total == 432 + 288 + 40 + 144 + 10368 + 1296
    assert report.uncounted == ()
    assert {r.module for r in report.layers if r.kind == "norm"} == {"bn", "gn", "ln"}


def test_scaled_dot_product_attention():
    class Attention(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 6)
    # B·heads = 6, L = 5, S = 7: Q·Kᵀ 6·5·7·8, softmax 6·5·7, A·V 6·5·7·6.
    assert count_macs(Attention(), (q, k, v)) == 6 * 5 * 7 * (8 + 1 + 6) == 3150


# ------------------------------------------------------------------------ the zoo against Torch-Pruning
# What Torch-Pruning 1.6 counts (torch_pruning/utils/op_counter.py, a port of ptflops): forward hooks
# on modules whose *exact* type is in its table, nothing functional (matmul, softmax, +, *, ...).
#   nn.Conv{1,2,3}d: Cout·(Cin/groups)·prod(k)·N·prod(out spatial) + (Cout·N·prod(out spatial) if bias)
#                    — the same product as ours, plus one add per output element for the bias;
#   nn.ConvTranspose*d: the SAME formula with the OUTPUT spatial size (a stride-s deconv counts s² times
#                    the gather-free scatter count we use) + the bias per output element;
#   nn.Linear: prod(input.shape)·out_features + out_features if bias — the bias is added ONCE per call,
#                    not once per token (a quirk of ptflops), our product is the same;
#   and the whole count is divided by the batch size (per image); fxprune counts the whole batch.
# It also adds activations (ReLU/PReLU/GELU: 1 per element), BN/LN (2 per element with affine),
# pooling (per *input* element) and nn.Upsample, and skips every Conv2d subclass and functional op,
# so only conv/linear modules are compared, and exactly, module by module.
_TP_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
# batch 1, so TP's per-image count is the per-batch count; 16x16, the size the other zoo-wide tests
# capture at, so the static capture comes from the capture cache (tests/conftest.py ZOO_SHARED_CAPTURE)
_ZOO_INPUT = (1, 3, 16, 16)


def _tp_relation(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, Fraction]]:
    """Per conv/linear module: (bias MACs TP adds, factor TP multiplies our count by), from real calls."""
    seen: dict[str, tuple[int, Fraction]] = {}
    handles = []
    for name, module in model.named_modules():
        if type(module) not in _TP_LAYERS:
            continue

        def hook(module, inputs, output, name=name):
            bias_before, factor = seen.get(name, (0, None))
            if isinstance(module, nn.Linear):
                bias = module.out_features if module.bias is not None else 0
                call_factor = Fraction(1)
            else:
                bias = output.numel() if module.bias is not None else 0  # Cout·N·prod(out spatial)
                spatial = output.dim() - 2
                call_factor = Fraction(1)
                if isinstance(module, nn.modules.conv._ConvTransposeNd):
                    out_positions = int(np.prod(output.shape[-spatial:]))
                    call_factor = Fraction(out_positions, int(np.prod(inputs[0].shape[-spatial:])))
            assert factor in (None, call_factor), "one factor per module (same size every call)"
            seen[name] = (bias_before + bias, call_factor)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_conv_linear_macs_match_torch_pruning(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = torch.randn(*_ZOO_INPUT)
    report = count_macs(model, (x,), per_layer=True)
    assert report.uncounted == (), f"unpriced ops in {name}: {report.uncounted}"

    ours: dict[str, int] = {}
    for layer in report.layers:
        if layer.kind in ("conv", "linear"):
            ours[layer.module] = ours.get(layer.module, 0) + layer.macs
    _, _, tp_layers, _ = tp.utils.count_ops_and_params(model, (x,), layer_wise=True)
    tp_by_name = {n: tp_layers[m] for n, m in model.named_modules() if type(m) in _TP_LAYERS and tp_layers[m]}
    relation = _tp_relation(model, x)

    # Same layers on both sides: the zoo's conv/linear ops all come from exact nn.Conv*/nn.Linear modules.
    assert set(ours) == set(tp_by_name)
    for module, macs in ours.items():
        bias, factor = relation[module]
        assert Fraction(tp_by_name[module]) == macs * factor + bias, module
    # And in total: TP's conv/linear count is ours (deconvs rescaled) plus the bias adds, exactly.
    assert sum(tp_by_name.values()) == sum(ours[m] * relation[m][1] + relation[m][0] for m in ours)


def test_torch_pruning_counts_per_image_fxprune_per_batch():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(4, 3, 16, 16)
    tp_flops, tp_params = tp.utils.count_ops_and_params(conv, (x,))
    ours = count_macs(conv, x)
    # TP: (8·3·9 + 8 bias)·4·256 / 4 images; fxprune: 8·3·9·4·256 for the batch.
    assert tp_flops == (8 * 3 * 9 + 8) * 256
    assert ours == 4 * (tp_flops - 8 * 256)
    assert count_params(conv) == tp_params == 8 * 3 * 9 + 8


# ------------------------------------------------------------------------ masks
def _alternating(shape: torch.Size) -> torch.Tensor:
    """Every other weight kept (a 1:2 pattern over the flattened weight)."""
    return (torch.arange(int(np.prod(shape))) % 2 == 0).reshape(shape).float()


def test_halving_every_conv_weight_halves_conv_macs():
    torch.manual_seed(0)
    model = build("edsr").eval()
    x = torch.randn(1, 3, 16, 16)
    weights = {f"{n}.weight": m.weight for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert all(w.numel() % 2 == 0 for w in weights.values())  # so half is exactly half, layer by layer
    masks = {name: _alternating(w.shape) for name, w in weights.items()}

    dense = count_macs(model, x, per_layer=True)
    sparse = count_macs(model, x, per_layer=True, weight_masks=masks)
    assert 2 * sparse.by_kind()["conv"] == dense.by_kind()["conv"]
    assert {k: v for k, v in sparse.by_kind().items() if k != "conv"} == {
        k: v for k, v in dense.by_kind().items() if k != "conv"}
    for before, after in zip(dense.layers, sparse.layers):
        assert after.macs * (2 if after.kind == "conv" else 1) == before.macs
    halved = sum(w.numel() for w in weights.values()) // 2
    assert count_params(model, weight_masks=masks) == count_params(model) - halved


def test_n_m_mask_on_linear_and_bool_masks():
    linear = nn.Linear(8, 4)
    two_of_four = torch.tensor([1, 1, 0, 0]).repeat(4, 2)  # 2:4 along the input dim
    assert count_macs(linear, torch.randn(2, 5, 8), weight_masks={"weight": two_of_four}) == 320 // 2
    assert count_macs(linear, torch.randn(2, 5, 8), weight_masks={"weight": two_of_four.bool()}) == 160
    # A mask on a parameter that is not a product's weight changes no MACs, but does change params.
    assert count_macs(linear, torch.randn(2, 5, 8), weight_masks={"bias": torch.zeros(4)}) == 320
    assert count_params(linear, weight_masks={"bias": torch.zeros(4)}) == 32


def test_masks_apply_to_a_traced_graph_by_parameter_name():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1))
    x = torch.randn(1, 3, 8, 8)
    gm = fxprune.trace(model, x)
    mask = torch.zeros(4, 4, 1, 1)
    mask[0] = 1  # one output filter of four
    # conv 0: 4·3·9·64 = 6912; conv 2: 4·4·64 = 1024 → a quarter is 256.
    assert count_macs(gm, x, weight_masks={"2.weight": mask}) == count_macs(model, x, weight_masks={"2.weight": mask})
    assert count_macs(gm, x, weight_masks={"2.weight": mask}) == 6912 + 256


def test_count_params_excludes_buffers_and_shared_parameters():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert count_params(model) == 4 * 3 * 9 + 4 + 4 + 4  # conv weight + bias, BN weight + bias
    shared = nn.Linear(3, 3)
    tied = nn.Sequential(shared, shared)
    assert count_params(tied) == 12
    gm = fxprune.trace(model.eval(), torch.randn(1, 3, 8, 8))
    assert count_params(gm) == count_params(model)


# ------------------------------------------------------------------------ graphs and passes
def test_sliced_model_has_fewer_macs():
    torch.manual_seed(0)
    model = build("edsr", blocks=2, channels=16).eval()
    x = torch.randn(1, 3, 16, 16)
    graph = fxprune.analyze(model, (x,))
    keep = random_keep(graph, np.random.default_rng(0))
    assert any((~units).any() for units in keep.values())
    sliced = slice_channels(graph, keep)

    dense = count_macs(graph.gm, x, per_layer=True)
    small = count_macs(sliced, x, per_layer=True)
    assert dense.total == count_macs(model, x)  # a traced graph is counted as is, same as the module
    assert small.total < dense.total
    assert [r.node for r in small.layers] == [r.node for r in dense.layers]
    assert all(a.macs <= b.macs for a, b in zip(small.layers, dense.layers))
    assert count_params(sliced) < count_params(graph.gm)


def test_traced_graph_counts_at_another_size_and_is_not_modified():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)).train()
    gm = fxprune.trace(model, torch.randn(2, 3, 16, 16))
    stats = gm.get_buffer("1.running_mean").clone()
    # The H/W-dynamic graph runs at 32·20: conv 8·3·9·2·640, BN one per element 2·8·640.
    assert count_macs(gm, torch.randn(2, 3, 32, 20)) == 8 * 3 * 9 * 2 * 640 + 2 * 8 * 640
    torch.testing.assert_close(gm.get_buffer("1.running_mean"), stats)  # training-mode BN undone


def test_report_table_and_rows():
    report = count_macs(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 2)),
                        torch.randn(1, 3, 8, 8), per_layer=True)
    assert isinstance(report, MacReport) and all(isinstance(r, LayerMacs) for r in report.layers)
    node, module, op, macs, kind = report.layers[1]
    assert (module, op, macs, kind) == ("2", "linear", 144 * 2, "linear")
    text = report.table()
    assert "conv2d" in text and "linear" in text and f"{report.total:,}" in text.splitlines()[-1]
    assert "1 more layers" in report.table(top=1)
    with pytest.raises(ValueError):
        report.table(top=-1)


# ------------------------------------------------------------------------ input validation
def test_validation_errors():
    conv = nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(TypeError, match="nn.Module"):
        count_macs(lambda t: t, x)
    with pytest.raises(TypeError, match="example_inputs"):
        count_macs(conv, "image")
    with pytest.raises(TypeError, match="per_layer"):
        count_macs(conv, x, per_layer="yes")
    with pytest.raises(TypeError, match="weight_masks"):
        count_macs(conv, x, weight_masks=[torch.ones(4, 3, 3, 3)])
    with pytest.raises(KeyError, match="did you mean"):
        count_macs(conv, x, weight_masks={"conv.weight": torch.ones(4, 3, 3, 3)})
    with pytest.raises(ValueError, match="shape"):
        count_macs(conv, x, weight_masks={"weight": torch.ones(4, 3)})
    with pytest.raises(ValueError, match="0 and 1"):
        count_macs(conv, x, weight_masks={"weight": torch.full((4, 3, 3, 3), 0.5)})
    with pytest.raises(ValueError, match="0 and 1"):
        count_params(conv, weight_masks={"weight": torch.full((4, 3, 3, 3), 2)})
    with pytest.raises(TypeError, match="nn.Module"):
        count_params([conv])
    gm = fxprune.trace(conv, x)
    with pytest.raises(ValueError, match="input"):
        count_macs(gm, (x, x))
    with pytest.raises(ValueError, match="could not run"):
        count_macs(gm, torch.randn(1, 5, 8, 8))
