"""Compression specs: frozen, validated, serializable to YAML/JSON, with per-module overrides.

Override keys, from weakest to strongest precedence (like torch.ao's QConfigMapping):
``type:ClassName`` (module class), ``re:<regex>`` (full match on the qualified name), then the exact
qualified name. A value of ``None`` skips the module (its group is not pruned); a dict sets fields
(``ratio`` and ``round_to`` for ``l1``/``assl``; ``m`` for ``sls``; ``m`` and ``n`` for ``nm``). A key that matches no producer of any group is an error, so
a typo never silently prunes nothing.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import SpecError

METHODS = ("l1", "assl", "sls", "nm")  # the built-in methods; declare_method adds registered ones
ALIGNMENTS = ("joint", "ssa")
SHRINKS = ("schedule", "paper")
OVERRIDE_FIELDS = ("ratio", "round_to")
NM_METHODS = ("sls", "nm")
# the override settings each method reads (l1/assl: OVERRIDE_FIELDS)
METHOD_OVERRIDE_FIELDS = {"sls": ("m",), "nm": ("m", "n")}
HARDWARE = ("2:4",)
# fields owned by some methods only: set away from the default on another method is an error
_ASSL_ONLY = ("align", "reg_step", "reg_interval", "reg_ceiling", "hold_steps", "ssa_steps", "ssa_weight", "shrink",
              "finetune_steps")
FIELD_OWNERS: dict[str, tuple[str, ...]] = {
    **{name: ("l1", "assl") for name in ("ratio", "round_to", "latency")},
    **{name: ("assl",) for name in _ASSL_ONLY},
    "steps": ("l1", "assl", "sls", "nm"),
    "m": NM_METHODS, "budget": NM_METHODS, "hardware": NM_METHODS, "n": ("nm",),
    **{name: ("sls",) for name in ("rerank_every", "reg_weight", "anneal_every", "anneal_factor",
                                   "anneal_threshold", "search_steps")},
}
_LEGACY = ("l1", "assl")  # their fields are not ownership-checked yet, to keep older specs valid


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
            takes this many steps in total. For ``sls`` the total of search and fine-tuning;
            for ``nm`` the optional fine-tuning under the frozen mask; for ``l1`` the optional
            fine-tuning of the sliced model.
        shrink: ``"schedule"`` (default): besides the penalty, ``pruner.step()`` caps every
            unimportant gate (and its bias) at a fraction of its value when its penalty started;
            the fraction falls with the accumulated penalty factor α and reaches 0 at the prune
            point, so masking costs nothing at any schedule length, whatever the optimizer.
            ``"paper"``: the penalty alone (coupled L2 through the optimizer, as the official
            code); with Adam the gates move about ``lr`` per step, so short schedules prune live
            channels.

    N:M fields (``method="sls"``: learned N per layer; ``method="nm"``: one-shot magnitude N:M).
    Groups are ``m`` consecutive input channels per output filter and kernel tap; only conv /
    linear weights whose reduction length is a multiple of ``m`` are masked, and the layers that
    read the model input or write its output stay dense unless an override names them.
        m: the group size M (16).
        n: ``nm`` only: keep the ``n`` largest of every group (1 ≤ n < m).
        budget: keep at most this fraction of the dense MACs (0 < budget ≤ 1). ``sls`` needs it;
            ``nm`` takes ``n`` or ``budget`` (then the largest uniform N that fits). ``macs`` is
            an alias (and for ``l1``/``assl`` ``budget`` is an alias of ``macs``).
        hardware: ``"2:4"``: only the top 2 of every aligned block of 4 may be kept, so every
            pattern runs on NVIDIA sparse tensor cores; N is capped at M/2.
        rerank_every: re-rank the weights of every group from their magnitudes this often (1000).
        reg_weight: λ of the cost penalty ``λ · anneal · cost``, cost normalized by the dense
            MACs (1.4e-3, the paper's 1e-10 on raw MACs translated; annealing adjusts it).
        anneal_every / anneal_factor / anneal_threshold: every ``anneal_every`` steps (500), if
            the compression ratio (dense / current MACs) grew by less than ``anneal_threshold``
            (0.2), ``anneal *= anneal_factor`` (1.2). These are the official code's values; the
            paper's text says 1.1 and 0.1.
        search_steps: the budget must be met by this step (default: half of ``steps``); if the
            search has not met it, a greedy cut does (with a warning) and fine-tuning starts.

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
    m: int = 16
    n: int | None = None
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
        if self.method not in METHODS:
            raise SpecError("method", f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        self._alias_budget()
        self._check_owners()
        self._check_nm()
        if self.align not in ALIGNMENTS:
            raise SpecError("align", f"unknown alignment {self.align!r}; choose one of {', '.join(ALIGNMENTS)}")
        if self.shrink not in SHRINKS:
            raise SpecError("shrink", f"unknown gate shrink {self.shrink!r}; choose one of {', '.join(SHRINKS)}")
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
            _check_override(key, value, METHOD_OVERRIDE_FIELDS.get(self.method, OVERRIDE_FIELDS))
        object.__setattr__(self, "overrides", {k: (None if v is None else dict(v)) for k, v in self.overrides.items()})

    def _alias_budget(self) -> None:
        """``budget`` and ``macs`` name the same thing; keep the one the method reads."""
        if self.budget is not None and self.macs is not None and self.budget != self.macs:
            raise SpecError("budget", f"budget={self.budget} and macs={self.macs} disagree; set one")
        if self.method in NM_METHODS and self.macs is not None:
            object.__setattr__(self, "budget", self.macs)
            object.__setattr__(self, "macs", None)
        elif self.method not in NM_METHODS and self.budget is not None:
            object.__setattr__(self, "macs", self.budget)
            object.__setattr__(self, "budget", None)

    def _check_owners(self) -> None:
        for spec_field in fields(self):
            owners = FIELD_OWNERS.get(spec_field.name)
            if owners is None or self.method in owners or (self.method in _LEGACY and set(owners) & set(_LEGACY)):
                continue
            default = spec_field.default
            if getattr(self, spec_field.name) != default:
                raise SpecError(spec_field.name, f"is a setting of method {' / '.join(owners)}, not of "
                                f"{self.method!r}; remove it or choose one of those methods")

    def _check_nm(self) -> None:
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, (int, float))
                                        or not 0 < self.budget <= 1):
            raise SpecError("budget", f"must be a fraction of the dense MACs in (0, 1], got {self.budget!r}")
        if self.method not in NM_METHODS:
            return
        _check_count("m", self.m, minimum=2)
        for name in ("rerank_every", "anneal_every"):
            _check_count(name, getattr(self, name), minimum=1)
        if self.search_steps is not None:
            _check_count("search_steps", self.search_steps, minimum=0)
        _check_positive("reg_weight", self.reg_weight, allow_zero=True)
        _check_positive("anneal_threshold", self.anneal_threshold, allow_zero=True)
        if isinstance(self.anneal_factor, bool) or not isinstance(self.anneal_factor, (int, float)) \
                or self.anneal_factor < 1:
            raise SpecError("anneal_factor", f"must be a number >= 1, got {self.anneal_factor!r}")
        if self.hardware is not None and self.hardware not in HARDWARE:
            raise SpecError("hardware", f"unknown hardware pattern {self.hardware!r}; choose None or one of "
                            f"{', '.join(HARDWARE)}")
        if self.hardware == "2:4" and self.m % 4:
            raise SpecError("m", f"hardware='2:4' needs m divisible by 4, got {self.m}")
        n_max = self.m // 2 if self.hardware == "2:4" else self.m - 1
        if self.method == "sls" and self.budget is None:
            raise SpecError("budget", "method 'sls' learns N per layer under a MAC budget: set budget= "
                            "(e.g. 0.25 keeps a quarter of the dense MACs)")
        if self.method == "nm":
            if (self.n is None) == (self.budget is None):
                raise SpecError("n", "method 'nm' needs exactly one of n= (e.g. n=2, m=4) or budget=")
            if self.n is not None:
                _check_count("n", self.n, minimum=1)
                if self.n > n_max:
                    raise SpecError("n", f"must be at most {n_max} for m={self.m}"
                                    f"{' in 2:4 mode' if self.hardware else ''}, got {self.n}")

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


def _check_override(key: Any, value: Any, allowed: tuple[str, ...] = OVERRIDE_FIELDS) -> None:
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
        if name not in allowed:
            raise SpecError(f"{where}.{name}", f"unknown setting; allowed: {', '.join(allowed)}")
    if "ratio" in value:
        _check_ratio(f"{where}.ratio", value["ratio"])
    if "round_to" in value:
        _check_round_to(f"{where}.round_to", value["round_to"])
    if "m" in value:
        _check_count(f"{where}.m", value["m"], minimum=2)
    if "n" in value:
        _check_count(f"{where}.n", value["n"], minimum=1)


def declare_method(name: str, owns: Iterable[str] = (), override_fields: Iterable[str] | None = None) -> None:
    """Let ``Spec`` accept ``method=name``; :func:`fxprune.methods.register_method` calls it.

    The method becomes an owner of the fields in ``owns`` (existing Spec fields it reads; a field
    no method owns is open to all already), and its overrides take ``override_fields`` (default:
    ``ratio`` and ``round_to``)."""
    global METHODS
    owns = tuple(owns)
    unknown = sorted(set(owns) - {f.name for f in fields(Spec)})
    if unknown:
        raise ValueError(f"method {name!r} declares fields Spec does not have: {unknown}")
    if name not in METHODS:
        METHODS = (*METHODS, name)
    for spec_field in owns:
        if spec_field in FIELD_OWNERS and name not in FIELD_OWNERS[spec_field]:
            FIELD_OWNERS[spec_field] = (*FIELD_OWNERS[spec_field], name)
    if override_fields is not None:
        METHOD_OVERRIDE_FIELDS[name] = tuple(override_fields)
