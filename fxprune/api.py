"""The public entry points: thin orchestration of trace, analysis, selection and passes."""
from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

import dataclasses
import warnings

from .analysis import analyze
from .budget import ratio_for_macs
from .errors import SpecError
from .latency import plan_for_latency
from .passes.slice_channels import slice_channels
from .record import stamp
from .selection import nothing_pruned, plan_keep
from .methods import Method, get_method
from .pruner import as_spec, convert, prepare
from .schedule import AsslSchedule
from .spec import Spec
from .train import TrainConfig, check_task, infer_scale, train_model
from .verify import verify_sliced


def compress(
    model: nn.Module, spec: Spec | dict | list, example_inputs: Any, train: TrainConfig | None = None
) -> fx.GraphModule:
    """Compress ``model`` as ``spec`` says and return a plain, smaller GraphModule.

    With ``Spec(method="l1", ratio=r)`` every prunable group loses the fraction ``r`` of its units
    with the smallest L1 filter norm (summed over the group's producers), rounded to ``round_to``.
    With ``macs=m`` one global ratio is searched so the result keeps at most ``m`` of the MACs.
    With ``latency=f`` per-group counts are chosen so the predicted ONNX Runtime latency is at most
    ``f`` of the dense model's measured one (:func:`fxprune.latency.plan_for_latency`; the
    prediction is in ``small.meta["fxprune"]["latency"]``).
    ``train=TrainConfig(steps=n)`` then fine-tunes the pruned model for ``n`` steps.

    A list of specs runs them as stages, each on the output of the one before (see
    :func:`compress_stages`), e.g. ASSL channels then SLS N:M.

    ``Spec(method="assl", ...)`` needs ``train``: the built-in loop runs ``prepare``, the whole
    schedule (its length is ``spec.steps`` or ``train.steps``) and ``convert``.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> small = fxprune.compress(build("edsr", blocks=2, channels=32), fxprune.Spec(ratio=0.5), (torch.randn(1, 3, 16, 16),))
    >>> small.get_parameter("head.weight").shape
    torch.Size([16, 3, 3, 3])
    """
    if isinstance(spec, (list, tuple)):
        return compress_stages(model, spec, example_inputs, train)
    spec = as_spec(spec)
    if train is not None and not isinstance(train, TrainConfig):
        raise TypeError(f"train must be a fxprune.TrainConfig, got {type(train).__name__}")
    method = get_method(spec.method)
    if method is not None:  # a method of the registry (fxprune.methods)
        return _compress_method(method, model, spec, example_inputs, train)
    if spec.method == "assl":
        return _compress_assl(model, spec, example_inputs, train)
    graph = analyze(model, example_inputs)
    ratio = ratio_for_macs(graph, spec, example_inputs) if spec.macs is not None else None
    budget = plan_for_latency(graph, spec, example_inputs) if spec.latency is not None else None
    keep = budget.keep if budget is not None else plan_keep(graph, spec, ratio=ratio)
    if not keep:
        warnings.warn(nothing_pruned("fxprune.compress", graph, spec, ratio), stacklevel=2)
    small = stamp(slice_channels(graph, keep), graph, keep, spec)
    if budget is not None:
        small.meta["fxprune"]["latency"] = budget.summary()
    verify_sliced(small, graph.gm, graph, keep, example_inputs)
    if train is not None and train.steps:
        scale = train.scale or infer_scale(small, example_inputs)
        log = train_model(small, train, train.steps, scale, description="fine-tune")
        small.meta["fxprune"]["train"] = log.as_dict()
        small.eval()
    return small


def _compress_assl(model: nn.Module, spec: Spec, example_inputs: Any, train: TrainConfig | None) -> fx.GraphModule:
    if train is None:
        raise SpecError("method", "'assl' learns which channels to drop, so it needs training: pass "
                        "train=fxprune.TrainConfig(steps=...) or use fxprune.prepare/convert in your own loop")
    if spec.steps is None:
        if not train.steps:
            raise SpecError("steps", "set Spec.steps or TrainConfig.steps (the paper's full schedule is "
                            f"{AsslSchedule.from_spec(spec).total} steps)")
        spec = dataclasses.replace(spec, steps=train.steps)
    elif train.steps and train.steps != spec.steps:
        raise SpecError("steps", f"Spec.steps={spec.steps} and TrainConfig.steps={train.steps} disagree; set one")
    scale = train.scale or infer_scale(model, example_inputs)
    check_task(train, scale)
    pruner = prepare(model, spec, example_inputs)
    def status() -> dict:
        return {"phase": pruner.phase, "α": round(pruner.alpha(), 4), "γ drop/keep": round(pruner.gate_ratio(), 3)}

    log = train_model(pruner.model, train, pruner.schedule.total, scale, extra_loss=pruner.penalty,
                      after_step=pruner.step, status=status, description="assl", state=pruner)
    small = convert(pruner)
    small.meta["fxprune"]["train"] = log.as_dict()
    return small


def _compress_method(method: Method, model: nn.Module, spec: Spec, example_inputs: Any,
                     train: TrainConfig | None) -> fx.GraphModule:
    """prepare → the built-in loop driven by the pruner's hooks → convert, for a registered method."""
    steps = train.steps if train is not None else None
    if spec.steps is None and steps:
        spec = dataclasses.replace(spec, steps=steps)
    elif spec.steps is not None and steps and steps != spec.steps:
        raise SpecError("steps", f"Spec.steps={spec.steps} and TrainConfig.steps={steps} disagree; set one")
    if train is None and (method.trains or spec.steps):
        raise SpecError("method", f"{spec.method!r} {'learns its decisions' if method.trains else 'fine-tunes'} by "
                        "training: pass train=fxprune.TrainConfig(steps=...) or use fxprune.prepare/convert in your "
                        "own loop")
    if method.trains and spec.steps is None:
        raise SpecError("steps", "set Spec.steps or TrainConfig.steps")
    pruner = method.prepare(model, spec, example_inputs)
    log = None
    if train is not None and pruner.total_steps:
        scale = train.scale or infer_scale(model, example_inputs)
        check_task(train, scale)
        log = train_model(pruner.model, train, pruner.total_steps, scale, extra_loss=pruner.penalty,
                          after_step=pruner.step, status=pruner.status, description=spec.method,
                          param_groups=pruner.param_groups(train.lr, train.gate_lr), state=pruner)
    small = pruner.convert()
    if log is not None:
        small.meta["fxprune"]["train"] = log.as_dict()
    return small


def compress_stages(model: nn.Module, specs: list | tuple, example_inputs: Any,
                    train: TrainConfig | None = None) -> fx.GraphModule:
    """Run ``specs`` in order, each stage compressing the output of the one before.

    Every converted model carries fresh shape metadata (:mod:`fxprune.shapes`), so the next stage
    analyzes it directly. Each stage's record (:class:`fxprune.record.StageRecord`) gets its MACs
    and params and those of its input; the result's record holds the earlier ones in ``history``,
    and its ``stages`` lists per stage the method, spec, MACs and params, with the fraction of the
    stage's input and of the original model. Give each spec its own ``steps`` (``train.steps``
    applies to every stage that trains).

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> x = torch.randn(1, 3, 16, 16)
    >>> stages = [fxprune.Spec(method="l1", ratio=0.5), fxprune.Spec(method="nm", n=2, m=8)]
    >>> small = fxprune.compress(build("edsr", blocks=2, channels=32), stages, x)
    >>> [round(s["macs_of_original"], 3) for s in small.meta["fxprune"]["stages"]]
    [0.263, 0.085]
    """
    from .counting import count_macs, count_params
    from .record import StageCost, record_of
    from .trace import as_inputs

    if not specs:
        raise SpecError("stages", "give at least one spec")
    inputs = as_inputs(example_inputs)
    current: nn.Module = model
    before = (count_macs(model, inputs), count_params(model))
    for index, stage in enumerate(specs):
        try:
            current = compress(current, as_spec(stage), inputs, train)
        except SpecError as error:
            raise SpecError(f"stages[{index}].{error.field}", str(error).split(": ", 1)[-1]) from error
        after = (count_macs(current, inputs), count_params(current))
        record_of(current).cost = StageCost(*after, *before)
        before = after
    return current
