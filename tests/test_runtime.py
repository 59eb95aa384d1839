"""fxprune.runtime: tiled inference (torch and ONNX Runtime), sessions, image IO."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fxprune
from fxprune.errors import InferenceError
from fxprune.models import build
from fxprune.onnx import export_onnx
from fxprune.images import read_image, write_image
from fxprune.runtime import open_session, run_tiled, session_tile
from fxprune.tiling import tile_windows


def whole(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """The reference: one forward on the whole image, HxWxC float32."""
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float())
    return out[0].permute(1, 2, 0).numpy()


def receptive_radius(model: nn.Module, size: int = 48) -> int:
    """Measured receptive-field radius in input px: the extent of the input gradient of a centre output pixel."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    out = model(x)
    scale = out.shape[2] // size
    centre = size // 2
    out[0, :, centre * scale, centre * scale].sum().backward()
    rows, cols = np.nonzero(x.grad[0].abs().sum(0).numpy())
    return int(max(abs(rows - centre).max(), abs(cols - centre).max()))


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def assert_same(actual: np.ndarray, expected: np.ndarray, atol: float = 1e-5) -> None:
    torch.testing.assert_close(torch.from_numpy(actual), torch.from_numpy(expected), atol=atol, rtol=0)


@pytest.fixture(scope="module")
def edsr() -> nn.Module:
    torch.manual_seed(0)
    return build("edsr", blocks=2, channels=16, scale=2).eval()


@pytest.fixture(scope="module")
def fsrcnn() -> nn.Module:
    torch.manual_seed(1)
    return build("fsrcnn", scale=3, d=16, s=8, m=2).eval()


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory, edsr):
    """One dynamic-H/W and one static (32x40) ONNX export of the EDSR, shared by the session tests."""
    folder = tmp_path_factory.mktemp("onnx")
    dynamic = export_onnx(edsr, folder / "edsr.onnx", torch.randn(1, 3, 24, 24)).path
    static = export_onnx(edsr, folder / "edsr_static.onnx", torch.randn(1, 3, 32, 40), dynamic_hw=False,
                         check=False).path
    return dynamic, static


# ---------------------------------------------------------------------------- tile geometry
@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 400), tile=st.integers(1, 96), overlap=st.integers(0, 40))
def test_windows_partition_the_axis_with_context(length, tile, overlap):
    if tile <= 2 * overlap:
        with pytest.raises(ValueError, match="must be larger than 2 \\* overlap"):
            tile_windows(length, tile, overlap)
        return
    windows = tile_windows(length, tile, overlap)
    assert windows[0].core_start == 0 and windows[-1].core_stop == length
    for before, after in zip(windows, windows[1:]):
        assert before.core_stop == after.core_start  # cores partition the axis, no gap, no overlap
    for w in windows:
        assert 0 <= w.start <= w.core_start < w.core_stop <= w.stop <= length
        assert w.stop - w.start == min(tile, length)  # every input tile has the same size
        assert w.core_start - w.start >= overlap or w.start == 0
        assert w.stop - w.core_stop >= overlap or w.stop == length


# ---------------------------------------------------------------------------- torch modules
def test_zoo_models_have_receptive_field_within_the_overlap(edsr, fsrcnn):
    assert receptive_radius(edsr) <= 16
    assert receptive_radius(fsrcnn) <= 16


@pytest.mark.parametrize("name", ["edsr", "fsrcnn"])
def test_tiled_equals_whole_image_on_odd_size(name, request):
    model = request.getfixturevalue(name)
    x = image(67, 131)
    tiled = run_tiled(model, x, tile=48, overlap=16)
    assert_same(tiled, whole(model, x))


def test_tile_larger_than_image_is_one_whole_run(edsr):
    x = image(30, 21, seed=3)
    assert_same(run_tiled(edsr, x, tile=128, overlap=16), whole(edsr, x), atol=1e-6)


def test_uint8_in_uint8_out(edsr):
    x = (image(40, 70, seed=4) * 255).astype(np.uint8)
    out = run_tiled(edsr, x, scale=2, tile=40, overlap=16)
    expected = np.clip(np.rint(whole(edsr, x.astype(np.float32) / 255) * 255), 0, 255)
    assert out.dtype == np.uint8 and out.shape == (80, 140, 3)
    assert np.abs(out.astype(np.int16) - expected).max() <= 1


def _small_net(scale: int) -> nn.Module:
    """Receptive-field radius 2 in input px (two 3x3 convs), then PixelShuffle(scale)."""
    torch.manual_seed(scale)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
                         nn.PixelShuffle(scale)).eval()


NETS = {scale: _small_net(scale) for scale in (1, 2, 3)}


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 70), width=st.integers(1, 70), core=st.integers(1, 40), overlap=st.integers(2, 6),
       scale=st.sampled_from([1, 2, 3]))
def test_random_sizes_and_tiles(height, width, core, overlap, scale):
    net = NETS[scale]
    x = image(height, width, seed=height * 100 + width)
    tiled = run_tiled(net, x, tile=core + 2 * overlap, overlap=overlap)
    assert tiled.shape == (height * scale, width * scale, 3)
    assert_same(tiled, whole(net, x))


def test_non_square_tile_and_explicit_scale(edsr):
    x = image(50, 90, seed=5)
    assert_same(run_tiled(edsr, x, scale=2, tile=(40, 64), overlap=16), whole(edsr, x))


def test_input_validation(edsr):
    x = image(20, 20)
    with pytest.raises(ValueError, match="scale=3 but the model maps"):
        run_tiled(edsr, x, scale=3)
    with pytest.raises(ValueError, match="tile \\(32\\) must be larger than 2 \\* overlap"):
        run_tiled(edsr, x, tile=32, overlap=16)
    with pytest.raises(TypeError, match="uint8 or float"):
        run_tiled(edsr, x.astype(np.int32))
    with pytest.raises(ValueError, match="HxWxC"):
        run_tiled(edsr, np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(TypeError, match="callable"):
        run_tiled(42, x)


def test_non_integer_scale_is_reported():
    down = nn.Conv2d(3, 3, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match="not an integer upscaling"):
        run_tiled(down, image(20, 20))


# ---------------------------------------------------------------------------- ONNX Runtime
def test_session_tiled_equals_session_whole_and_torch(onnx_files, edsr):
    session = open_session(onnx_files[0], threads=1)
    x = image(67, 131, seed=6)
    tiled = run_tiled(session, x, tile=48, overlap=16)
    assert_same(tiled, run_tiled(session, x, tile=256, overlap=16))
    assert_same(tiled, whole(edsr, x), atol=1e-4)
    assert session_tile(session, 48) == 48


def test_static_session_uses_its_fixed_size(onnx_files, edsr):
    session = open_session(onnx_files[1])
    tile = session_tile(session, 128)
    assert tile == (32, 40)
    x = image(50, 70, seed=7)
    assert_same(run_tiled(session, x, tile=tile, overlap=8), whole(edsr, x), atol=1e-4)
    with pytest.raises(InferenceError, match="ONNX Runtime failed on a tile of shape"):
        run_tiled(session, image(20, 20), tile=tile, overlap=8)  # smaller than the fixed size


def test_open_session_errors(tmp_path, onnx_files):
    with pytest.raises(InferenceError, match="no ONNX model file at .*missing.onnx"):
        open_session(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    data = onnx_files[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InferenceError, match="cannot open the ONNX model .*truncated.onnx"):
        open_session(truncated)
    with pytest.raises(ValueError, match="threads"):
        open_session(onnx_files[0], threads=0)
    assert isinstance(fxprune.InferenceError("x"), fxprune.FxpruneError)


def test_default_providers_end_with_cpu(onnx_files):
    assert open_session(onnx_files[0]).get_providers()[-1] == "CPUExecutionProvider"


# ---------------------------------------------------------------------------- image IO
def test_png_round_trip_and_conversions(tmp_path):
    from PIL import Image

    rgb = (image(9, 13) * 255).astype(np.uint8)
    write_image(tmp_path / "a.png", rgb)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.png")
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (9, 13, 3) and np.array_equal(gray[:, :, 1], rgb[:, :, 0])
    Image.fromarray(np.dstack([rgb, np.full((9, 13), 7, np.uint8)])).save(tmp_path / "rgba.png")
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgb)
    write_image(tmp_path / "f.png", np.array([[[-0.5, 0.5, 2.0]]], np.float32))
    assert read_image(tmp_path / "f.png").tolist() == [[[0, 128, 255]]]


def test_image_io_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file at .*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(ValueError, match="cannot read the image .*text.png"):
        read_image(tmp_path / "text.png")
    with pytest.raises(ValueError, match="HxW"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="cannot write the image"):
        write_image(tmp_path / "x.unknownext", np.zeros((2, 2, 3), np.uint8))
