"""The ``fxprune export`` and ``fxprune infer`` commands.

``fxprune export MODEL -o model.onnx`` exports a zoo model or a saved fxprune model file (``.pt2``)
to ONNX with :func:`fxprune.export_onnx` (which checks the file in ONNX Runtime against PyTorch);
``fxprune infer model.onnx in.png out.png`` runs an ONNX model on an image, tile by tile.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import FxpruneError
from ..checkpoint_files import is_checkpoint_file
from .args import build_from_args, is_saved_model, model_arguments
from .route import routed_infer  # routed models take β (fxprune route)

__all__ = ["add_export_command", "add_infer_command", "cmd_export", "cmd_infer"]


def add_export_command(sub: Any) -> argparse.ArgumentParser:
    """Register ``fxprune export MODEL -o FILE.onnx`` on the CLI's subparsers; return its parser.

    >>> parser = argparse.ArgumentParser(prog="fxprune")
    >>> p = add_export_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["export", "edsr", "-o", "m.onnx"]).opset
    17
    """
    p = sub.add_parser("export", help="export a zoo model or a saved .pt2 model to ONNX, checked in ONNX Runtime")
    model_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    p.add_argument("--static", action="store_true", help="fix height/width to --input-size instead of dynamic")
    p.add_argument("--half", action="store_true", help="fp16 weights and activations (checked against the fp32 "
                   "model at 1e-2 of the output's peak)")
    p.add_argument("--io-dtype", choices=("float16", "float32"), dest="io_dtype",
                   help="with --half: the dtype of the file's input and output (default float16)")
    p.set_defaults(run=cmd_export, input_size=None)  # None: a saved model's own size, else 32 32
    return p


def add_infer_command(sub: Any) -> argparse.ArgumentParser:
    """Register ``fxprune infer MODEL.onnx IN.png OUT.png`` on the CLI's subparsers; return its parser.

    >>> parser = argparse.ArgumentParser(prog="fxprune")
    >>> p = add_infer_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["infer", "m.onnx", "in.png", "out.png"]).tile
    128
    """
    p = sub.add_parser("infer", help="run an ONNX model on an image (PNG) tile by tile in ONNX Runtime")
    p.add_argument("model", metavar="MODEL.onnx", help="ONNX model file (from fxprune export)")
    p.add_argument("input", metavar="IN.png", help="input image")
    p.add_argument("output", metavar="OUT.png", help="output image to write")
    p.add_argument("--tile", type=int, default=128, help="input tile size in px, context included (default 128)")
    p.add_argument("--overlap", type=int, default=16, help="context px on each inner side of a tile (default 16)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: one per core)")
    p.add_argument("--beta", type=float, help="routed models (fxprune route): the quality/cost trade-off β")
    p.add_argument("--route-map", metavar="MAP.png", help="routed models: also draw the route of each window over "
                   "the input image (a colour per route, with a legend)")
    p.set_defaults(run=cmd_infer)
    return p


def _oserror(error: OSError) -> FxpruneError:
    return FxpruneError(str(error) if str(error) else f"{type(error).__name__}")


def cmd_export(args: argparse.Namespace) -> int:
    """``fxprune export``: build or load the model, export it to ONNX, check parity, print a summary."""
    from ..model_io import read_metadata
    from ..onnx import OnnxExportError, export_onnx

    try:
        saved = (read_metadata(args.model) if is_saved_model(args.model) and not is_checkpoint_file(args.model)
                 else None)  # a .pth/.safetensors checkpoint's example size comes from its architecture
        if saved is not None and not saved.get("dynamic_hw", True) and not args.static:
            print(f"note: '{args.model}' was saved with a static height/width; exporting with --static")
            args.static = True
        if args.input_size is None:  # a saved model's own example size, else 32 32
            shape = saved.get("example_input_shape") if saved is not None else None
            ok = isinstance(shape, list) and len(shape) == 4
            args.input_size = (int(shape[2]), int(shape[3])) if ok else (32, 32)
        if any(s < 1 for s in args.input_size):
            raise FxpruneError(f"--input-size must be positive, got {args.input_size[0]} {args.input_size[1]}")
        model, x = build_from_args(args)
        output = Path(args.output)
        if output.suffix != ".onnx":
            raise FxpruneError(f"the output file must end in .onnx, got '{output}'")
        start = time.perf_counter()
        try:
            if args.io_dtype and not args.half:
                raise FxpruneError("--io-dtype applies to --half exports only")
            report = export_onnx(model, output, (x,), dynamic_hw=not args.static, opset=args.opset,
                                 dtype="float16" if args.half else "float32", io_dtype=args.io_dtype)
        except OnnxExportError as error:
            if "captured with a static height/width" in str(error):
                raise FxpruneError(f"'{args.model}' was saved with a static height/width; pass --static "
                                   "(and --input-size H W of the saved size)") from error
            raise
        elapsed = time.perf_counter() - start
    except OSError as error:
        raise _oserror(error) from error
    size = output.stat().st_size
    shapes = ", ".join("x".join(map(str, s)) for s in report.checked_shapes) or "-"
    parity = (f"max abs error {report.max_abs_error:.3g} (tolerance {report.tolerance:.3g}) on inputs {shapes}"
              if report.max_abs_error is not None else "not checked")
    print(f"wrote {report.path}")
    print(f"  opset {report.opset}, {'dynamic' if report.dynamic else 'static'} height/width, "
          f"{'float16' if args.half else 'float32'} (I/O {args.io_dtype or ('float16' if args.half else 'float32')}), "
          f"exporter {report.exporter}, "
          f"{size / 1e6:.3f} MB ({size} bytes), {elapsed:.1f} s")
    print(f"  ONNX Runtime vs PyTorch: {parity}")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    """``fxprune infer``: run an ONNX model on an image with tiling and write the result."""
    from ..images import read_image, write_image
    from ..runtime import open_session, run_tiled, session_tile
    from ..tiling import tile_pair, tiles

    try:
        session = open_session(args.model, threads=args.threads)
        if routed_infer(args, session):
            return 0
        image = read_image(args.input)
        height, width = image.shape[:2]
        shape = list(session.get_inputs()[0].shape)
        if len(shape) != 4:
            raise FxpruneError(f"the ONNX model takes a {len(shape)}-D input; infer needs an image model (NxCxHxW)")
        if isinstance(shape[1], int) and shape[1] != 3:
            raise FxpruneError(f"the ONNX model takes {shape[1]} input channels; infer feeds RGB images (3 channels)")
        tile = session_tile(session, args.tile)
        if isinstance(tile, tuple) and (height < tile[0] or width < tile[1]):
            raise FxpruneError(f"the ONNX model has a fixed input size {tile[0]}x{tile[1]} (exported with --static) "
                               f"but the image is {height}x{width}; export it without --static")
        tile_h, tile_w = tile_pair(tile, args.overlap)
        count = len(tiles(height, width, tile, args.overlap))
        start = time.perf_counter()
        result = run_tiled(session, image, tile=tile, overlap=args.overlap)
        elapsed = time.perf_counter() - start
        write_image(args.output, result)
    except OSError as error:
        raise _oserror(error) from error
    out_h, out_w = result.shape[:2]
    print(f"input  {args.input}: {height}x{width} (HxW)")
    print(f"output {args.output}: {out_h}x{out_w} (HxW), scale {out_h // height}")
    print(f"{count} tile(s) of {tile_h}x{tile_w} px with {args.overlap} px overlap, "
          f"{session.get_providers()[0]}, {elapsed:.3f} s")
    return 0
