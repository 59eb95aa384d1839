"""Spec validation, serialization and override precedence."""
from __future__ import annotations

import pytest
import torch

import fxprune
from fxprune import Spec, SpecError
from fxprune.models import build
from fxprune.selection import kept_count, plan_keep


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"method": "magic"}, "method"),
        ({"ratio": 1.0}, "ratio"),
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": True}, "ratio"),
        ({"macs": 0}, "macs"),
        ({"round_to": 0}, "round_to"),
        ({"overrides": {"re:(": None}}, "overrides['re:(']"),
        ({"overrides": {"tail.0": {"ratoi": 0.3}}}, "overrides['tail.0'].ratoi"),
        ({"overrides": {"tail.0": {"ratio": 2}}}, "overrides['tail.0'].ratio"),
        ({"overrides": {"tail.0": 0.3}}, "overrides['tail.0']"),
    ],
)
def test_invalid_specs_name_the_field(kwargs, field):
    with pytest.raises(SpecError) as info:
        Spec(**kwargs)
    assert info.value.field == field


def test_round_trips(tmp_path):
    spec = Spec(ratio=0.25, round_to=8, overrides={"tail.0": None, "re:body\\.\\d+\\.conv1": {"ratio": 0.3}, "type:Conv2d": {"round_to": 4}})
    assert Spec.from_yaml(spec.to_yaml()) == spec
    assert Spec.from_json(spec.to_json()) == spec
    (tmp_path / "s.yaml").write_text(spec.to_yaml())
    (tmp_path / "s.json").write_text(spec.to_json())
    assert Spec.load(tmp_path / "s.yaml") == Spec.load(tmp_path / "s.json") == spec


def test_unknown_fields_and_bad_files(tmp_path):
    with pytest.raises(SpecError, match="ratoi"):
        Spec.from_dict({"ratoi": 0.5})
    with pytest.raises(SpecError, match="YAML"):
        Spec.from_yaml("ratio: [")
    with pytest.raises(SpecError, match="no spec file"):
        Spec.load(tmp_path / "missing.yaml")


def test_override_precedence():
    spec = Spec(overrides={"type:Conv2d": {"ratio": 0.1}, "re:body\\..*": {"ratio": 0.2}, "body.0.conv1": {"ratio": 0.3}})
    assert spec.settings_for("body.0.conv1", "Conv2d") == {"ratio": 0.3}
    assert spec.settings_for("body.1.conv1", "Conv2d") == {"ratio": 0.2}
    assert spec.settings_for("head", "Conv2d") == {"ratio": 0.1}
    assert Spec(overrides={"type:Conv2d": {"ratio": 0.1}, "head": None}).settings_for("head", "Conv2d") is None


def test_override_that_matches_nothing_is_an_error():
    graph = fxprune.analyze(build("edsr", blocks=1, channels=16).eval(), torch.randn(1, 3, 8, 8))
    with pytest.raises(SpecError, match="tial.0"):
        plan_keep(graph, Spec(overrides={"tial.0": None}))


def test_overrides_reach_the_groups():
    graph = fxprune.analyze(build("edsr", blocks=2, channels=64).eval(), torch.randn(1, 3, 8, 8))
    spec = Spec(ratio=0.5, overrides={"tail.0": None, "re:body\\.\\d+\\.conv1": {"ratio": 0.3}})
    kept = {graph.groups[gid].producers[0]: int(units.sum()) for gid, units in plan_keep(graph, spec).items()}
    assert kept == {"head": 32, "body.0.conv1": 48, "body.1.conv1": 48}


@pytest.mark.parametrize(
    "channels, prunable, ratio, round_to, expected",
    [(64, 64, 0.5, 16, 32), (64, 64, 0.25, 16, 48), (64, 64, 0.3, 16, 48), (64, 64, 0.3, 1, 45), (50, 50, 0.5, 16, 32), (20, 10, 0.9, 1, 11), (8, 8, 0.99, 16, 8)],
)
def test_kept_count(channels, prunable, ratio, round_to, expected):
    assert kept_count(channels, prunable, ratio, round_to) == expected


def test_an_empty_spec_file_is_an_error_naming_the_file(tmp_path):
    for name, text in (("a.yaml", ""), ("b.yml", "# comments only\n"), ("c.json", ""), ("d.json", "{}"), ("e.yaml", "{}")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(fxprune.SpecError, match=f"the spec file {path} is empty") as caught:
            Spec.load(path)
        assert caught.value.field == "<file>"
    bad = tmp_path / "bad.yaml"
    bad.write_text("ratio: 2\n")
    with pytest.raises(fxprune.SpecError, match=f"spec field 'ratio': .* got 2 \\(in {bad}\\)"):
        Spec.load(bad)
