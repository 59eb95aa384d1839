"""The exception hierarchy: every error fxprune raises on user input derives from FxpruneError."""
from __future__ import annotations


class FxpruneError(Exception):
    """Base class of every error fxprune raises on purpose."""


class CaptureError(FxpruneError):
    """The model could not be captured as an FX graph (torch.export failed)."""

    def __init__(self, message: str, *, module: str | None = None, hint: str | None = None):
        self.module = module
        self.hint = hint
        text = message
        if module:
            text = f"{text} (in module '{module}')"
        if hint:
            text = f"{text}\nhint: {hint}"
        super().__init__(text)


class UnsupportedOpError(FxpruneError):
    """An op has no coupling rule and analysis runs in strict mode."""

    def __init__(self, node: str, target: str, hint: str):
        self.node = node
        self.target = target
        super().__init__(f"no coupling rule for op '{target}' at node '{node}'\nhint: {hint}")


class SpecError(FxpruneError, ValueError):
    """A compression spec is invalid; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"spec field '{field}': {message}")


class StageError(FxpruneError):
    """A stage got a model that did not come from the stage before it."""


class CheckpointError(FxpruneError):
    """A saved fxprune model or pruner state could not be read."""


class ParityError(FxpruneError):
    """Two implementations that must agree (masked vs sliced, ONNX Runtime vs PyTorch) did not."""


class VerificationError(ParityError):
    """A compressed model failed or differed from its masked reference; it was not returned.

    ``node``/``op`` name the first op whose output diverges (or raised), ``groups`` the channel
    groups it belongs to, ``max_error``/``tolerance`` the measured and allowed error, ``input_shapes``
    the inputs it ran on and ``report`` the per-group decisions (``fxprune.record.group_rows``).
    """

    def __init__(self, message: str, *, node: str | None = None, op: str | None = None,
                 groups: tuple[int, ...] = (), max_error: float | None = None, tolerance: float | None = None,
                 input_shapes: tuple[tuple[int, ...], ...] = (), report: list | None = None):
        self.node, self.op, self.groups = node, op, tuple(groups)
        self.max_error, self.tolerance = max_error, tolerance
        self.input_shapes, self.report = tuple(input_shapes), list(report or [])
        super().__init__(message)


class InferenceError(FxpruneError):
    """An ONNX model file could not be opened, or failed to run, in ONNX Runtime."""
