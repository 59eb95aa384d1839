"""Save and load compressed models as fxprune model files (``.pt2``), without arbitrary pickle.

A model file is a ``torch.export`` archive (``torch.export.save``): the ATen graph as JSON and the
weights as raw tensor data, so loading it runs no code from the file and needs neither fxprune's
nor the original model's classes. The model is re-exported with dynamic height and width (and
batch, where the model allows it) so the loaded module runs on any image size the original did.

fxprune adds one extra file to the archive, ``extra/fxprune.json``::

    {"format": "fxprune-model", "format_version": 1, "fxprune_version": "0.1.0",
     "torch_version": "2.13.0+cpu", "model_class": "EDSR", "example_input_shape": [1, 3, 32, 32],
     "dynamic_hw": true, "dynamic_batch": false, "report": {...} or null, "record": {...} or null}

``record`` is the model's stage record (:class:`fxprune.record.StageRecord`, what fxprune did to
it); :func:`load` puts it back at ``module.meta["fxprune"]``. Files written before the record
existed lack it; ``load`` rebuilds what they kept (the CLI's report, N and M per weight). The
archive stores no example input (``torch.export.save`` would keep the whole tensor): the metadata
keeps its shape.

A missing, truncated, corrupt or foreign file raises :class:`fxprune.errors.CheckpointError`
naming the path and the fix.
"""
from __future__ import annotations

import dataclasses
import json
import os
import types
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .counting import nm_layers, nm_record
from .errors import CheckpointError
from .eval_mode import eval_mode
from .record import from_saved, record_of
from .trace import _quiet_torch_logs, as_inputs, export_program

__all__ = ["save", "load", "read_metadata", "save_safetensors", "FORMAT", "FORMAT_VERSION", "SUFFIX", "WIDTHS_SUFFIX"]

FORMAT = "fxprune-model"
FORMAT_VERSION = 1
SUFFIX = ".pt2"
_EXTRA = "fxprune.json"


def _path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _static_batch(model: nn.Module) -> bool:
    """A GraphModule captured by torch.export with a concrete batch size cannot take another one."""
    if not isinstance(model, fx.GraphModule):
        return False
    for node in model.graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor) and val.dim() == 4 and _concrete(val.shape[0]):
                return True
    return False


def _export(model: nn.Module, inputs: tuple[Any, ...]) -> tuple[torch.export.ExportedProgram, bool, bool]:
    """Export with dynamic batch+H+W, else dynamic H+W, else static; returns (program, dyn_hw, dyn_batch)."""
    four_d = [isinstance(t, torch.Tensor) and t.dim() == 4 for t in inputs]
    attempts: list[tuple[bool, bool]] = []
    if any(four_d) and not _static_batch(model):
        attempts.append((True, True))
    if any(four_d):
        attempts.append((True, False))
    attempts.append((False, False))
    errors = []
    for dynamic_hw, dynamic_batch in attempts:
        try:
            with eval_mode(model):
                program = export_program(model, inputs, dynamic_hw=dynamic_hw, dynamic_batch=dynamic_batch)
        except Exception as error:  # noqa: BLE001 - reported below if every attempt fails
            errors.append(f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}")
            continue
        return program, dynamic_hw and _is_dynamic(program), dynamic_batch and _is_dynamic(program, 0)
    raise CheckpointError(f"cannot save {type(model).__name__}: torch.export failed ({errors[-1]})")


def _is_dynamic(program: torch.export.ExportedProgram, axis: int | None = None) -> bool:
    """Whether the first 4-D user input kept symbolic H and W (or the dim ``axis``) after export."""
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in program.graph_signature.user_inputs:
            continue
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.dim() == 4:
            axes = (axis,) if axis is not None else (2, 3)
            return not any(_concrete(val.shape[a]) for a in axes)
    return False


def _concrete(size: Any) -> bool:
    """An int, or a SymInt that export specialized to a constant (e.g. ``Dim.AUTO`` pinned by broadcasting)."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    return is_concrete_int(size)


def save(model: nn.Module, path: str | os.PathLike, example_inputs: Any, *,
         report: dict[str, Any] | None = None, compact_nm: bool = False) -> Path:
    """Save ``model`` (a GraphModule from :func:`fxprune.compress` or any ``nn.Module``) to ``path``.

    The model is re-exported with ``torch.export`` on ``example_inputs`` with dynamic height and
    width (falling back to static sizes when the model does not allow dynamic ones; the metadata
    says which) in eval mode, and written with ``torch.export.save`` plus fxprune metadata (see
    the module docstring). ``report`` is an optional JSON-serializable dict stored with it. The
    file is written atomically; ``path`` must end in ``.pt2``. Returns the path.

    With ``compact_nm`` a model converted by an N:M method stores each N:M weight as its kept
    values plus ``int8`` offsets, rebuilt in the graph (exactly the same weights; see
    :mod:`fxprune.passes.compact_nm`); the metadata's ``compact_nm`` gives the weight bytes
    before and after.

    >>> import os, tempfile, torch, fxprune
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    >>> path = fxprune.save(net, os.path.join(tempfile.mkdtemp(), "net.pt2"), (torch.randn(1, 3, 16, 16),))
    >>> fxprune.load(path)(torch.randn(1, 3, 20, 24)).shape
    torch.Size([1, 8, 20, 24])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    target = _path(path)
    if target.suffix != SUFFIX:
        raise ValueError(f"fxprune model files end in {SUFFIX}, got '{target}'")
    if target.is_dir():
        raise ValueError(f"path must name a file, got the directory '{target}'")
    inputs = as_inputs(example_inputs)
    try:
        report_json = json.loads(json.dumps(report)) if report is not None else None
    except (TypeError, ValueError) as error:
        raise TypeError(f"report must be a JSON-serializable dict: {error}") from error
    if report is not None and not isinstance(report, dict):
        raise TypeError(f"report must be a dict or None, got {type(report).__name__}")
    compact = None
    if compact_nm:
        model, compact = _compacted(model)
    program, dynamic_hw, dynamic_batch = _export(model, inputs)
    program.example_inputs = None  # its shape is in the metadata; a 1x3x360x640 input would add 5.5 MB
    record = record_of(model, stage=None)
    from ._version import __version__

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fxprune_version": __version__,
        "torch_version": torch.__version__,
        "model_class": type(model).__name__,
        "example_input_shape": next((list(t.shape) for t in inputs if isinstance(t, torch.Tensor)), None),
        "dynamic_hw": dynamic_hw,
        "dynamic_batch": dynamic_batch,
        "report": report_json,
        "record": record.to_dict() if record is not None else None,
    }
    if nm_layers(model):  # N and M per weight, also for fxprune versions that read no record
        metadata["nm"] = json.loads(json.dumps(nm_layers(model)))
    if compact is not None:
        metadata["compact_nm"] = compact
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with _quiet_torch_logs():
            torch.export.save(program, str(partial), extra_files={_EXTRA: json.dumps(metadata)})
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


def _compacted(model: nn.Module) -> tuple[nn.Module, dict[str, int]]:
    """A copy of an N:M model with its N:M weights as values + offsets (see passes/compact_nm.py)
    and the bytes of those weights, dense and compact."""
    from .graph_mode import copy_graph_module
    from .passes.compact_nm import CompactNM

    layers = {p: (n, m) for p, (n, m) in nm_record(model).items()}
    if not layers or not isinstance(model, fx.GraphModule):
        raise ValueError("compact_nm=True needs a model converted by an N:M method (Spec(method='sls' or 'nm'))")
    result = CompactNM(layers)(copy_graph_module(model))
    return result.gm, dataclasses.asdict(result.produced)


def _fix(target: Path) -> str:
    return f"save it again with fxprune.save(model, '{target.name}', example_inputs)"


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` is an intact fxprune model file and return its metadata dict.

    Raises :class:`~fxprune.errors.CheckpointError` for a missing, truncated or corrupt file, a
    ``.pt2`` archive that fxprune did not write, or a newer format version.

    >>> import os, tempfile, torch, fxprune
    >>> from fxprune.model_io import read_metadata
    >>> path = fxprune.save(torch.nn.Conv2d(3, 3, 1), os.path.join(tempfile.mkdtemp(), "m.pt2"), torch.randn(1, 3, 8, 8))
    >>> meta = read_metadata(path)
    >>> meta["format_version"], meta["example_input_shape"], meta["dynamic_hw"]
    (1, [1, 3, 8, 8], True)
    """
    target = _path(path)
    if not target.is_file():
        raise CheckpointError(f"no fxprune model file at '{target}'; create one with fxprune.save(model, path, example_inputs)",
            path=str(target))
    try:
        with zipfile.ZipFile(target) as archive:
            names = archive.namelist()
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"CRC mismatch in member {bad}")
            extra = [n for n in names if n == f"extra/{_EXTRA}" or n.endswith(f"/extra/{_EXTRA}")]
            is_pt2 = any(n == "archive_format" or n.endswith("/archive_format") for n in names)
            raw = archive.read(extra[0]) if extra and is_pt2 else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(
            f"'{target}' is not a readable fxprune model file ({error}); it is truncated or corrupt: {_fix(target)}",
            path=str(target),
        ) from error
    if raw is None:
        raise CheckpointError(
            f"'{target}' is a zip archive but not an fxprune model file (no fxprune metadata); {_fix(target)}",
            path=str(target),
        )
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"'{target}' has corrupt fxprune metadata ({error}); {_fix(target)}",
            path=str(target)) from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"'{target}' is not an fxprune model file (unknown metadata); {_fix(target)}",
            path=str(target))
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"'{target}' has fxprune model format {version!r}, this fxprune ({_version()}) reads up to "
            f"{FORMAT_VERSION}; upgrade fxprune (the file was written by fxprune {metadata.get('fxprune_version')})",
            path=str(target),
        )
    return metadata


def _version() -> str:
    from ._version import __version__

    return __version__


def _inference_only(module: fx.GraphModule) -> fx.GraphModule:
    """The exported graph is baked in eval mode: make ``eval()`` a no-op and ``train()`` say why it fails."""

    def _eval(self: nn.Module) -> nn.Module:
        return self

    def _train(self: nn.Module, mode: bool = True) -> nn.Module:
        if mode:
            raise NotImplementedError("a model loaded with fxprune.load is an exported inference graph; "
                                      "it cannot be switched to training mode")
        return self

    module.eval = types.MethodType(_eval, module)  # type: ignore[method-assign]
    module.train = types.MethodType(_train, module)  # type: ignore[method-assign]
    return module


def load(path: str | os.PathLike) -> nn.Module:
    """Load an fxprune model file written by :func:`save` as a plain module (a ``GraphModule``).

    The module needs nothing from fxprune or the original model's code, runs in inference mode
    (``eval()`` is a no-op, ``train()`` raises) and, where the file says ``dynamic_hw``, on any
    image height and width the original model accepted. Its metadata is at
    ``module.meta["fxprune_saved"]`` and its stage record, if it has one, at ``module.meta["fxprune"]``.
    Errors: see :func:`read_metadata`.

    >>> import os, tempfile, torch, fxprune
    >>> path = fxprune.save(torch.nn.Conv2d(3, 4, 3), os.path.join(tempfile.mkdtemp(), "m.pt2"), torch.randn(1, 3, 8, 8))
    >>> model = fxprune.load(path)
    >>> model.meta["fxprune_saved"]["model_class"], model(torch.randn(1, 3, 10, 12)).shape
    ('Conv2d', torch.Size([1, 4, 8, 10]))
    """
    metadata = read_metadata(path)
    target = _path(path)
    try:
        with _quiet_torch_logs():
            program = torch.export.load(str(target))
            module = program.module()
    except Exception as error:  # noqa: BLE001 - every deserialization failure means the same to the user
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"cannot load the fxprune model '{target}' ({type(error).__name__}: {text}); the file may come from an "
            f"incompatible torch (written with torch {metadata.get('torch_version')}, this is {torch.__version__}): "
            f"{_fix(target)}",
            path=str(target),
        ) from error
    module.meta["fxprune_saved"] = metadata
    try:
        record = from_saved(metadata)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"'{target}' has a corrupt fxprune record ({error}); {_fix(target)}",
            path=str(target)) from error
    if record is not None:
        module.meta["fxprune"] = record
    return _inference_only(module)


WIDTHS_SUFFIX = ".widths.json"


def save_safetensors(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict to ``path`` (``.safetensors``) and its layer widths beside it.

    Pruned layers no longer have the uniform widths an architecture's constructor makes, so the
    tensors alone do not say how to rebuild the model: ``<stem>.widths.json`` (also stored in the
    file's ``__metadata__`` under ``fxprune_widths``) lists per conv/linear layer its kind and
    out/in channels (:func:`fxprune.widths.layer_widths`), with the stage record's ``source`` (the
    checkpoint file the model came from) where there is one. Loaders that expect the architecture's
    uniform widths (spandrel) refuse a pruned state dict; ONNX is the portable artifact. Needs the
    ``safetensors`` package (``pip install 'fxprune[spandrel]'``). Returns the path.

    >>> import json, os, tempfile, torch, fxprune
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    >>> path = fxprune.save_safetensors(net, os.path.join(tempfile.mkdtemp(), "m.safetensors"))
    >>> json.loads(path.with_name("m.widths.json").read_text())["layers"]["0"]
    {'kind': 'conv', 'out_channels': 4, 'in_channels': 3, 'groups': 1, 'kernel_size': [3, 3]}
    """
    from .widths import layer_widths

    try:
        from safetensors.torch import save_file
    except ImportError as error:
        raise CheckpointError(f"writing .safetensors needs the safetensors package ({error}); "
                              "pip install 'fxprune[spandrel]'") from error
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    target = _path(path)
    if target.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got '{target}'")
    record = record_of(model, stage=None)
    widths = {"format": "fxprune-widths", "format_version": 1, "model_class": type(model).__name__,
              "source": record.source if record is not None else None, "layers": layer_widths(model)}
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(widths, indent=1)
    save_file(tensors, str(target), metadata={"fxprune_widths": json.dumps(widths)})
    target.with_name(target.name.removesuffix(".safetensors") + WIDTHS_SUFFIX).write_text(text)
    return target
