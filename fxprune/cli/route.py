"""``fxprune route MODEL --spec variants.yaml -o out/``: build a routed model, export it, report on it;
and the routed branch of ``fxprune infer`` (``--beta``).

The spec file (YAML/JSON) holds a ``variants`` list of compression specs (or a mapping name ->
spec) and optionally ``fallback`` (``bicubic``/``identity``/``null``), ``patch``, ``context``,
``train`` (TrainConfig fields for building the variants: fine-tuning, ASSL), ``estimator``
(TrainConfig fields plus ``windows``, ``held_out``, ``width`` for the error estimator) and
``betas`` (the β values of the report's curve). The estimator section may set ``checkpoint_every``
(steps between checkpoints, default 50).

The run is crash-safe: each finished variant and the estimator's training state are checkpointed
in ``OUT/checkpoint/`` (removed when the run completes); SIGINT/SIGTERM save the progress, print one
line with the command that continues (``--resume OUT``) and exit with 130/143.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import CheckpointError, FxpruneError, SpecError
from .args import build_from_args, model_arguments, resume_command

__all__ = ["add_route_command", "load_routing_spec", "routed_infer"]

KEYS = ("variants", "fallback", "patch", "context", "train", "estimator", "betas")
ESTIMATOR_EXTRA = ("windows", "held_out", "width")
DEFAULT_BETAS = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]


def load_routing_spec(path: str) -> dict[str, Any]:
    """Read and check a routing spec file; every problem raises :class:`fxprune.SpecError` naming the field."""
    file = Path(path)
    if not file.is_file():
        raise SpecError("<file>", f"no routing spec file at {file}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise SpecError("<yaml>", f"{file} is not valid YAML/JSON: {error}") from error
    if not isinstance(data, dict):
        raise SpecError("<root>", f"{file} must hold a mapping with a 'variants' list")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise SpecError(unknown[0], f"unknown routing field; the fields are {', '.join(KEYS)}")
    variants = data.get("variants")
    if not variants or not isinstance(variants, (list, dict)):
        raise SpecError("variants", "give a non-empty list of compression specs (or a mapping name -> spec), e.g. "
                        "[{method: l1, ratio: 0.25}, {method: l1, ratio: 0.5}]")
    for field, low in (("patch", 1), ("context", 0)):
        value = data.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise SpecError(field, f"must be an integer >= {low}, got {value!r}")
    for field in ("train", "estimator"):
        if not isinstance(data.get(field) or {}, dict):
            raise SpecError(field, "must be a mapping of TrainConfig fields")
    betas = data.get("betas", DEFAULT_BETAS)
    if not isinstance(betas, list) or not betas or not all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                          for b in betas):
        raise SpecError("betas", f"must be a non-empty list of numbers, got {betas!r}")
    return {"variants": variants, "fallback": data.get("fallback", "bicubic"), "patch": data.get("patch", 48),
            "context": data.get("context", 4), "train": data.get("train") or {},
            "estimator": data.get("estimator") or {}, "betas": [float(b) for b in betas]}


def _config(fields: dict[str, Any], section: str, **defaults: Any) -> Any:
    from ..train import TrainConfig

    try:
        return TrainConfig(**{**defaults, **fields})
    except TypeError as error:
        raise SpecError(section, f"unknown TrainConfig field: {error}") from error


def _specs(variants: Any) -> Any:
    from ..spec import Spec

    items = variants.items() if isinstance(variants, dict) else enumerate(variants)
    for key, spec in items:
        if not isinstance(spec, dict):
            raise SpecError(f"variants.{key}", f"must be a mapping of spec fields, got {spec!r}")
    if isinstance(variants, dict):
        return {str(name): Spec.from_dict(spec) for name, spec in variants.items()}
    return [Spec.from_dict(spec) for spec in variants]


def _folders(args: argparse.Namespace) -> tuple[Path, bool]:
    """The output folder and whether to resume: ``--resume OUT`` (its ``checkpoint/`` or OUT itself) or ``-o OUT``."""
    if args.resume is None:
        if args.output is None:
            raise SpecError("-o/--output", "give the output folder (-o OUT), or --resume OUT to continue a run")
        out = Path(args.output)
        if (out / "checkpoint" / "checkpoint.pt").is_file() and not args.restart:
            raise CheckpointError(f"{out} holds the checkpoint of an unfinished `fxprune route` run: continue it "
                                  f"with --resume {out}, or start over with --restart", path=out / "checkpoint")
        return out, False
    out = Path(args.resume)
    if out.name == "checkpoint" and (out / "checkpoint.pt").is_file():
        out = out.parent
    if args.output is not None and Path(args.output).resolve() != out.resolve():
        raise SpecError("-o/--output", f"--resume {args.resume} continues the run in {out}; drop -o or give -o {out}")
    if not (out / "checkpoint" / "checkpoint.pt").is_file():
        raise CheckpointError(f"no `fxprune route` checkpoint to resume from at {out / 'checkpoint' / 'checkpoint.pt'}",
                              path=out / "checkpoint")
    return out, True


def _signal_of(stop: BaseException, received: str | None) -> str:
    """The signal that stopped the run: ours, or the one the fine-tuning loop took over."""
    cause = stop.__cause__
    if received is None and cause is not None:
        received = getattr(cause, "signal_name", None) or next(
            (w for w in str(cause).split() if w in ("SIGINT", "SIGTERM")), None)
    return received or "SIGINT"


def _cmd_route(args: argparse.Namespace) -> int:
    import shutil
    import signal as signals

    from ..checkpoint import StopOnSignal
    from ..data import pairs_from
    from ..onnx import export_onnx
    from ..routing import RoutedModel
    from ..routing.compare import compare_routing
    from ..routing.report import write_routing_report
    from ..routing.resumable import RouteCheckpoint, RouteInterrupted, build_routes, fingerprint

    spec = load_routing_spec(args.spec)
    for field in ("patch", "context"):
        if getattr(args, field) is not None:
            spec[field] = getattr(args, field)
    out, resume = _folders(args)
    quiet = {"progress": False} if args.quiet else {}
    start = time.perf_counter()
    model, x = build_from_args(args)
    train = _config({**spec["train"], **quiet}, "train") if spec["train"] else None
    est_fields = dict(spec["estimator"])
    extra = {k: est_fields.pop(k) for k in ESTIMATOR_EXTRA if k in est_fields}
    every = est_fields.pop("checkpoint_every", 50)
    est_train = _config(est_fields, "estimator", lr=1e-3, batch_size=32, progress=False)
    with StopOnSignal() as stop:
        try:
            out.mkdir(parents=True, exist_ok=True)
            checkpoint = RouteCheckpoint(out / "checkpoint", fingerprint(model, x, spec), resume)
            if resume:
                print(f"resuming from {checkpoint.folder}: {checkpoint.progress()}")
            print(f"building {len(spec['variants'])} variant(s); checkpoints in {checkpoint.folder}")
            variants, estimator = build_routes(
                model, _specs(spec["variants"]), x, checkpoint, train=train, fallback=spec["fallback"],
                estimator_train=est_train, patch=spec["patch"], context=spec["context"], every=every,
                stop=lambda: stop.received is not None, **extra)
            print(f"{len(variants)} routes: {', '.join(v.name for v in variants)}")
            routed = RoutedModel(variants, estimator, patch=spec["patch"], context=spec["context"]).eval()
            tile = routed.tile
            example = (torch.rand(1, x.shape[1], 2 * tile + 3, 2 * tile + 5), torch.tensor(0.5))
            report = export_onnx(routed, out / "routed.onnx", example, opset=18)
            if stop.received:
                raise RouteInterrupted("after exporting routed.onnx, before the report", checkpoint.folder)
            pairs = pairs_from(est_train.val_data, "test", task=est_train.task, scale=routed.scale) \
                if est_train.task == "sr" else pairs_from(est_train.val_data, "test", task=est_train.task)
            comparison = compare_routing(routed, model.eval(), pairs, spec["betas"], report.path,
                                         names=[f"test image {i}" for i in range(len(pairs))])
            print("\n".join(comparison.table()))
            print(f"verdict: {comparison.verdict()}")
            comparison.write(out)
            path = write_routing_report(routed, estimator, pairs, spec["betas"], out, report, comparison)
            if stop.received:
                raise RouteInterrupted("after the report, before removing the checkpoint", checkpoint.folder)
        except RouteInterrupted as halt:
            name = _signal_of(halt, stop.received)
            print(f"fxprune route: stopped by {name} {halt.where}; progress saved in {halt.folder}; continue with: "
                  f"{resume_command(sys.argv[1:], out)}", file=sys.stderr)
            return 128 + int(signals.Signals[name])
    shutil.rmtree(checkpoint.folder, ignore_errors=True)  # the run is complete: its product is routed.onnx
    print(f"wrote {report.path} (opset {report.opset}, ONNX Runtime vs PyTorch max abs error {report.max_abs_error:.3g})")
    print(f"wrote {path} ({time.perf_counter() - start:.0f} s)")
    return 0


def add_route_command(sub: Any) -> None:
    """Register ``fxprune route`` on the ``fxprune`` sub-command parser."""
    p = sub.add_parser("route", help="build compressed variants, train an error estimator and export one routed "
                                     "ONNX model that picks a variant per window (β chosen at run time)")
    model_arguments(p)
    p.add_argument("--spec", required=True, metavar="VARIANTS.yaml",
                   help="routing spec: variants (list of compression specs), fallback, patch, context, train, "
                        "estimator, betas")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (routed.onnx, report.md; checkpoints in "
                   "DIR/checkpoint/ until the run completes)")
    p.add_argument("--resume", metavar="OUT", help="continue the interrupted run whose output folder is OUT (same "
                   "model and spec)")
    p.add_argument("--restart", action="store_true", help="discard the unfinished run's checkpoint in the output "
                   "folder and start over")
    p.add_argument("--patch", type=int, help="window core size in LR px (overrides the spec; default 48)")
    p.add_argument("--context", type=int, help="context px on each side of a window (overrides the spec; default 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_cmd_route)


def routed_infer(args: argparse.Namespace, session: Any) -> bool:
    """The ``--beta`` part of ``fxprune infer``: run a routed model and print route fractions and MACs/pixel.

    Returns False (nothing done) for an ordinary model without ``--beta``.
    """
    from ..images import read_image, write_image
    from ..runtime import RoutedSession, routing_metadata

    beta = getattr(args, "beta", None)
    routed = routing_metadata(session) is not None
    if not routed:
        if beta is not None:
            raise FxpruneError(f"--beta applies to routed models (from `fxprune route`); '{args.model}' has no β "
                               "input: drop --beta")
        return False
    if beta is None:
        raise FxpruneError(f"'{args.model}' is a routed model: pass --beta (0: best predicted quality; larger: "
                           "cheaper routes, e.g. 0.5)")
    route_map = getattr(args, "route_map", None)
    if route_map is not None and Path(route_map).suffix.lower() != ".png":
        raise FxpruneError(f"--route-map writes a PNG picture; give a file name ending in .png, got '{route_map}'")
    runner = RoutedSession(args.model, threads=args.threads)
    image = read_image(args.input)
    outer = max(args.tile, 1024)  # outer tiles only bound memory: each one is routed on its own
    start = time.perf_counter()
    big = image.shape[0] > outer or image.shape[1] > outer
    if route_map is not None and big:
        raise FxpruneError(f"--route-map draws whole-image runs only; this {image.shape[0]}x{image.shape[1]} image "
                           f"runs in outer tiles of {outer} px (--tile): crop it or raise --tile to {max(image.shape[:2])}")
    result, stats = runner.run(image, beta, tile=outer if big else None, overlap=args.overlap)
    elapsed = time.perf_counter() - start
    write_image(args.output, result)
    if route_map is not None:
        _draw_route_map(image, stats, runner.meta, beta, route_map)
    print(f"input  {args.input}: {image.shape[0]}x{image.shape[1]} (HxW)")
    print(f"output {args.output}: {result.shape[0]}x{result.shape[1]} (HxW), β = {beta:g}, "
          f"{'outer tiles of ' + str(outer) + ' px, ' if big else ''}{elapsed:.3f} s")
    print(stats.summary())
    if route_map is not None:
        print(f"route map {route_map}")
    return True


def _draw_route_map(image: Any, stats: Any, meta: dict[str, Any], beta: float, path: str) -> None:
    """The route of every window tinted over ``image`` (a whole-image run: one route map)."""
    import numpy as np

    from ..routing.picture import plot_route_map

    pixels = image if image.dtype == np.uint8 else np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    plot_route_map(pixels[..., :3], stats.route_map, stats.routes, int(meta["patch"]), int(meta["context"]), path,
                   title=f"route of each window at β = {beta:g}")
