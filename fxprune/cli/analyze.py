"""``fxprune analyze MODEL`` (print the channel groups) and ``fxprune graph MODEL`` (write their page)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..analysis import analyze
from ..crosscheck import cross_check
from ..errors import FxpruneError
from ..viz import visualize
from .args import build_from_args, model_arguments

__all__ = ["add_analyze_command", "add_graph_command"]


def _strict_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true", help="fail on an op without a coupling rule instead of fixing it")


def add_analyze_command(sub: Any) -> argparse.ArgumentParser:
    """Register ``fxprune analyze MODEL`` on the CLI's subparsers; return its parser.

    >>> parser = argparse.ArgumentParser(prog="fxprune")
    >>> p = add_analyze_command(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["analyze", "edsr", "--strict", "--cross-check"])
    >>> args.strict, args.cross_check
    (True, True)
    """
    p = sub.add_parser("analyze", help="print the groups of channels that must be pruned together")
    model_arguments(p)
    _strict_flag(p)
    p.add_argument("--cross-check", action="store_true",
                   help="also count the dense model's MACs and parameters with torch-pruning and compare")
    p.set_defaults(run=_cmd_analyze)
    return p


def _cmd_analyze(args: argparse.Namespace) -> int:
    model, x = build_from_args(args)
    graph = analyze(model, (x,), strict=args.strict)
    print(graph.summary())
    if args.cross_check:
        print(f"cross-check: {cross_check(model, (x,)).summary()}")
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
    _strict_flag(p)
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
