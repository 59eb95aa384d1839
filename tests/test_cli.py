"""The command line, run for real in a subprocess."""
from __future__ import annotations

import subprocess


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=300)


def test_analyze_prints_group_table():
    result = run("analyze", "edsr", "--blocks", "2", "--channels", "8", "--input-size", "16", "16")
    assert result.returncode == 0, result.stderr
    assert "coupled" in result.stdout and "head, body.0.conv2, body.1.conv2, body.2" in result.stdout


def test_unknown_model_fails_with_one_line_reason():
    result = run("analyze", "no_such_model")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("fxprune analyze: error: unknown model 'no_such_model'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_kwargs_json_is_reported():
    result = run("analyze", "edsr", "--kwargs", "{oops")
    assert result.returncode == 2 and "--kwargs is not valid JSON" in result.stderr


def test_help():
    assert run("--help").returncode == 0
    assert "--strict" in run("analyze", "--help").stdout
