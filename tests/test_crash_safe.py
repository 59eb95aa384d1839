"""Crash-safe training: atomic checkpoints, SIGKILL/SIGTERM mid-regularization, exact resume.

The runs that are killed are real processes (tests/crash_worker.py); the uninterrupted reference and
the resumed runs are the same run in the test's process (crash_worker.run), which reads the killed
process's checkpoint as a new process would."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crash_worker
import fxprune
from fxprune.checkpoint import read_checkpoint, write_checkpoint
from fxprune.models import build
from fxprune.schedule import AsslSchedule

WORKER = Path(__file__).parent / "crash_worker.py"
PRUNE_AT = AsslSchedule.from_spec(fxprune.Spec(method="assl", steps=150)).prune_at


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "one.png")
    return folder


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(folder: Path, process: subprocess.Popen) -> None:
    deadline = time.time() + 240
    while not (folder / "checkpoint.pt").exists():
        if process.poll() is not None or time.time() > deadline:
            raise AssertionError(f"no checkpoint appeared: {process.communicate()}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("straight") / "model.pt"
    assert crash_worker.run(str(data), str(out)) == 0
    return torch.load(out)


def _assert_same(result: dict, reference: dict) -> None:
    assert result["groups"] == reference["groups"]   # the same kept channels
    assert result["state"].keys() == reference["state"].keys()
    for key, value in reference["state"].items():
        torch.testing.assert_close(result["state"][key], value, rtol=0, atol=0)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_resumes_to_the_same_model(how, data, uninterrupted, tmp_path):
    folder = tmp_path / "ckpt"
    process = _start(str(data), str(tmp_path / "unused.pt"), "--checkpoint", str(folder))
    _wait_for_checkpoint(folder, process)
    time.sleep(random.Random().uniform(0, 0.2))
    process.send_signal(how)
    _, stderr = process.communicate(timeout=120)
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:   # the loop finishes its step, writes the checkpoint and stops with a message
        assert process.returncode == 3, stderr
        assert "SIGTERM" in stderr and "resume" in stderr
    step = read_checkpoint(folder)["step"]
    assert 0 < step < PRUNE_AT, "the kill must land in the regularization phase"
    out = tmp_path / "resumed.pt"
    assert crash_worker.run(str(data), str(out), resume=str(folder)) == 0
    _assert_same(torch.load(out), uninterrupted)


def test_corrupt_or_partial_checkpoints_name_the_file(tmp_path, data):
    x = torch.rand(1, 3, 12, 12)
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=4, steps=4)
    config = dict(data=str(data), steps=4, batch_size=2, patch_size=12, device="cpu", progress=False)
    folder = tmp_path / "ck"
    fxprune.compress(build("edsr", blocks=1, channels=8), spec, (x,),
                     train=fxprune.TrainConfig(checkpoint_dir=str(folder), checkpoint_every=2, **config))
    path = folder / "checkpoint.pt"
    assert read_checkpoint(folder)["step"] == 4
    whole = path.read_bytes()
    for broken in (whole[: len(whole) // 2], b"not a checkpoint"):
        path.write_bytes(broken)
        with pytest.raises(fxprune.CheckpointError, match=str(path)):
            fxprune.compress(build("edsr", blocks=1, channels=8), spec, (x,), train=fxprune.TrainConfig(resume=str(folder), **config))
    write_checkpoint(folder, {"format": "something else"})
    with pytest.raises(fxprune.CheckpointError, match="not an fxprune training checkpoint"):
        fxprune.compress(build("edsr", blocks=1, channels=8), spec, (x,), train=fxprune.TrainConfig(resume=str(folder), **config))
    with pytest.raises(fxprune.CheckpointError, match="no checkpoint"):
        fxprune.compress(build("edsr", blocks=1, channels=8), spec, (x,), train=fxprune.TrainConfig(resume=str(tmp_path), **config))
    assert not list(folder.glob("*.tmp")), "no temp files are left behind"
