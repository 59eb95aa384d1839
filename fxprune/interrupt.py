"""Ctrl-C and SIGTERM as a clean stop: inside an :class:`Interrupts` block the signal raises
:class:`Interrupted`, which names the signal, what was being done and what is kept, so a command can
exit with ``128 + the signal's number`` (130, 143) and one line instead of a traceback.

Training is finer-grained: :class:`fxprune.checkpoint.StopOnSignal`, which the built-in loop
installs while a checkpoint folder is set, takes the signals over for the loop's duration (the
loop finishes its step, writes the checkpoint and raises
:class:`~fxprune.checkpoint.TrainingInterrupted`) and hands them back when the loop ends; a second
signal during the loop reaches the :class:`Interrupts` handler. A command therefore wraps its whole
run in one block, tells it what it is doing as it goes (:meth:`Interrupts.now`) and turns both
exceptions into an exit status::

    with Interrupts("capturing the model", kept="nothing was written") as guard:
        model = build()
        guard.now("training", kept=lambda: f"the checkpoint in {folder}")
        compress(model, spec, x, train=TrainConfig(checkpoint_dir=folder, ...))

>>> exit_code("SIGINT"), exit_code("SIGTERM")
(130, 143)
>>> str(Interrupted("SIGTERM", "exporting", "out/model.pt2"))
'stopped by SIGTERM while exporting; kept: out/model.pt2'
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterable

__all__ = ["Interrupted", "Interrupts", "SignalHandlers", "Written", "exit_code", "SIGNALS"]

SIGNALS = ("SIGINT", "SIGTERM")


def exit_code(signal_name: str) -> int:
    """The shell's status for a process stopped by ``signal_name``: 128 + its number."""
    return 128 + int(signal.Signals[signal_name])


# A BaseException, like KeyboardInterrupt: library code that catches Exception (capture retries,
# "torch raises many types" around file reads) must not swallow a stop request.
class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived inside an :class:`Interrupts` block.

    ``signal_name``: ``"SIGINT"`` or ``"SIGTERM"``; ``doing``: what the block was doing;
    ``kept``: what is on disk for the user; ``exit_code``: 130 or 143.
    """

    def __init__(self, signal_name: str, doing: str, kept: str):
        self.signal_name, self.doing, self.kept = signal_name, doing, kept
        self.exit_code = exit_code(signal_name)
        super().__init__(f"stopped by {signal_name} while {doing}; kept: {kept}")


class SignalHandlers:
    """A ``with`` block in which SIGINT/SIGTERM call :meth:`_handle` (subclasses say what it does).

    Handlers are installed only in the main thread (Python allows no other; elsewhere the block
    does nothing) and the previous ones are restored on exit, so blocks nest.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        if threading.current_thread() is threading.main_thread():
            for name in SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()


class Interrupts(SignalHandlers):
    """Within ``with``: SIGINT/SIGTERM raise :class:`Interrupted` saying what was being done and kept.

    ``kept`` may be a string or a function returning one (called when the signal arrives, e.g. to
    look whether a checkpoint exists yet).
    """

    def __init__(self, doing: str = "working", kept: str | Callable[[], str] = "nothing was written"):
        super().__init__()
        self.doing, self.kept = doing, kept

    def now(self, doing: str, kept: str | Callable[[], str] | None = None) -> None:
        """Say what the block does from here on (and, if given, what is kept if it stops)."""
        self.doing = doing
        if kept is not None:
            self.kept = kept

    def _handle(self, number: int, frame: FrameType | None) -> None:
        kept = self.kept() if callable(self.kept) else self.kept
        raise Interrupted(signal.Signals(number).name, self.doing, kept)


class Written:
    """Which of ``paths`` were created or replaced since this object was made: the honest list of
    what a run kept (a file left by an earlier run is not counted until this run rewrites it).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "old.txt").write_text("from before")
    11
    >>> written = Written([folder / "old.txt", folder / "new.txt"])
    >>> (folder / "new.txt").write_text("this run")
    8
    >>> [p.name for p in written()]
    ['new.txt']
    """

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        self.before = {p: self._stamp(p) for p in self.paths}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        # the inode changes when a file is replaced by rename (atomic writes), the time when rewritten in place
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def __call__(self) -> list[Path]:
        return [p for p in self.paths if (stamp := self._stamp(p)) is not None and stamp != self.before[p]]
