"""The ``fxprune`` command line.

``fxprune analyze MODEL`` prints the channel groups of a model; ``fxprune graph MODEL`` writes the
interactive page of them. MODEL is a zoo name with options (``edsr --blocks 16 --channels 64
--scale 2``), ``package.module:Class`` with ``--kwargs JSON``, or a saved ``.pt2`` (see
:mod:`fxprune.cli_args`). The other commands live in ``cli_runtime`` (export, infer),
``cli_compress`` (compress, demo) and ``cli_route`` (route); no module outside the CLI imports it.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from .analysis import analyze
from . import cli_runtime  # export / infer (their command bodies)
from .cli_args import bad_number, build_from_args, load_model, model_arguments  # noqa: F401 - load_model: a public name here
from .cli_compress import add_commands
from .cli_route import add_route_command
from .errors import FxpruneError
from .viz import visualize


def _cmd_analyze(args: argparse.Namespace) -> int:
    model, x = build_from_args(args)
    graph = analyze(model, (x,), strict=args.strict)
    print(graph.summary())
    return 0


def add_graph_command(sub: Any) -> argparse.ArgumentParser:
    """Register ``fxprune graph MODEL -o coupled.html`` on the CLI's subparsers; return its parser.

    >>> parser = argparse.ArgumentParser(prog="fxprune")
    >>> p = add_graph_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["graph", "edsr", "-o", "x.html"]).output
    'x.html'
    """
    p = sub.add_parser("graph", help="write an interactive HTML page of the coupled layers")
    model_arguments(p)
    p.add_argument("-o", "--output", default="coupled.html", help="HTML file to write (default coupled.html)")
    p.add_argument("--title", help="page title (default: the model's class)")
    p.add_argument("--strict", action="store_true", help="fail on an op without a coupling rule instead of fixing it")
    p.set_defaults(run=_cmd_graph)
    return p


def _cmd_graph(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if not out.parent.is_dir():
        raise FxpruneError(f"output directory '{out.parent}' does not exist")
    model, x = build_from_args(args)
    graph = analyze(model, (x,), strict=args.strict)
    try:
        visualize(graph, out, title=args.title)
    except OSError as error:
        raise FxpruneError(f"cannot write '{out}': {error.strerror or error}") from error
    counts = {k: len(graph.by_kind(k)) for k in ("free", "coupled", "fixed")}
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    print(f"{len(graph.groups)} groups: {counts['free']} free, {counts['coupled']} coupled, {counts['fixed']} fixed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxprune", description="Structured-sparsity compression of image-restoration networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="print the groups of channels that must be pruned together")
    model_arguments(p)
    p.add_argument("--strict", action="store_true", help="fail on an op without a coupling rule instead of fixing it")
    p.set_defaults(run=_cmd_analyze)
    p = sub.add_parser("export", help="export a zoo model or a saved .pt2 model to ONNX, checked in ONNX Runtime")
    model_arguments(p)
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
    add_graph_command(sub)  # `fxprune graph MODEL -o coupled.html`: the interactive page
    add_route_command(sub)
    add_commands(sub)  # compress / demo
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
