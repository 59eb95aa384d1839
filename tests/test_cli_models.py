"""The MODEL argument's zoo options: --seed covers the random initialization, an untrained model is
announced, --pretrained loads the shipped weights or lists which exist."""
from __future__ import annotations

import torch
from hypothesis import given, settings, strategies as st

from fxprune.cli import build_parser, main
from fxprune.cli.args import build_from_args
from fxprune.weights import pretrained


def dense(*flags: str) -> tuple[torch.nn.Module, torch.Tensor]:
    return build_from_args(build_parser().parse_args(["analyze", "edsr", "--blocks", "1", "--channels", "8", *flags]))


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31), other=st.integers(1, 1000))
def test_seed_fixes_the_initialization_and_different_seeds_differ(seed, other):
    first, x = dense("--seed", str(seed))
    second, y = dense("--seed", str(seed))
    assert same(first, second) and torch.equal(x, y)
    third, _ = dense("--seed", str(seed + other))
    assert not any(torch.equal(a, b) for name, a, b in zip(first.state_dict(), first.state_dict().values(),
                                                            third.state_dict().values()) if name.endswith("weight"))


def test_without_seed_two_runs_build_the_same_model(capsys):
    assert same(dense()[0], dense("--seed", "0")[0]) and same(dense()[0], dense()[0])
    out = capsys.readouterr().out
    assert out.count("note: edsr is randomly initialized (seed 0), not trained; --pretrained loads shipped weights") == 4


def test_pretrained_loads_the_shipped_weights_and_says_nothing_about_a_random_init(capsys):
    model, _ = build_from_args(build_parser().parse_args(["analyze", "edsr", "--pretrained", "--blocks", "4",
                                                          "--channels", "32", "--scale", "2", "--seed", "5"]))
    assert same(model, pretrained("edsr", blocks=4, channels=32, scale=2))
    assert "randomly initialized" not in capsys.readouterr().out


def test_pretrained_without_shipped_weights_lists_the_ones_that_exist(capsys):
    assert main(["analyze", "edsr", "--blocks", "2", "--pretrained"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("fxprune analyze: error: no trained weights ship for edsr --blocks 2; shipped: "
                          "edsr --blocks 4 --channels 32 --scale 2; edsr --blocks 8 --channels 64 --scale 2 --kwargs")
    assert main(["analyze", "rcan", "--pretrained"]) == 2
    assert "no trained weights ship for rcan; shipped: edsr" in capsys.readouterr().err
    assert main(["analyze", "tests.randomnets:Nothing", "--pretrained"]) == 2
    assert "--pretrained applies to zoo models only" in capsys.readouterr().err
