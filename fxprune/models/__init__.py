"""The reference model zoo: small, clean implementations of common image-restoration networks.

Every model takes an N×3×H×W float image. Super-resolution models (edsr, rcan, srresnet, carn,
imdn, espcn, fsrcnn, swinir, swinir_windows) return N×3×(H·s)×(W·s); restoration models (nafnet, dncnn, vdsr,
unet, restormer, uformer, restormer_unet) return N×3×H×W. Defaults are tiny; every size is a constructor argument.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .carn import CARN
from .dncnn import VDSR, DnCNN
from .edsr import EDSR
from .espcn import ESPCN
from .fsrcnn import FSRCNN
from .imdn import IMDN
from .nafnet import NAFNet
from .rcan import RCAN
from .restormer import Restormer
from .restormer_unet import RestormerUNet
from .srresnet import SRResNet
from .swin_windows import SwinIRWindows
from .swinir import SwinIR
from .uformer import Uformer
from .unet import UNet

ZOO: dict[str, Callable[..., nn.Module]] = {
    "edsr": EDSR,
    "rcan": RCAN,
    "srresnet": SRResNet,
    "carn": CARN,
    "imdn": IMDN,
    "nafnet": NAFNet,
    "espcn": ESPCN,
    "fsrcnn": FSRCNN,
    "dncnn": DnCNN,
    "vdsr": VDSR,
    "unet": UNet,
    "swinir": SwinIR,
    "restormer": Restormer,
    "swinir_windows": SwinIRWindows,
    "uformer": Uformer,
    "restormer_unet": RestormerUNet,
}


class UnknownModelError(KeyError, ValueError):
    """Raised by :func:`build` for a name not in the zoo (both a KeyError and a ValueError)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def names() -> list[str]:
    """The names of all models in the zoo, in registry order."""
    return list(ZOO)


def build(name: str, **kwargs) -> nn.Module:
    """Build the zoo model ``name`` with constructor keyword arguments ``kwargs``."""
    try:
        factory = ZOO[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(names())}") from None
    return factory(**kwargs)


__all__ = ["ZOO", "names", "build", "UnknownModelError", "CARN", "DnCNN", "EDSR", "ESPCN", "FSRCNN",
           "IMDN", "NAFNet", "RCAN", "Restormer", "RestormerUNet", "SRResNet", "SwinIR", "SwinIRWindows", "UNet", "Uformer", "VDSR"]
