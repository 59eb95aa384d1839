"""``fxprune route`` and ``fxprune infer --beta`` on small real photos: stopped by real signals and
resumed in subprocesses of the real executable, ``infer --beta`` on it too; the complete runs whose
output (not process) the tests check go through the same ``fxprune.cli.main`` in-process."""
from __future__ import annotations

import math
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import fxprune
from fxprune.checkpoint import read_checkpoint
from fxprune.data import demo_images
from fxprune.images import read_image, write_image
from fxprune.runtime import RoutedSession

from cli_checks import in_process, main_error, run


def small_photos(folder, seed: int) -> str:
    """Three 96x96 crops of the bundled photos: enough windows, cheap degradations."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i, image in enumerate(demo_images("train")[:3]):
        y, x = (int(rng.integers(0, n - 96)) for n in image.shape[:2])
        write_image(folder / f"{i}.png", image[y:y + 96, x:x + 96])
    return str(folder)


MODEL = ["edsr", "--blocks", "1", "--channels", "16"]


@pytest.fixture(scope="module")
def routed_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("route")
    spec = {
        "variants": [{"method": "l1", "ratio": 0.5, "round_to": 4}],
        "fallback": "bicubic", "patch": 8, "context": 4, "betas": [0, 0.5, 5],
        # enough estimator steps, checkpointed often, for a signal to land mid-training (test_route_resumes...)
        "estimator": {"steps": 120, "checkpoint_every": 4, "windows": 64, "held_out": 32,
                      "data": small_photos(root / "train", 0), "val_data": small_photos(root / "val", 1)},
    }
    (root / "variants.yaml").write_text(yaml.safe_dump(spec))
    result = in_process("route", *MODEL, "--spec", str(root / "variants.yaml"), "-o", str(root / "out"), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _signal_when(command: list[str], ready, signum: int, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``fxprune command``, send ``signum`` once ``ready()`` holds, and wait for it to exit."""
    process = subprocess.Popen(["fxprune", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signum)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _estimator_step(folder) -> int:
    try:
        state = read_checkpoint(folder)
    except fxprune.CheckpointError:
        return 0
    return (state.get("estimator") or {}).get("step", 0)


def test_route_resumes_after_signals_and_equals_an_uninterrupted_run(routed_dir, tmp_path, capsys):
    out = tmp_path / "out"
    command = ["route", *MODEL, "--spec", str(routed_dir / "variants.yaml"), "-o", str(out), "--quiet"]
    first = _signal_when(command, lambda: (out / "checkpoint" / "variant-0.pt2").is_file(), signal.SIGINT)
    assert first.returncode == 130, first.stdout + first.stderr
    line = first.stderr.strip().splitlines()
    assert len(line) == 1 and "stopped by SIGINT" in line[0] and f"--resume {out}" in line[0], first.stderr
    main_error(command, capsys, f"--resume {out}")  # the same command again (in-process): offer to resume
    resume = ["route", *MODEL, "--spec", str(routed_dir / "variants.yaml"), "--resume", str(out), "--quiet"]
    second = _signal_when(resume, lambda: _estimator_step(out / "checkpoint") >= 8, signal.SIGTERM)
    assert second.returncode == 143, second.stdout + second.stderr
    assert "resuming from" in second.stdout and "stopped by SIGTERM while training the estimator" in second.stderr
    assert "Traceback" not in second.stderr
    third = in_process(*resume)  # the rest of the run (no signal): the same main() in-process
    assert third.returncode == 0, third.stdout + third.stderr
    assert "estimator step" in third.stdout and not (out / "checkpoint").exists()
    image = read_image(routed_dir / "val" / "1.png")[:50, :61]
    for beta in (0.0, 0.5):
        expected, expected_stats = RoutedSession(routed_dir / "out" / "routed.onnx", threads=1).run(image / 255.0, beta)
        resumed, stats = RoutedSession(out / "routed.onnx", threads=1).run(image / 255.0, beta)
        torch.testing.assert_close(torch.from_numpy(resumed), torch.from_numpy(expected), atol=1e-5, rtol=0)
        assert np.array_equal(stats.route_map, expected_stats.route_map)


def test_route_compares_with_whole_image_variants(routed_dir):
    import json

    from fxprune.data import pairs_from
    from fxprune.metrics import rgb_to_y

    data = json.loads((routed_dir / "out" / "comparison.json").read_text())
    rows = {(r["name"], r["beta"]): r for r in data["rows"]}
    assert set(rows) == {("dense", None), ("whole:l1-0.5", None), ("whole:bicubic", None), ("routed", 0.0),
                         ("routed", 0.5), ("routed", 5.0)}
    # bicubic on the whole held-out images, pooled over all their pixels, computed here independently
    pairs = pairs_from(str(routed_dir / "val"), "test", task="sr", scale=2)
    squared, pixels = 0.0, 0
    for lr, hr in pairs:
        up = F.interpolate(lr[None].double(), scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
        a, b = (rgb_to_y(t.mul(255).round().div(255))[..., 2:-2, 2:-2] for t in (up, hr[None].double()))
        squared += float((a - b).pow(2).sum())
        pixels += a.numel()
    assert rows[("whole:bicubic", None)]["psnr"] == pytest.approx(-10 * math.log10(squared / pixels), abs=0.01)
    assert len(rows[("dense", None)]["per_image"]) == len(pairs) == 3
    assert rows[("whole:l1-0.5", None)]["macs"] < rows[("dense", None)]["macs"]
    assert all(r["latency_ms"] > 0 for r in data["rows"])
    best = max((r for r in data["rows"] if r["name"].startswith("whole:")), key=lambda r: r["psnr"])
    assert data["best_variant"] == best["name"] and data["verdict"]
    table = (routed_dir / "out" / "comparison.md").read_text()
    assert "| whole:l1-0.5 | - |" in table and "**Verdict:**" in table
    assert "Against the whole-image variants" in (routed_dir / "out" / "report.md").read_text()


def test_route_writes_model_and_report(routed_dir):
    out = routed_dir / "out"
    for name in ("routed.onnx", "report.md", "psnr_vs_macs.png", "route_map.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| l1-0.5 |" in report and "| bicubic |" in report and "Spearman" in report
    assert "| routed | 5 |" in report and "| oracle | 0 |" in report and "| laplacian | 0.5 |" in report


def test_infer_with_beta_prints_routes_and_macs(routed_dir, tmp_path, capsys):
    image = read_image(routed_dir / "val" / "0.png")[:45, :61]
    write_image(tmp_path / "in.png", image)
    result = run("infer", str(routed_dir / "out" / "routed.onnx"), str(tmp_path / "in.png"), str(tmp_path / "o.png"),
                 "--beta", "0.5", "--threads", "1", "--route-map", str(tmp_path / "map.png"))
    assert result.returncode == 0, result.stderr
    assert "routes: l1-0.5 " in result.stdout and "bicubic" in result.stdout and "MACs/pixel" in result.stdout
    assert read_image(tmp_path / "o.png").shape == (90, 122, 3)
    picture = read_image(tmp_path / "map.png")
    assert picture.shape[0] > 200 and picture.shape[1] > 400  # the input beside its tinted route map, a legend below
    main_error(["infer", str(routed_dir / "out" / "routed.onnx"), str(tmp_path / "in.png"), str(tmp_path / "o.png"),
                "--beta", "0.5", "--route-map", str(tmp_path / "map.jpg")], capsys, "--route-map writes a PNG")


def test_beta_errors(routed_dir, tmp_path, capsys):
    write_image(tmp_path / "in.png", np.zeros((20, 20, 3), np.uint8))
    main_error(["infer", str(routed_dir / "out" / "routed.onnx"), str(tmp_path / "in.png"), str(tmp_path / "o.png")],
               capsys, "pass --beta")
    plain = fxprune.export_onnx(torch.nn.Conv2d(3, 3, 3, padding=1), tmp_path / "plain.onnx",
                                torch.rand(1, 3, 8, 8), check=False).path
    main_error(["infer", str(plain), str(tmp_path / "in.png"), str(tmp_path / "o.png"), "--beta", "1"], capsys,
               "--beta applies to routed models")


@pytest.mark.parametrize("content, field", [
    ({"variants": [{"ratio": 0.5}], "blend": True}, "'blend'"),
    ({"variants": []}, "'variants'"),
    ({"variants": [{"ratio": 0.5}], "patch": 0}, "'patch'"),
    (None, "no routing spec file"),
])
def test_route_spec_errors(tmp_path, content, field, capsys):
    """Through the same main() in-process (the real executable's stderr and exit status are checked by
    the signal runs of test_route_resumes_after_signals_and_equals_an_uninterrupted_run)."""
    spec = tmp_path / "variants.yaml"
    if content is not None:
        spec.write_text(yaml.safe_dump(content))
    argv = ["route", "edsr", "--blocks", "1", "--channels", "16", "--spec", str(spec), "-o", str(tmp_path / "out")]
    main_error(argv, capsys, field)
    assert not (tmp_path / "out").exists()
