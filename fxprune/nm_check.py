"""``fxprune.check_nm``: is every masked weight of a model really N:M (and 2:4) sparse?

Reads N and M per weight from the model's record (written by ``convert`` for the ``sls`` and
``nm`` methods, kept by ``fxprune.save``/``load``), or checks every conv/linear weight against one
``m`` you give. Groups are M consecutive input channels per output filter and kernel tap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .counting import count_macs, nm_layers, nm_record
from .passes.insert_nm_masks import grouped, weight_reads
from .trace import trace


@dataclass(frozen=True)
class NMLayer:
    """One checked weight. ``valid_nm``: no group has more than ``n`` non-zeros; ``valid_24``: no
    aligned block of 4 has more than 2 (False when M is not a multiple of 4)."""

    param: str
    shape: tuple[int, ...]
    m: int
    n: int
    density: float
    valid_nm: bool
    valid_24: bool
    dense_macs: int | None = None
    sparse_macs: int | None = None


@dataclass(frozen=True)
class NMReport:
    """Per-layer results; ``ok`` when every layer is valid N:M (and 2:4 where the record asks for it)."""

    layers: tuple[NMLayer, ...]
    hardware: tuple[str | None, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.layers) and all(
            layer.valid_nm and (hw != "2:4" or layer.valid_24)
            for layer, hw in zip(self.layers, self.hardware or (None,) * len(self.layers)))

    def __str__(self) -> str:
        header = ("parameter", "shape", "N:M", "density", "N:M ok", "2:4 ok", "dense MACs", "sparse MACs")
        rows = [(lay.param, "×".join(map(str, lay.shape)), f"{lay.n}:{lay.m}", f"{lay.density:.3f}",
                 "yes" if lay.valid_nm else "NO", "yes" if lay.valid_24 else "no",
                 "-" if lay.dense_macs is None else f"{lay.dense_macs:,}",
                 "-" if lay.sparse_macs is None else f"{lay.sparse_macs:,}") for lay in self.layers]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        verdict = "all layers are valid N:M" if self.ok else "INVALID: some layers break their N:M pattern"
        return "\n".join(lines + [f"{len(self.layers)} layers; {verdict}"])


def _layer(param: str, weight: torch.Tensor, m: int, n: int | None) -> NMLayer:
    nonzero = grouped(weight.detach() != 0, m).sum(-1)
    n = int(nonzero.max()) if n is None else n
    valid_24 = False
    if m % 4 == 0:
        blocks = grouped(weight.detach() != 0, m)
        valid_24 = bool((blocks.reshape(*blocks.shape[:-1], m // 4, 4).sum(-1) <= 2).all())
    density = float((weight != 0).sum()) / weight.numel()
    return NMLayer(param, tuple(weight.shape), m, n, density, bool((nonzero <= n).all()), valid_24)


def check_nm(model: nn.Module, example_inputs: Any = None, *, m: int | None = None) -> NMReport:
    """Check the N:M pattern of every masked weight of ``model`` (see the module docstring).

    With ``example_inputs`` each row also gives the layer's dense MACs and the MACs of its
    non-zero weights on that input.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> x = torch.randn(1, 3, 12, 12)
    >>> small = fxprune.compress(build("edsr", blocks=2, channels=16), fxprune.Spec(method="nm", n=2, m=8), x)
    >>> report = fxprune.check_nm(small)
    >>> report.ok, report.layers[0].n, report.layers[0].m
    (True, 2, 8)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = dict(model.named_parameters(remove_duplicate=False))
    record = nm_record(model)
    hw_of = {p: v.get("hardware") for p, v in nm_layers(model).items()}
    if record:
        plan = {p: (mm, n) for p, (n, mm) in record.items() if p in params}
    elif m is not None:
        plan = {p: (m, None) for p, w in params.items() if w.dim() >= 2 and w.shape[1] % m == 0}
    else:
        raise ValueError("this model has no N:M record (it did not come from an sls/nm convert); pass m= to check "
                         "every conv/linear weight against groups of m")
    layers = [_layer(p, params[p], mm, n) for p, (mm, n) in plan.items()]
    if example_inputs is not None:
        layers = _with_macs(model, example_inputs, layers, params)
    return NMReport(tuple(layers), tuple(hw_of.get(lay.param) for lay in layers))


def _with_macs(model: nn.Module, example_inputs: Any, layers: list[NMLayer], params: dict) -> list[NMLayer]:
    gm = model if "fxprune_capture" in getattr(model, "meta", {}) else trace(model, example_inputs, dynamic_hw=False)
    ones = {p: torch.ones_like(w) for p, w in gm.named_parameters(remove_duplicate=False) if p in params}
    report = count_macs(gm, example_inputs, per_layer=True, weight_masks=ones)
    by_node = {row.node: row.macs for row in report.layers}
    reads = weight_reads(gm)
    out = []
    for layer in layers:
        dense = sum(by_node.get(node.name, 0) for node in reads.get(layer.param, ()))
        out.append(NMLayer(**{**layer.__dict__, "dense_macs": dense, "sparse_macs": round(dense * layer.density)}))
    return out
