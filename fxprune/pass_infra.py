"""A small pass infrastructure: a pass takes a GraphModule and returns a :class:`PassResult`.

A pass returns everything it made in its result (``result.produced``, typed per pass); nothing is
left on the pass object for callers to read afterwards. Each pass declares ``in_place``: an
in-place pass rewrites the module it is given and returns that same object; a pass that is not in
place leaves its input as it was and returns a new module. Calling a pass checks the declaration
(and the pass's optional ``requires`` / ``ensures``), raising a typed error that names the pass.
:class:`PassManager` runs passes in order and wraps a failure with the passes that ran before it.

>>> import torch, fxprune
>>> class CountNodes(PassBase[int]):
...     name, in_place = "count_nodes", True
...     def call(self, gm): return PassResult(gm, False, len(gm.graph.nodes))
>>> gm = fxprune.trace(torch.nn.Conv2d(2, 2, 1), torch.randn(1, 2, 4, 4))
>>> CountNodes()(gm).produced == len(gm.graph.nodes)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Sequence, TypeVar

import torch
import torch.fx as fx

from .errors import FxpruneError

Produced = TypeVar("Produced")


class PassError(FxpruneError):
    """A pass failed; the message names the pass (``pass_name``) and the passes that ran before it."""

    def __init__(self, message: str, pass_name: str | None = None):
        super().__init__(message)
        self.pass_name = pass_name


class PreconditionError(PassError):
    """A pass was given a graph it cannot work on."""


class PostconditionError(PassError):
    """A pass broke its own guarantee or its declaration (``in_place``)."""


@dataclass(frozen=True)
class PassResult(Generic[Produced]):
    """The module a pass returns (its input itself for an in-place pass), whether it changed, and
    what the pass produced (e.g. the paths of the modules it inserted; see each pass)."""

    gm: fx.GraphModule
    modified: bool
    produced: Produced = None  # type: ignore[assignment] - a pass that produces nothing leaves None


@dataclass(frozen=True)
class _Snapshot:
    """A cheap fingerprint of a module, to tell that a pass which is not in place left it alone:
    graph code and node count, submodule names, and every tensor's identity and version counter
    (which in-place writes such as ``weight.copy_(...)`` increment)."""

    nodes: int
    code: str
    modules: tuple[str, ...]
    tensors: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, gm: fx.GraphModule) -> "_Snapshot":
        named = [*gm.named_parameters(remove_duplicate=False), *gm.named_buffers(remove_duplicate=False)]
        return cls(len(gm.graph.nodes), gm.graph.python_code("self").src, tuple(n for n, _ in gm.named_modules()),
                   {name: (id(t), _version(t)) for name, t in named})

    def difference(self, other: "_Snapshot") -> str | None:
        """What changed from ``self`` to ``other``, or None."""
        if self.nodes != other.nodes or self.code != other.code:
            return f"its graph changed ({self.nodes} -> {other.nodes} nodes)"
        if self.modules != other.modules:
            return "its submodules changed"
        changed = sorted(set(self.tensors) ^ set(other.tensors)) or [
            name for name, key in self.tensors.items() if other.tensors[name] != key]
        return f"its tensor {changed[0]!r} was replaced or written" if changed else None


def _version(tensor: torch.Tensor) -> int:
    """The tensor's version counter (-1 for an inference tensor, which has none)."""
    try:
        return tensor._version
    except RuntimeError:
        return -1


class PassBase(Generic[Produced]):
    """Subclasses set ``in_place`` and implement :meth:`call`; :meth:`requires` / :meth:`ensures`
    are optional checks raising :class:`PreconditionError` / :class:`PostconditionError`.

    Calling the pass runs ``requires``, ``call``, the check of ``in_place``, lint and recompile
    (when the result is modified), then ``ensures``.
    """

    name: str = ""
    in_place: bool  # every concrete pass declares it (checked when the class is defined)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "call" in cls.__dict__ and not isinstance(getattr(cls, "in_place", None), bool):
            raise TypeError(f"pass {cls.__name__} must declare in_place = True or False")

    def __init__(self) -> None:
        self.name = self.name or type(self).__name__

    def requires(self, gm: fx.GraphModule) -> None:  # pragma: no cover - default accepts anything
        return None

    def ensures(self, result: PassResult[Produced]) -> None:  # pragma: no cover - default guarantees nothing
        return None

    def call(self, gm: fx.GraphModule) -> PassResult[Produced]:
        raise NotImplementedError

    def __call__(self, gm: fx.GraphModule) -> PassResult[Produced]:
        self.requires(gm)
        before = None if self.in_place else _Snapshot.of(gm)
        result = self.call(gm)
        self._check_declaration(gm, result, before)
        if result.modified:
            result.gm.graph.lint()
            result.gm.recompile()
        self.ensures(result)
        return result

    def _check_declaration(self, gm: fx.GraphModule, result: PassResult[Produced], before: _Snapshot | None) -> None:
        if self.in_place and result.gm is not gm:
            raise PostconditionError(f"{self.name} is declared in place but returned another GraphModule than "
                                     "the one it was given", self.name)
        if before is not None:
            changed = before.difference(_Snapshot.of(gm))
            if changed:
                raise PostconditionError(f"{self.name} is declared not in place but changed its input: {changed}",
                                         self.name)


class PassManager:
    """Runs passes in order; a failure names the pass and the passes that ran before it.

    ``produced`` of its result maps each pass's name to what that pass produced (the names must
    differ). It is in place when all its passes are.
    """

    def __init__(self, passes: Sequence[PassBase[Any]]):
        self.passes = list(passes)
        names = [p.name for p in self.passes]
        if len(set(names)) != len(names):
            raise ValueError(f"a pass manager needs passes of different names, got {names}")
        self.in_place = all(p.in_place for p in self.passes)

    def __call__(self, gm: fx.GraphModule) -> PassResult[dict[str, Any]]:
        ran: list[str] = []
        modified = False
        produced: dict[str, Any] = {}
        for p in self.passes:
            try:
                result = p(gm)
            except PassError:
                raise
            except Exception as error:
                after = f" after {', '.join(ran)}" if ran else ""
                raise PassError(f"pass {p.name} failed{after}: {type(error).__name__}: {error}", p.name) from error
            gm, modified = result.gm, modified or result.modified
            produced[p.name] = result.produced
            ran.append(p.name)
        return PassResult(gm, modified, produced)
