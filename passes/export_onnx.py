"""Moved to :mod:`fxprune.onnx` (ONNX export is not a graph rewrite); this old import path is kept
for code that still uses it (the CLI modules) and can go once they import from ``fxprune.onnx``.

>>> from fxprune.passes.export_onnx import export_onnx
>>> import fxprune.onnx
>>> export_onnx is fxprune.onnx.export_onnx
True
"""
from fxprune.onnx import ExportReport, OnnxExportError, check_onnx_parity, export_onnx

__all__ = ["ExportReport", "OnnxExportError", "check_onnx_parity", "export_onnx"]
