"""The CLI tests' shared checks: the real ``fxprune`` executable in a subprocess (exit status,
signals, what reaches the terminal), or the same :func:`fxprune.cli.main` in-process for the
one-line errors and the runs whose output (not process) a test checks: each subprocess costs ~4 s of
imports, and a first compress/export in a fresh process another ~6 s (the ONNX exporter, its
translation table, matplotlib), which a test worker pays once."""
from __future__ import annotations

import subprocess
from typing import Sequence


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=600)


def in_process(*args: str, threads: int | None = None) -> subprocess.CompletedProcess:
    """``fxprune ARGS`` through the same :func:`fxprune.cli.main` in this process, returned as :func:`run`
    returns the executable's (exit status, stdout, stderr; usable in module fixtures, where capsys is
    not). ``threads``: torch's intra-op threads for the run (as OMP_NUM_THREADS sets them for the
    executable); the caller's thread count and the global random states are restored afterwards
    (the command seeds torch's; a resumed training run sets numpy's and Python's from its checkpoint)."""
    import contextlib
    import io

    from fxprune.cli import main
    from helpers import own_threads_and_random_states

    out, err = io.StringIO(), io.StringIO()
    with own_threads_and_random_states(threads), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["fxprune", *args], code, out.getvalue(), err.getvalue())


def one_line_error(result: subprocess.CompletedProcess, command: str, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fxprune {command}: error: ") and text in lines[0], result.stderr


def main_error(argv: Sequence[str], capsys, text: str) -> None:
    """``main(argv)`` returns 2 (the executable's exit status) with one line naming ``text`` on stderr."""
    from fxprune.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    one_line_error(subprocess.CompletedProcess(argv, code, captured.out, captured.err), argv[0], text)
