"""verify_sliced's other size when the model runs at few sizes: a bug that only that size reveals."""
from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxprune
from fxprune.passes.slice_channels import slice_channels
from fxprune.selection import plan_keep
from fxprune.verify import verify_sliced


class _Unshuffled(nn.Module):
    """Pixel-unshuffle by 2 then a softmax over the positions: runs only at even heights and widths
    of at most 40 px (a model built for small inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(64, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 40:
            raise ValueError("built for inputs of at most 40 px")
        y = F.pixel_unshuffle(self.a(x), 2)
        batch, channels, height, width = y.shape
        return self.b(y.view(batch, channels, height * width).softmax(-1).view(batch, channels, height, width))


def test_a_size_baked_in_is_caught_at_the_one_other_size_the_model_runs_at():
    """At 6x6 every smaller or odd size fails in the reference itself (3x3, 11x9, 37x41 cannot be
    unshuffled by 2, 48x48 is over its 40 px); 12x12 is the one other size it runs at, and only there is the baked
    ``H·W = 9`` wrong. A verifier that gives up at the first size the reference refuses passes it."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 6, 6)
    graph = fxprune.analyze(_Unshuffled().eval(), x)
    keep = plan_keep(graph, fxprune.Spec(ratio=0.5, round_to=1))
    honest = slice_channels(graph, keep)
    verify_sliced(honest, graph.gm, graph, keep, (x,))  # the honest slicing passes at every size it is run at
    small = slice_channels(graph, keep)
    view = next(n for n in small.graph.nodes if n.target is torch.ops.aten.view.default)
    view.args = (view.args[0], [3 * 3 if isinstance(s, torch.fx.Node) and s.target is operator.mul else s
                                for s in view.args[1]])
    small.recompile()
    torch.testing.assert_close(small(x.clone()), honest(x.clone()), rtol=0, atol=0)  # same graph at the example
    with pytest.raises(fxprune.VerificationError, match=r"node 'view' \(aten.view.default\) in group 0 raises") as caught:
        verify_sliced(small, graph.gm, graph, keep, (x,))
    batch, channels, height, width = caught.value.input_shapes[0]
    assert (channels, height, width) == (3, 12, 12) and batch != 1
