"""The CLI tests' shared checks: the real ``fxprune`` executable in a subprocess (exit status,
signals, what reaches the terminal), or the same :func:`fxprune.cli.main` in-process for the
one-line errors whose path the executable adds nothing to (each subprocess costs ~4 s of imports)."""
from __future__ import annotations

import subprocess
from typing import Sequence


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=600)


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
