"""The command line: ``fxprune analyze`` on the real executable once (exit status, output), the other
cases through the same :func:`fxprune.cli.main` in-process (each subprocess costs ~4 s of imports)."""
from __future__ import annotations

import subprocess

import pytest

from cli_checks import in_process, main_error


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=300)


def test_analyze_prints_group_table():
    result = run("analyze", "edsr", "--blocks", "2", "--channels", "8", "--input-size", "16", "16")
    assert result.returncode == 0, result.stderr
    assert "coupled" in result.stdout and "head, body.0.conv2, body.1.conv2, body.2" in result.stdout


def test_analyze_cross_checks_the_counts_with_torch_pruning():
    result = in_process("analyze", "edsr", "--blocks", "2", "--channels", "8", "--input-size", "16", "16", "--cross-check")
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("cross-check: "))
    assert "torch-pruning" in line and "conv/linear products of 8 modules agree" in line


def test_unknown_model_fails_with_one_line_reason(capsys):
    """The same main() as the executable (whose exit status and one line the cases below check)."""
    main_error(["analyze", "no_such_model"], capsys, "fxprune analyze: error: unknown model 'no_such_model'")


def test_bad_kwargs_json_is_reported(capsys):
    main_error(["analyze", "edsr", "--kwargs", "{oops"], capsys, "--kwargs is not valid JSON")


def test_help(capsys):
    from fxprune.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "compress" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "--help"])
    assert exit_info.value.code == 0 and "--strict" in capsys.readouterr().out



def _expect_one_line(argv: list[str], code: int, stderr: str, text: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, (argv, stderr)
    assert lines[0].startswith(f"fxprune {argv[0]}: error: ") and text in lines[0], (argv, lines)


@pytest.mark.parametrize("argv, text", [
    (["analyze", "edsr", "--input-size", "0", "0"], "--input-size must be two positive integers H W, got 0 x 0"),
    (["compress", "edsr", "--ratio", "1.5", "-o", "out"], "--ratio must be a fraction in (0, 1), got 1.5"),
    (["compress", "edsr", "--spec", "empty.yaml", "-o", "out"], "the spec file empty.yaml is empty"),
])
def test_bad_values_exit_2_with_one_line_repeating_them(argv, text, tmp_path, monkeypatch, capsys):
    """The same main() as the executable, in the folder the relative paths name."""
    from fxprune.cli import main

    (tmp_path / "empty.yaml").write_text("# to do\n")
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    _expect_one_line(argv, code, capsys.readouterr().err, text)
    assert not (tmp_path / "out").exists()


def test_every_numeric_argument_is_validated_with_the_value_given(capsys):
    """The same main() as the executable, for the other numeric options of every command."""
    from fxprune.cli import main

    cases = [
        (["compress", "edsr", "--method", "assl", "--steps", "-3", "-o", "o"], "--steps must be a positive integer, got -3"),
        (["compress", "edsr", "--lr", "nan", "-o", "o"], "--lr must be a positive number, got nan"),
        (["compress", "edsr", "--macs", "0", "-o", "o"], "--macs must be a fraction in (0, 1], got 0"),
        (["compress", "edsr", "--round-to", "0", "-o", "o"], "--round-to must be a positive integer, got 0"),
        (["compress", "edsr", "--finetune-steps", "-1", "-o", "o"], "--finetune-steps must be a non-negative integer, got -1"),
        (["compress", "edsr", "--batch-size", "0", "-o", "o"], "--batch-size must be a positive integer, got 0"),
        (["compress", "edsr", "--patch-size", "-8", "-o", "o"], "--patch-size must be a positive integer, got -8"),
        (["compress", "edsr", "--seed", "-1", "-o", "o"], "--seed must be a non-negative integer, got -1"),
        (["compress", "edsr", "--blocks", "0", "-o", "o"], "--blocks must be a positive integer, got 0"),
        (["demo", "--ratio", "0", "-o", "o"], "--ratio must be a fraction in (0, 1), got 0"),
        (["demo", "--channels", "-4", "-o", "o"], "--channels must be a positive integer, got -4"),
        (["demo", "--pretrain-steps", "-5", "-o", "o"], "--pretrain-steps must be a non-negative integer, got -5"),
        (["analyze", "edsr", "--scale", "0"], "--scale must be a positive integer, got 0"),
        (["infer", "m.onnx", "in.png", "out.png", "--overlap", "-1"], "--overlap must be a non-negative integer, got -1"),
        (["infer", "m.onnx", "in.png", "out.png", "--tile", "0"], "--tile must be a positive integer, got 0"),
        (["infer", "m.onnx", "in.png", "out.png", "--threads", "-2"], "--threads must be a positive integer, got -2"),
        (["export", "edsr", "-o", "x.onnx", "--opset", "12"], "--opset must be an integer >= 17, got 12"),
        (["export", "edsr", "-o", "x.onnx", "--input-size", "-1", "8"], "got -1 x 8"),
    ]
    for argv, text in cases:
        code = main(argv)
        _expect_one_line(argv, code, capsys.readouterr().err, text)
