"""Validation of the command line's numeric arguments: each message repeats the value given.

argparse only checks that ``--ratio 1.5`` is a float; without this, bad values surface deep inside
capture or training as unrelated errors (``--input-size 0 0`` used to end in a message about a
4 x 4 tensor). Rules are keyed by the argument's ``dest``, so every subcommand shares them.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable

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
