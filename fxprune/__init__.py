"""fxprune: structured-sparsity compression of image-restoration networks as torch.fx passes."""
from __future__ import annotations

from .analysis import analyze, build_channel_graph
from .api import compress
from .counting import count_macs, count_params
from .coupling import register_coupling
from .errors import (
    CaptureError,
    CheckpointError,
    FxpruneError,
    ParityError,
    SpecError,
    StageError,
    UnsupportedOpError,
)
from .graph import ChannelGraph, Group, Member
from .spec import Spec
from .trace import trace

__version__ = "0.1.0"

__all__ = [
    "CaptureError",
    "ChannelGraph",
    "CheckpointError",
    "FxpruneError",
    "Group",
    "Member",
    "ParityError",
    "Spec",
    "SpecError",
    "StageError",
    "UnsupportedOpError",
    "analyze",
    "build_channel_graph",
    "compress",
    "count_macs",
    "count_params",
    "register_coupling",
    "trace",
]
