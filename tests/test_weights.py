"""The shipped trained reference models (fxprune.weights)."""
from __future__ import annotations

import pytest
import torch

from fxprune.data import pairs_from
from fxprune.errors import CheckpointError
from fxprune.metrics import bicubic_baseline, evaluate
from fxprune.weights import NoPretrainedWeightsError, SHIPPED, HERE, load_state, pack_state, pretrained

MARGIN_DB = 1.0   # benchmarks/train_reference.py's target over bicubic


@pytest.mark.parametrize("file", sorted(SHIPPED))
def test_shipped_files_are_small_and_load(file):
    assert (HERE / file).stat().st_size < 1_000_000
    name, kwargs = SHIPPED[file]
    model = pretrained(name, **kwargs)
    assert not model.training
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("name, kwargs, margin", [
    ("edsr", {"blocks": 4, "channels": 32, "scale": 2}, MARGIN_DB),
    ("swinir", {}, 0.5),  # 66k parameters, 30 min of training: +0.69 dB (benchmarks/logs/train_reference_swinir.log)
])
def test_shipped_models_beat_bicubic_on_the_held_out_images(one_torch_thread, name, kwargs, margin):
    pairs = pairs_from(None, "test", task="sr", scale=2)
    model = pretrained(name, **kwargs)
    assert evaluate(model, pairs, shave=2)["psnr"] >= bicubic_baseline(pairs, 2)["psnr"] + margin


def test_configs_without_weights_and_broken_files_get_clear_errors(tmp_path):
    with pytest.raises(NoPretrainedWeightsError, match="channels=48"):
        pretrained("edsr", blocks=4, channels=48)
    path = tmp_path / "w.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=str(path)):
        load_state(path)


def test_int8_storage_round_trips_within_half_a_step(tmp_path):
    weight, bias = torch.randn(8, 4, 3, 3), torch.randn(8)
    torch.save(pack_state({"w": weight, "b": bias}, int8=True), tmp_path / "w.pt")
    restored = load_state(tmp_path / "w.pt")
    step = weight.reshape(8, -1).abs().amax(1).reshape(-1, 1, 1, 1) / 127
    assert ((restored["w"] - weight).abs() <= step / 2 + 1e-6).all()
    torch.testing.assert_close(restored["b"], bias, rtol=0, atol=0)   # 1-d tensors stay float32
