"""fxprune.save / fxprune.load: the .pt2 model file."""
from __future__ import annotations

import json
import zipfile

import pytest
import torch
from torch import nn

import fxprune
from fxprune.errors import CheckpointError
from fxprune.model_io import FORMAT_VERSION, read_metadata
from fxprune.models import build


@pytest.fixture(scope="module")
def compressed():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 24, 24)
    small = fxprune.compress(build("edsr", blocks=2, channels=16), fxprune.Spec(ratio=0.5), (x,))
    return small, x


@pytest.fixture(scope="module")
def saved(compressed, tmp_path_factory):
    small, x = compressed
    path = tmp_path_factory.mktemp("saved") / "edsr_small.pt2"
    assert fxprune.save(small, path, (x,), report={"method": "l1", "ratio": 0.5}) == path
    return path


def test_round_trip_of_compressed_model_at_another_size(compressed, saved):
    small, _ = compressed
    loaded = fxprune.load(saved)
    for shape in [(1, 3, 37, 53), (1, 3, 24, 24), (1, 3, 8, 100)]:
        y = torch.randn(shape)
        with torch.no_grad():
            assert torch.equal(loaded(y), small(y)), shape
    if read_metadata(saved)["dynamic_batch"]:  # where the sliced graph allows another batch size
        y = torch.randn(2, 3, 20, 28)
        with torch.no_grad():
            assert torch.equal(loaded(y), small(y))
    assert loaded.get_parameter("head.weight").shape == small.get_parameter("head.weight").shape
    assert fxprune.count_params(loaded) == fxprune.count_params(small)


def test_metadata(saved):
    meta = read_metadata(saved)
    assert meta["format"] == "fxprune-model" and meta["format_version"] == FORMAT_VERSION
    assert meta["fxprune_version"] == fxprune.__version__ and meta["torch_version"] == torch.__version__
    assert meta["example_input_shape"] == [1, 3, 24, 24]
    assert meta["dynamic_hw"] is True and isinstance(meta["dynamic_batch"], bool)
    assert meta["report"] == {"method": "l1", "ratio": 0.5}
    assert fxprune.load(saved).meta["fxprune_saved"] == meta


def test_loaded_model_is_inference_only(saved):
    loaded = fxprune.load(saved)
    assert loaded.eval() is loaded and loaded.train(False) is loaded
    with pytest.raises(NotImplementedError, match="inference graph"):
        loaded.train()


def test_plain_module_gets_dynamic_batch(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    path = fxprune.save(net, tmp_path / "net.pt2", torch.randn(1, 3, 16, 16))
    assert net.training and net[1].training  # flags restored; saved in eval mode
    meta = read_metadata(path)
    assert meta["dynamic_batch"] and meta["dynamic_hw"]
    y = torch.randn(3, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(fxprune.load(path)(y), net.eval()(y))


def test_model_without_dynamic_sizes_is_saved_static(tmp_path):
    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.randn(1, 3, 8, 8))  # broadcasting pins H and W to 8

        def forward(self, x):
            return x + self.bias

    path = fxprune.save(Fixed(), tmp_path / "fixed.pt2", torch.randn(1, 3, 8, 8))
    assert read_metadata(path)["dynamic_hw"] is False
    assert fxprune.load(path)(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_truncated_file_raises_checkpoint_error(saved, tmp_path):
    bad = tmp_path / "truncated.pt2"
    data = saved.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt2.*truncated or corrupt.*fxprune.save"):
        fxprune.load(bad)


def test_corrupt_member_raises_checkpoint_error(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("weight_0"))
    local_extra = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    offset = info.header_offset + 30 + len(info.filename.encode()) + local_extra + 4
    data[offset] ^= 0xFF  # a byte of the weight data: only the CRC can tell
    bad = tmp_path / "flipped.pt2"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="flipped.pt2"):
        fxprune.load(bad)


def test_missing_garbage_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no fxprune model file at .*missing.pt2.*fxprune.save"):
        fxprune.load(tmp_path / "missing.pt2")
    (tmp_path / "garbage.pt2").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="garbage.pt2"):
        fxprune.load(tmp_path / "garbage.pt2")
    program = torch.export.export(nn.Conv2d(3, 3, 1), (torch.randn(1, 3, 4, 4),))
    torch.export.save(program, str(tmp_path / "foreign.pt2"))
    with pytest.raises(CheckpointError, match="foreign.pt2' is a zip archive but not an fxprune model file"):
        fxprune.load(tmp_path / "foreign.pt2")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "pickle.pt2")
    with pytest.raises(CheckpointError, match="not an fxprune model file"):
        fxprune.load(tmp_path / "pickle.pt2")


def test_newer_format_version_asks_for_an_upgrade(saved, tmp_path):
    newer = tmp_path / "newer.pt2"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(newer, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("extra/fxprune.json"):
                meta = json.loads(data)
                meta["format_version"] = FORMAT_VERSION + 1
                data = json.dumps(meta).encode()
            target.writestr(info, data)
    with pytest.raises(CheckpointError, match="upgrade fxprune"):
        fxprune.load(newer)


def test_save_validation(tmp_path):
    net = nn.Conv2d(3, 3, 1)
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="end in .pt2"):
        fxprune.save(net, tmp_path / "net.pth", x)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fxprune.save(lambda t: t, tmp_path / "f.pt2", x)
    with pytest.raises(TypeError, match="JSON-serializable"):
        fxprune.save(net, tmp_path / "r.pt2", x, report={"bad": object()})
    assert not (tmp_path / "r.pt2").exists() and not list(tmp_path.glob(".*partial"))
