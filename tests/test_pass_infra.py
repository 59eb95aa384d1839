"""The pass contract: a pass returns what it produced, keeps nothing on itself, and does what its
``in_place`` declares; the infrastructure catches a pass that breaks the declaration."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.fx as fx

import fxprune
from fxprune.graph_mode import copy_graph_module
from fxprune.pass_infra import (PassBase, PassError, PassManager, PassResult, PostconditionError,
                                PreconditionError)
from fxprune.passes import PASSES, PIPELINES, pipeline
from fxprune.passes.fold_weight_modules import FoldWeightModules
from fxprune.passes.insert_assl_gates import InsertAsslGates
from fxprune.passes.insert_nm_masks import InsertNMMasks
from fxprune.passes.slice_channels import SliceChannels


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 4, 3, padding=1)).eval()


@pytest.fixture
def gm() -> fx.GraphModule:
    return fxprune.trace(_net(), torch.randn(1, 4, 8, 8))


# ---------------------------------------------------------------------------- toy passes, honest and not
class CopyAndAdd(PassBase[None]):
    """Honest, not in place: adds 1 to the output of a copy."""

    name, in_place = "copy_and_add", False

    def call(self, gm: fx.GraphModule) -> PassResult[None]:
        out = copy_graph_module(gm)
        _add_one(out)
        return PassResult(out, True)


class CopyClaimingInPlace(CopyAndAdd):
    """Declares in place, returns a copy."""

    name, in_place = "copy_claiming_in_place", True


class EditsItsInput(PassBase[None]):
    """Declares not in place, rewrites the graph it was given."""

    name, in_place = "edits_its_input", False

    def call(self, gm: fx.GraphModule) -> PassResult[None]:
        _add_one(gm)
        return PassResult(copy_graph_module(gm), True)


class WritesAWeight(PassBase[None]):
    """Declares not in place, writes a weight of its input in place (graph untouched)."""

    name, in_place = "writes_a_weight", False

    def call(self, gm: fx.GraphModule) -> PassResult[None]:
        out = copy_graph_module(gm)
        with torch.no_grad():
            gm.get_parameter("0.weight").mul_(2)
        return PassResult(out, False)


class ReplacesAWeight(PassBase[None]):
    """Declares not in place, swaps a parameter of its input for another object."""

    name, in_place = "replaces_a_weight", False

    def call(self, gm: fx.GraphModule) -> PassResult[None]:
        out = copy_graph_module(gm)
        gm.get_submodule("0").weight = torch.nn.Parameter(gm.get_parameter("0.weight").detach().clone())
        return PassResult(out, False)


def _add_one(gm: fx.GraphModule) -> None:
    output = next(n for n in gm.graph.nodes if n.op == "output")
    result = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
    with gm.graph.inserting_before(output):
        plus = gm.graph.call_function(torch.ops.aten.add.Tensor, (result, 1.0))
    output.replace_input_with(result, plus)


def test_an_honest_pass_that_is_not_in_place_leaves_its_input(gm):
    x = torch.randn(1, 4, 8, 8)
    before = gm(x)[0].clone()
    result = CopyAndAdd()(gm)
    assert result.gm is not gm
    assert torch.allclose(result.gm(x)[0], before + 1) and torch.equal(gm(x)[0], before)


@pytest.mark.parametrize("wrong, says", [
    (CopyClaimingInPlace, "declared in place but returned another GraphModule"),
    (EditsItsInput, "declared not in place but changed its input: its graph changed"),
    (WritesAWeight, "declared not in place but changed its input: its tensor '0.weight' was replaced or written"),
    (ReplacesAWeight, "declared not in place but changed its input: its tensor '0.weight' was replaced or written"),
])
def test_a_pass_that_breaks_its_declaration_is_caught_and_named(gm, wrong, says):
    with pytest.raises(PostconditionError, match=says) as caught:
        wrong()(gm)
    assert caught.value.pass_name == wrong.name and str(caught.value).startswith(wrong.name)


def test_a_pass_must_declare_in_place():
    with pytest.raises(TypeError, match="must declare in_place"):
        class Undeclared(PassBase[None]):  # noqa: F841 - defining it is the test
            def call(self, gm):
                return PassResult(gm, False)


# ---------------------------------------------------------------------------- the built-in passes
def test_every_built_in_pass_is_listed_under_its_name_and_declares_in_place():
    assert all(cls.name == name and isinstance(cls.in_place, bool) for name, cls in PASSES.items())
    assert all(name in PASSES for names in PIPELINES.values() for name in names)


def test_built_in_passes_return_what_they_made_and_keep_nothing(gm):
    """The gates, masks and folded names are in the result; the pass objects are as they were built."""
    gates = InsertAsslGates([("0.weight", 0), ("2.weight", 0)])
    state = copy.copy(vars(gates))
    gated = gates(copy_graph_module(gm))
    assert [s.gate for s in gated.produced] == ["fxprune_gates.0__weight", "fxprune_gates.2__weight"]
    assert [s.bias for s in gated.produced] == ["0.bias", "2.bias"]
    assert vars(gates) == state

    masks = InsertNMMasks({"2.weight": (4, None)})
    state = copy.copy(vars(masks))
    assert masks(copy_graph_module(gm)).produced == {"2.weight": "fxprune_nm_masks.2__weight"}
    assert vars(masks) == state

    fold = FoldWeightModules()
    assert fold(gated.gm).produced == ("0.weight", "2.weight") and vars(fold) == {"name": fold.name, "prefix": None}


def test_fold_then_slice_runs_as_a_pipeline_and_leaves_the_gated_model():
    """ASSL's convert in small: gates in, then the fold -> slice pipeline; the fold works in place,
    the slicing returns a new module and leaves the folded one as it was."""
    net, x = _net(), torch.randn(1, 4, 8, 8)
    graph = fxprune.analyze(net, x)
    group = graph.group_of("0")
    keep = {group.id: np.arange(group.channels) % 2 == 0}
    gated = InsertAsslGates([("0.weight", 0)])(copy_graph_module(graph.gm)).gm
    manager = pipeline("fold_and_slice", slice_channels={"graph": graph, "keep": keep})
    assert not manager.in_place
    result = manager(gated)
    assert result.gm is not gated and not hasattr(gated, "fxprune_gates")  # folded in place, then copied
    assert result.produced["fold_weight_modules"] == ("0.weight",)
    assert result.produced["slice_channels"] == gated.get_parameter("0.weight").numel() // 2 + 4 + 4 * 9 * 4
    assert result.gm.get_parameter("0.weight").shape == (4, 4, 3, 3)
    assert gated.get_parameter("0.weight").shape == (8, 4, 3, 3)


def test_slicing_a_model_whose_weight_modules_are_not_folded_is_refused():
    net, x = _net(), torch.randn(1, 4, 8, 8)
    graph = fxprune.analyze(net, x)
    gated = InsertAsslGates([("0.weight", 0)])(copy_graph_module(graph.gm)).gm
    with pytest.raises(PreconditionError, match="fold them first"):
        SliceChannels(graph, {})(gated)


def test_slicing_another_model_than_the_analyzed_one_is_refused(gm):
    graph = fxprune.analyze(torch.nn.Sequential(torch.nn.Conv2d(4, 6, 1), torch.nn.Conv2d(6, 4, 1)).eval(),
                            torch.randn(1, 4, 8, 8))
    renamed = copy_graph_module(gm)
    for node in renamed.graph.nodes:
        node.name = f"other_{node.name}"
    with pytest.raises(PreconditionError, match="has no node"):
        SliceChannels(graph, {})(renamed)


# ---------------------------------------------------------------------------- the manager
def test_the_manager_names_the_failing_pass_and_what_ran_before(gm):
    class Boom(PassBase[None]):
        name, in_place = "boom", True

        def call(self, gm):
            raise RuntimeError("no")

    with pytest.raises(PassError, match="pass boom failed after copy_and_add: RuntimeError: no") as caught:
        PassManager([CopyAndAdd(), Boom()])(gm)
    assert caught.value.pass_name == "boom"
    with pytest.raises(ValueError, match="different names"):
        PassManager([CopyAndAdd(), CopyAndAdd()])


def test_a_pipeline_is_asked_for_by_name():
    with pytest.raises(ValueError, match="no pipeline 'fold'"):
        pipeline("fold")
    with pytest.raises(ValueError, match="arguments for compact_nm"):
        pipeline("fold_and_slice", compact_nm={})
