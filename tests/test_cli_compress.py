"""`fxprune compress` and `fxprune demo` (also `--checkpoint-every` / `--resume`): the runs through the same
:func:`fxprune.cli.main` as the executable, in-process (their files and printed output are checked, not
the process); the real executable for a spec-file error (exit status 2, one line) and in
tests/test_cli_interrupt.py (signals, the printed resume command)."""
from __future__ import annotations

import json
import zipfile

import onnx
import pytest
import torch

import fxprune
from fxprune.checkpoint import read_checkpoint

from cli_checks import in_process, main_error, run


def test_compress_l1_from_a_yaml_spec_writes_model_onnx_and_report(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("method: l1\nratio: 0.5\nround_to: 8\noverrides:\n  tail.0: null\n")
    out = tmp_path / "out"
    result = in_process("compress", "edsr", "--blocks", "2", "--channels", "16", "--spec", str(spec), "-o", str(out),
                 "--input-size", "24", "24")
    assert result.returncode == 0, result.stderr
    assert "| params |" in result.stdout
    for name in ("model.pt2", "model.onnx", "dense.onnx", "report.md", "groups.png", "coupled.html"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "## Dense vs compressed" in report and "8 / 16" in report and "![kept units per group](groups.png)" in report
    small = fxprune.load(out / "model.pt2")
    assert small.get_parameter("head.weight").shape[0] == 8
    assert small(torch.rand(1, 3, 20, 28)).shape == (1, 3, 40, 56)
    onnx.checker.check_model(onnx.load(out / "model.onnx"))
    assert 'data-g="0"' in (out / "coupled.html").read_text()


ASSL = ["compress", "edsr", "--blocks", "1", "--channels", "16", "--method", "assl", "--ratio", "0.5",
        "--round-to", "8", "--batch-size", "2", "--patch-size", "16", "-q"]


@pytest.fixture(scope="module")
def assl_run(tmp_path_factory):
    """One 6-step ASSL run with --checkpoint-every 2, checked by the two tests below (the checkpoint is
    written either way, every 2 steps here: tests/test_cli_interrupt.py runs without the flag)."""
    out = tmp_path_factory.mktemp("cli_assl") / "assl"
    return in_process(*ASSL, "--steps", "6", "--checkpoint-every", "2", "-o", str(out)), out


def test_compress_assl_trains_with_flags_and_reports_psnr(assl_run):
    result, out = assl_run
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    assert "Y-PSNR" in report and "dB" in report.split("Y-PSNR")[1].splitlines()[0]
    assert (out / "training.png").is_file()
    with zipfile.ZipFile(out / "model.pt2") as archive:
        meta = json.loads(next(archive.read(n) for n in archive.namelist() if n.endswith("fxprune.json")))
    assert meta["report"]["spec"]["method"] == "assl"


# (was tests/test_cli_resume.py, which ran the same 6-step command with --checkpoint-every 2 itself)
def test_compress_writes_checkpoints_and_resume_checks_the_run(assl_run, tmp_path, capsys):
    """The resume checks through the same main() as the executable."""
    result, out = assl_run
    assert result.returncode == 0, result.stderr
    folder = out / "checkpoint"
    assert read_checkpoint(folder)["step"] == 6
    main_error([*ASSL, "--steps", "8", "--resume", str(folder), "-o", str(tmp_path / "again")], capsys,
               f"{folder / 'checkpoint.pt'} was written by another run ('assl', 6 steps")
    main_error([*ASSL, "--steps", "6", "--resume", str(tmp_path), "-o", str(tmp_path / "x")], capsys, "no checkpoint")


def test_compress_errors_are_one_line(tmp_path, capsys):
    """The missing spec file through the real executable, the rest through the same main()."""
    from fxprune.cli import main

    result = run("compress", "edsr", "--spec", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no spec file" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: l1\nratoi: 0.5\n")
    main_error(["compress", "edsr", "--spec", str(bad), "-o", str(tmp_path / "o")], capsys, "ratoi")
    main_error(["compress", "edsr", "--method", "assl", "-o", str(tmp_path / "o")], capsys, "steps")
    assert not (tmp_path / "o").exists()
    for command, option in (("compress", "--spec"), ("demo", "--pretrain-steps")):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0 and option in capsys.readouterr().out


def test_compress_nm_from_flags_reports_nm_and_writes_a_compact_file(tmp_path):
    # one-shot N:M (no training, so no evaluation: fast); sls takes the same path with the training flags
    out = tmp_path / "nm"
    result = in_process("compress", "edsr", "--blocks", "2", "--channels", "16", "--method", "nm", "--budget", "0.5",
                 "--m", "8", "-q", "-o", str(out), "--input-size", "24", "24")
    assert result.returncode == 0, result.stderr
    assert "no speed" in result.stdout and "N:M check: 6 layers, all valid" in result.stdout
    report = (out / "report.md").read_text()
    assert "ONNX Runtime on CPU has no N:M kernels" in report and "## N:M per layer" in report
    assert (out / "nm_layers.png").is_file()
    small, compact = fxprune.load(out / "model.pt2"), fxprune.load(out / "model_compact.pt2")
    x = torch.rand(1, 3, 24, 24)
    assert torch.equal(small(x), compact(x)) and fxprune.check_nm(small).ok
    from fxprune.models import build

    assert fxprune.count_macs(small, x) <= 0.5 * fxprune.count_macs(build("edsr", blocks=2, channels=16), x)
