"""Compatibility names: ASSL now lives in :mod:`fxprune.methods.assl`, and ``prepare`` / ``convert``
in :mod:`fxprune.api` (they dispatch through the method registry)."""
from __future__ import annotations

from .api import as_spec, convert, prepare
from .methods.assl import AsslPruner

__all__ = ["AsslPruner", "as_spec", "convert", "prepare"]
