"""``fxprune export`` and ``fxprune infer`` on a real photo: infer runs the real executable, the other
commands go through the same :func:`fxprune.cli.main` in-process (their files and output are checked)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fxprune
from fxprune.models import build
from fxprune.images import read_image, write_image

from cli_checks import in_process, main_error, run

skimage = pytest.importorskip("skimage", reason="scikit-image provides the sample photo")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A compressed EDSR saved as .pt2, exported to ONNX by the CLI, and a 75x101 crop of a real photo."""
    from skimage.transform import resize

    folder = tmp_path_factory.mktemp("cli_runtime")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 24, 24)
    small = fxprune.compress(build("edsr", blocks=2, channels=16, scale=2), fxprune.Spec(ratio=0.5), (x,))
    fxprune.save(small, folder / "small.pt2", (x,))
    photo = skimage.data.astronaut()[0:300, 100:500]  # the face and the flag: edges and flat regions
    photo = (resize(photo, (75, 101), anti_aliasing=True) * 255).round().astype(np.uint8)
    write_image(folder / "in.png", photo)
    result = in_process("export", str(folder / "small.pt2"), "-o", str(folder / "small.onnx"))
    assert result.returncode == 0, result.stderr
    return folder, small, result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_export_saved_model_prints_path_opset_parity_and_size(work):
    folder, _, result = work
    out = result.stdout
    assert f"wrote {folder / 'small.onnx'}" in out
    assert "opset 17" in out and "dynamic height/width" in out and " MB (" in out
    assert "ONNX Runtime vs PyTorch: max abs error" in out and "1x3x" in out  # checked at other sizes
    assert (folder / "small.onnx").stat().st_size > 1000


def test_infer_matches_pytorch_on_a_photo(work):
    folder, small, _ = work
    result = run("infer", str(folder / "small.onnx"), str(folder / "in.png"), str(folder / "out.png"),
                 "--tile", "48", "--overlap", "16", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "75x101 (HxW)" in result.stdout and "150x202 (HxW), scale 2" in result.stdout
    assert "tile(s) of 48x48 px with 16 px overlap" in result.stdout and " s" in result.stdout
    photo, out = read_image(folder / "in.png"), read_image(folder / "out.png")
    assert out.shape == (150, 202, 3)
    with torch.no_grad():
        reference = small(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)[0]
    expected = np.clip(np.rint(reference.permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)
    diff = np.abs(out.astype(np.int16) - expected)
    assert diff.max() <= 1 and psnr(out, expected) > 40, (diff.max(), psnr(out, expected))


def test_export_zoo_model_and_analyze_saved_model(work, tmp_path):
    folder, _, _ = work
    result = in_process("export", "espcn", "--scale", "3", "--input-size", "20", "24", "-o", str(tmp_path / "e.onnx"))
    assert result.returncode == 0, result.stderr
    assert "opset 17" in result.stdout and (tmp_path / "e.onnx").is_file()
    analyzed = in_process("analyze", str(folder / "small.pt2"))  # every command takes a saved model file
    assert analyzed.returncode == 0, analyzed.stderr
    assert "coupled" in analyzed.stdout


def test_missing_and_corrupt_files_are_one_line_errors(work, tmp_path, capsys):
    """Through the same main() as the executable (whose exit status test_infer_matches_pytorch_on_a_photo checks)."""
    folder, _, _ = work
    main_error(["infer", str(tmp_path / "no.onnx"), str(folder / "in.png"), str(tmp_path / "o.png")], capsys,
               "no ONNX model file at")
    data = (folder / "small.onnx").read_bytes()
    (tmp_path / "bad.onnx").write_bytes(data[: len(data) // 3])
    main_error(["infer", str(tmp_path / "bad.onnx"), str(folder / "in.png"), str(tmp_path / "o.png")], capsys,
               "cannot open the ONNX model")
    assert not (tmp_path / "o.png").exists()
    (tmp_path / "bad.pt2").write_bytes(b"not a model")
    main_error(["analyze", str(tmp_path / "bad.pt2")], capsys, "bad.pt2' is not a readable fxprune model")


def test_in_process_errors(work, tmp_path, capsys):
    """The same main() as the executable, without another interpreter start-up per case."""
    folder, _, _ = work
    cases = [
        (["export", str(folder / "small.pt2"), "--blocks", "4", "-o", str(tmp_path / "x.onnx")],
         "do not apply to the saved model file"),
        (["export", str(tmp_path / "no.pt2"), "-o", str(tmp_path / "x.onnx")], "no fxprune model file at"),
        (["export", "edsr", "-o", str(tmp_path / "x.txt")], "must end in .onnx"),
        (["infer", str(folder / "small.onnx"), str(folder / "in.png"), str(tmp_path / "o.png"), "--threads", "0"],
         "threads must be a positive int"),
        (["infer", str(folder / "small.onnx"), str(tmp_path / "no.png"), str(tmp_path / "o.png")], "no image file at"),
        (["infer", str(folder / "small.onnx"), str(folder / "in.png"), str(tmp_path / "o.png"), "--tile", "32"],
         "must be larger than 2 * overlap"),
    ]
    for argv, text in cases:
        main_error(argv, capsys, text)


def test_help(capsys):
    from fxprune.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["infer", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--tile" in out and "--threads" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--opset" in out and "--static" in out and "--input-size" in out
