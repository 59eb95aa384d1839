"""A second opinion on MACs and parameters: fxprune's counts against torch-pruning's.

:func:`cross_check` counts ``model`` twice, with :func:`fxprune.count_macs` /
:func:`fxprune.count_params` (ATen ops of the exported graph) and with torch-pruning's
``tp.utils.count_ops_and_params`` (forward hooks on ``nn.Module`` layers), and returns both with
their relative differences in a :class:`CrossCheck`.

**Where the two count the same thing** (and agree exactly on every model of the zoo):

* **parameters**: both count every parameter once;
* **the products of** ``nn.Conv1d/2d/3d`` **and** ``nn.Linear`` **modules**, once torch-pruning's
  bias adds are taken off (it adds one per output element of a conv, and ``out_features`` once
  per call of a linear): :attr:`CrossCheck.products` and :attr:`CrossCheck.tp_products`.

**Where they legitimately differ** (so the totals :attr:`CrossCheck.macs` and
:attr:`CrossCheck.tp_macs` are compared for information only):

* torch-pruning counts bias adds (above), every activation module (ReLU, PReLU, LeakyReLU, ... one
  per output element), pooling modules at their *input* size, ``nn.Upsample`` modules, and batch /
  layer norms twice per element when affine; fxprune counts activations and bias adds as free and
  a norm once per element;
* torch-pruning sees modules only, so it misses everything done by functions and tensor methods:
  residual ``+``, attention ``@`` / ``matmul``, ``softmax``, ``F.interpolate``, ``pixel_shuffle``,
  channel attention's ``x * w``; fxprune prices those ops from the graph;
* a **transposed convolution**: torch-pruning prices it at its *output* positions, fxprune at its
  input positions (the scatter view), so it differs by about stride² (FSRCNN: +174% in total); it
  is left out of the products.

Measured on the zoo's default builds at a 1×3×32×32 input (``tests/test_crosscheck.py``):
parameters and products agree exactly; the totals differ by +0.3% to +0.9% on plain conv nets
(EDSR, RCAN, SRResNet, CARN, IMDN, DnCNN, VDSR, U-Net, ESPCN: torch-pruning's bias adds and
activations) and by −10% to −1% on nets whose attention, gating or normalization is functional
(NAFNet, SwinIR, Restormer, Uformer: products torch-pruning does not see).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .counting import count_macs, count_params
from .eval_mode import eval_mode
from .trace import as_inputs

# the modules whose products both counters price the same way (transposed convs are not among them)
_PRODUCT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class CrossCheck:
    """fxprune's and torch-pruning's counts of one model at one input (see the module docstring).

    ``macs`` / ``params``: fxprune's dense totals; ``tp_macs`` / ``tp_params``: torch-pruning's.
    ``products`` / ``tp_products``: the MACs of the conv and linear modules (``modules`` of them),
    where the two count the same thing; ``disagreeing``: those modules whose products differ.
    """

    macs: int
    tp_macs: int
    params: int
    tp_params: int
    products: int
    tp_products: int
    modules: int
    disagreeing: tuple[str, ...] = ()

    @property
    def macs_difference(self) -> float:
        """(torch-pruning − fxprune) / fxprune of the total MACs (conventions differ: information)."""
        return _relative(self.tp_macs, self.macs)

    @property
    def params_difference(self) -> float:
        """(torch-pruning − fxprune) / fxprune of the parameters."""
        return _relative(self.tp_params, self.params)

    @property
    def products_difference(self) -> float:
        """(torch-pruning − fxprune) / fxprune of the conv and linear products."""
        return _relative(self.tp_products, self.products)

    def agrees(self, tolerance: float = 1e-9) -> bool:
        """Parameters and products agree within ``tolerance`` (relative), module by module.

        >>> CrossCheck(100, 103, 10, 10, 90, 90, 2).agrees()
        True
        """
        return (not self.disagreeing and abs(self.params_difference) <= tolerance
                and abs(self.products_difference) <= tolerance)

    def summary(self) -> str:
        """One line: both totals, and what the products and parameters say.

        >>> CrossCheck(100, 103, 10, 10, 90, 90, 2).summary()
        'MACs 100 (torch-pruning 103, +3.00%); params 10 (torch-pruning 10, +0.00%); conv/linear products of 2 modules agree'
        """
        verdict = (f"conv/linear products of {self.modules} modules agree" if not self.disagreeing
                   else f"conv/linear products differ in {', '.join(self.disagreeing)} "
                        f"({self.products_difference:+.2%})")
        return (f"MACs {self.macs} (torch-pruning {self.tp_macs}, {self.macs_difference:+.2%}); params {self.params} "
                f"(torch-pruning {self.tp_params}, {self.params_difference:+.2%}); {verdict}")


def _relative(theirs: int, ours: int) -> float:
    return (theirs - ours) / ours if ours else float(theirs != 0)


def cross_check(model: nn.Module, example_inputs: Any) -> CrossCheck:
    """Count ``model`` on ``example_inputs`` with fxprune and with torch-pruning and compare.

    ``model`` is a plain ``nn.Module``: torch-pruning hooks its ``nn.Conv*`` / ``nn.Linear`` layers,
    which a GraphModule from ``fxprune.trace`` or ``fxprune.compress`` no longer has (its weights are
    plain parameters), so such a model raises ``ValueError``: cross-check the original module. Both
    run the model once on the inputs (torch-pruning on a copy in eval mode); it is not changed.

    >>> import torch
    >>> from fxprune.models import build
    >>> check = cross_check(build("edsr", blocks=2, channels=16), torch.randn(1, 3, 16, 16))
    >>> check.agrees(), check.params == check.tp_params, round(check.macs_difference, 4)
    (True, True, 0.0068)
    """
    import torch_pruning as tp

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = as_inputs(example_inputs)
    report = count_macs(model, inputs, per_layer=True)
    calls = _product_calls(model, inputs)
    if not calls:
        raise ValueError(f"torch-pruning prices nn.Conv/nn.Linear modules and {type(model).__name__} ran none (a "
                         "GraphModule from fxprune.trace or compress has plain weights): cross-check the nn.Module")
    tp_macs, tp_params, layer_macs, _ = tp.utils.count_ops_and_params(model, inputs, layer_wise=True)
    ours = {}
    for layer in report.layers:
        if layer.kind in ("conv", "linear"):
            ours[layer.module] = ours.get(layer.module, 0) + layer.macs
    products = tp_products = 0
    disagreeing = []
    for name, module in model.named_modules():
        if type(module) not in _PRODUCT_MODULES or name not in calls:
            continue
        count, outputs = calls[name]
        bias_adds = 0 if module.bias is None else (count * module.out_features if isinstance(module, nn.Linear)
                                                   else outputs)
        theirs = int(layer_macs.get(module) or 0) - bias_adds
        products += ours.get(name, 0)
        tp_products += theirs
        if theirs != ours.get(name, 0):
            disagreeing.append(name)
    return CrossCheck(macs=report.total, tp_macs=int(tp_macs), params=count_params(model), tp_params=int(tp_params),
                      products=products, tp_products=tp_products, modules=len(calls), disagreeing=tuple(disagreeing))


def _product_calls(model: nn.Module, inputs: tuple[Any, ...]) -> dict[str, tuple[int, int]]:
    """Per conv/linear module that ran: (calls, output elements over all calls), from one forward."""
    seen: dict[str, tuple[int, int]] = {}
    handles = []
    for name, module in model.named_modules():
        if type(module) in _PRODUCT_MODULES:
            def hook(_module: nn.Module, _args: Any, output: torch.Tensor, name: str = name) -> None:
                count, outputs = seen.get(name, (0, 0))
                seen[name] = (count + 1, outputs + output.numel())
            handles.append(module.register_forward_hook(hook))
    try:
        with eval_mode(model), torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen
