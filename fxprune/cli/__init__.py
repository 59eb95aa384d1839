"""The ``fxprune`` command line: one module per command group, this one parses and dispatches.

``analyze`` and ``graph`` live in :mod:`fxprune.cli.analyze`, ``export`` and ``infer`` in
:mod:`fxprune.cli.runtime`, ``compress`` and ``demo`` in :mod:`fxprune.cli.compress`, ``route`` in
:mod:`fxprune.cli.route`; :mod:`fxprune.cli.args` holds what they share (the MODEL argument: a zoo
name with options such as ``edsr --blocks 16 --channels 64 --scale 2``, ``package.module:Class``
with ``--kwargs JSON``, or a saved ``.pt2``; and the checks of numeric arguments). No module
outside this package imports it; ``python -m fxprune`` runs :func:`main`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
import warnings
from typing import Sequence

from ..checkpoint import TrainingInterrupted
from ..errors import FxpruneError
from ..interrupt import Interrupted, Interrupts
from .analyze import add_analyze_command, add_graph_command
from .args import bad_number, load_model, resume_command  # noqa: F401 - load_model: a public name here
from .compress import add_commands as add_compress_commands
from .route import add_route_command
from .runtime import add_export_command, add_infer_command

__all__ = ["build_parser", "load_model", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fxprune`` argument parser with every command registered.

    >>> sorted(build_parser()._subparsers._group_actions[0].choices)
    ['analyze', 'compress', 'demo', 'export', 'graph', 'infer', 'route']
    """
    parser = argparse.ArgumentParser(prog="fxprune", description="Structured-sparsity compression of image-restoration networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_analyze_command(sub)
    add_export_command(sub)
    add_infer_command(sub)
    add_graph_command(sub)  # `fxprune graph MODEL -o coupled.html`: the interactive page
    add_route_command(sub)
    add_compress_commands(sub)  # compress / demo
    return parser


def _continue_line(stop: TrainingInterrupted, args: argparse.Namespace, argv: Sequence[str]) -> str:
    """One line for a training run stopped by a signal: where its state is and the command that continues it."""
    if stop.path is None:
        return f"{stop.signal_name} at step {stop.step} of {stop.total}; no checkpoint folder was set, nothing was saved"
    output = getattr(args, "output", None)
    folder = output if output is not None and Path(output).resolve() in stop.path.resolve().parents else stop.path.parent
    return (f"stopped by {stop.signal_name} at step {stop.step} of {stop.total}; training state saved to {stop.path}; "
            f"continue with: {resume_command(argv, folder)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``fxprune`` command; return its exit status (2 with a one-line message on a user error;
    128 + the signal's number, i.e. 130 or 143, with one line on SIGINT/SIGTERM: a run stopped during
    training saves its checkpoint and says how to continue, one stopped elsewhere says what it kept).

    >>> main(["analyze", "edsr", "--blocks", "0"])  # stderr: fxprune analyze: error: --blocks must be ...
    2
    """
    # torch's pytree deprecation notice fires inside deepcopy of exported graphs; it is not the user's concern
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = bad_number(args)
    if bad is not None:
        print(f"fxprune {args.command}: error: {bad}", file=sys.stderr)
        return 2
    try:
        with Interrupts(f"running fxprune {args.command}"):
            return args.run(args)
    except TrainingInterrupted as stop:
        print(f"fxprune {args.command}: {_continue_line(stop, args, sys.argv[1:] if argv is None else argv)}",
              file=sys.stderr)
        return stop.exit_code
    except Interrupted as stop:
        print(f"fxprune {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (FxpruneError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"fxprune {args.command}: error: {first_line}", file=sys.stderr)
        return 2
