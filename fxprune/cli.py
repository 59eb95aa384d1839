"""The ``fxprune`` command line.

``fxprune analyze MODEL`` prints the channel groups of a model. MODEL is a zoo name with options
(``edsr --blocks 16 --channels 64 --scale 2``) or ``package.module:Class`` with ``--kwargs JSON``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from typing import Sequence

import torch
from torch import nn

from . import models
from .analysis import analyze
from .cli_args import bad_number
from .errors import FxpruneError


def load_model(spec: str, options: dict) -> nn.Module:
    """Build a zoo model by name, or import ``package.module:Class`` and call it with ``options``,
    or load a saved fxprune model file (``.pt2``, see :func:`fxprune.save`)."""
    from .cli_runtime import is_saved_model, load_saved

    if is_saved_model(spec):
        return load_saved(spec, options)
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise FxpruneError(f"cannot import '{spec}': {error}") from error
        return factory(**options)
    return models.build(spec, **options)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="zoo name (" + ", ".join(models.names()) + ") or package.module:Class")
    parser.add_argument("--kwargs", default="{}", help="JSON constructor arguments, e.g. '{\"blocks\": 16}'")
    parser.add_argument("--blocks", type=int, help="zoo option: residual blocks")
    parser.add_argument("--channels", type=int, help="zoo option: feature channels")
    parser.add_argument("--scale", type=int, help="zoo option: upscaling factor")
    parser.add_argument("--input-size", type=int, nargs=2, default=(32, 32), metavar=("H", "W"),
                        help="example input height and width used for capture (default 32 32)")


def _build_from_args(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor]:
    try:
        options = json.loads(args.kwargs)
    except json.JSONDecodeError as error:
        raise FxpruneError(f"--kwargs is not valid JSON: {error}") from error
    for key in ("blocks", "channels", "scale"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    model = load_model(args.model, options).eval()
    return model, torch.randn(1, 3, *args.input_size)


def _cmd_analyze(args: argparse.Namespace) -> int:
    model, x = _build_from_args(args)
    graph = analyze(model, (x,), strict=args.strict)
    print(graph.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxprune", description="Structured-sparsity compression of image-restoration networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="print the groups of channels that must be pruned together")
    _model_arguments(p)
    p.add_argument("--strict", action="store_true", help="fail on an op without a coupling rule instead of fixing it")
    p.set_defaults(run=_cmd_analyze)
    from . import cli_runtime  # export / infer (command bodies live in cli_runtime.py)
    p = sub.add_parser("export", help="export a zoo model or a saved .pt2 model to ONNX, checked in ONNX Runtime")
    _model_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    p.add_argument("--static", action="store_true", help="fix height/width to --input-size instead of dynamic")
    p.set_defaults(run=cli_runtime.cmd_export, input_size=None)  # None: a saved model's own size, else 32 32
    p = sub.add_parser("infer", help="run an ONNX model on an image (PNG) tile by tile in ONNX Runtime")
    p.add_argument("model", metavar="MODEL.onnx", help="ONNX model file (from fxprune export)")
    p.add_argument("input", metavar="IN.png", help="input image")
    p.add_argument("output", metavar="OUT.png", help="output image to write")
    p.add_argument("--tile", type=int, default=128, help="input tile size in px, context included (default 128)")
    p.add_argument("--overlap", type=int, default=16, help="context px on each inner side of a tile (default 16)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: one per core)")
    p.add_argument("--beta", type=float, help="routed models (fxprune route): the quality/cost trade-off β")
    p.set_defaults(run=cli_runtime.cmd_infer)
    from .viz import add_graph_command  # `fxprune graph MODEL -o coupled.html`: the interactive page
    add_graph_command(sub)
    from .cli_compress import add_commands  # compress / demo
    from .cli_route import add_route_command  # route

    add_route_command(sub)

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # torch's pytree deprecation notice fires inside deepcopy of exported graphs; it is not the user's concern
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = bad_number(args)
    if bad is not None:
        print(f"fxprune {args.command}: error: {bad}", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (FxpruneError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"fxprune {args.command}: error: {first_line}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
