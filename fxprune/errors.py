"""The exception hierarchy: every error fxprune raises on user input derives from FxpruneError.

Each error carries structured fields besides its message (e.g. :attr:`SpecError.field`,
:attr:`CheckpointError.path`, :attr:`ParityError.max_error`), set by keyword where it is raised and
listed by :meth:`FxpruneError.details`. Every error pickles with its fields and message (a worker
process can send it back whole):

>>> import pickle
>>> error = pickle.loads(pickle.dumps(SpecError("ratio", "must be a fraction in [0, 1), got 2", value=2)))
>>> error.field, error.value, str(error)
('ratio', 2, "spec field 'ratio': must be a fraction in [0, 1), got 2")
"""
from __future__ import annotations

from typing import Any, ClassVar


def _rebuild(cls: type, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """Unpickle an error without calling its constructor (whose arguments differ from ``args``)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class FxpruneError(Exception):
    """Base class of every error fxprune raises on purpose.

    ``fields`` names the structured attributes a class adds (``details()`` returns them).
    """

    fields: ClassVar[tuple[str, ...]] = ()

    def details(self) -> dict[str, Any]:
        """The structured fields of this error, by name (JSON-ready for plain values).

        >>> CheckpointError("no checkpoint at x/checkpoint.pt", path="x/checkpoint.pt").details()
        {'path': 'x/checkpoint.pt'}
        """
        return {name: getattr(self, name, None) for cls in reversed(type(self).__mro__)
                for name in cls.__dict__.get("fields", ())}

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class CaptureError(FxpruneError):
    """The model could not be captured as an FX graph (torch.export failed).

    ``module``: the qualified name of the submodule it failed in (None: unknown or the top);
    ``hint``: what to try.
    """

    fields = ("module", "hint")

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
    """An op has no coupling rule and analysis runs in strict mode.

    ``node``: the FX node's name; ``target``: the op; ``hint``: how to register a rule.
    """

    fields = ("node", "target", "hint")

    def __init__(self, node: str, target: str, hint: str):
        self.node = node
        self.target = target
        self.hint = hint
        super().__init__(f"no coupling rule for op '{target}' at node '{node}'\nhint: {hint}")


class SpecError(FxpruneError, ValueError):
    """A compression spec is invalid; the message names the field.

    ``field``: the field's name (``"overrides['tail.0'].ratio"``, ``"train.task"``, ``"<file>"`` ...);
    ``message``: the text after the field's name; ``value``: the offending value (None if it is
    missing or not one value); ``owners``: for a field set under a method that does not own it,
    the methods that do.
    """

    fields = ("field", "value", "owners")

    def __init__(self, field: str, message: str, *, value: Any = None, owners: tuple[str, ...] = ()):
        self.field = field
        self.message = message
        self.value = value
        self.owners = tuple(owners)
        super().__init__(f"spec field '{field}': {message}")


class ExampleInputError(FxpruneError, ValueError):
    """The example input does not fit the model: no batch dim, or not the channels its first conv takes.

    ``shape``: the example's shape; ``expected``: the shape it should have (None where unknown);
    ``module``: the first conv the example reaches.
    """

    fields = ("shape", "expected", "module")

    def __init__(self, message: str, *, shape: tuple[int, ...] = (), expected: tuple[int, ...] | None = None,
                 module: str | None = None):
        self.shape = tuple(shape)
        self.expected = None if expected is None else tuple(expected)
        self.module = module
        super().__init__(message)


class RequestUndoneWarning(UserWarning):
    """A pruning request that compress/prepare could not carry out for one group: rounding brought
    it back to full width, an override leaves its layers as they were, or an op without a coupling
    rule fixed its channels. Filter it with ``warnings.filterwarnings("ignore", category=...)``."""


class StageError(FxpruneError):
    """A stage got a model that did not come from the stage before it.

    ``where``: the function that refused it (``"convert"``); ``expected``: the stage it takes
    (``"prepared"``); ``got``: the stage of what it was given (``"compressed"``), or its type name
    when it carries no fxprune record.
    """

    fields = ("where", "expected", "got")

    def __init__(self, message: str, *, where: str | None = None, expected: str | None = None,
                 got: str | None = None):
        self.where, self.expected, self.got = where, expected, got
        super().__init__(message)


class CheckpointError(FxpruneError):
    """A saved fxprune model or pruner state could not be read.

    ``path``: the file (as a string), None for an in-memory state such as a pruner's ``state_dict``.
    """

    fields = ("path",)

    def __init__(self, message: str, *, path: Any = None):
        self.path = None if path is None else str(path)
        super().__init__(message)


class ParityError(FxpruneError):
    """Two implementations that must agree (masked vs sliced, ONNX Runtime vs PyTorch) did not.

    ``max_error``: the largest absolute difference measured (None if they could not be compared);
    ``tolerance``: the difference allowed there; ``input_shapes``: the shapes of the inputs they
    ran on.
    """

    fields = ("max_error", "tolerance", "input_shapes")

    def __init__(self, message: str, *, max_error: float | None = None, tolerance: float | None = None,
                 input_shapes: tuple[tuple[int, ...], ...] = ()):
        self.max_error, self.tolerance = max_error, tolerance
        self.input_shapes = tuple(tuple(shape) for shape in input_shapes)
        super().__init__(message)


class VerificationError(ParityError):
    """A compressed model failed or differed from its masked reference; it was not returned.

    ``node``/``op`` name the first op whose output diverges (or raised), ``groups`` the channel
    groups it belongs to, ``max_error``/``tolerance`` the measured and allowed error, ``input_shapes``
    the inputs it ran on and ``report`` the per-group decisions (``fxprune.record.group_rows``).
    """

    fields = ("node", "op", "groups", "report")

    def __init__(self, message: str, *, node: str | None = None, op: str | None = None,
                 groups: tuple[int, ...] = (), max_error: float | None = None, tolerance: float | None = None,
                 input_shapes: tuple[tuple[int, ...], ...] = (), report: list | None = None):
        self.node, self.op, self.groups = node, op, tuple(groups)
        self.report = list(report or [])
        super().__init__(message, max_error=max_error, tolerance=tolerance, input_shapes=input_shapes)


class InferenceError(FxpruneError):
    """An ONNX model file could not be opened, or failed to run, in ONNX Runtime.

    ``path``: the model file (as a string) when known; ``input_shape``: the shape of the input it
    failed on (None when it could not be opened).
    """

    fields = ("path", "input_shape")

    def __init__(self, message: str, *, path: Any = None, input_shape: tuple[int, ...] | None = None):
        self.path = None if path is None else str(path)
        self.input_shape = None if input_shape is None else tuple(input_shape)
        super().__init__(message)
