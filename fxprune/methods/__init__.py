"""Compression methods as peers: the registry and the methods that register in it.

Built-in methods are imported here explicitly, so nothing depends on import order.
"""
from __future__ import annotations

from . import nm, sls  # noqa: F401 - registers the methods
from .base import Method, Pruner, get_method, register_method, registered_methods

__all__ = ["Method", "Pruner", "get_method", "register_method", "registered_methods"]
