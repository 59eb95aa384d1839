"""fxprune: structured-sparsity compression of image-restoration networks as torch.fx passes."""
from __future__ import annotations

from ._version import __version__
from .analysis import analyze, build_channel_graph
from .api import compress, convert, prepare
from .counting import count_macs, count_params
from .crosscheck import CrossCheck, cross_check
from .distill import distill_loss
from .coupling import register_coupling
from .errors import (
    CaptureError,
    CheckpointError,
    ExampleInputError,
    FxpruneError,
    InferenceError,
    ParityError,
    RequestUndoneWarning,
    SpecError,
    StageError,
    UnsupportedOpError,
    VerificationError,
)
from .graph import ChannelGraph, Group, Member
from .methods import Pruner
from .methods.assl import AsslPruner
from .checkpoint_files import CheckpointInfo, checkpoint_info, load_checkpoint
from .model_io import load, save, save_safetensors
from .nm_check import NMReport, check_nm
from .onnx import ExportReport, OnnxExportError, check_onnx_parity, export_onnx
from .spec import Spec
from .train import TrainConfig
from .trace import trace
from .viz import visualize
from . import routing  # dynamic patch routing (fxprune.routing.RoutedModel, build_variants, train_estimator)


__all__ = [
    "AsslPruner",
    "convert",
    "prepare",
    "CaptureError",
    "ChannelGraph",
    "ExportReport",
    "OnnxExportError",
    "CheckpointError",
    "ExampleInputError",
    "FxpruneError",
    "RequestUndoneWarning",
    "InferenceError",
    "Group",
    "Member",
    "ParityError",
    "Pruner",
    "Spec",
    "TrainConfig",
    "SpecError",
    "StageError",
    "UnsupportedOpError",
    "VerificationError",
    "analyze",
    "build_channel_graph",
    "compress",
    "count_macs",
    "count_params",
    "cross_check",
    "distill_loss",
    "CrossCheck",
    "check_nm",
    "NMReport",
    "check_onnx_parity",
    "export_onnx",
    "load",
    "load_checkpoint",
    "checkpoint_info",
    "CheckpointInfo",
    "save_safetensors",
    "register_coupling",
    "save",
    "trace",
    "visualize",
    "routing",
]
