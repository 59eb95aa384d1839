"""Dynamic patch routing: one model (and one ONNX graph) that sends each window of an image to the
cheapest good-enough compressed variant, with the trade-off β chosen per call.

``build_variants`` compresses a model once per spec and adds a cheap fallback;
``train_estimator`` learns each variant's per-window error; ``RoutedModel`` composes them;
``fxprune.export_onnx(routed, path, (x, beta))`` writes one graph and
``fxprune.runtime.RoutedSession`` runs it.
"""
from __future__ import annotations

from .bicubic import BicubicConv, IdentityRoute
from .estimator import ErrorEstimator, LaplacianEstimator
from .model import RoutedModel, route_reference, routed_macs
from .training import EstimatorQuality, train_estimator
from .variants import RoutingError, Variant, build_variants, check_window
from .windows import choose_routes

__all__ = [
    "BicubicConv", "ErrorEstimator", "EstimatorQuality", "IdentityRoute", "LaplacianEstimator", "RoutedModel",
    "RoutingError", "Variant", "build_variants", "check_window", "choose_routes", "route_reference", "routed_macs",
    "train_estimator",
]
