"""The built-in training loop, compress(..., train=...), and train()/eval() on traced graphs."""
from __future__ import annotations

import copy

import pytest
import torch

import fxprune
from fxprune.models import build

TINY = dict(batch_size=2, patch_size=16, progress=False)


def _state(gm):
    return {k: v.detach().clone() for k, v in gm.state_dict().items()}


def test_assl_compress_trains_prunes_and_repeats_exactly():
    x = torch.randn(1, 3, 16, 16)
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=8)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build("edsr", blocks=2, channels=16)
        runs.append(fxprune.compress(model, spec, (x,), train=fxprune.TrainConfig(steps=8, **TINY)))
    small = runs[0]
    assert not small.training
    assert small.get_parameter("head.weight").shape[0] == 8
    assert small(torch.rand(1, 3, 20, 12)).shape == (1, 3, 40, 24)
    for key, value in _state(runs[0]).items():
        torch.testing.assert_close(value, _state(runs[1])[key], rtol=0, atol=0)
    torch.manual_seed(0)
    untrained = fxprune.compress(build("edsr", blocks=2, channels=16), fxprune.Spec(method="l1", ratio=0.5, round_to=8), (x,))
    assert any(not torch.equal(v, _state(untrained)[k]) for k, v in _state(small).items())


def test_l1_compress_fine_tunes_when_asked():
    torch.manual_seed(0)
    model = build("edsr", blocks=2, channels=16)
    x = torch.randn(1, 3, 16, 16)
    spec = fxprune.Spec(method="l1", ratio=0.5, round_to=1)
    plain = fxprune.compress(model, spec, (x,))
    tuned = fxprune.compress(model, spec, (x,), train=fxprune.TrainConfig(steps=3, **TINY))
    assert plain.get_parameter("head.weight").shape == tuned.get_parameter("head.weight").shape
    assert not torch.equal(plain.get_parameter("head.weight"), tuned.get_parameter("head.weight"))


def test_denoising_model_trains_on_the_denoise_task():
    torch.manual_seed(0)
    model = build("dncnn", depth=3, channels=16)
    x = torch.randn(1, 3, 16, 16)
    small = fxprune.compress(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1), (x,),
                             train=fxprune.TrainConfig(steps=4, task="denoise", **TINY))
    assert small(x).shape == x.shape


def test_training_errors_name_the_field(tmp_path):
    model = build("edsr", blocks=1, channels=8)
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(fxprune.SpecError, match="needs training"):
        fxprune.compress(model, fxprune.Spec(method="assl"), (x,))
    with pytest.raises(fxprune.SpecError, match="disagree"):
        fxprune.compress(model, fxprune.Spec(method="assl", steps=5), (x,), train=fxprune.TrainConfig(steps=6, **TINY))
    with pytest.raises(fxprune.SpecError, match="set Spec.steps or TrainConfig.steps"):
        fxprune.compress(model, fxprune.Spec(method="assl"), (x,), train=fxprune.TrainConfig(**TINY))
    with pytest.raises(fxprune.SpecError, match="train.task"):
        fxprune.compress(build("dncnn", depth=3, channels=8), fxprune.Spec(method="assl", steps=2), (x,),
                         train=fxprune.TrainConfig(**TINY))
    for bad, field in [({"batch_size": 0}, "train.batch_size"), ({"lr": -1.0}, "train.lr"), ({"task": "inpaint"}, "train.task"),
                       ({"data": str(tmp_path / "missing")}, "train.data"), ({"steps": -2}, "train.steps")]:
        with pytest.raises(fxprune.SpecError) as error:
            fxprune.TrainConfig(**bad)
        assert error.value.field == field


def test_traced_graphs_switch_batch_norm_between_train_and_eval():
    torch.manual_seed(0)
    model = build("srresnet", blocks=2, channels=16).train()
    gm = fxprune.trace(model, torch.randn(2, 3, 12, 12))
    x = torch.randn(2, 3, 12, 12)
    twin = copy.deepcopy(gm).eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))
        twin.train()
        model.train()
        torch.testing.assert_close(twin(x), model(x))  # batch statistics, running stats updated alike
    torch.testing.assert_close(twin.get_buffer("body.0.bn1.running_mean"), model.body[0].bn1.running_mean)


def test_gate_lr_moves_the_gates_further_than_lr():
    x = torch.randn(2, 3, 16, 16)
    target = torch.rand(2, 3, 32, 32)
    ratios = []
    for gate_lr in (1e-4, 5e-2):
        torch.manual_seed(0)
        pruner = fxprune.prepare(build("edsr", blocks=1, channels=16),
                                 fxprune.Spec(method="assl", ratio=0.5, round_to=8, steps=12, shrink="paper"), (x,))
        optimizer = torch.optim.Adam(pruner.param_groups(lr=1e-4, gate_lr=gate_lr))
        while pruner.phase in ("grow", "hold"):
            ((pruner.model(x) - target).abs().mean() + pruner.penalty()).backward()
            optimizer.step()
            optimizer.zero_grad()
            pruner.step()
        ratios.append(pruner.gate_ratio())
    assert ratios[1] < 0.8 * ratios[0]


def test_built_in_loop_gives_the_gates_their_own_learning_rate():
    from fxprune.train import _param_groups

    pruner = fxprune.prepare(build("edsr", blocks=1, channels=16), fxprune.Spec(method="assl", round_to=8, steps=4),
                             (torch.randn(1, 3, 16, 16),))
    groups = _param_groups(pruner.model, fxprune.TrainConfig(gate_lr=1e-2))
    gammas = {id(pruner.model.get_submodule(s.gate).gamma) for g in pruner.groups for s in g.sites}
    assert groups[1]["lr"] == 1e-2 and {id(p) for p in groups[1]["params"]} == gammas
    assert len(_param_groups(pruner.model, fxprune.TrainConfig())) == 1
    with pytest.raises(fxprune.SpecError, match="gate_lr"):
        fxprune.TrainConfig(gate_lr=0)


def test_the_log_keeps_every_numeric_status_figure_of_any_method():
    """TrainLog knows no method: it records what status() reports (numbers, numeric strings),
    one value per logged step, NaN before a figure first appears; a checkpoint restores it."""
    from fxprune.train import TrainLog, train_model

    calls = []

    def status():
        calls.append(None)
        figures = {"phase": "warm", "rate": len(calls) / 10, "cost": f"{len(calls):.2e}"}
        return figures if len(calls) > 1 else {"phase": "warm"}

    log = train_model(build("edsr", blocks=1, channels=8), fxprune.TrainConfig(**TINY), 3, 2, status=status)
    assert log.steps == [1, 2, 3] and set(log.status) == {"rate", "cost"}
    assert log.status["rate"][1:] == [0.2, 0.3] and log.status["cost"][1:] == [2.0, 3.0]
    assert all(torch.isnan(torch.tensor(series[0])) for series in log.status.values())
    restored = TrainLog()
    restored.load(log.as_dict())
    assert restored.status.keys() == log.status.keys() and restored.steps == log.steps
