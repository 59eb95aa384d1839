"""`fxprune compress --checkpoint-every / --resume`, run for real in a subprocess."""
from __future__ import annotations

import subprocess

from fxprune.checkpoint import read_checkpoint

FLAGS = ["compress", "edsr", "--blocks", "1", "--channels", "16", "--method", "assl", "--ratio", "0.5",
         "--round-to", "8", "--batch-size", "2", "--patch-size", "16", "-q"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=600)


def test_compress_writes_checkpoints_and_resume_checks_the_run(tmp_path):
    out = tmp_path / "out"
    result = run(*FLAGS, "--steps", "6", "--checkpoint-every", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    folder = out / "checkpoint"
    assert read_checkpoint(folder)["step"] == 6
    other = run(*FLAGS, "--steps", "8", "--resume", str(folder), "-o", str(tmp_path / "again"))
    assert other.returncode == 2
    assert str(folder / "checkpoint.pt") in other.stderr and "6 steps" in other.stderr
    missing = run(*FLAGS, "--steps", "6", "--resume", str(tmp_path), "-o", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr
