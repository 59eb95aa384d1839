"""Crash-safe training runs: atomic checkpoint files and a SIGINT/SIGTERM flag.

:func:`write_checkpoint` writes to a temporary file in the same folder, fsyncs it and renames it
over ``checkpoint.pt`` (``os.replace`` is atomic on POSIX and Windows), so a run killed at any
moment leaves either the previous checkpoint or the new one, never a torn file.
:class:`StopOnSignal` turns SIGINT/SIGTERM into a flag the training loop polls at the end of each
step, so the loop can write a checkpoint and stop cleanly.

>>> import tempfile, torch
>>> folder = tempfile.mkdtemp()
>>> path = write_checkpoint(folder, {"step": 3, "w": torch.ones(2)})
>>> read_checkpoint(folder)["step"]
3
"""
from __future__ import annotations

import io
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from .errors import CheckpointError, FxpruneError
from .interrupt import SIGNALS, SignalHandlers, exit_code

FILE = "checkpoint.pt"
FORMAT = "fxprune.train-checkpoint"


class TrainingInterrupted(FxpruneError):
    """The built-in loop stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, signal_name: str, step: int, total: int, path: Path | None):
        self.step, self.total, self.path = step, total, path
        self.signal_name, self.exit_code = signal_name, exit_code(signal_name)
        where = (f"checkpoint written to {path}; continue with TrainConfig(resume='{path.parent}') or "
                 f"`fxprune compress ... --resume {path.parent}`") if path else "no checkpoint_dir was set, nothing saved"
        super().__init__(f"training stopped by {signal_name} after step {step} of {total}; {where}")


def write_checkpoint(folder: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` to ``folder/checkpoint.pt`` (temp file, fsync, rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / FILE
    handle, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return target


def read_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The payload of ``folder/checkpoint.pt``; CheckpointError naming the file if it is missing or unreadable."""
    path = Path(folder) / FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from at {path}", path=path)
    try:
        payload = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a torn or foreign file
        raise CheckpointError(f"the checkpoint {path} is corrupt or partial ({type(error).__name__}: {error}); "
                              "delete it to start over", path=path) from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"the checkpoint {path} does not hold a training state", path=path)
    return payload


def resume_folder(folder: str | Path, subfolder: str = "checkpoint") -> Path:
    """The folder holding the checkpoint to resume from: ``folder`` itself, or ``folder/subfolder``
    (so a command's output folder works as well as its checkpoint folder); CheckpointError naming
    both places when neither holds ``checkpoint.pt``.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = write_checkpoint(out / "checkpoint", {"step": 1})
    >>> resume_folder(out) == resume_folder(out / "checkpoint") == out / "checkpoint"
    True
    """
    folder = Path(folder)
    for candidate in (folder, folder / subfolder):
        if (candidate / FILE).is_file():
            return candidate
    raise CheckpointError(f"no checkpoint to resume from at {folder / FILE} or {folder / subfolder / FILE}",
                          path=folder / FILE)


class StopOnSignal(SignalHandlers):
    """Within ``with``: SIGINT/SIGTERM set ``.received`` instead of killing the process.

    Handlers are installed only in the main thread (Python allows no other) and the previous ones
    are restored on exit. A second signal of the same kind while the first is pending restores
    the previous handler's behaviour (e.g. a second Ctrl-C raises KeyboardInterrupt).
    """

    SIGNALS = SIGNALS

    def __init__(self) -> None:
        super().__init__()
        self.received: str | None = None

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is not None:
            previous = self._previous.get(number)
            if callable(previous):
                previous(number, frame)
                return
            if number == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + number)
        self.received = signal.Signals(number).name
