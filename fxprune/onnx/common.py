"""What the ONNX export and its parity check share: the error type, example inputs and model runs."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..errors import FxpruneError
from ..eval_mode import eval_mode  # noqa: F401 - the package's modules import it from here


class OnnxExportError(FxpruneError):
    """No ONNX exporter could export the model, or it could not be checked."""


def as_tensors(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """The example inputs as a tuple of tensors; ``TypeError`` for anything else.

    >>> [t.shape for t in as_tensors(torch.zeros(1, 3, 4, 4))]
    [torch.Size([1, 3, 4, 4])]
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs and all(
        isinstance(t, torch.Tensor) for t in example_inputs
    ):
        return tuple(example_inputs)
    got = type(example_inputs).__name__
    if isinstance(example_inputs, (tuple, list)):
        got = f"{got} of ({', '.join(type(t).__name__ for t in example_inputs)})"
    raise TypeError(
        f"example_inputs must be a tensor or a non-empty tuple of tensors, e.g. (torch.randn(1, 3, 64, 64),); got {got}"
    )


def flatten(output: Any) -> list[torch.Tensor]:
    """The tensors of a model output (a tensor, or tuples/lists/dicts of them), in order.

    >>> len(flatten((torch.zeros(1), {"a": [torch.ones(2)]})))
    2
    """
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in flatten(item)]
    raise TypeError(f"model outputs must be tensors (or tuples/lists/dicts of tensors), got {type(output).__name__}")


def clones(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Fresh copies for one run: a forward that writes its input (``x.sub_(mean)``) must not
    change what the next run (PyTorch or ONNX Runtime) sees."""
    return tuple(t.clone() for t in inputs)


def size_steps(height: int, width: int) -> list[int]:
    """Offsets ``s`` tried for the other sizes ``(H+s, W+2s)``: 4, 8, 16, ... up to the image size.

    >>> size_steps(16, 16)
    [4, 8, 16, 32]
    """
    return [4 * 2**k for k in range(max(1, int(math.log2(max(height, width, 4)))))]


def make_inputs(inputs: tuple[torch.Tensor, ...], batch: int, height: int, width: int,
                generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """New random inputs like ``inputs``: 4-D ones at ``(batch, C, height, width)``, others at their
    own shape (integer ones drawn below their example's maximum + 1).

    >>> [t.shape for t in make_inputs((torch.zeros(1, 3, 8, 8),), 2, 4, 6, torch.Generator().manual_seed(0))]
    [torch.Size([2, 3, 4, 6])]
    """
    fresh = []
    for t in inputs:
        shape = (batch, t.shape[1], height, width) if t.dim() == 4 else tuple(t.shape)
        if t.is_floating_point():
            fresh.append(torch.randn(shape, generator=generator, dtype=t.dtype).to(t.device))
        elif t.dim() == 4:
            high = int(t.max().item()) + 1 if t.numel() else 2
            fresh.append(torch.randint(0, max(high, 2), shape, generator=generator, dtype=t.dtype).to(t.device))
        else:
            fresh.append(t.clone())
    return tuple(fresh)


def first_line(error: BaseException) -> str:
    """The error's type and the first line of its message.

    >>> first_line(ValueError("bad size\\nmore detail"))
    'ValueError: bad size'
    """
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
