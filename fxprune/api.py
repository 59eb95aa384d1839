"""The public entry points ``compress`` / ``prepare`` / ``convert``: dispatch through the method
registry (:mod:`fxprune.methods`), with nothing method-specific here."""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import torch.fx as fx
from torch import nn

from .analysis import check_example_inputs
from .errors import SpecError
from .methods import Method, Pruner, method_for
from .counting import count_macs, count_params
from .record import StageCost, check_prepared, record_of
from .spec import Spec
from .trace import as_inputs
from .train import TrainConfig, check_task, infer_scale, teacher_for, train_model
from .verify import verify_sizes


def as_spec(spec: Spec | Mapping[str, Any]) -> Spec:
    if isinstance(spec, Mapping):
        return Spec.from_dict(spec)
    if not isinstance(spec, Spec):
        raise SpecError("<root>", f"expected fxprune.Spec or a dict, got {type(spec).__name__}", value=spec)
    return spec


def prepare(model: nn.Module, spec: Spec | Mapping[str, Any], example_inputs: Any) -> Pruner:
    """Trace ``model``, set up ``spec.method`` on it and return the method's :class:`~fxprune.Pruner`.

    Train ``pruner.model`` in your own loop (``loss = task + pruner.penalty()``, ``pruner.step()``
    after each optimizer step) until ``pruner.done``, then :func:`convert`. ``nm`` is done at once,
    or after its optional fine-tuning steps; a method with no pruner (``l1``) is for :func:`compress`.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> model = build("edsr", blocks=2, channels=16)
    >>> x = torch.randn(1, 3, 12, 12)
    >>> pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=4), (x,))
    >>> torch.testing.assert_close(pruner.model(x), model(x))     # the gates start at the filter norms
    >>> for _ in range(4):
    ...     loss = pruner.model(x).abs().mean() + pruner.penalty()
    ...     loss.backward(); pruner.step()
    >>> pruner.done, fxprune.convert(pruner).get_parameter("head.weight").shape
    (True, torch.Size([8, 3, 3, 3]))
    """
    spec = as_spec(spec)
    check_example_inputs(model, example_inputs)
    method = method_for(spec)
    if method.prepare is None:
        raise SpecError("method", f"prepare() sets up a training loop; {spec.method!r} is one-shot: use fxprune.compress",
                        value=spec.method)
    return _prepared(method, model, spec, example_inputs)


def _prepared(method: Method, model: nn.Module, spec: Spec, example_inputs: Any) -> Pruner:
    """The method's pruner, its model checked at other input sizes before anything trains."""
    pruner = method.prepare(model, spec.for_run(fine_tunes=False), example_inputs)
    verify_sizes(model, pruner.model, example_inputs, where="prepare")
    return pruner


def convert(pruner: Pruner) -> fx.GraphModule:
    """The plain, smaller GraphModule (eval mode) of a run: ``pruner.convert()``, which checks it
    against the trained model. Converting before the schedule has finished works, with a warning."""
    check_prepared(pruner)  # provenance from the record on pruner.model, not the Python type
    return pruner.convert()


def compress(
    model: nn.Module, spec: Spec | dict | list, example_inputs: Any, train: TrainConfig | None = None
) -> fx.GraphModule:
    """Compress ``model`` as ``spec`` says and return a plain, smaller GraphModule.

    ``spec.method`` names a registered method (:mod:`fxprune.methods`: ``l1`` by default, ``assl``,
    ``sls``, ``nm``): ``compress`` runs :func:`prepare`, then, for a method that trains or when
    there are fine-tuning steps, the built-in loop driven by the pruner's hooks (the run's length
    is ``spec.steps`` or ``train.steps``), then :func:`convert`. ``train=TrainConfig(steps=n)``
    fine-tunes a one-shot method's result for ``n`` steps.

    A list of specs runs them as stages, each on the output of the one before (see
    :func:`compress_stages`), e.g. ASSL channels then SLS N:M.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> small = fxprune.compress(build("edsr", blocks=2, channels=32), fxprune.Spec(ratio=0.5), (torch.randn(1, 3, 16, 16),))
    >>> small.get_parameter("head.weight").shape
    torch.Size([16, 3, 3, 3])
    """
    check_example_inputs(model, example_inputs)
    if isinstance(spec, (list, tuple)):
        return compress_stages(model, spec, example_inputs, train)
    small = _compress_one(model, spec, example_inputs, train, _teacher(train, model))
    return _measured(small, model, as_inputs(example_inputs))


def _teacher(train: TrainConfig | None, model: nn.Module) -> nn.Module | None:
    """The run's teacher (``train.teacher``; the original model when it asks for one), a frozen copy
    taken before anything traces the model, so neither the caller's model nor the student changes."""
    return teacher_for(train, model) if isinstance(train, TrainConfig) else None


def _compress_one(model: nn.Module, spec: Spec | Mapping[str, Any], example_inputs: Any,
                  train: TrainConfig | None, teacher: nn.Module | None = None) -> fx.GraphModule:
    spec = as_spec(spec)
    if train is not None and not isinstance(train, TrainConfig):
        raise TypeError(f"train must be a fxprune.TrainConfig, got {type(train).__name__}")
    return _compress_method(method_for(spec), model, spec, example_inputs, train, teacher)


def _measured(small: fx.GraphModule, before: nn.Module | tuple[int, int], inputs: tuple[Any, ...]) -> fx.GraphModule:
    """``small`` with its record's cost: its MACs and params and those of its input (``before``: the
    input model, or its (MACs, params) when already counted)."""
    if isinstance(before, nn.Module):
        before = (count_macs(before, inputs), count_params(before))
    record_of(small).cost = StageCost(count_macs(small, inputs), count_params(small), *before)
    return small


def _compress_method(method: Method, model: nn.Module, spec: Spec, example_inputs: Any,
                     train: TrainConfig | None, teacher: nn.Module | None = None) -> fx.GraphModule:
    """prepare → the built-in loop driven by the pruner's hooks → convert, for a registered method;
    or, for a one-shot method, its result and optional fine-tuning."""
    given = spec
    steps = train.steps if train is not None else None
    if spec.steps is None and steps:
        spec = dataclasses.replace(spec, steps=steps)
    elif spec.steps is not None and steps and steps != spec.steps:
        raise SpecError("steps", f"Spec.steps={spec.steps} and TrainConfig.steps={steps} disagree; set one",
                        value=spec.steps)
    if train is None and (method.trains or spec.steps):
        why = "learns its decisions by training" if method.trains else f"fine-tunes for steps={spec.steps}"
        raise SpecError("method", f"{spec.method!r} {why}, so it needs training: pass "
                        "train=fxprune.TrainConfig(steps=...) or use fxprune.prepare/convert in your own loop",
                        value=spec.method)
    if method.trains and spec.steps is None:
        raise SpecError("steps", "set Spec.steps or TrainConfig.steps")
    fine_tunes = method.one_shot is not None and train is not None and bool(spec.steps)
    spec, given = spec.for_run(fine_tunes), given.for_run(fine_tunes)
    scale = None
    if train is not None and spec.steps:  # checked before prepare, which can take a while
        scale = train.scale or infer_scale(model, example_inputs)
        check_task(train, scale)
    if spec.norm == "renormalize" and scale is None and not method.trains:
        warnings.warn(f"fxprune.compress: norm='renormalize' changes the statistics of every pruned normalized "
                      "trunk and nothing fine-tunes the result; pass train=fxprune.TrainConfig(steps=...) (CLI --steps) "
                      "or use norm='exact', which keeps the masked model's output", stacklevel=4)
    if method.one_shot is not None:
        small = method.one_shot(model, given, example_inputs)
        verify_sizes(model, small, example_inputs, where="compress")
        if scale is not None:
            small.meta["fxprune"]["train"] = train_model(small, train, spec.steps, scale, description="fine-tune",
                                                           teacher=teacher).as_dict()
            small.eval()
        return small
    pruner = _prepared(method, model, spec, example_inputs)
    if scale is not None and pruner.total_steps:
        log = train_model(pruner.model, train, pruner.total_steps, scale, extra_loss=pruner.penalty,
                          after_step=pruner.step, status=pruner.status, description=spec.method,
                          param_groups=pruner.param_groups(train.lr, train.gate_lr), state=pruner,
                          teacher=teacher)
        small = pruner.convert()
        small.meta["fxprune"]["train"] = log.as_dict()
        return small
    return pruner.convert()


def compress_stages(model: nn.Module, specs: list | tuple, example_inputs: Any,
                    train: TrainConfig | None = None) -> fx.GraphModule:
    """Run ``specs`` in order, each stage compressing the output of the one before.

    Every converted model carries fresh shape metadata (:mod:`fxprune.shapes`), so the next stage
    analyzes it directly. Each stage's record (:class:`fxprune.record.StageRecord`) gets its MACs
    and params and those of its input; the result's record holds the earlier ones in ``history``,
    and its ``stages`` lists per stage the method, spec, MACs and params, with the fraction of the
    stage's input and of the original model. Give each spec its own ``steps`` (``train.steps``
    applies to every stage that trains). A teacher (``train.teacher``) is the original ``model``
    for every stage.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> x = torch.randn(1, 3, 16, 16)
    >>> stages = [fxprune.Spec(method="l1", ratio=0.5), fxprune.Spec(method="nm", n=2, m=8)]
    >>> small = fxprune.compress(build("edsr", blocks=2, channels=32), stages, x)
    >>> [round(s["macs_of_original"], 3) for s in small.meta["fxprune"]["stages"]]
    [0.263, 0.085]
    """
    if not specs:
        raise SpecError("stages", "give at least one spec")
    inputs = as_inputs(example_inputs)
    current: nn.Module = model
    before = (count_macs(model, inputs), count_params(model))
    teacher = _teacher(train, model)
    for index, stage in enumerate(specs):
        try:
            current = _measured(_compress_one(current, stage, inputs, train, teacher), before, inputs)
        except SpecError as error:
            raise SpecError(f"stages[{index}].{error.field}", error.message, value=error.value,
                            owners=error.owners) from error
        before = (record_of(current).cost.macs, record_of(current).cost.params)
    return current
