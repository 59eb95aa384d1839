"""Trained dense reference models shipped with fxprune (trained by ``benchmarks/train_reference.py``).

A file holds a model's ``state_dict``; tensors too large for the 1 MB budget per file are stored as
int8 with one scale per output channel (symmetric), and :func:`load_state` turns them back into
float32. :func:`pretrained` builds a zoo model and loads its shipped weights.

>>> model = pretrained("edsr", blocks=4, channels=32, scale=2)
>>> sum(p.numel() for p in model.parameters()) > 0
True
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, FxpruneError

FORMAT = "fxprune.weights"
HERE = Path(__file__).resolve().parent

# (model name, constructor kwargs) -> file name; the kwargs must match exactly
SHIPPED: dict[str, tuple[str, dict[str, Any]]] = {
    "edsr_x2_4x32.pt": ("edsr", {"blocks": 4, "channels": 32, "scale": 2, "upsampler": "standard"}),
    "edsr_x2_8x64_light.pt": ("edsr", {"blocks": 8, "channels": 64, "scale": 2, "upsampler": "light"}),
    "swinir_x2_2x32.pt": ("swinir", {"scale": 2, "channels": 32, "depth": 2, "heads": 2, "window": 4, "mlp_ratio": 2.0}),
}
DEFAULTS: dict[str, dict[str, Any]] = {"edsr": {"blocks": 4, "channels": 32, "scale": 2, "res_scale": 1.0,
                                                "upsampler": "standard"},
                                       "swinir": {"scale": 2, "channels": 32, "depth": 2, "heads": 2, "window": 4,
                                                  "mlp_ratio": 2.0}}


class NoPretrainedWeightsError(FxpruneError, LookupError):
    """No trained weights ship for this model configuration."""


def file_for(name: str, **kwargs: Any) -> Path:
    """The shipped weights file of ``build(name, **kwargs)``; raises NoPretrainedWeightsError if none."""
    wanted = {**DEFAULTS.get(name, {}), **kwargs}
    for file, (model, config) in SHIPPED.items():
        if model == name and {**DEFAULTS.get(name, {}), **config} == wanted:
            return HERE / file
    have = "; ".join(f"{m}({', '.join(f'{k}={v}' for k, v in c.items())})" for m, c in SHIPPED.values())
    raise NoPretrainedWeightsError(f"no trained weights ship for {name}({', '.join(f'{k}={v}' for k, v in kwargs.items())}); "
                                   f"shipped: {have}. Train one with benchmarks/train_reference.py or build without pretrained")


def quantize(tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """Symmetric int8 with one fp32 scale per slice of dim 0."""
    flat = tensor.detach().float().reshape(tensor.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return {"int8": q.reshape(tensor.shape), "scale": scale}


def pack_state(state: dict[str, torch.Tensor], int8: bool) -> dict[str, Any]:
    """A state_dict in the shipped format (weights of ≥ 2 dims as int8 when ``int8``)."""
    tensors = {k: (quantize(v) if int8 and v.dim() >= 2 else v.detach().float().clone()) for k, v in state.items()}
    return {"format": FORMAT, "version": 1, "tensors": tensors}


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The float32 state_dict stored at ``path``; CheckpointError naming the file if it is unreadable."""
    path = Path(path)
    try:
        data = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        if data.get("format") != FORMAT:
            raise ValueError("missing or wrong 'format'")
        out = {}
        for key, value in data["tensors"].items():
            if isinstance(value, dict):
                value = value["int8"].float() * value["scale"].reshape(-1, *[1] * (value["int8"].dim() - 1))
            out[key] = value
        return out
    except Exception as error:  # torch.load raises many types (UnpicklingError, RuntimeError ...) for a bad file
        raise CheckpointError(f"cannot read the weights file {path}: {error}", path=path) from error


def pretrained(name: str, **kwargs: Any) -> nn.Module:
    """``fxprune.models.build(name, **kwargs)`` with the shipped trained weights loaded (eval mode)."""
    from ..models import build

    path = file_for(name, **kwargs)
    if not path.is_file():
        raise NoPretrainedWeightsError(f"the weights file {path} is missing from this installation")
    model = build(name, **kwargs)
    model.load_state_dict(load_state(path))
    return model.eval()
