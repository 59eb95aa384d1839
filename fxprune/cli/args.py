"""What every command of the command line shares: the MODEL argument (a zoo name, a class, or a saved
``.pt2`` file) and its options, and the validation of numeric arguments (each message repeats the value given).

argparse only checks that ``--ratio 1.5`` is a float; without this, bad values surface deep inside
capture or training as unrelated errors (``--input-size 0 0`` used to end in a message about a
4 x 4 tensor). Rules are keyed by the argument's ``dest``, so every subcommand shares them.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
from typing import Any, Callable

import torch
from torch import nn

from ..errors import FxpruneError

Rule = Callable[[Any], bool]


def _integer(minimum: int) -> tuple[Rule, str]:
    text = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    return (lambda v: v >= minimum), text


def _real(check: Rule, text: str) -> tuple[Rule, str]:
    return (lambda v: math.isfinite(v) and check(v)), text


RULES: dict[str, tuple[Rule, str]] = {
    "blocks": _integer(1),
    "channels": _integer(1),
    "scale": _integer(1),
    "opset": _integer(17),
    "tile": _integer(1),
    "overlap": _integer(0),
    "threads": _integer(1),
    "round_to": _integer(1),
    "steps": _integer(1),
    "finetune_steps": _integer(0),
    "pretrain_steps": _integer(0),
    "batch_size": _integer(1),
    "patch_size": _integer(1),
    "seed": _integer(0),
    "ratio": _real(lambda v: 0 < v < 1, "a fraction in (0, 1)"),
    "macs": _real(lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "latency": _real(lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "lr": _real(lambda v: v > 0, "a positive number"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _number(value: Any) -> str:
    return repr(value) if isinstance(value, float) and not math.isfinite(value) else f"{value:g}" if isinstance(value, float) else str(value)


def bad_number(args: argparse.Namespace) -> str | None:
    """The first numeric argument out of its range, as a one-line message repeating it; None if all fit.

    >>> bad_number(argparse.Namespace(input_size=(0, 0), ratio=0.5))
    '--input-size must be two positive integers H W, got 0 x 0'
    >>> bad_number(argparse.Namespace(ratio=1.5))
    '--ratio must be a fraction in (0, 1), got 1.5'
    >>> bad_number(argparse.Namespace(ratio=0.5, steps=None)) is None
    True
    """
    size = getattr(args, "input_size", None)
    if size is not None and not all(s >= 1 for s in size):
        return f"--input-size must be two positive integers H W, got {size[0]} x {size[1]}"
    for dest, (ok, text) in RULES.items():
        value = getattr(args, dest, None)
        if value is not None and not ok(value):
            return f"{_flag(dest)} must be {text}, got {_number(value)}"
    return None


# --------------------------------------------------------------------------- MODEL
def is_saved_model(spec: str) -> bool:
    """Whether a MODEL argument names a saved fxprune model file rather than a zoo name or a class.

    >>> is_saved_model("edsr"), is_saved_model("out/small.pt2"), is_saved_model("pkg.mod:Net")
    (False, True, False)
    """
    return spec.endswith(".pt2") or (":" not in spec and os.path.isfile(spec))


def load_saved(path: str, options: dict) -> nn.Module:
    """Load a saved fxprune model file for a command; zoo options cannot apply to it.

    >>> load_saved("missing.pt2", {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fxprune.errors.CheckpointError: no fxprune model file at 'missing.pt2'; ...
    """
    from ..model_io import load

    if options:
        raise FxpruneError(f"--kwargs/--blocks/--channels/--scale ({', '.join(sorted(options))}) do not apply to "
                           f"the saved model file '{path}'; its architecture is fixed")
    return load(path)


def load_model(spec: str, options: dict) -> nn.Module:
    """Build a zoo model by name, or import ``package.module:Class`` and call it with ``options``,
    or load a saved fxprune model file (``.pt2``, see :func:`fxprune.save`)."""
    if is_saved_model(spec):
        return load_saved(spec, options)
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise FxpruneError(f"cannot import '{spec}': {error}") from error
        return factory(**options)
    from .. import models

    return models.build(spec, **options)


def model_arguments(parser: argparse.ArgumentParser) -> None:
    from .. import models

    parser.add_argument("model", help="zoo name (" + ", ".join(models.names()) + ") or package.module:Class")
    parser.add_argument("--kwargs", default="{}", help="JSON constructor arguments, e.g. '{\"blocks\": 16}'")
    parser.add_argument("--blocks", type=int, help="zoo option: residual blocks")
    parser.add_argument("--channels", type=int, help="zoo option: feature channels")
    parser.add_argument("--scale", type=int, help="zoo option: upscaling factor")
    parser.add_argument("--input-size", type=int, nargs=2, default=(32, 32), metavar=("H", "W"),
                        help="example input height and width used for capture (default 32 32)")


def build_from_args(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor]:
    try:
        options = json.loads(args.kwargs)
    except json.JSONDecodeError as error:
        raise FxpruneError(f"--kwargs is not valid JSON: {error}") from error
    for key in ("blocks", "channels", "scale"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    model = load_model(args.model, options).eval()
    return model, torch.randn(1, 3, *args.input_size)
