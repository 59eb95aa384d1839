"""A compressed model runs at every input size the original runs at (pad-to-multiple-then-crop
forwards included), and a graph that cannot is refused before any training, naming the size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxprune
from fxprune.masking import masked_model
from fxprune.models import build
from fxprune.record import keep_of
from fxprune.train import train_model
from fxprune.verify import verify_sizes

from cli_checks import in_process

SPEC = fxprune.Spec(ratio=0.5, round_to=1)
ODD, PRIME = (5, 3), (37, 41)
# sliced and masked graphs differ in summation order only (float32 on CPU)
TOL = dict(rtol=1e-4, atol=1e-5)


class PadCropUNet(nn.Module):
    """The usual hand-written pattern: pad to a multiple of 4, a two-level U-Net, crop with a slice."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.down1 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * width, 2 * width, 2, stride=2)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4))
        e1 = F.relu(self.head(padded))
        e2 = F.relu(self.down1(e1))
        d2 = F.relu(self.up2(F.relu(self.down2(e2)))) + e2
        d1 = F.relu(self.up1(d2)) + e1
        return self.tail(d1)[..., :h, :w] + x  # the crop is read again: its layout must not be guarded


class SizeBranch(nn.Module):
    """A forward with a real Python branch on the width: its graph cannot run at other widths."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.a(x))
        return self.b(y * 2 if x.shape[-1] % 4 == 0 else y)


class FixedWidth(SizeBranch):
    """Export fixes the width at the example's (16): the graph trains on 16×16 patches only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)) * (2 if x.shape[-1] == 16 else 1))


def _sizes(example: tuple[int, int]) -> list[tuple[int, int]]:
    return [example, (example[0] + ODD[0], example[1] + ODD[1]), PRIME]


def _check_every_size(model: nn.Module, example: tuple[int, int]) -> None:
    """Compress at ``example``, then compare with the masked dense model at three sizes."""
    model = model.eval()
    torch.manual_seed(0)
    x = torch.rand(1, 3, *example)
    small = fxprune.compress(model, SPEC, (x,))
    graph = fxprune.analyze(model, (x,))
    keep = keep_of(small.meta["fxprune"], graph)
    assert any((~units).any() for units in keep.values())  # something was pruned
    masked = masked_model(graph, keep).eval()
    for h, w in _sizes(example):
        other = torch.rand(2, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(small(other), masked(other), **TOL)


@pytest.mark.parametrize("example", [(32, 32), (37, 51)])
def test_a_hand_written_pad_and_crop_unet_runs_at_every_size(example):
    _check_every_size(PadCropUNet(), example)


# The smallest widths each allows. restormer_unet (a minute of export on 2 busy cores), swinir_windows and
# uformer are compressed in tests/test_window_models.py, where verify now checks every result at
# example + (5, 3) and 37×41 against its masked reference.
ZOO_PAD_CROP = {
    "nafnet": dict(width=4),
    "unet": dict(channels=4, depth=1),
}


@pytest.mark.parametrize("name", sorted(ZOO_PAD_CROP))
def test_zoo_pad_and_crop_models_run_at_every_size(name):
    _check_every_size(build(name, **ZOO_PAD_CROP[name]), (8, 8))


class NarrowCrop(nn.Module):
    """A crop by ``narrow`` (a view the capture keeps): only its recorded layout could guard."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4))
        return self.conv(padded).narrow(2, 0, h).narrow(3, 0, w)


def test_a_view_crop_captures_without_a_layout_guard():
    model = NarrowCrop().eval()
    graph = fxprune.trace(model, torch.rand(1, 3, 32, 32))
    for h, w in _sizes((32, 32)):
        other = torch.rand(1, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(graph(other), model(other), **TOL)


class PastTheEnd(nn.Module):
    """``x[..., :w // 2 * 2 + 1]``: within the tensor at odd widths, past its end at even ones (clamped)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] // 2 * 2 + 1] * 2


def test_a_crop_past_the_end_is_never_padded():
    model = PastTheEnd()
    graph = fxprune.trace(model, torch.rand(1, 3, 9, 9))
    other = torch.rand(1, 3, 8, 8)
    with pytest.raises(AssertionError, match="Guard failed"):  # refused; a pad would add a zero column
        graph(other)


def test_the_saved_file_runs_at_every_size(tmp_path):
    model, x = PadCropUNet().eval(), torch.rand(1, 3, 32, 32)
    small = fxprune.compress(model, SPEC, (x,))
    loaded = fxprune.load(fxprune.save(small, tmp_path / "small.pt2", (x,)))
    for h, w in _sizes((32, 32)):
        other = torch.rand(1, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(loaded(other), small(other), **TOL)


def test_prepare_refuses_a_graph_that_does_not_run_at_an_odd_size():
    x = torch.rand(1, 3, 16, 16)
    model = SizeBranch().eval()
    assert model(torch.rand(1, 3, 21, 19)).shape == (1, 3, 21, 19)  # the original runs there
    spec = fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=4)
    with pytest.raises(fxprune.VerificationError, match=r"fxprune\.prepare: .* shape 1×3×21×19 .*before any training"):
        fxprune.prepare(model, spec, (x,))
    with pytest.raises(fxprune.VerificationError, match=r"1×3×21×19"):
        fxprune.compress(model, SPEC, (x,))


class Doubles(nn.Module):
    def __init__(self, at_other_sizes: float = 2.0):
        super().__init__()
        self.factor = at_other_sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (2.0 if x.shape[-1] == 16 else self.factor)


def test_verify_sizes_names_the_size_where_values_differ():
    x = torch.rand(1, 3, 16, 16)
    verify_sizes(Doubles(), Doubles(), x)  # the same everywhere: passes
    with pytest.raises(fxprune.VerificationError, match=r"shape 1×3×21×19 .*differ by .* at the example they agree"):
        verify_sizes(Doubles(), Doubles(at_other_sizes=3.0), x)


def test_the_training_loop_refuses_an_evaluation_size_before_step_1():
    x = torch.rand(2, 3, 16, 16)
    graph = fxprune.trace(FixedWidth().eval(), (x,))
    before = {name: p.detach().clone() for name, p in graph.named_parameters()}
    config = fxprune.TrainConfig(steps=2, task="denoise", batch_size=2, patch_size=16, progress=False)
    with pytest.raises(fxprune.VerificationError, match=r"evaluation image of size \d+×\d+.*before step 1"):
        train_model(graph, config, 2, 1)
    for name, p in graph.named_parameters():  # nothing trained
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)


def test_cli_compress_of_a_pad_crop_model_saves_a_file_that_runs_at_another_size(tmp_path):
    """Through the same fxprune.cli.main as the executable (the saved file is checked, not the process)."""
    out = tmp_path / "out"
    result = in_process("compress", "unet", "--channels", "4", "--kwargs", '{"depth": 1}', "--ratio", "0.5",
                        "--round-to", "1", "--input-size", "8", "8", "-q", "-o", str(out))
    assert result.returncode == 0, result.stderr
    small = fxprune.load(out / "model.pt2")
    dense = build("unet", channels=4, depth=1).eval()
    for h, w in [(37, 35), PRIME]:
        y = small(torch.rand(1, 3, h, w))
        assert y.shape == dense(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)
        assert torch.isfinite(y).all()
