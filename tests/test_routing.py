"""fxprune.routing: window geometry, conv bicubic, RoutedModel vs its reference loop, ONNX Runtime, MACs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import fxprune
from fxprune.models import build
from fxprune.routing import (BicubicConv, RoutedModel, RoutingError, Variant, build_variants, route_reference,
                             routed_macs)
from fxprune.routing.estimator import ErrorEstimator, LaplacianEstimator
from fxprune.runtime import RoutedSession
from fxprune.tiling import axis_geometry, tile_windows


def mixed_image(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Flat on the left, noise on the right: windows of both kinds (and mixed ones) in one image."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((batch, 3, height, width), 0.4)
    image[..., width // 2:] = torch.rand(batch, 3, height, width - width // 2, generator=g)
    return image


def lookup() -> LaplacianEstimator:
    """Flat windows: every route equally good (β > 0 picks the cheapest); textured ones: the dense route is best."""
    return LaplacianEstimator(torch.tensor([0.05]), torch.log(torch.tensor([[1e-4, 1e-4, 1e-4],
                                                                            [1e-4, 4e-4, 3e-3]])))


@pytest.fixture(scope="module")
def routes():
    torch.manual_seed(0)
    model = build("edsr", blocks=2, channels=16, scale=2).eval()
    x = torch.rand(1, 3, 24, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variants = build_variants(model, {"dense": fxprune.Spec(ratio=0.0),
                                          "half": fxprune.Spec(ratio=0.5, round_to=4)}, (x,))
    return model, variants


@pytest.fixture(scope="module")
def routed(routes):
    return RoutedModel(routes[1], lookup(), patch=8, context=4).eval()


@pytest.fixture(scope="module")
def onnx_file(routed, tmp_path_factory):
    path = tmp_path_factory.mktemp("routed") / "routed.onnx"
    report = fxprune.export_onnx(routed, path, (torch.rand(1, 3, 35, 37), torch.tensor(0.5)), opset=18)
    assert report.opset == 18 and report.max_abs_error <= report.tolerance
    return path


CASES = [((1, 13, 29), 0.0), ((1, 5, 7), 0.0), ((2, 30, 37), 0.3), ((3, 16, 17), 2.0),
         ((2, 25, 27), 1e6), ((1, 25, 27), -1e6)]


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 200), patch=st.integers(1, 40), context=st.integers(0, 10), scale=st.integers(1, 3))
def test_window_geometry_is_the_tilers(length, patch, context, scale):
    geometry = axis_geometry(length, patch, context, scale, torch.device("cpu"))
    tile = patch + 2 * context
    windows = tile_windows(max(length, tile), tile, context)
    assert geometry.count == len(windows)
    assert geometry.gather.view(len(windows), tile)[:, 0].tolist() == [w.start for w in windows]
    # every output pixel is read from the window whose core holds it
    owner = (geometry.stitch // (tile * scale)).tolist()
    for y in range(length * scale):
        w = windows[owner[y]]
        assert w.core_start <= y // scale < w.core_stop


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_conv_equals_interpolate(scale):
    x = torch.rand(2, 3, 11, 6)
    expected = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    torch.testing.assert_close(BicubicConv(scale)(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape, beta", CASES)
def test_routed_equals_reference_loop(routed, shape, beta):
    image = mixed_image(*shape)
    out, route_map = routed(image, torch.tensor(beta))
    expected, expected_map = route_reference(routed, image, beta)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert torch.equal(route_map, expected_map)
    assert route_map.shape == (shape[0], *(len(tile_windows(max(n, 16), 16, 4)) for n in shape[1:]))


def test_onnx_runtime_equals_reference(routed, onnx_file):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "beta"]
    assert [o.name for o in session.get_outputs()] == ["restored", "route_map"]
    used = set()
    for shape, beta in CASES:
        image = mixed_image(*shape, seed=len(used))
        out, route_map = session.run(["restored", "route_map"], {"image": image.numpy(),
                                                                 "beta": np.array(beta, np.float32)})
        expected, expected_map = route_reference(routed, image, beta)
        torch.testing.assert_close(torch.from_numpy(out), expected, atol=1e-4, rtol=0)
        assert np.array_equal(route_map, expected_map.numpy()), (shape, beta)
        counts = np.bincount(route_map.reshape(-1), minlength=3)
        if beta == 1e6:
            assert counts[2] == route_map.size  # all windows on the fallback, the other routes empty
        elif beta == -1e6:
            assert counts[0] == route_map.size
        used |= set(np.flatnonzero(counts).tolist())
    assert used == {0, 1, 2}  # mixed content exercised every route


def test_one_route_everywhere_equals_that_route_on_the_whole_image(routes):
    model, variants = routes
    wide = RoutedModel(variants, lookup(), patch=8, context=10).eval()  # EDSR(2 blocks) radius: 8 LR px
    image = mixed_image(2, 37, 45)
    with torch.no_grad():
        dense_everywhere, _ = wide(image, torch.tensor(-1e6))
        bicubic_everywhere, _ = wide(image, torch.tensor(1e6))
        torch.testing.assert_close(dense_everywhere, model(image), atol=1e-5, rtol=0)
    expected = F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(bicubic_everywhere, expected, atol=1e-5, rtol=0)


def test_count_macs_follows_the_routes(routed):
    image = mixed_image(1, 40, 48)
    for beta in (0.0, 1e6, -1e6):
        _, route_map = routed(image, torch.tensor(beta))
        counted = fxprune.count_macs(routed, (image, torch.tensor(beta)))
        expected = routed_macs(routed.window_costs, routed.estimator_cost, route_map)
        arithmetic = 16 * route_map.numel() * len(routed.names) + 16 * (40 + 48) * routed.scale
        assert 0 <= counted - expected <= arithmetic, (beta, counted, expected)
    assert routed.window_costs == [fxprune.count_macs(r, torch.rand(1, 3, 16, 16)) for r in routed.routes]


def test_routed_session_stats_and_outer_tiles(routed, onnx_file):
    session = RoutedSession(onnx_file, threads=1)
    image = (mixed_image(1, 45, 70)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    out, stats = session.run(image, beta=0.1)
    assert out.shape == (90, 140, 3) and out.dtype == np.uint8
    assert abs(sum(stats.fractions.values()) - 1) < 1e-9 and sum(f > 0 for f in stats.fractions.values()) >= 2
    expected = routed_macs(routed.window_costs, routed.estimator_cost, torch.from_numpy(stats.route_map))
    assert stats.macs == expected and stats.macs_per_pixel == pytest.approx(expected / (45 * 70))
    # bicubic everywhere (radius 2 <= context 4 <= overlap 8): outer tiles cannot change the result
    whole, _ = session.run(image, beta=1e6)
    tiled, tiled_stats = session.run(image, beta=1e6, tile=32, overlap=8)
    assert len(tiled_stats.route_maps) > 1 and np.abs(whole.astype(int) - tiled).max() <= 1


def test_routing_errors(routes):
    model, variants = routes
    with pytest.raises(RoutingError, match="identity"):
        build_variants(model, [fxprune.Spec(ratio=0.5, round_to=4)], torch.rand(1, 3, 16, 16), fallback="identity")
    with pytest.raises(RoutingError, match="fallback"):
        build_variants(model, [fxprune.Spec(ratio=0.5)], torch.rand(1, 3, 16, 16), fallback="lanczos")

    class Multiple16(torch.nn.Module):
        def forward(self, x):
            if x.shape[-1] % 16:
                raise RuntimeError("width must be a multiple of 16")
            return F.interpolate(x, scale_factor=2.0)

    with pytest.raises(RoutingError, match="'picky' does not run on a 20x20 window"):
        RoutedModel([variants[0], Variant("picky", Multiple16())], ErrorEstimator(2), patch=12, context=4)
    with pytest.raises(RoutingError, match="one log error per route"):
        RoutedModel(variants, ErrorEstimator(2), patch=8, context=4)



OLD_NAMES = {"image": "input", "beta": "input1", "restored": "output", "route_map": "output1"}


def renamed(source, target, names: dict[str, str]):
    """A copy of the ONNX file ``source`` with its values renamed (graph inputs/outputs, every node and
    subgraph that reads or writes them): a routed model's file as the exporter wrote it before the
    names, when ``export_onnx`` called them ``input``/``input1`` and ``output``/``output1``."""
    import onnx

    model = onnx.load(str(source))

    def rename(graph):
        for value in [*graph.input, *graph.output, *graph.value_info]:
            value.name = names.get(value.name, value.name)
        for node in graph.node:
            node.input[:] = [names.get(n, n) for n in node.input]
            node.output[:] = [names.get(n, n) for n in node.output]
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    rename(sub)

    rename(model.graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def test_routed_session_reads_files_with_the_old_names(onnx_file, tmp_path):
    old = renamed(onnx_file, tmp_path / "old.onnx", OLD_NAMES)
    import onnxruntime as ort

    session = ort.InferenceSession(str(old), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "input1"]
    assert [o.name for o in session.get_outputs()] == ["output", "output1"]
    image = (mixed_image(1, 30, 41)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    expected, expected_stats = RoutedSession(onnx_file, threads=1).run(image, beta=0.1)
    out, stats = RoutedSession(old, threads=1).run(image, beta=0.1)
    assert np.abs(out.astype(int) - expected).max() <= 1 and np.array_equal(stats.route_map, expected_stats.route_map)


def test_variants_that_prune_nothing_are_refused_before_compressing(routes, tmp_path):
    model = routes[0]
    x = torch.rand(1, 3, 16, 16)
    specs = {"half": fxprune.Spec(ratio=0.5, round_to=4), "quarter": fxprune.Spec(ratio=0.25)}
    tuning = fxprune.TrainConfig(steps=2, batch_size=2, patch_size=16, progress=False,
                                 checkpoint_dir=str(tmp_path / "tuning"), checkpoint_every=1)
    with pytest.raises(RoutingError, match=r"variant 'quarter' prunes nothing.*16 units.*round_to=16 rounds the 12 "
                                           r"kept units back up to 16; round_to=4 would prune it"):
        build_variants(model, specs, (x,), train=tuning)
    assert not (tmp_path / "tuning").exists()  # refused before the first variant was fine-tuned
    with pytest.raises(RoutingError, match="variant 'm' prunes nothing"):
        build_variants(model, {"m": fxprune.Spec(macs=1.0, round_to=4)}, (x,))
    # ratio 0 alone is a deliberate dense route; a small round_to prunes the 16-channel layers
    kept = build_variants(model, {"dense": fxprune.Spec(ratio=0.0), "q": fxprune.Spec(ratio=0.25, round_to=4)}, (x,),
                          fallback=None)
    assert fxprune.count_macs(kept[1].module, (x,)) < fxprune.count_macs(model, (x,))


def test_routed_session_refuses_a_plain_model(routes, tmp_path):
    path = fxprune.export_onnx(routes[1][2].module, tmp_path / "plain.onnx", torch.rand(1, 3, 8, 8), check=False).path
    with pytest.raises(fxprune.InferenceError, match="not a routed model"):
        RoutedSession(path)


def test_train_estimator_reports_held_out_rank_correlation(routes, tmp_path):
    from fxprune.data import demo_images
    from fxprune.routing.training import train_estimator
    from fxprune.images import write_image

    for split, images in (("train", demo_images("train")[:3]), ("val", demo_images("test")[:2])):
        (tmp_path / split).mkdir()
        for i, image in enumerate(images):
            write_image(tmp_path / split / f"{i}.png", image[:96, :96])
    config = fxprune.TrainConfig(data=str(tmp_path / "train"), val_data=str(tmp_path / "val"), steps=40,
                                 batch_size=32, lr=1e-3, progress=False)
    estimator = train_estimator(routes[1], config, patch=8, context=4, windows=64, held_out=48)
    quality = estimator.quality
    assert quality.routes == ["dense", "half", "bicubic"] and len(quality.cnn) == len(quality.laplacian) == 3
    assert all(np.isfinite(quality.cnn)) and quality.losses[-1] < quality.losses[0]
    assert quality.laplacian[2] > 0.3  # bicubic's error grows with edge content: the lookup must see that
    assert estimator(torch.rand(4, 3, 16, 16)).shape == (4, 3)


def test_estimator_training_stopped_and_resumed_equals_an_uninterrupted_run(routes):
    from fxprune.routing.training import EstimatorCheckpoints, EstimatorInterrupted, train_estimator

    config = fxprune.TrainConfig(steps=12, batch_size=16, lr=1e-3, progress=False)
    options = dict(patch=8, context=4, windows=32, held_out=16)
    whole = train_estimator(routes[1], config, **options)
    saved = []
    stopping = EstimatorCheckpoints(saved.append, every=5, stop=lambda: len(saved) >= 1 and saved[-1]["step"] >= 5)
    with pytest.raises(EstimatorInterrupted, match="after step 6 of 12"):
        train_estimator(routes[1], config, **options, checkpoints=stopping)
    assert [s["step"] for s in saved] == [5, 6]  # the periodic checkpoint, then the one on the stop request
    resumed = train_estimator(routes[1], config, **options,
                              checkpoints=EstimatorCheckpoints(saved.append, resume=saved[-1]))
    assert saved[-1]["step"] == 12
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
    assert resumed.quality.losses == whole.quality.losses
    with pytest.raises(fxprune.CheckpointError, match="12 steps"):
        train_estimator(routes[1], fxprune.TrainConfig(steps=20, batch_size=16, lr=1e-3, progress=False), **options,
                        checkpoints=EstimatorCheckpoints(saved.append, resume=saved[-1]))


def _row(name, kind, psnr, latency, beta=None):
    from fxprune.routing.compare import ComparisonRow

    return ComparisonRow(name, kind, beta, psnr, [psnr], 100, latency)


def test_comparison_verdict_recommends_a_beta_only_when_it_beats_the_best_variant(tmp_path):
    import json

    from fxprune.routing.compare import Comparison

    rows = [_row("dense", "dense", 31.0, 10.0), _row("whole:a", "variant", 30.00, 6.0),
            _row("whole:b", "variant", 29.0, 3.0), _row("routed", "routed", 29.96, 5.0, 0.5),
            _row("routed", "routed", 29.5, 2.0, 2.0), _row("routed", "routed", 29.99, 6.5, 0.0)]
    pays = Comparison(rows, ["x"], 1)
    assert pays.best_variant().name == "whole:a" and pays.recommended() == {"model": "routed", "beta": 0.5}
    assert pays.verdict().startswith("routing pays: β = 0.5") and "-0.040 dB" in pays.verdict()
    slow = Comparison(rows[:3] + [_row("routed", "routed", 29.94, 5.0, 0.5), _row("routed", "routed", 30.2, 6.0, 0.0)],
                      ["x"], 1)
    assert slow.recommended() == {"model": "whole:a", "beta": None}
    assert slow.verdict().startswith("no β comes within 0.05 dB of whole:a") and "recommended: whole:a" in slow.verdict()
    json_path, md_path = slow.write(tmp_path)
    assert json.loads(json_path.read_text())["recommended"] == {"model": "whole:a", "beta": None}
    assert "| whole:b | - | 29.000 |" in md_path.read_text()
