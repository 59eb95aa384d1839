"""ONNX: export a model to one checked file (:mod:`.export`), finish the file the exporter wrote
(:mod:`.finish`) and check it in ONNX Runtime against PyTorch (:mod:`.parity`).

>>> import os, tempfile, torch
>>> from fxprune.onnx import export_onnx
>>> report = export_onnx(torch.nn.Conv2d(3, 3, 1), os.path.join(tempfile.mkdtemp(), "c.onnx"), torch.randn(1, 3, 8, 8))
>>> report.exporter, report.dynamic, report.max_abs_error <= report.tolerance
('dynamo', True, True)
"""
from .common import OnnxExportError
from .export import ExportReport, export_onnx
from .half import FP16_ATOL_SCALE
from .parity import ATOL_SCALE, check_onnx_parity

__all__ = ["ATOL_SCALE", "FP16_ATOL_SCALE", "ExportReport", "OnnxExportError", "check_onnx_parity", "export_onnx"]
