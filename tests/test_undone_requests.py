"""Requests compress/prepare cannot carry out are not silent (issue 19, item 3): one
RequestUndoneWarning per group whose request was undone, and the record says what was asked and
what was achieved."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import fxprune
from fxprune.cli.compress import outcome_lines
from fxprune.models import build
from fxprune.selection import plan_keep, undone_groups

X = torch.rand(1, 3, 12, 12)
CONV1 = r"re:body\.\d+\.conv1"


class NoRule(nn.Module):
    """A conv whose channels pass an op with no coupling rule (special_i0) before the next conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 3, padding=1)
        self.c = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.special.i0(self.a(x)))))


def _undone(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in caught if issubclass(w.category, fxprune.RequestUndoneWarning)]


def test_an_override_rounded_away_warns_once_per_group_and_the_record_says_so():
    model = build("edsr", blocks=2, channels=16)
    spec = fxprune.Spec(ratio=0.5, round_to=8, overrides={CONV1: {"ratio": 0.3}})
    small, caught = _undone(lambda: fxprune.compress(model, spec, (X,)))
    texts = sorted(str(w.message) for w in caught)
    assert len(texts) == 2, texts
    for text, layer in zip(texts, ("body.0.conv1", "body.1.conv1")):
        assert f"units: {layer})" in text and f"overrides[{CONV1!r}] asks for ratio 0.3" in text
        assert "round_to=4 would prune it" in text
    assert {w.filename for w in caught} == {__file__}  # points at the caller of compress
    record = fxprune.record.record_of(small)
    rows = [row for row in record["groups"] if row["prunable"]]
    dropped = sum(row["units"] - row["kept"] for row in rows)
    assert record.outcome["achieved_ratio"] == pytest.approx(dropped / sum(row["prunable"] for row in rows))
    asked = {"body.0.conv1": 0.3, "body.1.conv1": 0.3}
    requested = sum(row["prunable"] * asked.get(row["producers"][0], 0.5) for row in rows) / sum(r["prunable"] for r in rows)
    assert record.outcome["requested_ratio"] == pytest.approx(requested)
    assert record.outcome["achieved_ratio"] < record.outcome["requested_ratio"]
    assert record.outcome["undone"] == [str(w.message).split(": ", 1)[1] for w in sorted(caught, key=lambda w: str(w.message))]
    [stage] = record.stages()
    assert stage["requested_ratio"] == record.outcome["requested_ratio"] and stage["macs"] == fxprune.count_macs(small, (X,))
    assert stage["macs_of_input"] == pytest.approx(fxprune.count_macs(small, (X,)) / fxprune.count_macs(model, (X,)))
    lines = outcome_lines(record)
    assert lines[0].startswith(f"stage 1 (l1): requested ratio {requested:.3f}, achieved ")
    assert f"MACs {stage['macs_of_input']:.3f} of its input" in lines[0]
    assert sum(line.startswith("  not done: group") for line in lines) == 2


def test_a_request_carried_out_warns_nothing():
    model = build("edsr", blocks=2, channels=16)
    small, caught = _undone(lambda: fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=8), (X,)))
    assert caught == [] and fxprune.record.record_of(small).outcome["undone"] == []
    assert fxprune.record.record_of(small).outcome["achieved_ratio"] > 0


def test_nothing_pruned_is_one_warning_naming_every_group():
    model = build("edsr", blocks=1, channels=16)
    _, caught = _undone(lambda: fxprune.compress(model, fxprune.Spec(ratio=0.5), (X,)))
    assert len(caught) == 1 and "no group loses any channel" in str(caught[0].message)


def test_channels_fixed_for_want_of_a_rule_name_the_op_and_how_to_register_it():
    torch.manual_seed(0)
    model = NoRule().eval()
    small, caught = _undone(lambda: fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1), (X,)))
    assert small.get_parameter("b.weight").shape[0] == 8  # the other group is pruned
    [warning] = caught
    text = str(warning.message)
    assert "units: a)" in text and "aten.special_i0.default (node special_i0)" in text
    assert "fxprune.register_coupling('aten.special_i0.default', rule)" in text


def test_prepare_warns_per_group_too():
    model = build("edsr", blocks=2, channels=16)
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=8, steps=2, overrides={CONV1: {"ratio": 0.3}})
    _, caught = _undone(lambda: fxprune.prepare(model, spec, (X,)))
    assert len(caught) == 2 and all("fxprune.prepare: group" in str(w.message) for w in caught)


def test_undone_groups_for_a_caller_that_refuses_them():
    """What `fxprune route` calls to refuse a variant: group id -> why, empty when all is done."""
    graph = fxprune.analyze(build("edsr", blocks=1, channels=16), X)
    spec = fxprune.Spec(ratio=0.5, round_to=16)
    undone = undone_groups(graph, spec, plan_keep(graph, spec))
    assert sorted(undone) == sorted(g.id for g in graph.groups if g.prunable)
    assert all("round_to=16 rounds the 8 kept units back up to 16" in why for why in undone.values())
    spec = fxprune.Spec(ratio=0.5, round_to=8)
    assert undone_groups(graph, spec, plan_keep(graph, spec)) == {}
    skipped = fxprune.Spec(ratio=0.5, round_to=16, overrides={"re:.*": None})
    assert undone_groups(graph, skipped, {}) == {}  # skipping is not a request undone
    assert not np.any([g.prunable for g in graph.groups if g.id not in undone])
