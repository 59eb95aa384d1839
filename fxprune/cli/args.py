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
import shlex
import sys
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..checkpoint_files import checkpoint_info, is_checkpoint_file, load_checkpoint
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


def load_model(spec: str, options: dict, pretrained: bool = False) -> nn.Module:
    """Build a zoo model by name (with its shipped trained weights when ``pretrained``), or import
    ``package.module:Class`` and call it with ``options``, or load a saved fxprune model file
    (``.pt2``, see :func:`fxprune.save`).

    >>> load_model("edsr", {"blocks": 2}, pretrained=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fxprune.weights.NoPretrainedWeightsError: no trained weights ship for edsr --blocks 2; shipped: edsr --blocks 4 ...
    """
    if pretrained and (is_saved_model(spec) or ":" in spec):
        raise FxpruneError(f"--pretrained applies to zoo models only, not to '{spec}' (a "
                           f"{'saved model file' if is_saved_model(spec) else 'class'}: it brings its own weights)")
    if is_checkpoint_file(spec):  # a community .pth/.safetensors/.ckpt state dict, loaded with spandrel
        if options:
            raise FxpruneError(f"--kwargs/--blocks/--channels/--scale ({', '.join(sorted(options))}) do not apply to "
                               f"the checkpoint file '{spec}'; spandrel reads its architecture from the weights")
        return load_checkpoint(spec)
    if is_saved_model(spec):
        return load_saved(spec, options)
    if ":" in spec:
        return import_factory(spec)(**options)
    from .. import models

    if pretrained:
        from ..weights import NoPretrainedWeightsError, file_for, pretrained as shipped

        if spec not in models.names():
            return models.build(spec)  # raises UnknownModelError listing the zoo
        try:
            file_for(spec, **options)
        except NoPretrainedWeightsError:
            given = " ".join(f"--{k} {v}" for k, v in options.items() if k in ("blocks", "channels", "scale"))
            other = {k: v for k, v in options.items() if k not in ("blocks", "channels", "scale")}
            given += f" --kwargs '{json.dumps(other)}'" if other else ""
            raise NoPretrainedWeightsError(f"no trained weights ship for {spec} {given}".rstrip() + f"; shipped: "
                                           f"{shipped_list()}; without --pretrained the model starts from a random "
                                           "initialization (--seed)") from None
        return shipped(spec, **options)
    return models.build(spec, **options)


def import_factory(spec: str) -> Any:
    """The object ``package.module:Class`` names. The current folder is searched first, as
    ``python -m`` does (the ``fxprune`` script's own folder is what Python puts on the path)."""
    module_name, _, attr = spec.partition(":")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise FxpruneError(f"cannot import '{spec}' (searched the current folder {here} and the installed "
                           f"packages): {error}") from error


def model_arguments(parser: argparse.ArgumentParser) -> None:
    from .. import models

    parser.add_argument("model", help="zoo name (" + ", ".join(models.names()) + "), package.module:Class, a saved "
                        ".pt2, or a .pth/.safetensors/.ckpt checkpoint (loaded with spandrel: pip install 'fxprune[spandrel]')")
    parser.add_argument("--kwargs", default="{}", help="JSON constructor arguments, e.g. '{\"blocks\": 16}'")
    parser.add_argument("--blocks", type=int, help="zoo option: residual blocks")
    parser.add_argument("--channels", type=int, help="zoo option: feature channels")
    parser.add_argument("--scale", type=int, help="zoo option: upscaling factor")
    parser.add_argument("--input-size", type=int, nargs=2, default=(32, 32), metavar=("H", "W"),
                        help="example input height and width used for capture (default 32 32)")
    parser.add_argument("--pretrained", action="store_true",
                        help="zoo models: load the shipped trained weights (" + shipped_list() + ")")
    parser.add_argument("--seed", type=int, help="seeds the model's random initialization and the "
                        "example input (default 0), and training where the command trains")


def shipped_list() -> str:
    """The zoo configurations that have shipped trained weights, for help and messages.

    >>> print(shipped_list())
    edsr --blocks 4 --channels 32 --scale 2; edsr --blocks 8 --channels 64 --scale 2 --kwargs '{"upsampler": "light"}'; swinir --channels 32 --scale 2
    """
    from ..weights import DEFAULTS, SHIPPED

    flags = []
    for name, config in SHIPPED.values():
        extra = {k: v for k, v in config.items() if k not in ("blocks", "channels", "scale")
                 and DEFAULTS.get(name, {}).get(k) != v}
        text = f"{name} " + " ".join(f"--{k} {config[k]}" for k in ("blocks", "channels", "scale") if k in config)
        flags.append(text + (f" --kwargs '{json.dumps(extra)}'" if extra else ""))
    return "; ".join(flags)


def build_from_args(args: argparse.Namespace, say_untrained: bool = True) -> tuple[nn.Module, torch.Tensor]:
    """The MODEL and an example input from the parsed arguments.

    ``--seed`` (default 0) seeds torch first, so a zoo model's random initialization and the
    example input repeat from run to run. A zoo model built without ``--pretrained`` is untrained:
    when ``say_untrained`` (commands whose results depend on the weights) one line on stdout says so.
    """
    try:
        options = json.loads(args.kwargs)
    except json.JSONDecodeError as error:
        raise FxpruneError(f"--kwargs is not valid JSON: {error}") from error
    if not isinstance(options, dict):
        raise FxpruneError(f"--kwargs must be a JSON object of constructor arguments, got {args.kwargs}")
    for key in ("blocks", "channels", "scale"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    seed = getattr(args, "seed", None)
    torch.manual_seed(0 if seed is None else seed)
    pretrained = bool(getattr(args, "pretrained", False))
    model = load_model(args.model, options, pretrained=pretrained).eval()
    if say_untrained and not pretrained and not is_saved_model(args.model) and ":" not in args.model:
        print(f"note: {args.model} is randomly initialized (seed {0 if seed is None else seed}), not trained; "
              f"--pretrained loads shipped weights where they exist ({shipped_list()})")
    info = checkpoint_info(model)
    if info is not None:  # its channels and range, at --input-size or a size its architecture takes
        return model, info.example_input(tuple(args.input_size) if args.input_size else None)
    return model, torch.randn(1, 3, *args.input_size)


def resume_command(argv: Sequence[str], folder: str | os.PathLike) -> str:
    """The command that continues an interrupted run: ``argv`` without its ``--resume``, plus ``--resume folder``.

    >>> resume_command(["compress", "edsr", "--resume", "old", "-o", "out dir", "--resume=x"], "out dir")
    "fxprune compress edsr -o 'out dir' --resume 'out dir'"
    """
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--resume":
            skip = True
        elif not word.startswith("--resume="):
            kept.append(word)
    return shlex.join(["fxprune", *kept, "--resume", os.fspath(folder)])
