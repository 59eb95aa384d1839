"""The reference model zoo: output shapes, torch.export capture with dynamic H/W, the registry."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.export import Dim

from fxprune.models import EDSR, ZOO, build, names
from fxprune.trace import without_fake_tensor_cache
from helpers import SMALL_ZOO_CONFIG, zoo_names

SR_SCALES = {"edsr": 2, "rcan": 2, "srresnet": 4, "carn": 2, "imdn": 2, "espcn": 3, "fsrcnn": 2,
             "swinir": 2, "swinir_windows": 2}
RESTORATION = {"nafnet", "dncnn", "vdsr", "unet", "restormer", "uformer", "restormer_unet"}
PADDED = {"nafnet", "unet", "swinir", "swinir_windows", "uformer", "restormer_unet"}  # models that pad H, W to a multiple internally


def _size(name: str) -> tuple[int, int]:
    # Padded models get sizes that are not multiples of their window / 2**levels.
    return (18, 22) if name in PADDED else (16, 20)


def _expected(name: str, h: int, w: int) -> tuple[int, int, int, int]:
    s = SR_SCALES.get(name, 1)
    return (1, 3, h * s, w * s)


def test_registry_covers_every_model():
    assert set(names()) == set(SR_SCALES) | RESTORATION
    assert names() == list(ZOO)


@pytest.mark.parametrize("name", names())
def test_forward_shape(name):
    torch.manual_seed(0)
    model = build(name).eval()
    h, w = _size(name)
    with torch.no_grad():
        y = model(torch.randn(1, 3, h, w))
    assert y.shape == _expected(name, h, w)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", zoo_names())
def test_export_dynamic_hw_matches_eager(name):
    torch.manual_seed(0)
    model = build(name, **SMALL_ZOO_CONFIG.get(name, {})).eval()  # the smaller configurations: the same op kinds
    x = torch.randn(1, 3, *_size(name))
    # torch's fake-tensor dispatch cache off, as fxprune's own torch.export call has it (an entry
    # costs more than the op it caches with symbolic sizes): restormer_unet 21 s -> 8 s, same program
    with without_fake_tensor_cache():
        ep = torch.export.export(copy.deepcopy(model).eval(), (x,), strict=False,
                                 dynamic_shapes=({2: Dim.AUTO, 3: Dim.AUTO},))
    exported = ep.module()
    # One size of the other padding kind than the export example (12 and 28 are multiples of 4).
    for h, w in [(12, 28), (13, 9)]:
        x2 = torch.randn(1, 3, h, w)
        with torch.no_grad():
            expected = model(x2)
            got = exported(x2)
        assert got.shape == _expected(name, h, w)
        torch.testing.assert_close(got, expected)


def test_build_unknown_name_raises_value_error_listing_names():
    with pytest.raises(ValueError) as info:
        build("nope")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "nope" in message
    for name in names():
        assert name in message


def test_build_passes_kwargs():
    model = build("edsr", blocks=1, channels=8, scale=3)
    assert len(model.body) == 2  # one ResBlock + the body's final conv
    assert model.head.out_channels == 8
    assert build("edsr", scale=3)(torch.randn(1, 3, 8, 8)).shape == (1, 3, 24, 24)


@pytest.mark.parametrize("upsampler", ["standard", "light"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_scales_and_upsamplers(scale, upsampler):
    model = EDSR(scale=scale, blocks=1, channels=8, upsampler=upsampler)
    y = model(torch.randn(1, 3, 10, 14))
    assert y.shape == (1, 3, 10 * scale, 14 * scale)
    convs = [m for m in model.tail if isinstance(m, torch.nn.Conv2d)]
    if upsampler == "light":
        assert len(convs) == 1 and convs[0].out_channels == 3 * scale * scale
    else:
        assert len(convs) == (3 if scale == 4 else 2) and convs[-1].out_channels == 3


@pytest.mark.parametrize("kwargs", [{"scale": 5}, {"scale": 1}, {"upsampler": "bicubic"}])
def test_edsr_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        EDSR(**kwargs)


@pytest.mark.parametrize("name,kwargs", [
    ("rcan", {"scale": 8}), ("carn", {"scale": 5}), ("swinir", {"scale": 6}),
    ("srresnet", {"scale": 3}), ("nafnet", {"enc_blocks": (1, 1), "dec_blocks": (1,)}),
    ("dncnn", {"depth": 2}), ("imdn", {"distill_ratio": 0.0}),
    ("swinir", {"channels": 30, "heads": 4}), ("restormer", {"channels": 15, "heads": 2}),
    ("restormer_unet", {"blocks": (1, 1)}), ("restormer_unet", {"blocks": (1, -1, 1)}),
    ("restormer_unet", {"refinement": 1.5}),
])
def test_invalid_options_raise_value_error(name, kwargs):
    with pytest.raises(ValueError):
        build(name, **kwargs)


def test_restormer_unet_has_its_block_counts():
    model = build("restormer_unet", blocks=(2, 0, 3), refinement=1)
    counts = {name: len(getattr(model, name)) for name in
              ("encoder1", "decoder1", "encoder2", "decoder2", "latent", "refine")}
    assert counts == {"encoder1": 2, "decoder1": 2, "encoder2": 0, "decoder2": 0, "latent": 3, "refine": 1}
    x = torch.randn(1, 3, 9, 11)
    assert model(x).shape == x.shape


def test_residual_models_are_identity_plus_correction():
    x = torch.randn(1, 3, 8, 8)
    for name, sign in [("dncnn", -1.0), ("vdsr", 1.0)]:
        model = build(name).eval()
        torch.testing.assert_close(model(x), x + sign * model.body(x))
