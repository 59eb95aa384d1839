"""Compression specs: frozen, validated, serializable to YAML/JSON, with per-module overrides.

Override keys, from weakest to strongest precedence (like torch.ao's QConfigMapping):
``type:ClassName`` (module class), ``re:<regex>`` (full match on the qualified name), then the exact
qualified name. A value of ``None`` skips the module (its group is not pruned); a dict sets fields
(``ratio`` and ``round_to`` unless the method declares its own override settings). A key that matches
no producer of any group is an error, so a typo never silently prunes nothing.

Which fields belong to which method is not written here: every method declares, when it registers
(:func:`fxprune.methods.register_method`, which calls :func:`declare_method`), the Spec fields and
override settings it owns and the validation of them, and ``Spec`` consults those declarations.
"""
from __future__ import annotations

import difflib
import functools
import json
import re
import textwrap
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from .errors import SpecError

OVERRIDE_FIELDS = ("ratio", "round_to")
NORM_MODES = ("auto", "exact", "renormalize", "fixed")  # Spec.norm: how channels read by LayerNorm / mean / softmax are treated


@dataclass(frozen=True)
class MethodFields:
    """What one registered method declared about the Spec (see :func:`declare_method`)."""

    name: str
    owns: tuple[str, ...] = ()
    override_fields: tuple[str, ...] = OVERRIDE_FIELDS
    family: str | None = None
    validate: Callable[["Spec"], None] | None = None


# filled by declare_method, in registration order (the first one is the default method)
_DECLARED: dict[str, MethodFields] = {}
METHODS: tuple[str, ...] = ()
# field -> the methods that own it; a field no method owns is open to every method
FIELD_OWNERS: dict[str, tuple[str, ...]] = {}
# method -> the settings its overrides take
METHOD_OVERRIDE_FIELDS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class Spec:
    """What to compress and how.

    Args:
        method: the name of a registered method (``fxprune.methods.registered_methods()``);
            None: the default, the first one registered.
        ratio: fraction of each group's prunable units removed (0 ≤ ratio < 1).
        macs: instead of one ratio for all groups, keep at most this fraction of the model's MACs
            (0 < macs ≤ 1); ratios are then found per group. ``budget`` is an alias: the method
            that owns ``budget`` reads it there, every other method as ``macs``.
        latency: instead of a ratio, keep at most this fraction of the dense model's ONNX Runtime
            latency measured on this machine at the example input's size (0 < latency ≤ 1; not
            with ``macs``). Kept counts are chosen per group from a per-conv latency table (see
            :mod:`fxprune.latency`; threads: ``$FXPRUNE_LATENCY_THREADS``, default one per CPU).
        round_to: kept channels per group are rounded up to a multiple of this (16 suits ONNX
            Runtime on AVX-512 CPUs, 8 is common on GPUs; 1 disables).
        norm: channels that LayerNorm, a mean/var/std, amax/amin or softmax over channels read:
            ``"exact"`` prunes them, and the sliced model keeps those statistics exact by
            counting the pruned channels as the zeros they are in the masked model;
            ``"renormalize"`` prunes them too but computes plain statistics over the kept
            channels (as Torch-Pruning does; native LayerNorm in the export, and the pruned model
            differs from the masked one until fine-tuning repairs it); ``"fixed"`` leaves them
            unpruned (normalized trunks stay at full width). ``"auto"`` (default) is
            ``"renormalize"`` when ``compress`` fine-tunes a one-shot method's result (``steps``)
            and ``"exact"`` otherwise, as ``benchmarks/bench_norm_finetune.py`` measured: after
            equal fine-tuning the renormalized model was as good or better at lower latency,
            without fine-tuning only the exact one keeps the masked model's output.
        overrides: per-module settings keyed by exact name, ``re:<regex>`` or ``type:ClassName``.
        steps: the length of the method's run in optimizer steps (what it covers is the method's
            to say, below).

    A field owned by some methods only may keep its default under any other method; set to
    another value there it is an error naming its owners.

    >>> spec = Spec(ratio=0.5, overrides={"tail.0": None, "re:body\\\\.\\\\d+\\\\.conv1": {"ratio": 0.3}})
    >>> Spec.from_yaml(spec.to_yaml()) == spec
    True

    The methods' own fields (each method's registration adds its part below):
    """

    method: str | None = None
    ratio: float = 0.5
    macs: float | None = None
    latency: float | None = None
    round_to: int = 16
    norm: str = "auto"
    overrides: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    align: str = "joint"
    reg_step: float = 1e-4
    reg_interval: int = 20
    reg_ceiling: float = 0.5
    hold_steps: int = 43150
    ssa_steps: int = 10000
    ssa_weight: float = 1.0
    finetune_steps: int = 100000
    steps: int | None = None
    m: int = 16
    n: int | None = None
    n_per_layer: str = "uniform"
    budget: float | None = None
    hardware: str | None = None
    rerank_every: int = 1000
    reg_weight: float = 1.4e-3
    anneal_every: int = 500
    anneal_factor: float = 1.2
    anneal_threshold: float = 0.2
    search_steps: int | None = None
    shrink: str = "schedule"

    def __post_init__(self) -> None:
        if self.method is None and METHODS:
            object.__setattr__(self, "method", METHODS[0])
        if self.method not in METHODS:
            raise SpecError("method", f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}",
                            value=self.method)
        self._alias_budget()
        self._check_owners()
        if self.budget is not None and not _is_fraction(self.budget):
            raise SpecError("budget", f"must be a fraction of the dense MACs in (0, 1], got {self.budget!r}",
                            value=self.budget)
        for declared in _validators(self.method):
            declared.validate(self)
        if self.steps is not None:
            check_count("steps", self.steps, minimum=1)
        _check_ratio("ratio", self.ratio)
        if self.macs is not None and not (isinstance(self.macs, (int, float)) and 0 < self.macs <= 1):
            raise SpecError("macs", f"must be a fraction in (0, 1], got {self.macs!r}", value=self.macs)
        if self.latency is not None:
            if not _is_fraction(self.latency):
                raise SpecError("latency", f"must be a fraction in (0, 1] of the dense latency, got {self.latency!r}",
                                value=self.latency)
            if self.macs is not None:
                raise SpecError("latency", "set either a MAC budget (macs) or a latency budget (latency), not both",
                                value=self.latency)
        _check_round_to("round_to", self.round_to)
        check_choice("norm", self.norm, NORM_MODES, "statistics mode")
        if not isinstance(self.overrides, Mapping):
            raise SpecError("overrides", f"must be a mapping of module keys to settings, got {type(self.overrides).__name__}",
                            value=self.overrides)
        for key, value in self.overrides.items():
            _check_override(key, value, METHOD_OVERRIDE_FIELDS.get(self.method, OVERRIDE_FIELDS))
        object.__setattr__(self, "overrides", {k: (None if v is None else dict(v)) for k, v in self.overrides.items()})

    def _alias_budget(self) -> None:
        """``budget`` and ``macs`` name the same thing; keep the one the method reads (``budget`` if
        the method owns it, else ``macs``)."""
        if self.budget is not None and self.macs is not None and self.budget != self.macs:
            raise SpecError("budget", f"budget={self.budget} and macs={self.macs} disagree; set one", value=self.budget)
        if self.method in FIELD_OWNERS.get("budget", ()) and self.macs is not None:
            object.__setattr__(self, "budget", self.macs)
            object.__setattr__(self, "macs", None)
        elif self.method not in FIELD_OWNERS.get("budget", ()) and self.budget is not None:
            object.__setattr__(self, "macs", self.budget)
            object.__setattr__(self, "budget", None)

    def _check_owners(self) -> None:
        """A field some methods own, set away from its default under another method, is an error
        (methods of one family may set each other's fields)."""
        relatives = set(_family(self.method))
        for spec_field in fields(self):
            owners = FIELD_OWNERS.get(spec_field.name)
            if owners is None or relatives & set(owners):
                continue
            value = getattr(self, spec_field.name)
            if value != spec_field.default:
                raise SpecError(spec_field.name, f"is a setting of method {' / '.join(owners)}, not of "
                                f"{self.method!r}; remove it or choose one of those methods", value=value, owners=owners)

    def for_run(self, fine_tunes: bool) -> "Spec":
        """This spec with ``norm="auto"`` decided: ``"renormalize"`` when the run fine-tunes a
        one-shot method's result, ``"exact"`` otherwise.

        >>> Spec().for_run(fine_tunes=True).norm, Spec().for_run(fine_tunes=False).norm, Spec(norm="exact").for_run(True).norm
        ('renormalize', 'exact', 'exact')
        """
        owns_norm = self.method is None or bool(set(_family(self.method)) & set(FIELD_OWNERS.get("norm", ())))
        if self.norm != "auto" or not owns_norm:  # a method without channel statistics keeps the default
            return self
        return replace(self, norm="renormalize" if fine_tunes else "exact")

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Spec":
        if not isinstance(data, Mapping):
            raise SpecError("<root>", f"a spec must be a mapping, got {type(data).__name__}")
        _check_field_names(data)
        return cls(**data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> "Spec":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise SpecError("<yaml>", f"not valid YAML: {error}") from error
        return cls.from_dict(data or {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise SpecError("<json>", f"not valid JSON: {error}") from error

    @classmethod
    def load(cls, path: str | Path) -> "Spec":
        """Read a ``.yaml``/``.yml`` or ``.json`` spec file; errors name the file.

        >>> import tempfile, pathlib
        >>> empty = pathlib.Path(tempfile.mkdtemp()) / "spec.yaml"
        >>> _ = empty.write_text("# nothing yet\\n")
        >>> Spec.load(empty)
        Traceback (most recent call last):
        ...
        fxprune.errors.SpecError: spec field '<file>': the spec file ... is empty; write at least one field, e.g. 'ratio: 0.5'
        """
        data = read_spec_file(path)
        try:
            return cls.from_dict(data)
        except SpecError as error:
            raise SpecError(error.field, f"{error.message} (in {path})", value=error.value, owners=error.owners) from error

    # ------------------------------------------------------------------ overrides
    def settings_for(self, module: str, type_name: str | None) -> dict[str, Any] | None:
        """Effective override for one module (None: skip it); later precedence levels win."""
        merged: dict[str, Any] = {}
        for key, value in self._matching(module, type_name):
            if value is None:
                return None
            merged.update(value)
        return merged

    def _matching(self, module: str, type_name: str | None) -> list[tuple[str, Any]]:
        by_type = [(k, v) for k, v in self.overrides.items() if k.startswith("type:") and type_name == k[5:]]
        by_regex = [(k, v) for k, v in self.overrides.items() if k.startswith("re:") and re.fullmatch(k[3:], module)]
        exact = [(k, v) for k, v in self.overrides.items() if k == module]
        return by_type + by_regex + exact

    def unmatched_keys(self, modules: Mapping[str, str | None]) -> list[str]:
        """Override keys that match none of ``modules`` (qualified name -> class name)."""
        hit = {key for module, type_name in modules.items() for key, _ in self._matching(module, type_name)}
        return [key for key in self.overrides if key not in hit]


def _check_field_names(given: Mapping[str, Any]) -> None:
    """A :class:`SpecError` for the first name in ``given`` that is not a Spec field, naming the
    closest field (a typo would otherwise be a bare ``TypeError`` from the constructor).

    >>> _check_field_names({"rato": 0.5})
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'rato': unknown field; did you mean 'ratio'? (known fields: align, anneal_every, ...)
    """
    known = sorted(f.name for f in fields(Spec))
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise SpecError(str(name), f"unknown field; {guess}(known fields: {', '.join(known)})", value=given[name])


def _init_checking_names(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def checked(self: Spec, *args: Any, **kwargs: Any) -> None:
        _check_field_names(kwargs)
        init(self, *args, **kwargs)

    return checked


Spec.__init__ = _init_checking_names(Spec.__init__)  # type: ignore[method-assign]


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The mapping a ``.yaml``/``.yml``/``.json`` spec file holds; an empty file is an error naming it
    (a spec that silently falls back to every default would compress with settings nobody chose)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("<file>", f"no spec file at {path}", value=str(path))
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" and text.strip() else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SpecError(f"<{kind.lower()}>", f"{path} is not valid {kind}: {error}") from error
    if data is None or data == {}:
        raise SpecError("<file>", f"the spec file {path} is empty; write at least one field, e.g. 'ratio: 0.5'",
                        value=str(path))
    if not isinstance(data, dict):
        raise SpecError("<root>", f"{path} must hold a mapping of spec fields, got {type(data).__name__}")
    return data


def _is_fraction(value: Any) -> bool:
    """A number in (0, 1] (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1


def _check_ratio(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(name, f"must be a fraction in [0, 1), got {value!r}", value=value)


def check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    """:class:`SpecError` on ``name`` unless ``value`` is a positive (or, with ``allow_zero``,
    non-negative) number; for the validators methods declare.

    >>> check_positive("reg_step", 0)
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'reg_step': must be a positive number, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise SpecError(name, f"must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}",
                        value=value)


def check_count(name: str, value: Any, minimum: int) -> None:
    """:class:`SpecError` on ``name`` unless ``value`` is an integer >= ``minimum``.

    >>> check_count("m", 1, minimum=2)
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'm': must be an integer >= 2, got 1
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, f"must be an integer >= {minimum}, got {value!r}", value=value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...], what: str) -> None:
    """:class:`SpecError` on ``name`` unless ``value`` is one of ``choices`` (``what`` names the kind).

    >>> check_choice("align", "ssb", ("joint", "ssa"), "alignment")
    Traceback (most recent call last):
    ...
    fxprune.errors.SpecError: spec field 'align': unknown alignment 'ssb'; choose one of joint, ssa
    """
    if value not in choices:
        raise SpecError(name, f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}", value=value)


def _check_round_to(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(name, f"must be a positive integer (1 disables rounding), got {value!r}", value=value)


def _check_override(key: Any, value: Any, allowed: tuple[str, ...] = OVERRIDE_FIELDS) -> None:
    where = f"overrides[{key!r}]"
    if not isinstance(key, str) or not key:
        raise SpecError("overrides", f"keys must be non-empty strings, got {key!r}", value=key)
    if key.startswith("re:"):
        try:
            re.compile(key[3:])
        except re.error as error:
            raise SpecError(where, f"invalid regular expression: {error}", value=key) from error
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise SpecError(where, f"must be None (skip) or a mapping of settings, got {type(value).__name__}", value=value)
    for name in value:
        if name not in allowed:
            raise SpecError(f"{where}.{name}", f"unknown setting; allowed: {', '.join(allowed)}", value=value[name])
    if "ratio" in value:
        _check_ratio(f"{where}.ratio", value["ratio"])
    if "round_to" in value:
        _check_round_to(f"{where}.round_to", value["round_to"])
    if "m" in value:
        check_count(f"{where}.m", value["m"], minimum=2)
    if "n" in value:
        check_count(f"{where}.n", value["n"], minimum=1)


def declare_method(name: str, owns: Iterable[str] = (), override_fields: Iterable[str] | None = None, *,
                   family: str | None = None, validate: Callable[[Spec], None] | None = None,
                   doc: str = "") -> None:
    """Let ``Spec`` accept ``method=name``; :func:`fxprune.methods.register_method` calls it.

    The method becomes an owner of the fields in ``owns`` (Spec fields it reads; a field no method
    owns is open to all), its overrides take ``override_fields`` (default: ``ratio`` and
    ``round_to``), methods of one ``family`` may set each other's fields, ``validate(spec)`` checks
    its fields (raising :class:`SpecError`; it runs for the method and its family) and ``doc``, the
    documentation of its fields, is added to ``Spec``'s docstring.

    >>> from fxprune.methods import get_method
    >>> all(get_method(m).fields == tuple(f for f, owners in FIELD_OWNERS.items() if m in owners) for m in METHODS)
    True
    """
    global METHODS
    owns = tuple(owns)
    unknown = sorted(set(owns) - {f.name for f in fields(Spec)})
    if unknown:
        raise ValueError(f"method {name!r} declares fields Spec does not have: {unknown}")
    declared = MethodFields(name, owns, OVERRIDE_FIELDS if override_fields is None else tuple(override_fields),
                            family, validate)
    if name in _DECLARED:
        if _DECLARED[name] == declared:
            return
        raise ValueError(f"a method named {name!r} is already declared, with other fields")
    _DECLARED[name] = declared
    METHODS = (*METHODS, name)
    for spec_field in owns:
        FIELD_OWNERS[spec_field] = (*FIELD_OWNERS.get(spec_field, ()), name)
    METHOD_OVERRIDE_FIELDS[name] = declared.override_fields
    if doc:
        Spec.__doc__ = f"{Spec.__doc__.rstrip()}\n\n{textwrap.indent(textwrap.dedent(doc).strip(), '    ')}\n    "


def owned_fields(method: str) -> tuple[str, ...]:
    """The Spec fields ``method`` declared it owns (empty for an unknown method)."""
    declared = _DECLARED.get(method)
    return declared.owns if declared else ()


def _family(method: str) -> tuple[str, ...]:
    """``method`` and the declared methods of its family, in declaration order."""
    own = _DECLARED.get(method)
    if own is None or own.family is None:
        return (method,)
    return (method, *(m for m, d in _DECLARED.items() if d.family == own.family and m != method))


def _validators(method: str) -> list[MethodFields]:
    """The declarations whose ``validate`` runs for a spec of ``method``: its own, then its family's."""
    return [_DECLARED[m] for m in _family(method) if m in _DECLARED and _DECLARED[m].validate is not None]
