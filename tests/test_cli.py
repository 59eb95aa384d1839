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


def test_every_numeric_argument_is_validated_with_the_value_given(tmp_path):
    """Each bad value gets exit status 2 and one line repeating it (one real subprocess per case: keep few)."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("# to do\n")
    out = str(tmp_path / "out")
    cases = [
        (["analyze", "edsr", "--input-size", "0", "0"], "--input-size must be two positive integers H W, got 0 x 0"),
        (["compress", "edsr", "--ratio", "1.5", "-o", out], "--ratio must be a fraction in (0, 1), got 1.5"),
        (["compress", "edsr", "--method", "assl", "--steps", "-3", "-o", out], "--steps must be a positive integer, got -3"),
        (["compress", "edsr", "--lr", "nan", "-o", out], "--lr must be a positive number, got nan"),
        (["infer", "m.onnx", "in.png", "out.png", "--overlap", "-1"], "--overlap must be a non-negative integer, got -1"),
        (["export", "edsr", "-o", "x.onnx", "--opset", "12"], "--opset must be an integer >= 17, got 12"),
        (["compress", "edsr", "--spec", str(empty), "-o", out], f"the spec file {empty} is empty"),
    ]
    for argv, text in cases:
        result = run(*argv)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (argv, result.stderr)
        assert lines[0].startswith(f"fxprune {argv[0]}: error: ") and text in lines[0], (argv, lines)
    assert not (tmp_path / "out").exists()
