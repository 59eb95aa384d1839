"""Ctrl-C / SIGTERM on real `fxprune compress` and `fxprune demo` processes: no flag needed, the
training state is saved in the output folder, the exit status is 130/143 with one line and no
traceback, and the printed command continues the run to the result of an uninterrupted one.

The processes that get the signals are real, and so is the first printed command (run again and
stopped again); the uninterrupted references and the last printed command, run to the end, go
through the same :func:`fxprune.cli.main` in-process on one torch thread, as the executables get
it through OMP_NUM_THREADS (a fresh process would pay ~4 s of imports and ~6 s of exporter and
plotting imports)."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from test_crash_safe import data  # noqa: F401 - the fixture: a folder of one training image (no evaluation runs)

import fxprune
from fxprune.checkpoint import read_checkpoint

from cli_checks import in_process

TIMEOUT = 420
# one thread: on busy shared cores torch's spinning worker threads make a tiny step 100x slower
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
# 150 ASSL steps of a 1-block, 8-channel EDSR on 12 px patches: long enough that a signal sent
# when the progress bar first moves lands mid-training, short enough to keep the runs cheap
COMPRESS = ["compress", "edsr", "--blocks", "1", "--channels", "8", "--method", "assl", "--ratio", "0.5",
            "--round-to", "4", "--steps", "150", "--batch-size", "2", "--patch-size", "12", "--input-size", "12", "12"]
DEMO = ["demo", "--blocks", "1", "--channels", "16", "--pretrain-steps", "3", "--steps", "100"]


class Run:
    """A real `fxprune` process whose stdout and stderr are read as they come."""

    def __init__(self, args: list[str], cwd: Path | None = None):
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=ENV)
        self.out, self.err = bytearray(), bytearray()
        self.readers = [threading.Thread(target=self._read, args=(s, b), daemon=True)
                        for s, b in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, into: bytearray) -> None:
        while chunk := os.read(stream.fileno(), 65536):
            into.extend(chunk)

    def signal_when(self, ready, how: signal.Signals) -> None:
        """Send ``how`` once ``ready(stdout, stderr)`` is true (failing if the process ends first)."""
        deadline = time.time() + TIMEOUT
        while not ready(self.out.decode(errors="replace"), self.err.decode(errors="replace")):
            if self.process.poll() is not None or time.time() > deadline:
                self.finish()
                raise AssertionError(f"the moment to signal never came (exit {self.process.returncode}):\n"
                                     f"{self.out.decode()}\n{self.err.decode()}")
            time.sleep(0.01)
        self.process.send_signal(how)

    def finish(self) -> tuple[int, str, str]:
        code = self.process.wait(timeout=TIMEOUT)
        for reader in self.readers:
            reader.join(timeout=TIMEOUT)
        return code, self.out.decode(), self.err.decode()


def bar_past(description: str, step: int):
    """``ready`` for :meth:`Run.signal_when`: the progress bar ``description`` shows a step above ``step``."""
    pattern = re.compile(rf"{description}:\s+\d+%\|[^|]*\|\s*(\d+)/\d+")

    def ready(out: str, err: str) -> bool:
        steps = pattern.findall(err)
        return bool(steps) and int(steps[-1]) > step
    return ready


def bar_start(err: str, description: str) -> int:
    """The step the progress bar ``description`` showed first: where a resumed run took up training."""
    found = re.search(rf"{description}:\s+\d+%\|[^|]*\|\s*(\d+)/\d+", err)
    assert found, err
    return int(found[1])


def stopped(code: int, err: str, how: signal.Signals, out: Path, command: str) -> tuple[int, list[str]]:
    """Check an interrupted training run's exit; return its step and the command it prints."""
    assert code == 128 + how, err
    assert "Traceback" not in err, err
    line = err.replace("\r", "\n").strip().splitlines()[-1]
    found = re.fullmatch(rf"fxprune {command}: stopped by {how.name} at step (\d+) of \d+; training state saved to "
                         rf"(\S+); continue with: (.*)", line)
    assert found, line
    step = int(found[1])
    assert Path(found[2]) == out / "checkpoint" / "checkpoint.pt"
    assert read_checkpoint(out / "checkpoint")["step"] == step
    again = shlex.split(found[3])
    assert again[0] == "fxprune" and again[-2:] == ["--resume", str(out)]
    return step, again


def assert_same_result(folder: Path, reference: Path) -> None:
    """Same compressed model (kept channels, outputs) and the same training log as the reference run."""
    ours, theirs = fxprune.load(folder / "model.pt2"), fxprune.load(reference / "model.pt2")
    a, b = ours.meta["fxprune"], theirs.meta["fxprune"]
    assert a["keep"] == b["keep"]
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    # CPU training is deterministic on one machine; the tolerance covers nothing but float noise
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    log, expected = a["train"], b["train"]
    assert log["steps"] == expected["steps"]
    torch.testing.assert_close(torch.tensor(log["loss"]), torch.tensor(expected["loss"]), rtol=1e-5, atol=1e-6)
    assert log["status"].keys() == expected["status"].keys()
    for name, series in expected["status"].items():
        torch.testing.assert_close(torch.tensor(log["status"][name]), torch.tensor(series), rtol=1e-5, atol=1e-6,
                                   equal_nan=True)
    for (step, scores), (step_ref, scores_ref) in zip(
            [(e["step"], {k: v for k, v in e.items() if k != "step"}) for e in log["evals"]],
            [(e["step"], {k: v for k, v in e.items() if k != "step"}) for e in expected["evals"]], strict=True):
        assert step == step_ref
        for name, value in scores_ref.items():
            assert scores[name] == pytest.approx(value, rel=1e-6), name


def test_compress_stopped_twice_by_signals_resumes_to_the_uninterrupted_result(data, tmp_path):
    flags = [*COMPRESS, "--data", str(data)]
    reference = tmp_path / "reference"
    done = in_process(*flags, "-o", str(reference), threads=1)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "out"
    run = Run(["fxprune", *flags, "-o", str(out)])
    run.signal_when(bar_past("assl", 0), signal.SIGTERM)
    first, again = stopped(*run.finish()[::2], signal.SIGTERM, out, "compress")

    run = Run(again)  # the printed command, as a user would paste it
    run.signal_when(bar_past("assl", first), signal.SIGINT)
    code, _, err = run.finish()
    assert bar_start(err, "assl") == first  # continued from the checkpoint, not from step 0
    second, again = stopped(code, err, signal.SIGINT, out, "compress")
    assert 0 < first < second < 150

    finished = in_process(*again[1:], threads=1)  # `stopped` checked that again[0] is the executable
    assert finished.returncode == 0, finished.stderr
    assert bar_start(finished.stderr, "assl") == second
    assert_same_result(out, reference)


@pytest.fixture(scope="module")
def demo_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "reference"
    done = in_process(*DEMO, "-q", "-o", str(out), threads=1)
    assert done.returncode == 0, done.stderr
    assert "coupled" in done.stdout and "| MACs (128×128 input) |" in done.stdout and "Y-PSNR" in done.stdout
    return out


def test_demo_runs_end_to_end_on_a_short_schedule(demo_reference):
    for name in ("coupled_dense.html", "coupled.html", "model.onnx", "report.md", "checkpoint/checkpoint.pt",
                 "checkpoint-dense/checkpoint.pt"):
        assert (demo_reference / name).is_file(), name


def test_demo_stopped_by_ctrl_c_resumes_to_the_uninterrupted_result(demo_reference, tmp_path):
    out = tmp_path / "demo"
    run = Run(["fxprune", *DEMO, "-o", str(out)])
    run.signal_when(bar_past("assl", 0), signal.SIGINT)
    step, again = stopped(*run.finish()[::2], signal.SIGINT, out, "demo")
    assert 0 < step < 100
    finished = in_process(*again[1:], threads=1)
    assert finished.returncode == 0, finished.stderr
    assert bar_start(finished.stderr, "assl") == step
    assert_same_result(out, demo_reference)


SLOW_MODULE = '''
import time
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        print("building Net", flush=True)
        time.sleep(300)
'''


def test_a_signal_while_building_exits_cleanly_and_mymod_is_found_in_the_current_folder(tmp_path):
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    run = Run(["fxprune", "compress", "slowmod:Net", "-o", "out"], cwd=tmp_path)
    run.signal_when(lambda out, err: "building Net" in out, signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("fxprune compress: stopped by SIGTERM while building and capturing the model; "
                                            "kept: nothing was written; run the command again")


def test_ctrl_c_during_export_exits_130_naming_the_saved_model(tmp_path):
    out = tmp_path / "out"
    run = Run(["fxprune", "compress", "edsr", "--blocks", "1", "--channels", "8", "--ratio", "0.5", "--round-to", "4",
               "--input-size", "12", "12", "-o", str(out)])
    run.signal_when(lambda stdout, err: "exporting to ONNX" in stdout, signal.SIGINT)
    code, _, err = run.finish()
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"fxprune compress: stopped by SIGINT while exporting, measuring and "
                                            f"reporting; kept: {out / 'model.pt2'}")
    small = fxprune.load(out / "model.pt2")
    assert small.get_parameter("head.weight").shape[0] == 4
    assert not (out / "report.md").exists()
