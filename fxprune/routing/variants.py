"""The routes of a routed model: compressed variants of one model plus a cheap fallback."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import FxpruneError
from .bicubic import BicubicConv, IdentityRoute

__all__ = ["RoutingError", "Variant", "build_variants", "check_prunes", "check_window"]

FALLBACKS = ("bicubic", "identity")


class RoutingError(FxpruneError, ValueError):
    """A routed model cannot be built or run as asked; the message names the route or field."""


@dataclass
class Variant:
    """One route: a display ``name``, the ``module`` run on windows, the spec it came from (None for fallbacks)."""

    name: str
    module: nn.Module
    spec: dict[str, Any] | None = field(default=None)


def _spec_name(spec: Any, index: int) -> str:
    data = spec if isinstance(spec, Mapping) else vars(spec)
    method = data.get("method", "l1")
    amount = f"macs{data['macs']}" if data.get("macs") is not None else f"{data.get('ratio', 0.5)}"
    return f"{method}-{amount}"


def build_variants(
    model: nn.Module,
    specs: Sequence[Any] | Mapping[str, Any],
    example_inputs: Any,
    train: Any = None,
    fallback: str | None = "bicubic",
    make: Callable[[int, str, Any], nn.Module] | None = None,
) -> list[Variant]:
    """Compress ``model`` once per spec (each variant is what :func:`fxprune.compress` returns) and add a fallback.

    ``specs`` is a list of :class:`fxprune.Spec` / dicts (named ``method-ratio``) or a mapping
    name -> spec. ``fallback`` is ``"bicubic"`` (SR, scale 2, 3, 4 ...: bicubic upscaling as a
    grouped conv), ``"identity"`` (restoration tasks, scale 1) or ``None``; it is the last route.
    ``make(k, name, spec)``, if given, returns variant ``k`` instead of ``fxprune.compress(model,
    spec, example_inputs, train=train)`` (a crash-safe run loads the variants it finished and saves
    each new one). A spec that asks to prune but removes no channel (:func:`check_prunes`) raises
    :class:`RoutingError` before anything is compressed.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> vs = build_variants(build("edsr", blocks=1, channels=16), [fxprune.Spec(ratio=0.5, round_to=8)],
    ...                     torch.rand(1, 3, 16, 16))
    >>> [v.name for v in vs]
    ['l1-0.5', 'bicubic']
    """
    from ..api import as_spec, compress
    from ..train import infer_scale

    if isinstance(specs, Mapping):
        named = list(specs.items())
    else:
        if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
            raise RoutingError(f"specs must be a list of fxprune.Spec/dicts or a name -> spec mapping, got "
                               f"{type(specs).__name__}")
        named = [(_spec_name(s, i), s) for i, s in enumerate(specs)]
    if not named:
        raise RoutingError("specs is empty: give at least one compression spec (e.g. [Spec(ratio=0.5)])")
    if fallback not in FALLBACKS + (None,):
        raise RoutingError(f"fallback must be one of {', '.join(map(repr, FALLBACKS))} or None, got {fallback!r}")
    names = [n for n, _ in named]
    if len(set(names)) != len(names) or (fallback is not None and fallback in names):
        raise RoutingError(f"route names must be unique (fallback {fallback!r} included), got {names}; "
                           "pass a mapping name -> spec to name them")
    named = [(name, as_spec(spec)) for name, spec in named]
    check_prunes(model, named, example_inputs)  # before any variant is compressed or fine-tuned
    if make is None:
        def make(k: int, name: str, spec: Any) -> nn.Module:
            return compress(model, spec, example_inputs, train=train)
    variants = []
    for k, (name, spec) in enumerate(named):
        variants.append(Variant(name, make(k, name, spec), {f: v for f, v in vars(spec).items() if v is not None}))
    if fallback is not None:
        scale = infer_scale(model, example_inputs)
        if fallback == "bicubic":
            if scale < 2:
                raise RoutingError(f"fallback 'bicubic' upscales, but the model has scale {scale}; use "
                                   "fallback='identity' for restoration (denoise/deblur) models")
            channels = _example(example_inputs).shape[1]
            variants.append(Variant("bicubic", BicubicConv(scale, channels)))
        else:
            if scale != 1:
                raise RoutingError(f"fallback 'identity' keeps the size, but the model upscales by {scale}; use "
                                   "fallback='bicubic' for super-resolution models")
            variants.append(Variant("identity", IdentityRoute()))
    return variants


def _asks_to_prune(spec: Any) -> bool:
    """False for a spec that keeps everything on purpose (``ratio=0`` and no MAC budget nor overrides: a dense route)."""
    return spec.macs is not None or spec.latency is not None or bool(spec.overrides) or spec.ratio > 0


def check_prunes(model: nn.Module, named: Sequence[tuple[str, Any]], example_inputs: Any) -> None:
    """Refuse a channel-pruning variant whose plan removes no channel: the route would be the dense model.

    With small layers ``round_to`` rounds every kept count back up (16-channel layers, the default
    ``round_to=16``, ratios 0.25 and 0.5), so such a variant costs as much as the dense model and
    fine-tuning it is wasted time. The plan is what :func:`fxprune.compress` would choose (the MAC
    budget's ratio included); the error names the variant, each group's width and the ``round_to``
    that would prune it. A spec with ``ratio=0`` and nothing else is a deliberate dense route.
    Latency budgets (planned by timing) and N:M methods are not checked here.

    >>> import torch, fxprune
    >>> from fxprune.models import build
    >>> check_prunes(build("edsr", blocks=1, channels=16), [("l1-0.5", fxprune.Spec(ratio=0.5))],
    ...              torch.rand(1, 3, 8, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fxprune.routing.variants.RoutingError: variant 'l1-0.5' prunes nothing ...group 0 (16 units: ...): round_to=16 ...
    """
    from ..analysis import analyze
    from ..budget import ratio_for_macs
    from ..methods import get_method
    from ..selection import explain_no_pruning, plan_keep

    graphs = {}  # one analysis per statistics mode (Spec.norm decides which channels are prunable)
    for name, spec in named:
        if get_method(spec.method).family != "channel" or spec.latency is not None or not _asks_to_prune(spec):
            continue
        if spec.norm not in graphs:
            graphs[spec.norm] = analyze(model, example_inputs, norm=spec.norm)
        graph = graphs[spec.norm]
        ratio = ratio_for_macs(graph, spec, example_inputs) if spec.macs is not None else None
        if not plan_keep(graph, spec, ratio=ratio):
            reasons = "; ".join(explain_no_pruning(graph, spec, ratio))
            raise RoutingError(f"variant '{name}' prunes nothing (it would cost as much as the dense model): "
                               f"{reasons}. Lower round_to or ask for more (a larger ratio, a smaller macs) in that variant's spec")


def _example(example_inputs: Any) -> torch.Tensor:
    first = example_inputs[0] if isinstance(example_inputs, (tuple, list)) else example_inputs
    if not isinstance(first, torch.Tensor) or first.dim() != 4:
        raise RoutingError("example_inputs must be an NCHW image tensor or a tuple holding one")
    return first


def check_window(variants: Sequence[Variant], tile: int, channels: int = 3) -> tuple[int, int]:
    """Run every route on a ``tile`` x ``tile`` window; return (output channels, scale), equal for all routes.

    Architectures that downsample inside (U-Nets such as NAFNet, Restormer: multiples of 2^levels)
    or cut windows (SwinIR: multiples of its window size) need ``patch + 2·context`` to be such a
    multiple; a route that fails or disagrees on the output shape raises :class:`RoutingError`.
    """
    seen: tuple[int, int] | None = None
    device = _device(variants)
    for v in variants:
        x = torch.zeros(2, channels, tile, tile, device=device)
        try:
            with torch.no_grad():
                y = v.module(x)
        except Exception as error:  # noqa: BLE001 - re-raised with the route and the window size
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RoutingError(
                f"route '{v.name}' does not run on a {tile}x{tile} window (patch + 2*context): {text}; models "
                "that downsample or use attention windows need the window to be a multiple of their factor "
                "(e.g. 8 or 16): change patch/context") from error
        if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[0] != 2 or y.shape[2] != y.shape[3] \
                or y.shape[2] % tile:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise RoutingError(f"route '{v.name}' maps a 2x{channels}x{tile}x{tile} window to {shape}; routing "
                               "needs an NCHW output of the window size times an integer scale")
        found = (int(y.shape[1]), int(y.shape[2]) // tile)
        if seen is not None and found != seen:
            raise RoutingError(f"route '{v.name}' gives {found[0]} channels at scale {found[1]}, the first route "
                               f"{seen[0]} channels at scale {seen[1]}; every route must produce the same output")
        seen = found
    assert seen is not None
    return seen


def _device(variants: Sequence[Variant]) -> torch.device:
    for v in variants:
        for p in list(v.module.parameters()) + list(v.module.buffers()):
            return p.device
    return torch.device("cpu")
