"""The one way a model becomes an FX graph: torch.export (non-strict) on a deep copy.

``torch.fx.symbolic_trace`` fails on most real restoration models (shape-dependent padding,
einops, in-place slice assignment); non-strict ``torch.export`` runs the real Python forward with
fake tensors and records ATen ops with a shape on every node.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from .baked_batch import refusing_baked_batch
from .errors import CaptureError
from .fast_capture import capture_size_blind
from .graph_mode import enable_train_eval, fixed_batch
from .layout_guards import generic_size_branches, without_layout_guards
from . import capture_cache
from .opaque import record_io, replace_with_leaf
from .shapes import STALE

logger = logging.getLogger("fxprune.capture")


@dataclass(frozen=True)
class CaptureInfo:
    """What was captured and how; stored at ``gm.meta["fxprune_capture"]``."""

    input_shapes: tuple[tuple[int, ...], ...]
    dynamic_hw: bool
    model_class: str
    opaque: tuple[str, ...] = ()  # submodules captured as opaque leaves (channels fixed)
    dynamic_batch: bool = False  # the graph was checked to run at the example batch and another one
    path: str = "torch.export"  # or "size-blind" (fxprune.fast_capture: one static trace, exact at every size)
    slices_match: bool = True  # with a fixed batch: a larger batch run slice by slice gives the model's result


def as_inputs(example_inputs: Any) -> tuple[Any, ...]:
    """Accept a tensor, a tuple/list of tensors, and reject anything else with a clear message."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs:
        return tuple(example_inputs)
    raise TypeError(
        "example_inputs must be a tensor or a non-empty tuple of tensors, e.g. (torch.randn(1, 3, 64, 64),); "
        f"got {type(example_inputs).__name__}"
    )


def export_program(model: nn.Module, inputs: tuple[Any, ...], *, dynamic_hw: bool, dynamic_batch: bool,
                   dim: Any = None) -> torch.export.ExportedProgram:
    """The one ``torch.export`` call of fxprune (capture, ``fxprune.save`` and ONNX export use it).

    Non-strict, with torch's retry and guard warnings kept out of the user's log. The batch (dim 0)
    and the height and width (dims 2 and 3) of every 4-D input are ``dim`` (``Dim.AUTO`` by
    default) as asked; a dynamic batch of 1 is exported from a batch of 2, since export fixes
    every dim of size 1.

    >>> import torch
    >>> program = export_program(torch.nn.Conv2d(3, 4, 3), (torch.randn(1, 3, 8, 8),), dynamic_hw=True,
    ...                          dynamic_batch=True)
    >>> [isinstance(size, int) for size in program.module()(torch.randn(3, 3, 9, 7)).shape]
    [True, True, True, True]
    >>> program.module()(torch.randn(3, 3, 9, 7)).shape
    torch.Size([3, 4, 7, 5])
    """
    dim = torch.export.Dim.AUTO if dim is None else dim
    if dynamic_batch:
        inputs = _batch_of_two(inputs) or inputs
    axes = ([0] if dynamic_batch else []) + ([2, 3] if dynamic_hw else [])
    shapes = tuple({a: dim for a in axes} if _is_image(t) and axes else None for t in inputs)
    with _quiet_torch_logs(), without_layout_guards(model), without_fake_tensor_cache():
        return torch.export.export(model, inputs, dynamic_shapes=shapes if any(shapes) else None, strict=False)


def without_fake_tensor_cache() -> contextlib.AbstractContextManager:
    """torch's fake-tensor dispatch cache off for the fake modes made inside: with symbolic sizes an
    entry costs more to build than the op it caches, and one trace rarely meets the same op twice
    (restormer_unet captured in 7 s instead of 12, its sliced ONNX export in 35 s instead of 40)."""
    return torch._dynamo.config.patch(fake_tensor_cache_enabled=False)


def _is_image(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 4


def _batch_of_two(inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The inputs with a batch of 2 instead of 1 (export specializes a size-1 dim), or None."""
    if not any(_is_image(t) and t.shape[0] == 1 for t in inputs):
        return None
    return tuple(t.expand(2, *t.shape[1:]).clone() if _is_image(t) and t.shape[0] == 1 else t for t in inputs)


def _batch_is_symbolic(gm: fx.GraphModule) -> bool:
    for node in gm.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder" and isinstance(val, torch.Tensor) and val.dim() == 4:
            return not isinstance(val.shape[0], int)
    return False


class _ModuleTracker:
    """Remembers which submodule was running when capture failed, to name it in the error."""

    def __init__(self, model: nn.Module):
        self.stack: list[str] = []
        self._handles = []
        for name, module in model.named_modules():
            if name:
                self._handles.append(module.register_forward_pre_hook(self._enter(name)))
                self._handles.append(module.register_forward_hook(self._leave()))

    def _enter(self, name: str):
        def hook(module, args):
            self.stack.append(name)

        return hook

    def _leave(self):
        def hook(module, args, output):
            if self.stack:
                self.stack.pop()

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


_QUIET_DEPTH = [0]  # nested uses are free
_TORCH_TRACE_LOG = "torch.__trace"  # torch._logging._internal.trace_log


@contextlib.contextmanager
def _quiet_torch_logs():
    """torch.export logs its retries and guard failures as warnings; our error says what matters."""
    if _QUIET_DEPTH[0]:
        yield
        return
    _QUIET_DEPTH[0] += 1
    try:
        with _quiet_torch_logs_now():
            yield
    finally:
        _QUIET_DEPTH[0] -= 1


@contextlib.contextmanager
def _quiet_torch_logs_now():
    # A logger without its own level takes its nearest ancestor's, so raising "torch" and the few
    # torch loggers that set their own level quiets them all. Setting every one of the ~500 was
    # quadratic (each setLevel clears every logger's cache): a third of a small model's capture.
    # torch's structured trace log is left alone: it prints nothing unless $TORCH_TRACE is set, and
    # its handler drops itself at the first record it sees; silenced, it never sees one, and every
    # traced op then pays for a Python stack capture that is thrown away.
    loggers = [logging.getLogger("torch")] + [
        lg for name, lg in list(logging.root.manager.loggerDict.items())
        if name.startswith("torch.") and isinstance(lg, logging.Logger) and lg.level != logging.NOTSET
        and name != _TORCH_TRACE_LOG]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _to_debug_log():
    """What torch prints while capture fails (copies of the failing graph, retries) goes to the
    ``fxprune.capture`` debug log instead of stdout/stderr: fxprune's own error says what matters."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _quiet_torch_logs():
            yield
    finally:
        for stream, text in (("stdout", out.getvalue()), ("stderr", err.getvalue())):
            if text.strip():
                logger.debug("torch wrote to %s during capture:\n%s", stream, text)


def _copy_structure(model: nn.Module) -> nn.Module:
    """A deep copy of the module tree that shares parameter and buffer storage with ``model``.

    Export runs the forward on fake tensors, so weights are never written; what a forward or a
    failed capture can damage is the module objects themselves (attributes, hooks), and those are
    copied. Sharing the tensors keeps capture of a 100M-parameter model cheap. Plain tensor
    attributes (set in ``__init__`` without ``register_buffer``) are lifted to non-persistent
    buffers of the copy: deepcopy refuses a non-leaf one (a view of a parameter), and export can
    leave fake tensors in its constant list for others.
    """
    memo: dict[int, object] = {}
    for tensor in list(model.parameters()) + list(model.buffers()):
        memo[id(tensor)] = tensor
    constants = _tensor_attributes(model)
    for _, _, tensor in constants:
        memo[id(tensor)] = tensor.detach()
    copied = copy.deepcopy(model, memo)
    for module_name, attr, tensor in constants:
        module = copied.get_submodule(module_name)
        delattr(module, attr)
        module.register_buffer(attr, tensor.detach(), persistent=False)
    return copied


def _tensor_attributes(model: nn.Module) -> list[tuple[str, str, torch.Tensor]]:
    """(module name, attribute, tensor) of every tensor attribute that is not a parameter or buffer."""
    found = []
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                found.append((name, attr, value))
    return found


def _own_tensors(gm: fx.GraphModule) -> None:
    """Give the graph module its own copies of the weights, so passes never write the user's model."""
    with torch.no_grad():
        for module in gm.modules():
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad))
            for name, b in list(module.named_buffers(recurse=False)):
                module.register_buffer(name, b.detach().clone(), persistent=name not in module._non_persistent_buffers_set)


def _capture_with_leaf(model: nn.Module, inputs: tuple[Any, ...], name: str, error: Exception | None) -> fx.GraphModule | None:
    """Retry capture with submodule ``name`` as an opaque leaf; None when that does not work either."""
    out_shape = record_io(model, name, inputs)
    if out_shape is None:
        return None
    replace_with_leaf(model, name, out_shape)
    try:
        gm, _ = _export(model, inputs, False)
    except Exception:  # noqa: BLE001 - the caller reports the original error
        return None
    return gm


def _export(model: nn.Module, inputs: tuple[Any, ...], dynamic: bool) -> tuple[fx.GraphModule, bool]:
    """Export; returns the graph and whether its batch is dynamic.

    With dynamic sizes, a Python branch on the height or width for which the example is a special
    case takes the generic side (:func:`~fxprune.layout_guards.generic_size_branches`: SwinIR's
    ``if pad_h or pad_w`` at a multiple of its window); such a graph is kept only if it computes
    what the model computes on the example, else the capture runs again with the example's branches.
    """
    if not dynamic:
        return _export_candidates(model, inputs, dynamic)
    gm = None
    with generic_size_branches() as switched:
        try:
            gm, dynamic_batch = _export_candidates(model, inputs, dynamic)
        except Exception:  # noqa: BLE001 - the generic side may not run at the example: try the example's
            if not switched:
                raise
    if gm is not None and (not switched or _same_outputs(gm, model, inputs)):
        return gm, dynamic_batch
    logger.debug("the graph with generic branches (%s) does not compute the model at the example; capturing "
                 "with the example's branches", ", ".join(switched))
    return _export_candidates(model, inputs, dynamic)


def _export_candidates(model: nn.Module, inputs: tuple[Any, ...], dynamic: bool) -> tuple[fx.GraphModule, bool]:
    """Export at a batch of 2, else at the caller's batch; returns the graph and whether its batch is dynamic.

    When dynamic, the batch is made dynamic too (through an example batch of 2, since export
    specializes a size-1 dim) where the model allows it, so a graph traced on one image trains on
    batches. A forward that computes a size from the batch through Python numbers (SwinIR's
    ``window_reverse``: ``int(windows.shape[0] / (H * W / ws**2))``) bakes the doubled batch into a
    guard; every candidate graph is therefore run (on fake tensors) at the caller's own batch and
    at another one, and a graph that fails at the caller's batch is never returned.
    """
    doubled = _batch_of_two(inputs) if dynamic else None
    if doubled is not None:
        try:
            with refusing_baked_batch():  # a batch the forward makes a Python number stops this export early
                gm = _export_as_is(model, doubled, dynamic, True)
            if _batch_is_symbolic(gm) and _runs_at_batches(gm, inputs, (None, 3)):
                return gm, True
            logger.debug("graph captured at batch 2 does not run at batches 1 and 3; capturing at the caller's batch")
        except Exception as error:  # noqa: BLE001 - fall back to the caller's own batch size
            logger.debug("capture at batch 2 failed (%s: %s); capturing at the caller's batch",
                         type(error).__name__, error)
    batch = _example_batch(inputs)
    last_error: Exception | None = None
    for dynamic_batch in ([True, False] if dynamic and batch is not None and batch > 1 else [False]):
        try:
            gm = _export_as_is(model, inputs, dynamic, dynamic_batch)
        except Exception as error:  # noqa: BLE001 - try a static batch next
            last_error = error
            continue
        if _runs_at_batches(gm, inputs, (None,)):
            return gm, _batch_is_symbolic(gm) and batch is not None and _runs_at_batches(gm, inputs, (batch + 1,))
        last_error = CaptureError(f"the graph captured from {type(model).__name__} does not run on the example input",
                                  hint="the forward bakes an input-dependent value into a guard; try dynamic_hw=False")
    raise last_error  # type: ignore[misc]  # the loop ran at least once


def _example_batch(inputs: tuple[Any, ...]) -> int | None:
    return next((int(t.shape[0]) for t in inputs if _is_image(t)), None)


def _runs_at_batches(gm: fx.GraphModule, inputs: tuple[Any, ...], batches: tuple[int | None, ...]) -> bool:
    """Whether ``gm`` runs on the inputs with their images resized to each of ``batches`` (None: as given).

    Runs on fake tensors: it checks the graph's guards and shapes without computing anything and
    without touching the weights or buffers (a train-mode BatchNorm would update its statistics).
    The weights are made fake once for all batches (on a large model that costs as much as a run).
    """
    real_runs = []  # data-dependent graphs (nonzero, routing) cannot run on fake tensors
    with _quiet_torch_logs(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
        # Fake weights and buffers too: a train-mode BatchNorm would otherwise count a batch.
        state = {name: mode.from_tensor(t) for name, t in [*gm.named_parameters(), *gm.named_buffers()]}
        for batch in batches:
            resized = _resized_batch(inputs, batch)
            fakes = tuple(mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in resized)
            try:
                torch.func.functional_call(gm, state, fakes, strict=False)
            except Exception as error:  # noqa: BLE001 - any failure means "does not run at this batch"
                if _data_dependent(error):
                    real_runs.append(resized)
                    continue
                logger.debug("captured graph does not run at batch %s: %s: %s", batch, type(error).__name__, error)
                return False
    saved = [(b, b.detach().clone()) for b in gm.buffers()]
    try:
        with torch.no_grad():
            for resized in real_runs:
                gm(*(t.clone() if isinstance(t, torch.Tensor) else t for t in resized))
    except Exception as error:  # noqa: BLE001 - any failure means "does not run at this batch"
        logger.debug("captured graph does not run: %s: %s", type(error).__name__, error)
        return False
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
    return True


def _resized_batch(inputs: tuple[Any, ...], batch: int | None) -> tuple[Any, ...]:
    return tuple(t[:1].expand(batch, *t.shape[1:]) if batch is not None and _is_image(t) else t for t in inputs)


def _data_dependent(error: Exception) -> bool:
    names = {type(e).__name__ for e in (error, error.__cause__, error.__context__) if e is not None}
    return bool(names & {"DynamicOutputShapeException", "DataDependentOutputException", "GuardOnDataDependentSymNode",
                         "UnsupportedOperatorException"}) or "data-dependent" in str(error).lower()


def _export_as_is(model: nn.Module, inputs: tuple[Any, ...], dynamic: bool, dynamic_batch: bool) -> fx.GraphModule:
    return export_program(model, inputs, dynamic_hw=dynamic, dynamic_batch=dynamic and dynamic_batch).module()


def _capture_size_blind(model: nn.Module, inputs: tuple[Any, ...], dynamic_hw: bool) -> fx.GraphModule | None:
    """The cheap capture (:mod:`fxprune.fast_capture`) where it applies; None otherwise."""
    try:
        return capture_size_blind(model, inputs, dynamic_hw)  # the caller keeps torch's logs quiet
    except Exception as error:  # noqa: BLE001 - torch.export gets its chance and reports its own error
        logger.debug("size-blind capture failed (%s: %s); using torch.export", type(error).__name__, error)
        return None


def _capture(model: nn.Module, inputs: tuple[Any, ...], dynamic_hw: bool, opaque_fallback: bool):
    """Export with dynamic then static H/W, then with the failing submodule as an opaque leaf.

    Returns (graph or None, dynamic_hw, dynamic_batch, opaque modules, first error, failing module, path).
    """
    gm = _capture_size_blind(model, inputs, dynamic_hw)
    if gm is not None:  # a graph for every batch and size; static captures take it too
        return gm, dynamic_hw, True, (), None, None, "size-blind"
    tracker = _ModuleTracker(model)
    first_error: Exception | None = None
    failed_in: str | None = None
    try:
        for dynamic in ([True, False] if dynamic_hw else [False]):
            try:
                gm, dynamic_batch = _export(model, inputs, dynamic)
                return gm, dynamic, dynamic_batch, (), None, None, "torch.export"
            except Exception as error:  # noqa: BLE001 - every export failure is reported by the caller
                if first_error is None:
                    first_error, failed_in = error, (tracker.stack[-1] if tracker.stack else None)
                tracker.stack.clear()
    finally:
        tracker.remove()
    if failed_in and opaque_fallback:
        gm = _capture_with_leaf(model, inputs, failed_in, first_error)
        if gm is not None:
            return gm, False, False, (failed_in,), first_error, failed_in, "torch.export"
    return None, dynamic_hw, False, (), first_error, failed_in, "torch.export"


_CHECK_SIZE = 16


def _cropped(gm: fx.GraphModule, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The example's images cropped to at most 16×16, for a cache hit's check when the capture runs
    at any size (None otherwise, or when nothing is larger). The check tells code paths apart, not
    pixels, and two forwards of a wide model at the full example size cost more than the capture
    they save (EDSR 32×256 at 32×32: 0.39 s against a 0.2 s capture)."""
    info = gm.meta.get("fxprune_capture")
    if info is None or not info.dynamic_hw:
        return None
    images = [isinstance(t, torch.Tensor) and t.dim() == 4 for t in inputs]
    if not any(images) or all(t.shape[-1] <= _CHECK_SIZE and t.shape[-2] <= _CHECK_SIZE
                              for t, image in zip(inputs, images) if image):
        return None
    return tuple(t[..., :_CHECK_SIZE, :_CHECK_SIZE].contiguous() if image else t for t, image in zip(inputs, images))


def _same_outputs(gm: fx.GraphModule, model: nn.Module, inputs: tuple[Any, ...]) -> bool:
    """A cache hit is used only if it computes what the model computes on the example input (the
    key cannot see everything a forward reads, e.g. module-level globals); buffers a train-mode
    forward updates are restored on both sides, and both draw the same random numbers (a train-mode
    dropout)."""
    try:
        with _buffers_kept(gm, model), torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)
            expected = model(*_cloned(inputs))
            torch.manual_seed(0)
            got = gm(*_cloned(inputs))
        return _all_close(expected, got)
    except Exception:  # noqa: BLE001 - any failure means: capture again
        return False


def _all_close(expected: Any, got: Any) -> bool:
    """The same output structure, shapes and values (to 1e-4 relative)."""
    pairs = list(zip(pytree.tree_leaves(expected), pytree.tree_leaves(got)))
    return len(pairs) == len(pytree.tree_leaves(expected)) and all(
        isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
        and torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(a.abs().max()) if a.numel() else 1.0))
        for a, b in pairs)


def _cloned(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in inputs)


@contextlib.contextmanager
def _buffers_kept(*modules: nn.Module) -> Iterator[None]:
    """The modules' buffers as they were before (a train-mode forward updates batch-norm statistics)."""
    saved = [(b, b.detach().clone()) for m in modules for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _slices_match(gm: fx.GraphModule, model: nn.Module, inputs: tuple[Any, ...]) -> bool:
    """Whether a graph whose batch export had to fix, run one slice at a time on a larger batch
    (``graph_mode._PerSampleCall``), gives the model's result.

    That holds only when the model's samples are independent, so the graph is compared with the
    model itself at twice the batch; True when the model itself does not run at that batch
    (nothing to compare with).
    """
    doubled = tuple(torch.cat([t, t.flip(-1)]) if _is_image(t) else t for t in inputs)
    try:
        with _buffers_kept(model), torch.no_grad():
            expected = model(*_cloned(doubled))
    except Exception:  # noqa: BLE001 - the model itself does not run at that batch
        return True
    try:
        with _buffers_kept(gm), torch.no_grad():
            return _all_close(expected, gm(*_cloned(doubled)))
    except Exception:  # noqa: BLE001 - the graph fails where the model runs: slices do not stand for it
        return False


def trace(model: nn.Module, example_inputs: Any, *, dynamic_hw: bool = True, opaque_fallback: bool = True) -> fx.GraphModule:
    """Capture ``model`` as an ATen-level ``GraphModule`` with a fake tensor in ``node.meta["val"]``.

    The model is deep-copied first, so a failed capture or a forward that mutates its input can
    never damage the caller's model. With ``dynamic_hw`` the height and width of 4-D inputs are
    symbolic where the model allows it (the graph then runs on other image sizes).

    When capture fails inside a submodule that maps one tensor to one tensor and
    ``opaque_fallback`` is on, the capture is retried (static in H and W) with that submodule as an
    opaque leaf: a warning names it, and analysis fixes its channels. Otherwise a
    :class:`CaptureError` names the module.

    A successful capture is cached for the process (:mod:`fxprune.capture_cache`, keyed on the
    model's structure and code and the input spec): capturing the same model again returns a new
    copy of the graph bound to clones of the model's current weights without running export.

    >>> import torch, fxprune
    >>> gm = fxprune.trace(torch.nn.Conv2d(3, 8, 3, padding=1), torch.randn(1, 3, 16, 16))
    >>> gm(torch.randn(1, 3, 20, 24)).shape
    torch.Size([1, 8, 20, 24])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = as_inputs(example_inputs)
    with paused_gc():
        return _trace(model, inputs, dynamic_hw, opaque_fallback)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: capture allocates hundreds of thousands of small
    objects (nodes, fake tensors, proxies), and each full collection scans them all again;
    on RCAN 10x20 that was a quarter of the capture. Cycles made inside are collected later."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def trace_if_cached(model: nn.Module, example_inputs: Any) -> fx.GraphModule | None:
    """``trace(model, example_inputs)`` when this process captured ``model`` so before (a cache hit:
    no new capture), else None, e.g. for a count that would otherwise capture it once more."""
    inputs = as_inputs(example_inputs)
    if not capture_cache.holds(capture_cache.key_of(model, inputs, (True, True))):  # trace's defaults
        return None
    return trace(model, inputs)


def _trace(model: nn.Module, inputs: tuple[Any, ...], dynamic_hw: bool, opaque_fallback: bool) -> fx.GraphModule:
    key = capture_cache.key_of(model, inputs, (dynamic_hw, opaque_fallback))
    gm = capture_cache.lookup(key, model)
    if gm is not None:
        enable_train_eval(gm, mode=model.training)
        small = _cropped(gm, inputs)
        if (small is not None and _same_outputs(gm, model, small)) or _same_outputs(gm, model, inputs):
            return _keep_record(model, gm)
    copy_of_model = _copy_structure(model)
    copies = tuple(t.clone() if isinstance(t, torch.Tensor) else copy.deepcopy(t) for t in inputs)
    with _to_debug_log():
        gm, dynamic_hw, dynamic_batch, opaque, first_error, failed_in, path = _capture(
            copy_of_model, copies, dynamic_hw, opaque_fallback)
    if gm is None:
        reason = str(first_error).strip().splitlines()[0] if str(first_error).strip() else type(first_error).__name__
        leaf = (f"; module '{failed_in}' cannot run as an opaque leaf either (a leaf maps one tensor to one "
                "tensor and is called once)") if failed_in and opaque_fallback else ""
        raise CaptureError(
            f"torch.export could not capture {type(model).__name__}: {type(first_error).__name__}: {reason}{leaf}",
            module=failed_in,
            hint="make the forward traceable by torch.export (no data-dependent Python control flow on tensor "
            "values), or pass an example input of the size the model expects",
        ) from first_error
    if opaque:
        warnings.warn(
            f"fxprune: torch.export could not capture module '{opaque[0]}' ({type(first_error).__name__}); it runs "
            "as an opaque leaf and its channels are fixed",
            stacklevel=3,
        )
    _own_tensors(gm)
    enable_train_eval(gm, mode=model.training)
    gm.meta["fxprune_capture"] = CaptureInfo(
        tuple(tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)), dynamic_hw, type(model).__name__, opaque,
        dynamic_batch, path,
    )
    batch = fixed_batch(gm)
    if batch is not None and not _slices_match(gm, model, inputs):
        gm.meta["fxprune_capture"] = dataclasses.replace(gm.meta["fxprune_capture"], slices_match=False)
        warnings.warn(
            f"fxprune: {type(model).__name__}'s forward turns the batch size into a Python number, so torch.export "
            f"fixed the batch at {batch}, and its samples are not independent (run {batch} at a time, a batch of "
            f"{2 * batch} differs from the model): the graph runs at batch {batch} only. To run other batches, keep "
            "the batch size symbolic in the forward (x.shape[0] without int(), or reshape with -1)",
            stacklevel=3,
        )
    if not opaque:  # an opaque leaf calls the submodule of this capture's copy: never reuse it
        capture_cache.store(key, gm, model)
    return _keep_record(model, gm)


def _keep_record(model: nn.Module, gm: fx.GraphModule) -> fx.GraphModule:
    """A capture of a model fxprune compressed keeps the model's stage record (:mod:`fxprune.record`).

    Export copies a GraphModule's meta and a cached capture holds the meta of the model it was made
    from: the record is set from ``model`` (or removed), and a stale-shapes mark is dropped."""
    meta = getattr(model, "meta", None)
    record = meta.get("fxprune") if isinstance(meta, dict) else None
    gm.meta.pop(STALE, None)  # a fresh capture: its shapes are right
    if record is None:
        gm.meta.pop("fxprune", None)
    else:
        gm.meta["fxprune"] = copy.deepcopy(record)
    return gm
