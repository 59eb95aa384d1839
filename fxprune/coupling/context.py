"""The record that coupling rules write into: channel spaces, element ties, fixes, producers.

A *channel space* is one static dimension (size > 1) of one tensor in the graph: output ``index``
of node ``node``, dimension ``dim``. Each space owns ``size`` consecutive *elements* (global ids).
Rules tie elements of different spaces that must be kept or dropped together; the connected
components of those ties are the prunable units. Symbolic dimensions (dynamic H/W) and dimensions
of size 1 (broadcasts) own no elements, so they can never be tied by mistake.

Every rule must account for every static dimension of its node's tensor inputs and outputs:
tie it, fix it, or declare it reduced/new. Whatever a rule leaves unaccounted for is fixed by the
analysis with a diagnostic, so a rule that forgets a dimension is conservative, never wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.fx as fx


@dataclass(frozen=True)
class Space:
    """One static channel dimension of one tensor."""

    id: int
    node: str
    index: int  # which output of a multi-output node (0 for single-output nodes)
    dim: int
    size: int
    base: int  # first global element id
    param: str | None = None  # qualified parameter/buffer name when the tensor is one


@dataclass
class Diagnostic:
    """Something the analysis could not model exactly and handled conservatively."""

    node: str
    target: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.node} ({self.target}): {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


@dataclass
class Choice:
    """A split or merge of a dimension: which candidate dimension carries the channel identity."""

    node: str
    candidates: list[int]  # space ids, in preference order
    selected: int = 0


def _val_of(arg: Any, index: int | None = None) -> Any:
    val = arg.meta.get("val") if isinstance(arg, fx.Node) else None
    if isinstance(val, (list, tuple)):
        if index is None:
            return None
        return val[index] if index < len(val) else None
    return val


def static_size(size: Any) -> int | None:
    """The size as an int when it is known at trace time, else None (symbolic)."""
    if isinstance(size, int):
        return size
    if isinstance(size, torch.SymInt):
        expr = size.node.expr
        if getattr(expr, "is_number", False):
            return int(expr)
    return None


class CouplingContext:
    """Collects spaces, ties and fixes while the rules run over a graph."""

    def __init__(self, gm: fx.GraphModule, choices: dict[str, int] | None = None):
        self.gm = gm
        self.spaces: list[Space] = []
        self._space_ids: dict[tuple[str, int, int], int | None] = {}
        # Symbolic sizes a rule proved constant (PixelUnshuffle's channels): every tensor whose dim
        # has the same expression has that size too, so the channels stay traceable downstream.
        self._known_exprs: dict[Any, int] = {}
        self._next_element = 0
        self._tie_a: list[np.ndarray] = []
        self._tie_b: list[np.ndarray] = []
        self._structural: list[bool] = []
        self.fixed: dict[int, str] = {}  # space id -> reason (whole space fixed)
        self.soft_fixed: set[int] = set()
        self.fixed_elements: list[tuple[int, np.ndarray]] = []  # (space, element indices) fixed one by one  # fixed only because a reshape chose another dim
        self.producers: list[tuple[int, str]] = []  # (space id, module qualname)
        self.consumers: list[tuple[int, str]] = []
        self.producer_weights: list[int] = []  # weight spaces along producers' output channels
        self.diagnostics: list[Diagnostic] = []
        self.choices: dict[str, Choice] = {}
        self._choice_selection = choices or {}
        self._covered: set[int] = set()
        self._param_names = self._get_attr_targets(gm)
        self._activations = self._activation_nodes(gm)

    # ---------------------------------------------------------------- spaces
    @staticmethod
    def _get_attr_targets(gm: fx.GraphModule) -> dict[str, str]:
        return {n.name: str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}

    @staticmethod
    def _activation_nodes(gm: fx.GraphModule) -> set[str]:
        names: set[str] = set()
        for n in gm.graph.nodes:
            if n.op == "placeholder" or any(a.name in names for a in n.all_input_nodes):
                names.add(n.name)
        return names

    def is_activation(self, arg: Any) -> bool:
        """True for tensors computed from the model input (not parameters or constants)."""
        return isinstance(arg, fx.Node) and arg.name in self._activations

    def val(self, arg: Any, index: int | None = None) -> Any:
        """The fake tensor (or list of them) recorded for ``arg`` by the export."""
        return _val_of(arg, index)

    def is_tensor(self, arg: Any, index: int | None = None) -> bool:
        return isinstance(self.val(arg, index), torch.Tensor)

    def ndim(self, arg: Any, index: int | None = None) -> int:
        val = self.val(arg, index)
        return val.dim() if isinstance(val, torch.Tensor) else 0

    def size(self, arg: Any, dim: int, index: int | None = None) -> int | None:
        val = self.val(arg, index)
        if not isinstance(val, torch.Tensor):
            return None
        return self.static(val.shape[dim])

    def static(self, size: Any) -> int | None:
        """``size`` as an int when known at trace time or derived from a size a rule proved constant."""
        static = static_size(size)
        if static is None and isinstance(size, torch.SymInt) and self._known_exprs:
            expr = size.node.expr
            if expr in self._known_exprs:
                return self._known_exprs[expr]
            replaced = expr.xreplace(self._known_exprs)
            return int(replaced) if getattr(replaced, "is_number", False) else None
        return static

    def space(self, arg: Any, dim: int, index: int | None = None, *, known_size: int | None = None) -> int | None:
        """The space id of dimension ``dim`` of ``arg`` (None when symbolic, size 1, or not a tensor).

        ``known_size`` lets a rule supply a size that it can derive but export left symbolic
        (PixelUnshuffle's output channels are recorded as ``4*(H//(H//2))*...``).
        """
        if not isinstance(arg, fx.Node):
            return None
        val = self.val(arg, index)
        if not isinstance(val, torch.Tensor):
            return None
        ndim = val.dim()
        if not -ndim <= dim < ndim:
            raise IndexError(f"dim {dim} out of range for node '{arg.name}' of rank {ndim}")
        dim = dim % ndim
        key = (arg.name, index or 0, dim)
        if key in self._space_ids:
            return self._space_ids[key]
        size = self.static(val.shape[dim])
        if size is None and known_size is not None:
            size = known_size
            if isinstance(val.shape[dim], torch.SymInt):
                self._known_exprs[val.shape[dim].node.expr] = known_size
        if size is None or size <= 1:
            self._space_ids[key] = None
            return None
        sid = len(self.spaces)
        self.spaces.append(
            Space(sid, arg.name, index or 0, dim, size, self._next_element, self._param_names.get(arg.name))
        )
        self._next_element += size
        self._space_ids[key] = sid
        return sid

    def spaces_of(self, arg: Any, index: int | None = None) -> list[int]:
        """All static spaces of one tensor."""
        return [s for s in (self.space(arg, d, index) for d in range(self.ndim(arg, index))) if s is not None]

    def elements(self, space: int) -> np.ndarray:
        s = self.spaces[space]
        return np.arange(s.base, s.base + s.size)

    @property
    def num_elements(self) -> int:
        return self._next_element

    # ---------------------------------------------------------------- ties
    def tie_elements(self, a: int, idx_a: np.ndarray, b: int, idx_b: np.ndarray, *, structural: bool = True) -> None:
        """Tie element ``idx_a[k]`` of space ``a`` to element ``idx_b[k]`` of space ``b`` for every k."""
        sa, sb = self.spaces[a], self.spaces[b]
        idx_a = np.asarray(idx_a, dtype=np.int64)
        idx_b = np.asarray(idx_b, dtype=np.int64)
        if idx_a.shape != idx_b.shape or idx_a.size == 0:
            raise ValueError(f"bad tie between spaces {sa} and {sb}")
        if idx_a.max() >= sa.size or idx_b.max() >= sb.size or idx_a.min() < 0 or idx_b.min() < 0:
            raise ValueError(f"tie indices out of range for spaces {sa} and {sb}")
        self._tie_a.append(idx_a + sa.base)
        self._tie_b.append(idx_b + sb.base)
        self._structural.append(structural)
        self._covered.update((a, b))

    def tie(self, a: int | None, b: int | None, *, structural: bool = True) -> None:
        """Tie two spaces of equal size index for index (a no-op when either is None)."""
        if a is None or b is None or a == b:
            if a is not None:
                self._covered.add(a)
            if b is not None:
                self._covered.add(b)
            return
        n = self.spaces[a].size
        if self.spaces[b].size != n:
            raise ValueError(f"identity tie between spaces of different sizes: {self.spaces[a]} / {self.spaces[b]}")
        idx = np.arange(n)
        self.tie_elements(a, idx, b, idx, structural=structural)

    def tie_offset(self, part: int | None, whole: int | None, offset: int, part_size: int | None = None) -> None:
        """Element k of ``part`` is element ``offset + k`` of ``whole`` (concat / split).

        A part of size 1 owns no space; pass ``part_size`` so its element of ``whole`` is fixed
        (dropping it would mean dropping the whole part).
        """
        if part is None and whole is not None and part_size == 1:
            self.fixed_elements.append((whole, np.array([offset])))
            self._covered.add(whole)
            return
        if part is None or whole is None:
            return
        n = self.spaces[part].size
        self.tie_elements(part, np.arange(n), whole, np.arange(offset, offset + n))

    def tie_blocks(self, fine: int | None, coarse: int | None, block: int, *, period: int | None = None) -> None:
        """Element k of ``fine`` belongs to element ``(k // block) % period`` of ``coarse``."""
        if fine is None or coarse is None:
            return
        k = np.arange(self.spaces[fine].size)
        idx = k // block
        if period is not None:
            idx = idx % period
        self.tie_elements(fine, k, coarse, idx)

    def tie_within(self, space: int | None, block: int) -> None:
        """Tie each run of ``block`` consecutive elements of one space together (e.g. GroupNorm groups)."""
        if space is None or block <= 1:
            return
        k = np.arange(self.spaces[space].size)
        self.tie_elements(space, k, space, (k // block) * block)

    # ---------------------------------------------------------------- marks
    def fix(self, space: int | None, reason: str, *, soft: bool = False) -> None:
        """Mark a whole space as fixed: none of its elements may be dropped.

        ``soft`` marks a fix that only follows from a reshape's choice of dim; such fixes do not
        count when the analysis decides whether to revise that choice.
        """
        if space is None:
            return
        if soft and space not in self.fixed:
            self.soft_fixed.add(space)
        elif not soft:
            self.soft_fixed.discard(space)
        self.fixed.setdefault(space, reason)
        self._covered.add(space)

    def fix_tensor(self, arg: Any, reason: str, index: int | None = None) -> None:
        for sid in self.spaces_of(arg, index):
            self.fix(sid, reason)

    def cover(self, space: int | None) -> None:
        """Declare a space handled without a tie: summed away exactly, or created fresh by broadcast."""
        if space is not None:
            self._covered.add(space)

    def produce(self, space: int | None, module: str, weight: int | None = None) -> None:
        """``space`` holds the output channels of a layer with its own weights (a producer);
        ``weight`` is the space of the weight dim that makes those channels (for importance scores)."""
        if space is not None:
            self.producers.append((space, module))
            self._covered.add(space)
            if weight is not None:
                self.producer_weights.append(weight)

    def consume(self, space: int | None, module: str) -> None:
        """``space`` holds the input channels of a layer with its own weights (a consumer)."""
        if space is not None:
            self.consumers.append((space, module))
            self._covered.add(space)

    def diagnose(self, node: fx.Node, message: str, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(node.name, target_name(node), message, hint))

    def choose(self, node: fx.Node, candidates: Sequence[int]) -> int:
        """Pick one of ``candidates`` (space ids); the analysis may re-run with a later pick."""
        ordinal = sum(1 for c in self.choices.values() if c.node == node.name)
        key = f"{node.name}#{ordinal}"
        pick = min(self._choice_selection.get(key, 0), len(candidates) - 1)
        self.choices[key] = Choice(node.name, list(candidates), pick)
        return candidates[pick]

    # ---------------------------------------------------------------- module attribution
    def param_name(self, arg: Any) -> str | None:
        """Qualified name of a parameter/buffer argument (a get_attr node), else None."""
        if isinstance(arg, fx.Node) and arg.op == "get_attr":
            return str(arg.target)
        return None

    def module_of(self, node: fx.Node, weight: Any = None) -> str:
        """Qualified name of the module a weighted op belongs to."""
        name = self.param_name(weight)
        if name is not None:
            return name.rsplit(".", 1)[0] if "." in name else ""  # "" is the root, as in named_modules()
        stack = node.meta.get("nn_module_stack") or {}
        if stack:
            path = list(stack.values())[-1][0]
            if path:
                return str(path)
        return node.name

    # ---------------------------------------------------------------- coverage
    def start_node(self) -> None:
        self._covered = set()

    def uncovered(self, node: fx.Node) -> list[int]:
        """Static spaces of the node's tensor inputs and outputs that its rule left unaccounted for."""
        missing = []
        for arg in tensor_inputs(node):
            missing += [s for s in self.spaces_of(arg) if s not in self._covered]
        for index in output_indices(node):
            missing += [s for s in self.spaces_of(node, index) if s not in self._covered]
        return missing

    # ---------------------------------------------------------------- results
    def tie_arrays(self, structural_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        pairs = [
            (a, b) for a, b, s in zip(self._tie_a, self._tie_b, self._structural) if s or not structural_only
        ]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def target_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", None)
    if hasattr(target, "_schema") or hasattr(target, "overloadpacket"):
        return str(target)
    return name or str(target)


def packet_name(node: fx.Node) -> str:
    """The op's short name without namespace or overload: ``mean`` for ``aten.mean.dim``."""
    return str(getattr(node.target, "overloadpacket", node.target)).rsplit(".", 1)[-1]


def flat_nodes(args: Iterable[Any]) -> list[fx.Node]:
    out: list[fx.Node] = []
    for a in args:
        if isinstance(a, fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out += flat_nodes(a)
        elif isinstance(a, dict):
            out += flat_nodes(a.values())
    return out


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """Distinct input nodes of ``node`` whose value is a single tensor."""
    seen: dict[str, fx.Node] = {}
    for a in flat_nodes(list(node.args) + list(node.kwargs.values())):
        if isinstance(_val_of(a), torch.Tensor):
            seen.setdefault(a.name, a)
    return list(seen.values())


def output_indices(node: fx.Node) -> list[int | None]:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [None]
    if isinstance(val, (list, tuple)):
        return [i for i, v in enumerate(val) if isinstance(v, torch.Tensor)]
    return []


__all__ = [
    "Choice",
    "CouplingContext",
    "Diagnostic",
    "Space",
    "flat_nodes",
    "output_indices",
    "static_size",
    "target_name",
    "tensor_inputs",
]
