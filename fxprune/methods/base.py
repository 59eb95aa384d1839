"""The method protocol: a registry of compression methods and the :class:`Pruner` they return.

A method is a :class:`Method` entry: its name, whether it must train, the :class:`~fxprune.Spec`
fields and override settings it owns with its validation of them (registration declares them to
``fxprune.spec``, which names no method), and either its ``prepare``
entry (``prepare(model, spec, example_inputs) -> Pruner``) or its ``one_shot`` entry
(``one_shot(model, spec, example_inputs) -> GraphModule``). ``fxprune.prepare`` / ``convert`` /
``compress`` and the CLI dispatch through :func:`method_for`; a method that does not have to
train is prepared the same way and simply has nothing (or only fine-tuning) left to do.

A :class:`Pruner` is what the user's loop (or the built-in one) drives::

    loss = task_loss + pruner.penalty();  loss.backward();  optimizer.step();  pruner.step()

and ``pruner.convert()`` returns the plain compressed model once ``pruner.done``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
import torch.fx as fx
from torch import nn

from ..errors import SpecError
from ..spec import METHOD_OVERRIDE_FIELDS, OVERRIDE_FIELDS, Spec, declare_method, owned_fields


class Pruner(ABC):
    """The state of one compression run (see the module docstring for the loop it expects).

    Attributes every pruner has: ``model`` (the GraphModule to train, masks/gates inside),
    ``graph`` (the channel analysis of the original model), ``spec`` and ``step_count``.
    """

    model: fx.GraphModule
    spec: Spec
    step_count: int

    @property
    @abstractmethod
    def phase(self) -> str:
        """The name of the current phase (method-specific, ``"done"`` at the end)."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once the schedule has finished and ``convert`` gives the final model."""

    @property
    @abstractmethod
    def total_steps(self) -> int:
        """Optimizer steps the whole schedule takes."""

    @abstractmethod
    def penalty(self) -> torch.Tensor:
        """The differentiable term to add to the task loss for this step."""

    @abstractmethod
    def step(self) -> None:
        """Advance by one optimizer step; call it after ``optimizer.step()``."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """Short, JSON-ready figures for a progress bar and a training log."""

    @abstractmethod
    def aux_parameters(self) -> list[nn.Parameter]:
        """The method's own trainable parameters (gates, scores) inside ``model``."""

    def param_groups(self, lr: float, aux_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimizer groups: the model's weights at ``lr``, :meth:`aux_parameters` at ``aux_lr``
        (default ``lr``), e.g. ``torch.optim.Adam(pruner.param_groups(2e-4, 1e-2))``."""
        aux = [p for p in self.aux_parameters() if p.requires_grad]
        chosen = {id(p) for p in aux}
        rest = [p for p in self.model.parameters() if id(p) not in chosen and p.requires_grad]
        return [{"params": rest, "lr": lr}] + ([{"params": aux, "lr": aux_lr or lr}] if aux else [])

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (see :meth:`load_state_dict`)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""

    @abstractmethod
    def convert(self) -> fx.GraphModule:
        """The plain compressed model (eval mode), stamped with its record."""


@dataclass(frozen=True)
class Method:
    """One registered compression method.

    ``prepare(model, spec, example_inputs)`` returns a :class:`Pruner` for a training loop (the
    built-in one or the user's); ``one_shot(model, spec, example_inputs)`` returns the compressed,
    stamped and verified model at once (``fxprune.compress`` may fine-tune it; ``fxprune.prepare``
    refuses it). ``trains``: the method cannot decide without training. ``owns``: the Spec fields
    it owns (set away from their defaults under another method they are an error), and
    ``own_overrides`` the settings its overrides take (None: ``ratio`` and ``round_to``).
    ``family``: methods of one family may set each other's fields. ``validate(spec)`` raises
    :class:`~fxprune.SpecError` for a bad value of its fields; it runs when a ``Spec`` of this
    method (or of its family) is made. ``fields_doc`` documents its fields (added to ``Spec``'s
    docstring). Registration tells ``Spec`` all of it.

    >>> from fxprune.methods import get_method
    >>> get_method("sls").override_fields
    ('m',)
    """

    name: str
    trains: bool
    prepare: Callable[[nn.Module, Spec, Any], Pruner] | None = None
    one_shot: Callable[[nn.Module, Spec, Any], fx.GraphModule] | None = None
    summary: str = ""
    owns: tuple[str, ...] = ()
    own_overrides: tuple[str, ...] | None = None
    family: str | None = None
    validate: Callable[[Spec], None] | None = None
    fields_doc: str = ""

    def __post_init__(self) -> None:
        if (self.prepare is None) == (self.one_shot is None):
            raise ValueError(f"method {self.name!r}: give exactly one of prepare (a Pruner for a training loop) "
                             "or one_shot (the compressed model at once)")
        if self.trains and self.prepare is None:
            raise ValueError(f"method {self.name!r} trains, so it needs prepare (a Pruner)")

    @property
    def fields(self) -> tuple[str, ...]:
        """The Spec fields this method owns (besides ``method`` and ``overrides``)."""
        return owned_fields(self.name)

    @property
    def override_fields(self) -> tuple[str, ...]:
        """The settings this method's overrides take."""
        return METHOD_OVERRIDE_FIELDS.get(self.name, OVERRIDE_FIELDS)


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (a name can be registered once) and let ``Spec`` accept it."""
    if method.name in _REGISTRY and _REGISTRY[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    declare_method(method.name, method.owns, method.own_overrides, family=method.family, validate=method.validate,
                   doc=method.fields_doc)
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method | None:
    """The registered method of this name, or None."""
    return _REGISTRY.get(name)


def registered_methods() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def method_for(spec: Spec) -> Method:
    """The registered method ``spec.method`` names; :class:`~fxprune.SpecError` if there is none."""
    method = _REGISTRY.get(spec.method)
    if method is None:
        raise SpecError("method", f"no method {spec.method!r} is registered; registered: {', '.join(_REGISTRY)}",
                        value=spec.method)
    return method


def from_rank0(value: Any) -> Any:
    """Under torch.distributed every rank takes rank 0's ``value`` (decisions must agree); else ``value``."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
