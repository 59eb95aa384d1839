"""Tiny random-weight spandrel architectures saved as community checkpoint files, for the tests.

spandrel imports torchvision, which is not installed here: ``STUBS`` (a stand-in package) goes on
``sys.path`` for in-process tests and on ``PYTHONPATH`` for subprocesses. The product never adds it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

STUBS = Path(__file__).parent / "stubs"
if str(STUBS) not in sys.path:
    sys.path.insert(0, str(STUBS))

# spandrel architecture id -> constructor of a tiny instance (scale 2)
ARCHITECTURES = ("ESRGAN", "Compact", "SPAN", "PLKSR", "SwinIR")


def build(arch: str) -> torch.nn.Module:
    """A tiny instance of ``arch`` (spandrel's id), seeded, in eval mode."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.PLKSR import RealPLKSR
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    factories = {
        "ESRGAN": lambda: ESRGAN(num_filters=16, num_blocks=1, scale=2),
        "Compact": lambda: Compact(num_feat=16, num_conv=2, upscale=2),
        "SPAN": lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2),
        "PLKSR": lambda: RealPLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7),
        "SwinIR": lambda: SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2,
                                 upsampler="pixelshuffle", mlp_ratio=2.0),
    }
    return factories[arch]().eval()


def save(net: torch.nn.Module, path: Path) -> Path:
    """``net``'s state dict as ``.pth`` (torch.save) or ``.safetensors``, by the suffix."""
    state = net.state_dict()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path
