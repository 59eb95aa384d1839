"""The typed record a model carries in ``gm.meta["fxprune"]``: what fxprune did to it, stage by stage.

A :class:`StageRecord` says which stage made the model (``"prepared"``: gates or masks in it,
``"converted"``: plain and compressed), by which method and spec, on what capture, what it decided
(kept units per channel group, N:M per weight), and — in ``history`` — the records of the stages
that ran before it (``compress`` on a compressed model, or a list of specs). It is also a read-only
``Mapping`` with the keys of the plain dict it replaces (``record["groups"]``, ``record.get("nm")``,
``record["stages"]``...), and the declared fields can be set by key (``record["train"] = log``).

``to_dict`` / ``from_dict`` give and read its JSON form; :func:`fxprune.save` stores that in the
model file and :func:`fxprune.load` restores it.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import StageError
from .shapes import refresh_shapes

if TYPE_CHECKING:
    import torch.fx as fx

    from .graph import ChannelGraph
    from .spec import Spec

KEY = "fxprune"
STAGES = ("prepared", "converted")


@dataclass(frozen=True)
class StageCost:
    """MACs (one forward on the example input) and parameters of a stage's result and of its input."""

    macs: int
    params: int
    input_macs: int
    input_params: int


@dataclass(eq=True)
class StageRecord(Mapping):
    """What one stage did (see the module docstring). Decisions: ``groups`` (kept/total units per
    channel group), ``keep`` (kept unit indices per pruned group), ``nm`` (N and M per weight)."""

    stage: str
    method: str
    spec: dict[str, Any]
    capture: dict[str, Any] | None = None  # fxprune.trace's CaptureInfo of the graph the stage analyzed
    groups: list[dict[str, Any]] = field(default_factory=list)
    keep: dict[int, list[int]] = field(default_factory=dict)
    nm: dict[str, dict[str, Any]] | None = None
    steps: int | None = None  # optimizer steps the method took
    macs: dict[str, int] | None = None  # an N:M method's own count: {"dense", "sparse"}
    latency: dict[str, Any] | None = None  # the latency plan (Spec.latency)
    train: dict[str, Any] | None = None  # the built-in loop's log
    cost: StageCost | None = None  # measured by compress for its result (every stage of a list of specs)
    outcome: dict[str, Any] | None = None  # requested vs achieved pruning (fxprune.selection.request_outcome)
    source: dict[str, Any] | None = None  # the checkpoint file it came from (fxprune.checkpoint_files.CheckpointInfo)
    history: list[StageRecord] = field(default_factory=list)  # earlier stages, oldest first
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer fxprune's file, kept as read

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")

    # ------------------------------------------------------------------ the dict view
    def _view_keys(self) -> list[str]:
        keys = [f.name for f in dataclasses.fields(self)
                if f.name not in ("history", "extra") and getattr(self, f.name) is not None]
        if self.history:
            keys.append("history")
        if self.history or self.cost is not None:
            keys.append("stages")
        return keys + list(self.extra)

    def __getitem__(self, key: str) -> Any:
        if key == "stages" and "stages" in self._view_keys():
            return self.stages()
        if key in self.extra:
            return self.extra[key]
        if key not in self._view_keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._view_keys())

    def __len__(self) -> int:
        return len(self._view_keys())

    def __setitem__(self, key: str, value: Any) -> None:
        names = [f.name for f in dataclasses.fields(self) if f.name not in ("stage", "history", "extra")]
        if key not in names:
            raise KeyError(f"{key!r} is not a field of the fxprune record; fields: {', '.join(names)}")
        setattr(self, key, value)

    # ------------------------------------------------------------------ stages
    def chain(self) -> list[StageRecord]:
        """Every stage, oldest first, this one last."""
        return [*self.history, self]

    def stages(self) -> list[dict[str, Any]]:
        """Per stage: method, spec, MACs and params, and their fractions of the stage's input and of
        the original model (None where a stage was not measured); for a channel stage, the ratio it
        requested and the ratio it achieved (else None)."""
        chain = self.chain()
        first = chain[0].cost
        rows = []
        for record in chain:
            cost = record.cost
            row: dict[str, Any] = {"method": record.method, "spec": record.spec,
                                   "macs": cost.macs if cost else None, "params": cost.params if cost else None}
            for name in ("macs", "params"):
                value = getattr(cost, name) if cost else None
                row[f"{name}_of_input"] = _fraction(value, getattr(cost, f"input_{name}") if cost else None)
                row[f"{name}_of_original"] = _fraction(value, getattr(first, f"input_{name}") if first else None)
            outcome = record.outcome or {}
            row["requested_ratio"], row["achieved_ratio"] = outcome.get("requested_ratio"), outcome.get("achieved_ratio")
            rows.append(row)
        return rows

    def with_earlier(self, earlier: StageRecord | None) -> StageRecord:
        """This record with ``earlier`` (and its history) as its history; returns self."""
        if earlier is not None:
            self.history = [*earlier.history, dataclasses.replace(earlier, history=[])]
            if self.source is None:
                self.source = earlier.source
        return self

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (history nested, no derived ``stages``)."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                if f.name not in ("history", "extra", "cost")}
        data["cost"] = dataclasses.asdict(self.cost) if self.cost is not None else None
        data["history"] = [record.to_dict() for record in self.history]
        data.update(self.extra)
        return json.loads(json.dumps(data, default=_jsonable))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageRecord:
        """Read :meth:`to_dict`'s form (or the plain dict records of fxprune before the typed record)."""
        if not isinstance(data, Mapping) or data.get("stage") not in STAGES or not isinstance(data.get("method"), str):
            raise ValueError("not an fxprune stage record (needs 'stage' and 'method')")
        names = {f.name for f in dataclasses.fields(cls)} - {"history", "extra", "cost"}
        values = {name: data[name] for name in names if name in data}
        values.setdefault("spec", {})
        values["keep"] = {int(gid): list(units) for gid, units in (data.get("keep") or {}).items()}
        cost = data.get("cost")
        history = [cls.from_dict(item) for item in data.get("history") or ()]
        extra = {k: v for k, v in data.items() if k not in names | {"history", "extra", "cost", "stages"}}
        return cls(**values, cost=StageCost(**cost) if cost else None, history=history, extra=extra)


def _fraction(value: int | None, of: int | None) -> float | None:
    return None if value is None or not of else value / of


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


# ---------------------------------------------------------------------------- on a GraphModule
def record_of(model: Any, stage: str | None = "converted") -> StageRecord | None:
    """The record on ``model`` (of this ``stage``; any stage with None), or None."""
    meta = getattr(model, "meta", None)
    record = meta.get(KEY) if isinstance(meta, dict) else None
    if isinstance(record, Mapping) and not isinstance(record, StageRecord):  # a plain dict of older code
        try:
            record = StageRecord.from_dict(record)
        except ValueError:
            return None
    if not isinstance(record, StageRecord):
        return None
    return record if stage is None or record.stage == stage else None


def _capture_of(gm: fx.GraphModule) -> dict[str, Any] | None:
    info = gm.meta.get("fxprune_capture")
    return json.loads(json.dumps(dataclasses.asdict(info), default=_jsonable)) if info is not None else None


def group_rows(graph: ChannelGraph, keep: Mapping[int, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """One row per group: id, kind, units, unit size, prunable, kept units and producers."""
    keep = keep or {}
    return [
        {
            "id": g.id,
            "kind": g.kind,
            "units": g.channels,
            "unit": g.unit,
            "prunable": g.prunable,
            "kept": int(np.asarray(keep[g.id]).sum()) if g.id in keep else g.channels,
            "producers": list(g.producers),
        }
        for g in graph.groups
    ]


def mark_prepared(gm: fx.GraphModule, graph: ChannelGraph, spec: Spec) -> fx.GraphModule:
    """Record on ``gm`` (gates or masks inserted into a copy of ``graph.gm``) that ``prepare`` made it."""
    gm.meta[KEY] = StageRecord("prepared", spec.method, spec.to_dict(), _capture_of(graph.gm)).with_earlier(
        record_of(graph.gm))
    return gm


def stamp(gm: fx.GraphModule, graph: ChannelGraph, keep: Mapping[int, np.ndarray], spec: Spec, **extra: Any) -> fx.GraphModule:
    """Attach the conversion record to ``gm`` (a rewrite of ``graph.gm``), refresh its shape
    metadata (see :mod:`fxprune.shapes`) and return it. The record of ``graph.gm``, if it was
    compressed before, goes into the new record's history."""
    refresh_shapes(gm)
    record = StageRecord(
        "converted", spec.method, spec.to_dict(), _capture_of(graph.gm), group_rows(graph, keep),
        {int(gid): np.flatnonzero(units).tolist() for gid, units in keep.items()},
    )
    for key, value in extra.items():
        record[key] = value
    gm.meta[KEY] = record.with_earlier(record_of(graph.gm))
    return gm


def check_prepared(pruner: Any, where: str = "convert") -> StageRecord:
    """The "prepared" record of ``pruner.model``; a :class:`~fxprune.errors.StageError` saying what
    ``pruner`` is instead when it did not come from :func:`fxprune.prepare`."""
    model = getattr(pruner, "model", None)
    record = record_of(model, stage=None)
    if record is not None and record.stage == "prepared":
        return record
    own = record_of(pruner, stage=None)
    if own is not None and own.stage == "prepared":
        stage, got = own.stage, "the prepared model; pass the pruner, not pruner.model"
    elif own is not None:
        stage, got = own.stage, f"a model already {own.stage} by {own.method!r}; prepare it again to compress it further"
    elif record is not None:
        stage, got = record.stage, f"a pruner whose model is {record.stage}"
    else:
        stage, got = type(pruner).__name__, f"{type(pruner).__name__}, which fxprune.prepare() did not make"
    raise StageError(f"{where}() takes the pruner that fxprune.prepare() returned, got {got}", where=where,
                     expected="prepared", got=stage)


def keep_of(record: Mapping[str, Any], graph: ChannelGraph) -> dict[int, np.ndarray]:
    """The keep-set (bool per unit) stored in a record, for the graph it was made on."""
    keep = {}
    for gid, kept in record.get("keep", {}).items():
        units = np.zeros(graph.groups[int(gid)].channels, bool)
        units[kept] = True
        keep[int(gid)] = units
    return keep


def from_saved(metadata: Mapping[str, Any]) -> StageRecord | None:
    """The record stored in a model file's metadata; for files written before the typed record, the
    part of it they kept (the CLI's report: spec and groups; N and M per weight), else None."""
    if metadata.get("record"):
        return StageRecord.from_dict(metadata["record"])
    report = metadata.get("report") if isinstance(metadata.get("report"), Mapping) else {}
    spec = report.get("spec") if isinstance(report.get("spec"), Mapping) else {}
    if not (metadata.get("nm") or spec or report.get("groups")):
        return None
    method = spec.get("method") or ("nm" if metadata.get("nm") else "unknown")
    return StageRecord("converted", method, dict(spec), groups=list(report.get("groups") or []),
                       nm=dict(metadata["nm"]) if metadata.get("nm") else None)
