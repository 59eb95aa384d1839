"""Compression methods as peers: the registry and the methods that register in it.

Built-in methods are imported here explicitly, so nothing depends on import order; the registry
lists them in this order (``l1`` first: the default).
"""
from __future__ import annotations

from . import l1, assl, sls, nm  # noqa: F401 - registers the methods, in this order
from .base import Method, Pruner, get_method, method_for, register_method, registered_methods

__all__ = ["Method", "Pruner", "get_method", "method_for", "register_method", "registered_methods"]
