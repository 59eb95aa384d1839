"""One table of ATen -> ONNX translations per process, instead of one per export.

Every ``torch.onnx.export(..., dynamo=True)`` builds its registry of translation functions from
onnxscript's torchlib, and building it compiles the IR of ~1000 functions from their source: ~2 s
per export on one core, a third of exporting a small model (the CLI exports the dense and the
compressed model, routing one file per variant). The table depends only on the installed torch,
onnxscript and the opset, so :func:`reused_torchlib_registry` builds it once per opset and hands
each export its own copy (an export may register custom translations into its copy).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

_BUILT: dict[Any, Any] = {}


def _registration_module() -> Any | None:
    """torch's registry module of the dynamo exporter; None where this torch lays it out otherwise."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return None
    registry = getattr(_registration, "ONNXRegistry", None)
    if registry is None or not hasattr(registry, "from_torchlib") or not hasattr(registry(), "functions"):
        return None
    return _registration


def _copy(registry: Any) -> Any:
    fresh = type(registry)()
    fresh.__dict__.update(registry.__dict__)
    fresh.functions = {target: list(entries) for target, entries in registry.functions.items()}
    return fresh


def _reusing(build: Callable[..., Any]) -> classmethod:
    def from_torchlib(cls: type, *args: Any, **kwargs: Any) -> Any:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _BUILT:
            _BUILT[key] = build(*args, **kwargs)
        return _copy(_BUILT[key])

    return classmethod(from_torchlib)


@contextlib.contextmanager
def reused_torchlib_registry() -> Iterator[None]:
    """Within the block, ``ONNXRegistry.from_torchlib`` returns a copy of the table built once per
    opset in this process. Outside it (and on a torch without that registry) nothing changes.

    >>> from torch.onnx._internal.exporter._registration import ONNXRegistry
    >>> with reused_torchlib_registry():
    ...     first, second = ONNXRegistry.from_torchlib(), ONNXRegistry.from_torchlib()
    >>> first is second, first.functions == second.functions, first.functions is second.functions
    (False, True, False)
    """
    module = _registration_module()
    if module is None:
        yield
        return
    registry_class = module.ONNXRegistry
    original = registry_class.__dict__["from_torchlib"]
    registry_class.from_torchlib = _reusing(original.__get__(None, registry_class))
    try:
        yield
    finally:
        registry_class.from_torchlib = original
