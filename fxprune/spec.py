"""Compression specs: frozen, validated, serializable to YAML/JSON, with per-module overrides.

Override keys, from weakest to strongest precedence (like torch.ao's QConfigMapping):
``type:ClassName`` (module class), ``re:<regex>`` (full match on the qualified name), then the exact
qualified name. A value of ``None`` skips the module (its group is not pruned); a dict sets fields
(currently ``ratio`` and ``round_to``). A key that matches no producer of any group is an error, so
a typo never silently prunes nothing.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import SpecError

METHODS = ("l1", "assl")
ALIGNMENTS = ("joint", "ssa")
OVERRIDE_FIELDS = ("ratio", "round_to")


@dataclass(frozen=True)
class Spec:
    """What to compress and how.

    Args:
        method: ``"l1"``: one-shot pruning by the L1 norm of each unit's producer filters.
            ``"assl"``: Aligned Structured Sparsity Learning (weight-norm gates, a growing L2
            penalty on the unimportant gates, then fine-tuning); needs training (``prepare`` /
            ``convert`` or ``compress(..., train=TrainConfig(...))``).
        ratio: fraction of each group's prunable units removed (0 ≤ ratio < 1).
        macs: instead of one ratio for all groups, keep at most this fraction of the model's MACs
            (0 < macs ≤ 1); ratios are then found per group.
        latency: instead of a ratio, keep at most this fraction of the dense model's ONNX Runtime
            latency measured on this machine at the example input's size (0 < latency ≤ 1; not
            with ``macs``). Kept counts are chosen per group from a per-conv latency table (see
            :mod:`fxprune.latency`; threads: ``$FXPRUNE_LATENCY_THREADS``, default one per CPU).
        round_to: kept channels per group are rounded up to a multiple of this (16 suits ONNX
            Runtime on AVX-512 CPUs, 8 is common on GPUs; 1 disables).
        overrides: per-module settings keyed by exact name, ``re:<regex>`` or ``type:ClassName``.

    ASSL fields (the paper's values are the defaults; ``steps`` rescales the whole schedule):
        align: ``"joint"`` (default): each group's unimportant set is decided once from the
            scores summed over all its producers, so coupled layers are aligned exactly.
            ``"ssa"``: the paper's sparsity structure alignment (soft masks, −mean(M·Mᵀ)) runs
            on coupled groups for ``ssa_steps`` first; their set is then picked jointly.
        reg_step: Δα, the penalty factor's increment (1e-4).
        reg_interval: K, steps between increments (20).
        reg_ceiling: τ, the factor stops growing there (0.5).
        hold_steps: steps the penalty is held at τ before pruning (43150).
        ssa_steps: steps of SSA before coupled groups are penalized (10000, our choice; ignored
            with ``align="joint"``).
        ssa_weight: weight of the SSA loss (1.0, our choice).
        finetune_steps: steps of fine-tuning with the pruned channels masked (100000, our choice).
        steps: if set, every phase (SSA, growth, hold, fine-tuning) is scaled so the schedule
            takes this many steps in total.

    >>> spec = Spec(ratio=0.5, overrides={"tail.0": None, "re:body\\\\.\\\\d+\\\\.conv1": {"ratio": 0.3}})
    >>> Spec.from_yaml(spec.to_yaml()) == spec
    True
    """

    method: str = "l1"
    ratio: float = 0.5
    macs: float | None = None
    latency: float | None = None
    round_to: int = 16
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

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SpecError("method", f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.align not in ALIGNMENTS:
            raise SpecError("align", f"unknown alignment {self.align!r}; choose one of {', '.join(ALIGNMENTS)}")
        for name in ("reg_step", "reg_ceiling"):
            _check_positive(name, getattr(self, name))
        _check_positive("ssa_weight", self.ssa_weight, allow_zero=True)
        _check_count("reg_interval", self.reg_interval, minimum=1)
        for name in ("hold_steps", "ssa_steps", "finetune_steps"):
            _check_count(name, getattr(self, name), minimum=0)
        if self.steps is not None:
            _check_count("steps", self.steps, minimum=1)
        _check_ratio("ratio", self.ratio)
        if self.macs is not None and not (isinstance(self.macs, (int, float)) and 0 < self.macs <= 1):
            raise SpecError("macs", f"must be a fraction in (0, 1], got {self.macs!r}")
        if self.latency is not None:
            if isinstance(self.latency, bool) or not isinstance(self.latency, (int, float)) or not 0 < self.latency <= 1:
                raise SpecError("latency", f"must be a fraction in (0, 1] of the dense latency, got {self.latency!r}")
            if self.macs is not None:
                raise SpecError("latency", "set either a MAC budget (macs) or a latency budget (latency), not both")
        _check_round_to("round_to", self.round_to)
        if not isinstance(self.overrides, Mapping):
            raise SpecError("overrides", f"must be a mapping of module keys to settings, got {type(self.overrides).__name__}")
        for key, value in self.overrides.items():
            _check_override(key, value)
        object.__setattr__(self, "overrides", {k: (None if v is None else dict(v)) for k, v in self.overrides.items()})

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Spec":
        if not isinstance(data, Mapping):
            raise SpecError("<root>", f"a spec must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(unknown[0], f"unknown field; known fields: {', '.join(sorted(known))}")
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
            raise SpecError(error.field, f"{error.message} (in {path})") from error

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


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The mapping a ``.yaml``/``.yml``/``.json`` spec file holds; an empty file is an error naming it
    (a spec that silently falls back to every default would compress with settings nobody chose)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("<file>", f"no spec file at {path}")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" and text.strip() else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SpecError(f"<{kind.lower()}>", f"{path} is not valid {kind}: {error}") from error
    if data is None or data == {}:
        raise SpecError("<file>", f"the spec file {path} is empty; write at least one field, e.g. 'ratio: 0.5'")
    if not isinstance(data, dict):
        raise SpecError("<root>", f"{path} must hold a mapping of spec fields, got {type(data).__name__}")
    return data


def _check_ratio(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(name, f"must be a fraction in [0, 1), got {value!r}")


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise SpecError(name, f"must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, f"must be an integer >= {minimum}, got {value!r}")


def _check_round_to(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(name, f"must be a positive integer (1 disables rounding), got {value!r}")


def _check_override(key: Any, value: Any) -> None:
    where = f"overrides[{key!r}]"
    if not isinstance(key, str) or not key:
        raise SpecError("overrides", f"keys must be non-empty strings, got {key!r}")
    if key.startswith("re:"):
        try:
            re.compile(key[3:])
        except re.error as error:
            raise SpecError(where, f"invalid regular expression: {error}") from error
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise SpecError(where, f"must be None (skip) or a mapping of settings, got {type(value).__name__}")
    for name in value:
        if name not in OVERRIDE_FIELDS:
            raise SpecError(f"{where}.{name}", f"unknown setting; allowed: {', '.join(OVERRIDE_FIELDS)}")
    if "ratio" in value:
        _check_ratio(f"{where}.ratio", value["ratio"])
    if "round_to" in value:
        _check_round_to(f"{where}.round_to", value["round_to"])
