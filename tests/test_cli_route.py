"""``fxprune route`` and ``fxprune infer --beta``, run for real in subprocesses on small real photos."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
import yaml

import fxprune
from fxprune.data import demo_images
from fxprune.images import read_image, write_image


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fxprune", *args], capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess, command: str, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fxprune {command}: error: ") and text in lines[0], result.stderr


def small_photos(folder, seed: int) -> str:
    """Three 96x96 crops of the bundled photos: enough windows, cheap degradations."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i, image in enumerate(demo_images("train")[:3]):
        y, x = (int(rng.integers(0, n - 96)) for n in image.shape[:2])
        write_image(folder / f"{i}.png", image[y:y + 96, x:x + 96])
    return str(folder)


@pytest.fixture(scope="module")
def routed_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("route")
    spec = {
        "variants": [{"method": "l1", "ratio": 0.5, "round_to": 4}],
        "fallback": "bicubic", "patch": 8, "context": 4, "betas": [0, 0.5, 5],
        "estimator": {"steps": 30, "windows": 64, "held_out": 32, "data": small_photos(root / "train", 0),
                      "val_data": small_photos(root / "val", 1)},
    }
    (root / "variants.yaml").write_text(yaml.safe_dump(spec))
    result = run("route", "edsr", "--blocks", "1", "--channels", "16", "--spec", str(root / "variants.yaml"),
                 "-o", str(root / "out"), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_route_writes_model_and_report(routed_dir):
    out = routed_dir / "out"
    for name in ("routed.onnx", "report.md", "psnr_vs_macs.png", "route_map.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| l1-0.5 |" in report and "| bicubic |" in report and "Spearman" in report
    assert "| routed | 5 |" in report and "| oracle | 0 |" in report and "| laplacian | 0.5 |" in report


def test_infer_with_beta_prints_routes_and_macs(routed_dir, tmp_path):
    image = read_image(routed_dir / "val" / "0.png")[:45, :61]
    write_image(tmp_path / "in.png", image)
    result = run("infer", str(routed_dir / "out" / "routed.onnx"), str(tmp_path / "in.png"), str(tmp_path / "o.png"),
                 "--beta", "0.5", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "routes: l1-0.5 " in result.stdout and "bicubic" in result.stdout and "MACs/pixel" in result.stdout
    assert read_image(tmp_path / "o.png").shape == (90, 122, 3)


def test_beta_errors(routed_dir, tmp_path):
    write_image(tmp_path / "in.png", np.zeros((20, 20, 3), np.uint8))
    one_line_error(run("infer", str(routed_dir / "out" / "routed.onnx"), str(tmp_path / "in.png"),
                       str(tmp_path / "o.png")), "infer", "pass --beta")
    plain = fxprune.export_onnx(torch.nn.Conv2d(3, 3, 3, padding=1), tmp_path / "plain.onnx",
                                torch.rand(1, 3, 8, 8), check=False).path
    one_line_error(run("infer", str(plain), str(tmp_path / "in.png"), str(tmp_path / "o.png"), "--beta", "1"),
                   "infer", "--beta applies to routed models")


@pytest.mark.parametrize("content, field", [
    ({"variants": [{"ratio": 0.5}], "blend": True}, "'blend'"),
    ({"variants": []}, "'variants'"),
    ({"variants": [{"ratio": 0.5}], "patch": 0}, "'patch'"),
    (None, "no routing spec file"),
])
def test_route_spec_errors(tmp_path, content, field):
    spec = tmp_path / "variants.yaml"
    if content is not None:
        spec.write_text(yaml.safe_dump(content))
    one_line_error(run("route", "edsr", "--blocks", "1", "--channels", "16", "--spec", str(spec), "-o",
                       str(tmp_path / "out")), "route", field)
