"""Which coupling rule handles which op.

A rule is a callable ``rule(node, ctx)`` that ties, fixes or covers every static dimension of the
node's tensor inputs and outputs (see :mod:`fxprune.coupling.context`). Rules are looked up by the
node's target: the exact ATen overload first, then its overload packet (all overloads of an op),
then a string name, then the ``pointwise`` tag ATen puts on elementwise ops.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
import torch.fx as fx

from .context import CouplingContext

Rule = Callable[[fx.Node, CouplingContext], None]


def target_key(target: Any) -> Any:
    """The lookup key for a target given as an OpOverload, an OpOverloadPacket, a callable or a string."""
    if isinstance(target, str):
        return target.replace("::", ".")
    return target


class CouplingRegistry:
    """A mapping from op targets to coupling rules, with tag-based fallbacks for elementwise ops."""

    def __init__(self, rules: Mapping[Any, Rule] | None = None, *, pointwise: Rule | None = None):
        self._rules: dict[Any, Rule] = {}
        self.pointwise_rule = pointwise
        for target, rule in (rules or {}).items():
            self.register(target, rule)

    def register(self, targets: Any | Iterable[Any], rule: Rule, *, override: bool = True) -> None:
        """Register ``rule`` for one target or an iterable of targets."""
        if not callable(rule):
            raise TypeError(f"coupling rule must be callable, got {type(rule).__name__}")
        many = isinstance(targets, (list, tuple, set, frozenset))
        for target in targets if many else [targets]:
            key = target_key(target)
            if not override and key in self._rules:
                raise ValueError(f"a coupling rule for {target!r} is already registered")
            self._rules[key] = rule

    def get(self, target: Any) -> Rule | None:
        """The rule registered for exactly ``target`` (no fallbacks), or None."""
        return self._rules.get(target_key(target))

    def copy(self) -> "CouplingRegistry":
        return CouplingRegistry(dict(self._rules), pointwise=self.pointwise_rule)

    def lookup(self, node: fx.Node) -> Rule | None:
        target = node.target
        for key in self._keys(target):
            rule = self._rules.get(key)
            if rule is not None:
                return rule
        if self.pointwise_rule is not None and torch.Tag.pointwise in getattr(target, "tags", ()):
            return self.pointwise_rule
        return None

    @staticmethod
    def _keys(target: Any) -> list[Any]:
        keys = [target]
        packet = getattr(target, "overloadpacket", None)
        if packet is not None:
            keys.append(packet)
        if hasattr(target, "_schema"):
            keys.append(str(target))  # "aten.conv2d.default"
            keys.append(str(target).rsplit(".", 1)[0])  # "aten.conv2d"
        elif isinstance(target, str):
            keys.append(target)
        return keys

    def __contains__(self, target: Any) -> bool:
        return target_key(target) in self._rules
