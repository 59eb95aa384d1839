"""A small pass infrastructure: passes take a GraphModule and return a PassResult.

Each pass declares what it needs (``requires``) and guarantees (``ensures``); both raise typed
errors naming the pass. The manager recompiles and lints after each modifying pass and wraps a
failure with the names of the passes that ran before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch.fx as fx

from .errors import FxpruneError


class PassError(FxpruneError):
    """A pass failed; the message names the pass and the passes that ran before it."""


class PreconditionError(PassError):
    """A pass was given a graph it cannot work on."""


class PostconditionError(PassError):
    """A pass produced a graph that breaks its own guarantee."""


@dataclass
class PassResult:
    gm: fx.GraphModule
    modified: bool
    info: dict[str, Any] = field(default_factory=dict)


class PassBase:
    """Subclasses implement :meth:`call`; :meth:`requires` / :meth:`ensures` are optional checks."""

    name: str = ""

    def __init__(self) -> None:
        self.name = self.name or type(self).__name__

    def requires(self, gm: fx.GraphModule) -> None:  # pragma: no cover - default accepts anything
        return None

    def ensures(self, gm: fx.GraphModule) -> None:  # pragma: no cover - default guarantees nothing
        return None

    def call(self, gm: fx.GraphModule) -> PassResult:
        raise NotImplementedError

    def __call__(self, gm: fx.GraphModule) -> PassResult:
        self.requires(gm)
        result = self.call(gm)
        if result.modified:
            result.gm.graph.lint()
            result.gm.recompile()
        self.ensures(result.gm)
        return result


class PassManager:
    """Runs passes in order; a failure names the pass and what ran before it."""

    def __init__(self, passes: Sequence[PassBase]):
        self.passes = list(passes)

    def __call__(self, gm: fx.GraphModule) -> PassResult:
        ran: list[str] = []
        modified = False
        info: dict[str, Any] = {}
        for p in self.passes:
            try:
                result = p(gm)
            except PassError:
                raise
            except Exception as error:
                after = f" after {', '.join(ran)}" if ran else ""
                raise PassError(f"pass {p.name} failed{after}: {type(error).__name__}: {error}") from error
            gm, modified = result.gm, modified or result.modified
            info[p.name] = result.info
            ran.append(p.name)
        return PassResult(gm, modified, info)
