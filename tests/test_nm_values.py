"""N:M figures against hand-computed answers: MACs with a per-layer M override, compact storage of
groups whose stored positions are not in order, and a pattern that is N:M but not 2:4.

The model: ``head`` (3→16) reads the input and ``tail`` (16→3) writes the output, so both stay
dense; ``c1`` and ``c2`` (16→16) are masked. All convs are 3x3 with padding 1 on an 8x8 input,
so a conv costs Cout·Cin·9·64 MACs: head and tail 27,648 each, c1 and c2 147,456 each.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fxprune
from fxprune.passes.compact_nm import CompactNM, NMPacked

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
HEAD = TAIL = 16 * 3 * 9 * 64
MID = 16 * 16 * 9 * 64
DENSE = 2 * HEAD + 2 * MID


class Four(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head, self.c1 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.c2, self.tail = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.relu(self.c2(torch.relu(self.c1(torch.relu(self.head(x)))))))


# ---------------------------------------------------------------------------------------- per-layer M
def test_sls_cost_uses_each_layers_own_m():
    """Global M = 16, ``c2`` overridden to M = 8: N = 4 on c1 keeps 4/16 of it, N = 2 on c2 keeps 2/8."""
    spec = fxprune.Spec(method="sls", budget=0.9, m=16, steps=4, overrides={"c2": {"m": 8}})
    pruner = fxprune.prepare(Four().eval(), spec, X)
    assert {p: (s.m, s.macs) for p, s in pruner.sites.items()} == {"c1.weight": (16, MID), "c2.weight": (8, MID)}
    assert pruner.dense_macs == DENSE
    assert pruner.macs({"c1.weight": 4, "c2.weight": 2}) == 2 * HEAD + MID * 4 // 16 + MID * 2 // 8  # 129,024
    with torch.no_grad():  # scores 1, 1, 0, ...: p = cumprod = (1, 1, 0, ...) so N = 1 + 2 = 3 on both
        for mask in pruner.masks.values():
            mask.scores.zero_()
            mask.scores[:2] = 1.0
    assert pruner.current_n() == {"c1.weight": 3, "c2.weight": 3}
    expected = (2 * HEAD + MID * 3 / 16 + MID * 3 / 8) / DENSE
    torch.testing.assert_close(pruner.soft_cost().detach(), torch.tensor(expected), rtol=1e-6, atol=0)  # float32 sum
    assert pruner.cost_fraction() == pytest.approx(expected)


def test_converted_nm_model_counts_each_layers_own_m():
    """One-shot 4:16 globally and 2:8 on c2: the converted model's count, its record and check_nm agree
    with the hand count."""
    spec = fxprune.Spec(method="nm", n=4, m=16, overrides={"c2": {"m": 8, "n": 2}})
    small = fxprune.compress(Four().eval(), spec, X)
    want = 2 * HEAD + MID * 4 // 16 + MID * 2 // 8
    assert fxprune.count_macs(small, X) == want == small.meta["fxprune"]["macs"]["sparse"]
    report = fxprune.check_nm(small, X)
    assert {(lay.param, lay.n, lay.m, lay.sparse_macs) for lay in report.layers} == {
        ("c1.weight", 4, 16, MID // 4), ("c2.weight", 2, 8, MID // 4)}
    assert report.ok


# ---------------------------------------------------------------------------------------- compact storage
def _hand_weight() -> torch.Tensor:
    """``[2, 8, 2, 1]``, groups of M = 4 along the input channels, at most N = 2 non-zeros each.

    Groups with fewer than N non-zeros store zero padding after the real values, so their stored
    positions come out of order (e.g. a single value at position 3 is stored as positions (3, 0));
    other groups keep the larger value at the later position."""
    w = torch.zeros(2, 8, 2, 1)
    groups = {  # (out, tap, group) -> {position in the group: value}
        (0, 0, 0): {3: 0.5},                 # one value, last position
        (0, 0, 1): {1: -0.25, 2: 2.0},       # the larger magnitude later
        (0, 1, 0): {0: 1.5, 3: -3.0},
        (0, 1, 1): {},                       # empty group
        (1, 0, 0): {2: -1.0},
        (1, 0, 1): {0: 0.125, 3: 4.0},
        (1, 1, 0): {1: 7.0, 2: -7.0},
        (1, 1, 1): {2: 0.75},
    }
    for (out, tap, group), values in groups.items():
        for position, value in values.items():
            w[out, 4 * group + position, tap, 0] = value
    return w


def test_compact_storage_round_trips_groups_with_out_of_order_positions():
    weight = _hand_weight()
    packed = NMPacked(weight, m=4, n=2)
    torch.testing.assert_close(packed(), weight, rtol=0, atol=0)  # values are copied, never computed
    assert packed.values.shape == (2, 2, 1, 2, 2) and packed.offsets.dtype == torch.int8
    # what is stored for output 0, tap 0: group 0 holds 0.5 at position 3 (then padding), group 1 both values
    assert packed.values[0, 0, 0].tolist() == [[0.5, 0.0], [-0.25, 2.0]]
    assert packed.offsets[0, 0, 0, 0, 0].item() == 3 and packed.offsets[0, 0, 0, 1].tolist() == [1, 2]
    with pytest.raises(ValueError, match="more than 2 non-zeros of 4"):
        NMPacked(weight.index_fill(1, torch.tensor([0, 1, 2]), 1.0), m=4, n=2)


def test_compact_pass_gives_the_same_model_for_a_hand_sparse_weight():
    model = Four().eval()
    with torch.no_grad():
        sparse = torch.zeros_like(model.c1.weight)
        sparse[:, :, :2, :1] = _hand_weight().repeat(8, 2, 1, 1)  # 16 x 16 x 3 x 3, groups of 4, ≤ 2 kept
        model.c1.weight.copy_(sparse)
    gm = fxprune.trace(model, X)
    want = gm(X)
    result = CompactNM({"c1.weight": (2, 4)})(gm)
    assert result.modified and "c1.weight" not in dict(result.gm.named_parameters())
    torch.testing.assert_close(result.gm(X), want, rtol=0, atol=0)  # the rebuilt weight is the same tensor value


# ---------------------------------------------------------------------------------------- 2:4
def test_a_valid_four_of_eight_with_three_in_one_aligned_block_is_not_two_four():
    small = fxprune.compress(Four().eval(), fxprune.Spec(method="nm", n=4, m=8, hardware="2:4"), X)
    report = fxprune.check_nm(small)
    assert report.ok and all(lay.valid_24 for lay in report.layers)
    with torch.no_grad():  # group 0 of filter 0, tap (1, 1): positions 0, 1, 2 and 4 — 4 of 8, but 3 of block 0..3
        weight = small.get_parameter("c1.weight")
        weight[0, :8, 1, 1] = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    report = fxprune.check_nm(small)
    rows = {lay.param: lay for lay in report.layers}
    assert rows["c1.weight"].valid_nm and not rows["c1.weight"].valid_24
    assert rows["c2.weight"].valid_nm and rows["c2.weight"].valid_24
    assert not report.ok  # the record asks for 2:4
    plain = fxprune.check_nm(Four().eval(), m=8)  # no record: every weight against groups of 8
    assert plain.ok and all(lay.n == 8 and not lay.valid_24 for lay in plain.layers)  # dense: 8:8, never 2:4
