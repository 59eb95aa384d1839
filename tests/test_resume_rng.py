"""Resuming the built-in loop restores the random state: a model that draws random numbers in its
forward (dropout) ends where the uninterrupted run ends. Library level: train_model with a real
SIGINT, a real checkpoint file and TrainConfig(resume=...)."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from fxprune.checkpoint import TrainingInterrupted, read_checkpoint
from fxprune.images import write_image
from fxprune.train import TrainConfig, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STEPS, STOP_AFTER = 6, 3


class _Dropped(nn.Module):
    """conv → dropout(0.5) → conv: every training forward draws a new mask from torch's RNG."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.drop, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Dropout(0.5), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.drop(torch.relu(self.a(x))))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """One 40x40 noise image: patches of 16 are cut from it at seeded places."""
    folder = tmp_path_factory.mktemp("images")
    write_image(folder / "noise.png", np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return str(folder)


def _config(images: str, **extra) -> TrainConfig:
    return TrainConfig(data=images, task="denoise", steps=STEPS, patch_size=16, batch_size=2, lr=1e-2,
                       progress=False, device="cpu", **extra)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_run_stopped_by_sigint_and_resumed_ends_where_the_uninterrupted_run_ends(images, tmp_path):
    straight = _Dropped()
    train_model(straight, _config(images), STEPS, scale=1)

    interrupted = _Dropped()
    folder = tmp_path / "run"

    def stop_after_a_few_steps() -> None:
        stop_after_a_few_steps.calls += 1
        if stop_after_a_few_steps.calls == STOP_AFTER:
            os.kill(os.getpid(), signal.SIGINT)  # the loop finishes this step, writes, and stops

    stop_after_a_few_steps.calls = 0
    with pytest.raises(TrainingInterrupted):
        train_model(interrupted, _config(images, checkpoint_dir=str(folder)), STEPS, scale=1,
                    after_step=stop_after_a_few_steps)
    assert read_checkpoint(folder)["step"] == STOP_AFTER

    resumed = _Dropped()  # a fresh process would start from the same initial weights
    train_model(resumed, _config(images, resume=str(folder)), STEPS, scale=1)
    # every step's dropout mask must be the one the straight run drew: any other mask moves the
    # weights by ~lr = 1e-2; the same masks leave only float32 rounding (identical on one machine)
    for name, value in _weights(straight).items():
        torch.testing.assert_close(_weights(resumed)[name], value, rtol=1e-6, atol=1e-7, msg=name)
