"""SLS (learnable N:M) and one-shot N:M: masks, schedule, convert, counting, storage, export."""
from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import fxprune
from fxprune.counting import nm_record
from fxprune.methods import get_method
from fxprune.models import build
from fxprune.passes.insert_nm_masks import NMMask, grouped
from fxprune.model_io import read_metadata

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = dict(batch_size=2, patch_size=16, progress=False)


def _edsr(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build("edsr", blocks=2, channels=16).eval()


def _run(pruner, x, target, steps=None, lr=1e-2, aux_lr=5e-2, sgd=False):
    """Drive the hooks as a user loop would; deterministic data."""
    groups = pruner.param_groups(lr, aux_lr)
    optimizer = torch.optim.SGD(groups, lr=lr) if sgd else torch.optim.Adam(groups)
    done = 0
    while not pruner.done and (steps is None or done < steps):
        loss = (pruner.model(x) - target).abs().mean() + pruner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        pruner.step()
        done += 1


def _check_priority(mask: NMMask, weight: torch.Tensor) -> None:
    """In every group the kept weights are the N largest: no smaller one kept while a larger one is dropped."""
    kept = grouped(mask.mask().detach() != 0, mask.m)
    magnitude = grouped(weight.detach().abs(), mask.m)
    assert bool((kept.sum(-1) == mask.n()).all())
    smallest_kept = torch.where(kept, magnitude, torch.inf).amin(-1)
    largest_dropped = torch.where(kept, -torch.inf, magnitude).amax(-1)
    assert bool((smallest_kept >= largest_dropped).all())


# ---------------------------------------------------------------------------------------- masks
@settings(max_examples=12, deadline=None)
@given(m=st.sampled_from([4, 8, 16, 32]), seed=st.integers(0, 2**16))
def test_priority_order_holds_for_any_scores(m, seed):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, 2 * m, 3, 3, generator=generator)
    mask = NMMask(weight, m)
    with torch.no_grad():
        mask.scores.copy_(torch.rand(m - 1, generator=generator) * 1.4 - 0.2)  # also outside [0, 1.03]
    mask.project()
    assert float(mask.scores.detach().min()) >= 0 and float(mask.scores.detach().max()) <= 1.03
    _check_priority(mask, weight)
    with torch.no_grad():
        weight.mul_(torch.rand(weight.shape, generator=generator))  # magnitudes change: re-rank
    mask.rerank(weight)
    _check_priority(mask, weight)


def test_priority_order_after_every_pruner_step():
    model, x = _edsr(), torch.randn(2, 3, 12, 12)
    spec = fxprune.Spec(method="sls", budget=0.4, m=8, steps=12, reg_weight=1.0, rerank_every=1)
    pruner = fxprune.prepare(model, spec, x)
    target = model(x).detach()
    for _ in range(12):
        _run(pruner, x, target, steps=1)
        for param, mask in pruner.masks.items():
            _check_priority(mask, pruner.model.get_parameter(param))


def test_gather_mask_equals_unit_stack_in_value_and_gradient():
    torch.manual_seed(1)
    weight = torch.randn(4, 16, 3, 3)
    mask = NMMask(weight, 8)
    with torch.no_grad():
        mask.scores.copy_(torch.tensor([1.0, 0.9, 0.95, 0.6, 1.02, 0.4, 0.9]))
    p = torch.cumprod(mask.scores.clamp(0, 1.03), 0)  # the paper's formula, written out here
    b = (p > 0.5).float() - p.detach() + p
    units = [(mask.rank.long() == i).float() for i in range(8)]
    stack = units[0] + sum(b[i - 1] * units[i] for i in range(1, 8))
    gather = mask.mask()
    torch.testing.assert_close(gather, stack, rtol=0, atol=0)
    upstream = torch.randn(weight.shape)
    (g_gather,) = torch.autograd.grad((gather * upstream).sum(), mask.scores)
    (g_stack,) = torch.autograd.grad((stack * upstream).sum(), mask.scores)
    torch.testing.assert_close(g_gather, g_stack)
    assert g_gather.abs().sum() > 0


def test_masked_model_at_init_equals_original():
    model, x = _edsr(), torch.randn(1, 3, 12, 12)
    for spec in (fxprune.Spec(method="sls", budget=0.5, m=8, steps=4), fxprune.Spec(method="sls", budget=0.5, m=4, steps=4)):
        pruner = fxprune.prepare(model, spec, x)
        assert pruner.masks and pruner.phase == "search"
        torch.testing.assert_close(pruner.model(x), model(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------- schedule
def test_search_meets_the_budget_by_learning_then_counts_agree_after_save_and_load(tmp_path):
    model, x = _edsr(), torch.randn(2, 3, 12, 12)
    spec = fxprune.Spec(method="sls", budget=0.4, m=8, steps=30, reg_weight=1.0)
    pruner = fxprune.prepare(model, spec, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no greedy cut: the penalty gets there
        _run(pruner, x, model(x).detach())
    assert pruner.done and pruner.frozen_at < pruner.search_steps
    frozen = pruner.macs(pruner.frozen)
    assert frozen <= 0.4 * pruner.dense_macs
    assert len(set(pruner.frozen.values())) > 1 or min(pruner.frozen.values()) < 8
    small = fxprune.convert(pruner)
    assert fxprune.count_macs(small, x) == frozen == small.meta["fxprune"]["macs"]["sparse"]
    torch.testing.assert_close(small(x), pruner.model.eval()(x))
    loaded = fxprune.load(fxprune.save(small, tmp_path / "sls.pt2", x))
    assert fxprune.count_macs(loaded, x) == frozen
    assert fxprune.check_nm(loaded).ok


def test_greedy_cut_meets_the_budget_when_the_search_does_not():
    model, x = _edsr(), torch.randn(2, 3, 12, 12)
    pruner = fxprune.prepare(model, fxprune.Spec(method="sls", budget=0.3, m=8, steps=6, reg_weight=0.0), x)
    with pytest.warns(UserWarning, match="cut greedily"):
        _run(pruner, x, model(x).detach())
    assert pruner.done and pruner.frozen_at == pruner.search_steps == 3
    assert pruner.macs(pruner.frozen) <= 0.3 * pruner.dense_macs
    assert fxprune.count_macs(fxprune.convert(pruner), x) == pruner.macs(pruner.frozen)


def test_scores_stop_training_after_the_freeze_and_annealing_grows():
    model, x = _edsr(), torch.randn(2, 3, 12, 12)
    spec = fxprune.Spec(method="sls", budget=0.3, m=8, steps=40, search_steps=20, reg_weight=1e-6,
                        anneal_every=2, anneal_factor=2.0)
    pruner = fxprune.prepare(model, spec, x)
    with pytest.warns(UserWarning):
        _run(pruner, x, model(x).detach(), steps=21)
    assert pruner.anneal > 1.0 and pruner.phase == "finetune"
    scores = {p: m.scores.detach().clone() for p, m in pruner.masks.items()}
    assert not any(m.scores.requires_grad for m in pruner.masks.values())
    _run(pruner, x, model(x).detach())
    for p, mask in pruner.masks.items():
        torch.testing.assert_close(mask.scores, scores[p])
    assert float(pruner.penalty()) == 0.0


@pytest.mark.filterwarnings("ignore:SLS")
@pytest.mark.parametrize("freeze_first", [False, True], ids=["mid-search", "mid-finetune"])
def test_resume_from_state_dict_gives_the_same_result(freeze_first):
    model, x = _edsr(), torch.randn(2, 3, 12, 12)
    target = model(x).detach()
    spec = fxprune.Spec(method="sls", budget=0.4, m=8, steps=16, reg_weight=1.0, rerank_every=3)
    straight = fxprune.prepare(model, spec, x)
    _run(straight, x, target, sgd=True)
    first = fxprune.prepare(model, spec, x)
    _run(first, x, target, steps=10 if freeze_first else 2, sgd=True)
    assert (first.frozen is not None) == freeze_first
    state = first.state_dict()
    resumed = fxprune.prepare(model, spec, x)
    resumed.load_state_dict(state)
    assert resumed.step_count == first.step_count and resumed.phase == first.phase
    _run(resumed, x, target, sgd=True)
    assert resumed.frozen == straight.frozen and resumed.frozen_at == straight.frozen_at
    torch.testing.assert_close(fxprune.convert(resumed)(x), fxprune.convert(straight)(x))
    with pytest.raises(fxprune.CheckpointError):
        fxprune.prepare(model, fxprune.Spec(method="sls", budget=0.5, m=8, steps=16), x).load_state_dict(state)


# ---------------------------------------------------------------------------------------- one-shot, 2:4, check
def test_one_shot_nm_and_budget_picks_the_largest_uniform_n():
    model, x = _edsr(), torch.randn(1, 3, 12, 12)
    small = fxprune.compress(model, fxprune.Spec(method="nm", n=2, m=4), x)
    report = fxprune.check_nm(small, x)
    assert report.ok and {lay.n for lay in report.layers} == {2}
    assert all(lay.sparse_macs * 2 == lay.dense_macs for lay in report.layers)
    pruner = fxprune.prepare(model, fxprune.Spec(method="nm", budget=0.5, m=8), x)
    n = set(pruner.frozen.values())
    assert len(n) == 1 and pruner.macs(pruner.frozen) <= 0.5 * pruner.dense_macs
    above = {p: next(iter(n)) + 1 for p in pruner.frozen}
    assert pruner.macs(above) > 0.5 * pruner.dense_macs


def test_one_shot_nm_fine_tunes_under_the_frozen_mask():
    model, x = _edsr(), torch.randn(1, 3, 16, 16)
    small = fxprune.compress(model, fxprune.Spec(method="nm", n=2, m=8), x, train=fxprune.TrainConfig(steps=3, **TINY))
    assert small.meta["fxprune"]["train"]["steps"][-1] == 3
    assert fxprune.check_nm(small).ok
    assert not torch.equal(small.get_parameter("body.0.conv1.weight"),
                           fxprune.compress(model, fxprune.Spec(method="nm", n=2, m=8), x).get_parameter("body.0.conv1.weight"))


@pytest.mark.parametrize("method", ["sls", "nm"])
def test_two_four_mode_keeps_at_most_two_of_every_aligned_four(method):
    model, x = _edsr(), torch.randn(2, 3, 12, 12)
    extra = dict(budget=0.3, steps=6) if method == "sls" else dict(n=2)
    pruner = fxprune.prepare(model, fxprune.Spec(method=method, m=8, hardware="2:4", **extra), x)
    assert all(m.n() <= 4 for m in pruner.masks.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(pruner, x, model(x).detach())
    small = fxprune.convert(pruner)
    for param in pruner.sites:
        blocks = grouped(small.get_parameter(param) != 0, 8)
        assert int(blocks.reshape(*blocks.shape[:-1], 2, 4).sum(-1).max()) <= 2
    report = fxprune.check_nm(small)
    assert report.ok and all(lay.valid_24 for lay in report.layers)


def test_check_nm_fails_on_a_hand_broken_group():
    model, x = _edsr(), torch.randn(1, 3, 12, 12)
    small = fxprune.compress(model, fxprune.Spec(method="nm", n=2, m=8), x)
    assert fxprune.check_nm(small).ok
    with torch.no_grad():
        small.get_parameter("body.1.conv1.weight")[3, :8, 1, 1] = 1.0  # one group of 8 now fully dense
    report = fxprune.check_nm(small)
    assert not report.ok
    broken = [lay.param for lay in report.layers if not lay.valid_nm]
    assert broken == ["body.1.conv1.weight"] and "NO" in str(report) and "INVALID" in str(report)


# ---------------------------------------------------------------------------------------- storage, ONNX
def _weight_bytes(path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(i.file_size for i in archive.infolist() if "/data/weights/weight" in i.filename)


def test_compact_storage_round_trips_exactly_and_exports_with_parity(tmp_path):
    torch.manual_seed(0)
    model, x = build("edsr", blocks=2, channels=32).eval(), torch.randn(1, 3, 12, 12)
    small = fxprune.compress(model, fxprune.Spec(method="nm", n=8, m=32), x)
    dense_path = fxprune.save(small, tmp_path / "dense.pt2", x)
    compact_path = fxprune.save(small, tmp_path / "compact.pt2", x, compact_nm=True)
    info = read_metadata(compact_path)["compact_nm"]
    assert info["compact_bytes"] / info["dense_bytes"] == pytest.approx(0.25 + 0.25 / 4)  # values + int8 offsets
    saved = _weight_bytes(dense_path) - _weight_bytes(compact_path)  # (the graph JSON grows a little per layer)
    assert saved >= 0.95 * (info["dense_bytes"] - info["compact_bytes"])
    loaded = fxprune.load(compact_path)
    probe = torch.randn(1, 3, 20, 16)
    assert torch.equal(loaded(probe), small(probe))
    for model_, name in ((small, "nm.onnx"), (loaded, "compact.onnx")):
        report = fxprune.export_onnx(model_, tmp_path / name, x)  # check=True: ORT parity or ParityError
        assert report.max_abs_error <= report.tolerance


# ---------------------------------------------------------------------------------------- api, spec
def test_compress_sls_with_the_built_in_loop():
    model, x = _edsr(), torch.randn(1, 3, 16, 16)
    with pytest.warns(UserWarning, match="cut greedily"):
        small = fxprune.compress(model, fxprune.Spec(method="sls", budget=0.5, m=8), x,
                                 train=fxprune.TrainConfig(steps=4, **TINY))
    record = small.meta["fxprune"]
    assert record["method"] == "sls" and record["macs"]["sparse"] <= 0.5 * record["macs"]["dense"]
    assert fxprune.count_macs(small, x) == record["macs"]["sparse"]
    with pytest.raises(fxprune.SpecError, match="'method'"):
        fxprune.compress(model, fxprune.Spec(method="sls", budget=0.5, steps=4), x)


def test_registry_declares_the_methods():
    sls, nm = get_method("sls"), get_method("nm")
    assert sls.trains and not nm.trains
    assert {"m", "budget", "reg_weight", "anneal_factor"} <= set(sls.fields) and "n" not in sls.fields
    assert nm.override_fields == ("m", "n") and sls.override_fields == ("m",)


@pytest.mark.parametrize("kwargs, field", [
    (dict(method="sls", m=8), "budget"),
    (dict(method="sls", budget=0.5, ratio=0.3), "ratio"),
    (dict(method="l1", m=8), "m"),
    (dict(method="assl", reg_weight=1.0), "reg_weight"),
    (dict(method="nm", m=8), "n"),
    (dict(method="nm", n=2, budget=0.5), "n"),
    (dict(method="nm", n=3, m=4, hardware="2:4"), "n"),
    (dict(method="nm", n=2, m=6, hardware="2:4"), "m"),
    (dict(method="sls", budget=1.5), "budget"),
    (dict(method="sls", budget=0.5, hardware="1:4"), "hardware"),
    (dict(method="sls", budget=0.5, overrides={"body.0.conv1": {"ratio": 0.2}}), "overrides['body.0.conv1'].ratio"),
])
def test_spec_errors_name_the_field(kwargs, field):
    with pytest.raises(fxprune.SpecError) as error:
        fxprune.Spec(**kwargs)
    assert error.value.field == field
    if field in ("ratio", "m", "reg_weight") and kwargs["method"] in ("sls", "l1", "assl"):
        assert "setting of method" in str(error.value)


def test_overrides_and_model_errors():
    model, x = _edsr(), torch.randn(1, 3, 12, 12)
    spec = fxprune.Spec(method="nm", n=2, m=8, overrides={"body.0.conv1": None, "re:body\\.1\\..*": {"m": 4, "n": 1},
                                                           "tail.2": {"m": 4}})
    pruner = fxprune.prepare(model, spec, x)
    assert "body.0.conv1.weight" not in pruner.sites and pruner.frozen["body.1.conv1.weight"] == 1
    assert pruner.sites["body.1.conv2.weight"].m == 4 and "tail.2.weight" in pruner.sites  # named: not dense
    assert "head.weight" not in pruner.sites
    with pytest.raises(fxprune.SpecError, match="matches no conv"):
        fxprune.prepare(model, fxprune.Spec(method="nm", n=2, m=8, overrides={"body.9": None}), x)
    with pytest.raises(fxprune.SpecError) as error:
        fxprune.prepare(model, fxprune.Spec(method="nm", n=2, m=8, overrides={"body.0.conv1": {"m": 5}}), x)
    assert error.value.field == "overrides['body.0.conv1'].m"
    with pytest.raises(fxprune.SpecError, match="no conv or linear weight"):
        fxprune.prepare(model, fxprune.Spec(method="nm", n=2, m=32), x)
    with pytest.raises(fxprune.SpecError, match="out of reach"):
        fxprune.prepare(model, fxprune.Spec(method="sls", budget=0.05, m=8, steps=4), x)


def test_two_ddp_ranks_learn_identical_n(tmp_path):
    import ddp_worker_sls
    from test_ddp import start_ranks  # real processes, forked from a server that imported fxprune once

    start_ranks(ddp_worker_sls.run, (2, str(tmp_path / "init"), str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["frozen"] == ranks[1]["frozen"] and ranks[0]["frozen_at"] == ranks[1]["frozen_at"]
    assert min(ranks[0]["frozen"].values()) < 8
    torch.testing.assert_close(ranks[0]["out"], ranks[1]["out"])


# ---------------------------------------------------------------------------------------- stages
def _keep_largest_in_groups(model: torch.nn.Module, layers: dict[str, tuple[int, int]]) -> None:
    """Zero, in place, all but the ``n`` largest |w| of every ``m`` consecutive input channels
    (per output filter and kernel tap), written out here with ``topk``, for each ``param -> (n, m)``."""
    with torch.no_grad():
        for param, (n, m) in layers.items():
            weight = model.get_parameter(param)
            moved = weight.movedim(1, -1)
            groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
            keep = torch.zeros_like(groups).scatter_(-1, groups.abs().topk(n, dim=-1).indices, 1.0)
            weight.mul_(keep.reshape(moved.shape).movedim(-1, 1))


@pytest.mark.parametrize("name, kwargs", [("edsr", dict(blocks=2, channels=32)), ("carn", {}), ("rcan", {})])
def test_channels_then_nm_pipeline_on_zoo_models(name, kwargs):
    torch.manual_seed(0)
    model, x = build(name, **kwargs).eval(), torch.rand(1, 3, 16, 16)
    stages = [fxprune.Spec(method="l1", ratio=0.5, round_to=16), fxprune.Spec(method="nm", n=2, m=8)]
    small = fxprune.compress(model, stages, x)
    first = fxprune.compress(model, stages[0], x)
    fresh = fxprune.analyze(fxprune.trace(first, x))   # the second analysis sees the sliced counts
    members = [m for g in fresh.groups for m in g.members if m.param is not None]
    assert members and all(m.size == first.get_parameter(m.param).shape[m.dim] for m in members
                           if m.param in dict(first.named_parameters()))
    record = small.meta["fxprune"]
    assert [s["method"] for s in record["stages"]] == ["l1", "nm"]
    assert record["stages"][0]["macs"] == fxprune.count_macs(first, x)
    assert fxprune.count_macs(small, x) == record["stages"][1]["macs"] < record["stages"][0]["macs"]
    assert fxprune.check_nm(small).ok
    # the N:M stage is one-shot magnitude N:M of the sliced model: keep the 2 largest |w| of every 8
    _keep_largest_in_groups(first, nm_record(small))
    # same weights in graphs captured apart: float32 summation order at most (the N:M step itself
    # moves these outputs by 0.03-0.15, their peak is 0.05-0.2)
    torch.testing.assert_close(small(x), first(x), rtol=1e-4, atol=1e-6)
    assert small(x).shape == model(x).shape


def test_assl_then_sls_pipeline_trains_both_stages():
    model, x = _edsr(), torch.rand(1, 3, 16, 16)
    stages = [fxprune.Spec(method="assl", ratio=0.5, round_to=8, steps=4),
              fxprune.Spec(method="sls", budget=0.5, m=8, steps=4)]
    with pytest.warns(UserWarning, match="cut greedily"):
        small = fxprune.compress(model, stages, x, train=fxprune.TrainConfig(**TINY))
    record = small.meta["fxprune"]
    assert record["method"] == "sls" and [s["method"] for s in record["stages"]] == ["assl", "sls"]
    assert small.get_parameter("head.weight").shape[0] == 8          # channels from ASSL
    assert record["stages"][1]["macs_of_input"] <= 0.5                # N:M from SLS, on the sliced model
    assert fxprune.check_nm(small).ok and fxprune.count_macs(small, x) == record["stages"][1]["macs"]
    with pytest.raises(fxprune.SpecError) as error:
        fxprune.compress(model, [stages[0], fxprune.Spec(method="sls", budget=0.01, m=8, steps=4)], x,
                         train=fxprune.TrainConfig(**TINY))
    assert error.value.field == "stages[1].budget"
