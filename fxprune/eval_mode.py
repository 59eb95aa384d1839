"""The one way fxprune runs a model in eval mode for a while: :func:`eval_mode`.

Checks, exports, evaluation and saving all run a model in eval mode and must hand it back in the
mode it came in, down to every submodule (a model may freeze some of its parts in eval mode
while it trains). GraphModules add two cases: fxprune's traced graphs switch mode with ``train()``
(which rewrites the batch norm and dropout flags baked into the graph, see
:mod:`fxprune.graph_mode`), and torch.export's own GraphModules refuse ``train()`` and ``eval()``
(their mode is baked in for good), so only their ``training`` flags are set.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

__all__ = ["eval_mode"]


def _switch(model: nn.Module, mode: bool) -> None:
    """``model.train(mode)``; for a module that refuses it (torch.export's GraphModules), the flags only."""
    try:
        model.train(mode)
    except NotImplementedError:
        for module in model.modules():
            module.training = mode


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Run the body with every model in eval mode; afterwards restore each model's and each
    submodule's own ``training`` flag, also when the body raises.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(2)).train()
    >>> _ = net[1].eval()  # a frozen part stays frozen
    >>> with eval_mode(net):
    ...     net.training, net[0].training
    (False, False)
    >>> net.training, net[0].training, net[1].training
    (True, True, False)
    """
    modes = [model.training for model in models]
    flags = [(module, module.training) for model in models for module in model.modules()]
    for model in models:
        _switch(model, False)
    try:
        yield
    finally:
        for model, mode in zip(models, modes):
            _switch(model, mode)  # a traced graph rewrites its baked-in flags back
        for module, flag in flags:
            module.training = flag
