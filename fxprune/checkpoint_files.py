"""Community checkpoint files in: ``.pth`` / ``.safetensors`` / ``.ckpt`` state dicts loaded with spandrel.

The super-resolution community keeps models as state dicts, not Python classes; spandrel (used by
chaiNNer and ComfyUI) detects the architecture from the keys and builds the module. This module
wraps it: :func:`load_checkpoint` returns the module in eval mode with a :class:`CheckpointInfo`
(architecture, scale, input/output channels, input range, size requirements) that builds the
example input and goes into the stage record (``record["source"]``) and the ONNX metadata.

spandrel is an optional dependency (``pip install fxprune[spandrel]``). This file is not
fxprune's training-run checkpoint (that is :mod:`fxprune.checkpoint`).

Eval-time reparameterization: SPAN's ``Conv3XC`` recomputes its fused 3x3 weight from three
training convs on every eval forward and writes it into ``eval_conv.weight.data``. Under
torch.export that write stores a fake tensor in the module ("We found a fake tensor in the
exported program constant's list"). :func:`load_checkpoint` fuses once, with the real weights, and
swaps each such module for :class:`FusedConv` (the fused conv and the activation), so the eval
form is what gets compressed.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, FxpruneError

__all__ = ["SUFFIXES", "CheckpointInfo", "FusedConv", "checkpoint_info", "is_checkpoint_file", "load_checkpoint"]

SUFFIXES = (".pth", ".safetensors", ".ckpt")
_INFO = "_fxprune_checkpoint"
EXTRA = "fxprune[spandrel]"


@dataclass(frozen=True)
class CheckpointInfo:
    """What spandrel detected in a checkpoint file (JSON-ready with :meth:`to_dict`).

    ``size_minimum`` / ``size_multiple``: the input height and width must be at least / a multiple of these.

    >>> info = CheckpointInfo("m.pth", "ESRGAN", "ESRGAN", 4, 3, 3, size_minimum=8, size_multiple=4)
    >>> info.example_size(None), info.example_size((20, 24))
    ((32, 32), (20, 24))
    >>> info.example_input((8, 12)).shape
    torch.Size([1, 3, 8, 12])
    """

    path: str
    architecture: str  # spandrel's architecture id, e.g. "ESRGAN", "Compact", "SPAN"
    architecture_name: str  # its display name, e.g. "RealESRGAN Compact"
    scale: int
    input_channels: int
    output_channels: int
    input_range: tuple[float, float] = (0.0, 1.0)  # spandrel's image models take and give [0, 1]
    size_minimum: int = 0
    size_multiple: int = 1
    tags: tuple[str, ...] = field(default_factory=tuple)
    fused: tuple[str, ...] = field(default_factory=tuple)  # modules whose eval-time weights were fused

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def example_size(self, size: tuple[int, int] | None) -> tuple[int, int]:
        """``size`` checked against the size requirements, or the smallest size >= 32 that meets them."""
        if size is None:
            side = max(32, self.size_minimum)
            side = -(-side // self.size_multiple) * self.size_multiple
            return side, side
        height, width = int(size[0]), int(size[1])
        for value in (height, width):
            if value < self.size_minimum or value % self.size_multiple:
                raise FxpruneError(
                    f"{self.architecture} from '{self.path}' needs an input height and width of at least "
                    f"{self.size_minimum} and a multiple of {self.size_multiple}, got {height} x {width}; "
                    f"pass --input-size with such a size")
        return height, width

    def example_input(self, size: tuple[int, int] | None = None, device: str | torch.device | None = None) -> torch.Tensor:
        """A random image in the model's input range: ``(1, input_channels, H, W)``."""
        height, width = self.example_size(size)
        low, high = self.input_range
        return low + (high - low) * torch.rand(1, self.input_channels, height, width, device=device)


class FusedConv(nn.Module):
    """The eval form of a reparameterized conv block: one conv, then an optional leaky ReLU.

    >>> block = FusedConv(nn.Conv2d(3, 4, 3, padding=1), leaky_slope=0.05)
    >>> block(torch.randn(1, 3, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, eval_conv: nn.Conv2d, leaky_slope: float | None = None):
        super().__init__()
        self.eval_conv = eval_conv  # the name spandrel's state dict gives the fused conv
        self.leaky_slope = leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.eval_conv(x)
        return out if self.leaky_slope is None else F.leaky_relu(out, negative_slope=self.leaky_slope)


def _fuse_eval_time_weights(model: nn.Module) -> tuple[str, ...]:
    """Swap modules that rewrite their weights on each eval forward (SPAN's ``Conv3XC``:
    ``update_params`` + ``eval_conv``) for :class:`FusedConv`, fused once from the real weights."""
    names = [name for name, m in model.named_modules()
             if name and callable(getattr(m, "update_params", None)) and isinstance(getattr(m, "eval_conv", None), nn.Conv2d)]
    for name in names:
        module = model.get_submodule(name)
        with torch.no_grad():
            module.update_params()
        conv = module.eval_conv
        conv.weight = nn.Parameter(conv.weight.detach().clone())
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias.detach().clone())
        parent, _, child = name.rpartition(".")
        slope = 0.05 if getattr(module, "has_relu", False) else None  # Conv3XC's fixed slope
        setattr(model.get_submodule(parent) if parent else model, child, FusedConv(conv, slope))
    return tuple(names)


def is_checkpoint_file(spec: str) -> bool:
    """Whether a MODEL argument names a community checkpoint file (by its suffix).

    >>> is_checkpoint_file("4x_foo.pth"), is_checkpoint_file("m.safetensors"), is_checkpoint_file("edsr")
    (True, True, False)
    """
    return str(spec).lower().endswith(SUFFIXES)


def _spandrel() -> Any:
    try:
        import spandrel
    except ImportError as error:
        what = "which is not installed" if error.name == "spandrel" else f"which fails to import ({error})"
        raise CheckpointError(f"loading .pth/.safetensors/.ckpt checkpoints needs spandrel, {what}; "
                              f"pip install '{EXTRA}'") from error
    return spandrel


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device | None = None) -> nn.Module:
    """Load a community checkpoint file (``.pth``, ``.safetensors``, ``.ckpt``) with spandrel.

    Returns the architecture's module in eval mode on ``device`` (default CPU, as spandrel's; pass
    ``"cuda"`` to load onto a GPU), with eval-time reparameterized blocks fused (see the module docstring);
    :func:`checkpoint_info` gives what was detected. A missing, unsupported or corrupt file raises
    :class:`fxprune.errors.CheckpointError` with one line naming the file and what was detected.
    """
    target = Path(path)
    if not is_checkpoint_file(str(target)):
        raise CheckpointError(f"'{target}' is not a checkpoint file; the suffixes are {', '.join(SUFFIXES)}",
                              path=target)
    if not target.is_file():
        raise CheckpointError(f"no checkpoint file at '{target}'", path=target)
    spandrel = _spandrel()
    loader = spandrel.ModelLoader(device=torch.device(device) if device is not None else None)
    try:
        state = loader.load_state_dict_from_file(str(target))
    except Exception as error:  # noqa: BLE001 - torch.load / safetensors raise many types for a bad file
        raise CheckpointError(f"'{target}' is not a readable {target.suffix} state dict ({_first_line(error)})",
                              path=target) from error
    try:
        descriptor = loader.load_from_state_dict(state)
    except spandrel.UnsupportedModelError as error:
        keys = ", ".join(list(state)[:3]) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"'{target}': spandrel detected no supported architecture in its {len(state)} "
                              f"tensors (first keys: {keys})", path=target) from error
    except Exception as error:  # noqa: BLE001 - a detected architecture whose weights do not fit
        arch = next((a.architecture.name for a in spandrel.MAIN_REGISTRY.architectures("detection")
                     if a.detect(state)), "an architecture")
        raise CheckpointError(f"'{target}': detected {arch}, but its weights do not load ({_first_line(error)})",
                              path=target) from error
    model = descriptor.model.eval()
    fused = _fuse_eval_time_weights(model)
    requirements = descriptor.size_requirements
    info = CheckpointInfo(
        str(target), descriptor.architecture.id, descriptor.architecture.name, int(descriptor.scale),
        int(descriptor.input_channels), int(descriptor.output_channels), (0.0, 1.0), int(requirements.minimum),
        int(requirements.multiple_of), tuple(descriptor.tags), fused)
    setattr(model, _INFO, info)
    return model


def checkpoint_info(model: Any) -> CheckpointInfo | None:
    """The :class:`CheckpointInfo` of a module from :func:`load_checkpoint`, else None."""
    info = getattr(model, _INFO, None)
    return info if isinstance(info, CheckpointInfo) else None
