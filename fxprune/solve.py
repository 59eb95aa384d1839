"""From element ties to groups: connected components, units, and group classification."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .coupling.context import CouplingContext


def components(num: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``num`` items linked by the pairs (a[k], b[k])."""
    if num == 0:
        return np.zeros(0, np.int64)
    matrix = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(num, num))
    _, labels = connected_components(matrix, directed=False)
    return labels.astype(np.int64)


@dataclass
class RawGroup:
    """One group before it is dressed up for users: which spaces, which units, how they are tied."""

    spaces: np.ndarray  # space ids, ascending
    unit_of_element: dict[int, np.ndarray]  # space id -> unit index of each of its elements
    unit_fixed: np.ndarray  # bool per unit
    coupled: bool
    unit: int


@dataclass
class Solution:
    labels: np.ndarray  # element -> component
    component_fixed: np.ndarray  # component -> bool
    groups: list[RawGroup]
    space_fixed: np.ndarray  # space -> every element in a fixed component
    space_hard_fixed: np.ndarray  # the same, counting only fixes that no reshape choice caused


def solve(ctx: CouplingContext) -> Solution:
    """Group the elements the rules tied together and split them into groups of units."""
    num = ctx.num_elements
    sizes = np.array([s.size for s in ctx.spaces], np.int64)
    space_of_element = np.repeat(np.arange(len(ctx.spaces)), sizes)
    labels = components(num, *ctx.tie_arrays())
    structural = components(num, *ctx.tie_arrays(structural_only=True))
    num_components = int(labels.max()) + 1 if num else 0

    component_fixed = _fixed_components(ctx, labels, num_components, set(ctx.fixed))
    hard_fixed = _fixed_components(ctx, labels, num_components, set(ctx.fixed) - ctx.soft_fixed)

    # A group is a set of components joined through shared spaces (e.g. the two inputs of a concat).
    group_of = components(
        num_components + len(ctx.spaces), labels, num_components + space_of_element
    )
    component_group = group_of[:num_components]
    space_group = group_of[num_components:]

    producer_spaces = sorted({sid for sid, _ in ctx.producers})
    producer_elements = (
        np.concatenate([np.arange(ctx.spaces[s].base, ctx.spaces[s].base + ctx.spaces[s].size) for s in producer_spaces])
        if producer_spaces
        else np.zeros(0, np.int64)
    )
    # Units are ordered by their first producer element, so unit k of a conv's group is its channel k.
    first_producer = np.full(num_components, np.iinfo(np.int64).max)
    np.minimum.at(first_producer, labels[producer_elements], producer_elements)
    first_any = np.full(num_components, np.iinfo(np.int64).max)
    np.minimum.at(first_any, labels, np.arange(num))
    # Coupled: one unit holds producer elements that only an elementwise join brought together.
    pairs = np.unique(np.stack([labels[producer_elements], structural[producer_elements]]), axis=1)
    coupled_component = np.bincount(pairs[0], minlength=num_components) > 1 if pairs.size else np.zeros(num_components, bool)

    group_ids = np.unique(component_group[labels[producer_elements]]) if producer_elements.size else []
    by_group_components = _bucket(component_group, num_components + len(ctx.spaces))
    by_group_spaces = _bucket(space_group, num_components + len(ctx.spaces))
    order = sorted(group_ids, key=lambda g: first_producer[by_group_components[g]].min())
    groups = []
    for g in order:
        comps = by_group_components[g]
        comps = comps[np.lexsort((first_any[comps], first_producer[comps]))]
        unit_index = np.full(num_components, -1, np.int64)
        unit_index[comps] = np.arange(len(comps))
        spaces = by_group_spaces[g]
        unit_of_element = {
            int(s): unit_index[labels[ctx.spaces[s].base : ctx.spaces[s].base + ctx.spaces[s].size]] for s in spaces
        }
        first = next(s for s in producer_spaces if space_group[s] == g)
        counts = np.bincount(unit_of_element[first], minlength=len(comps))
        counts = counts[counts > 0]
        groups.append(
            RawGroup(
                spaces=np.sort(spaces),
                unit_of_element=unit_of_element,
                unit_fixed=component_fixed[comps],
                coupled=bool(coupled_component[comps].any()),
                unit=int(counts.max()) if counts.size else 1,
            )
        )
    def all_fixed(flags: np.ndarray) -> np.ndarray:
        return np.array([bool(flags[labels[s.base : s.base + s.size]].all()) for s in ctx.spaces], bool)

    return Solution(labels, component_fixed, groups, all_fixed(component_fixed), all_fixed(hard_fixed))


def _fixed_components(ctx: CouplingContext, labels: np.ndarray, num_components: int, spaces: set[int]) -> np.ndarray:
    fixed_elements = np.zeros(ctx.num_elements, bool)
    for sid in spaces:
        s = ctx.spaces[sid]
        fixed_elements[s.base : s.base + s.size] = True
    for sid, indices in ctx.fixed_elements:
        fixed_elements[ctx.spaces[sid].base + indices] = True
    fixed = np.zeros(num_components, bool)
    fixed[labels[fixed_elements]] = True
    return fixed


def _bucket(keys: np.ndarray, num_keys: int) -> list[np.ndarray]:
    """Indices of ``keys`` grouped by key value."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(num_keys + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(num_keys)]


def revise_choices(ctx: CouplingContext, solution: Solution) -> dict[str, int]:
    """Move each reshape split whose chosen dim is fixed (for a reason of its own, not because of
    another split's choice) to the next candidate that is not. Picks only move forward, so the
    analysis settles after at most as many rounds as a split has candidates."""
    revised = {}
    for key, choice in ctx.choices.items():
        pick = choice.selected
        while solution.space_hard_fixed[choice.candidates[pick]] and pick + 1 < len(choice.candidates):
            pick += 1
        revised[key] = pick
    return revised
