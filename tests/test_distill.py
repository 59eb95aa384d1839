"""Learning from the original model: distill_loss by hand, the built-in loop pulling a student to its
teacher (with and without HR images), fidelity evaluation, compress's teacher being the untouched
original, and resume with a teacher (real SIGINT, real checkpoint file) equal to a straight run."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

import fxprune
from fxprune.checkpoint import TrainingInterrupted, read_checkpoint
from fxprune.data import InputPatches
from fxprune.errors import CheckpointError, SpecError
from fxprune.images import write_image
from fxprune.models import build
from fxprune.train import TrainConfig, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Tiny(nn.Module):
    """conv → ReLU → conv → PixelShuffle(2): a ×2 SR net small enough to train in a test."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.up = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.b(torch.relu(self.a(x))))


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory) -> str:
    """Smooth random images of odd sizes (one too small to downscale, one too small for a patch)."""
    folder = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(1)
    for k, (h, w) in enumerate([(37, 53), (45, 31), (13, 21), (7, 9)]):
        coarse = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
        image = np.kron(coarse, np.ones((4, 4, 1)))[:h, :w]
        write_image(folder / f"{k}.png", image.astype(np.uint8))
    return str(folder)


@pytest.fixture(scope="module")
def hr_images(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(2)
    for k in range(2):
        write_image(folder / f"{k}.png", rng.integers(0, 256, (40, 44, 3), dtype=np.uint8))
    return str(folder)


def _config(data: str, **extra) -> TrainConfig:
    base = dict(data=data, steps=40, patch_size=8, batch_size=4, lr=5e-3, progress=False, device="cpu")
    return TrainConfig(**{**base, **extra})


def _error_to(model: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x) - teacher(x)).abs().mean())


# --------------------------------------------------------------------------- distill_loss


def test_distill_loss_by_hand():
    student = torch.tensor([[0.5, -1.0], [2.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 1.0], [2.5, 0.0]], requires_grad=True)
    loss = fxprune.distill_loss(student, teacher, weight=2.0)
    # |0.5| + |-2| + |-0.5| + 0 = 3, mean 0.75, times 2
    torch.testing.assert_close(loss, torch.tensor(1.5), rtol=0, atol=1e-7)
    loss.backward()
    torch.testing.assert_close(student.grad, torch.tensor([[0.5, -0.5], [-0.5, 0.0]]), rtol=0, atol=1e-7)
    assert teacher.grad is None  # the teacher's output is a target, never trained


@given(st.lists(st.floats(-4, 4), min_size=1, max_size=12), st.floats(0, 5))
def test_distill_loss_is_weight_times_mean_absolute_difference(values, weight):
    s = torch.tensor(values, dtype=torch.float64)
    t = torch.flip(s, (0,)) * 0.5 + 0.25
    expected = weight * sum(abs(a - b) for a, b in zip(s.tolist(), t.tolist())) / len(values)
    torch.testing.assert_close(fxprune.distill_loss(s, t, weight=weight).item(), expected, rtol=1e-9, atol=1e-12)


def test_distill_loss_refuses_bad_input():
    with pytest.raises(SpecError, match="shape"):
        fxprune.distill_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 8, 8))
    with pytest.raises(SpecError, match="weight"):
        fxprune.distill_loss(torch.zeros(2), torch.zeros(2), weight=-1.0)


def test_config_refuses_contradictions(odd_images):
    with pytest.raises(SpecError, match="targets"):
        TrainConfig(targets="gt")
    with pytest.raises(SpecError, match="teacher"):
        TrainConfig(targets="teacher", teacher=False)
    with pytest.raises(SpecError, match="teacher_weight"):
        TrainConfig(teacher_weight=-0.1)
    with pytest.raises(SpecError, match="no original model"):  # train_model alone does not know the original
        train_model(Tiny(0), _config(odd_images, targets="teacher", steps=1), 1, scale=2)


# --------------------------------------------------------------------------- the built-in loop


def test_input_patches_downscale_only_images_large_enough(odd_images):
    with pytest.warns(UserWarning, match="7x9"):
        data = InputPatches(odd_images, scale=2, patch_size=8, length=3)
    # 37x53 and 45x31 hold a 16-px HR patch: downscaled (modcropped, halved); 13x21 is used as it is
    assert [tuple(t.shape[-2:]) for t in data.lr] == [(18, 26), (22, 15), (13, 21)]
    assert len(data[0]) == 1 and tuple(data[0][0].shape) == (3, 8, 8)


def test_teacher_targets_need_no_hr_and_pull_the_student_to_the_teacher(odd_images):
    teacher, student = Tiny(0), Tiny(1)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    before = _error_to(student, teacher, x)
    with pytest.warns(UserWarning, match="skipping"):
        log = train_model(student, _config(odd_images, targets="teacher", teacher=teacher), 40, scale=2)
    after = _error_to(student, teacher, x)
    assert after < 0.5 * before, (before, after)
    # no HR anywhere: the evaluation is fidelity to the teacher, and says so by its keys
    assert set(log.final) == {"teacher_psnr", "teacher_ssim"} and log.final["teacher_psnr"] > 10
    assert all(p.grad is None for p in teacher.parameters())  # the config's teacher is copied, not trained


def test_teacher_weight_pulls_an_hr_run_toward_the_teacher(odd_images):
    """At equal steps on the same HR batches, a run with the teacher term ends nearer the teacher."""
    teacher = Tiny(0)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(6))
    errors = {}
    for weight in (0.0, 4.0):
        student = Tiny(1)
        with pytest.warns(UserWarning, match="skipping"):
            train_model(student, _config(odd_images, teacher=teacher, teacher_weight=weight), 40, scale=2)
        errors[weight] = _error_to(student, teacher, x)
    assert errors[4.0] < 0.8 * errors[0.0], errors


def test_compress_teaches_with_the_untouched_original(odd_images, hr_images):
    model = build("edsr", blocks=1, channels=8)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 12, 12)
    config = _config(odd_images, targets="teacher", steps=6, lr=1e-2, val_data=hr_images, patch_size=6)
    small = fxprune.compress(model, fxprune.Spec(ratio=0.5, round_to=1), (x,), train=config)
    assert model.training and all(p.requires_grad for p in model.parameters())  # the caller's model is not frozen
    for name, value in model.state_dict().items():  # the student was trained, the original was not
        torch.testing.assert_close(value, original[name], rtol=0, atol=0, msg=name)
    assert "psnr" in small.meta["fxprune"]["train"]["evals"][-1]  # val_data given: PSNR against its HR


# --------------------------------------------------------------------------- resume


def test_resume_with_a_teacher_equals_the_straight_run(odd_images, tmp_path):
    steps, stop_at = 6, 3
    teacher = Tiny(0)
    config = dict(teacher=teacher, teacher_weight=0.5, steps=steps)
    straight = Tiny(1)
    with pytest.warns(UserWarning):
        train_model(straight, _config(odd_images, **config), steps, scale=2)

    folder = tmp_path / "run"
    calls = []

    def stop() -> None:
        calls.append(1)
        if len(calls) == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.warns(UserWarning), pytest.raises(TrainingInterrupted):
        train_model(Tiny(1), _config(odd_images, checkpoint_dir=str(folder), **config), steps, scale=2, after_step=stop)
    payload = read_checkpoint(folder)
    assert payload["step"] == stop_at
    assert set(payload["state"]) == set(Tiny(1).state_dict())  # the student only; the teacher is a fingerprint
    assert isinstance(payload["distill"]["teacher"], str)

    with pytest.raises(CheckpointError, match="teacher"):
        train_model(Tiny(1), _config(odd_images, resume=str(folder), **{**config, "teacher": Tiny(2)}), steps, scale=2)
    resumed = Tiny(1)
    with pytest.warns(UserWarning):
        train_model(resumed, _config(odd_images, resume=str(folder), **config), steps, scale=2)
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=1e-6, atol=1e-7, msg=name)


# --------------------------------------------------------------------------- CLI flags


@pytest.mark.parametrize("flags, expected", [
    ([], (None, 1.0, "hr")),
    (["--teacher", "--teacher-weight", "0.25"], (True, 0.25, "hr")),
    (["--no-teacher"], (False, 1.0, "hr")),
    (["--targets", "teacher"], (None, 1.0, "teacher")),
])
def test_cli_flags_reach_the_train_config(flags, expected):
    from fxprune.cli import build_parser
    from fxprune.cli.compress import train_config

    args = build_parser().parse_args(["compress", "edsr", "-o", "out", "--finetune-steps", "2", *flags])
    config = train_config({}, args)
    assert (config.teacher, config.teacher_weight, config.targets) == expected


def test_cli_refuses_a_negative_teacher_weight():
    from fxprune.cli import build_parser
    from fxprune.cli.compress import train_config

    args = build_parser().parse_args(["compress", "edsr", "-o", "out", "--teacher-weight", "-1"])
    with pytest.raises(SpecError, match="teacher_weight"):
        train_config({}, args)
