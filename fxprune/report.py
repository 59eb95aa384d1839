"""``report.md`` with plots: what a compression did, for a person to look at.

The report compares the dense and the compressed model (params, MACs, ONNX Runtime latency,
PSNR/SSIM), shows kept/total units of every group as a bar chart, and — when the model was
trained — the loss and penalty-factor curves. A model compressed in stages (a list of specs, or
``compress`` on a compressed model) gets a table and a chart of the MAC and parameter fractions
after every stage and overall.
"""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

KIND_COLORS = {"free": "#4c72b0", "coupled": "#dd8452", "fixed": "#9a9a9a"}


@dataclass
class ModelStats:
    """Measured figures of one model; None where not measured."""

    params: int
    macs: int
    latency_ms: float | None = None
    psnr: float | None = None
    ssim: float | None = None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_groups(groups: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Bar chart of kept vs total units of every prunable group, colored by kind.

    >>> import tempfile, pathlib
    >>> rows = [{"id": 0, "kind": "coupled", "units": 64, "kept": 32, "prunable": 64}]
    >>> plot_groups(rows, pathlib.Path(tempfile.mkdtemp()) / "g.png").stat().st_size > 1000
    True
    """
    plt = _pyplot()
    rows = [g for g in groups if g["prunable"] > 0] or list(groups)
    width = min(16.0, max(6.0, 0.18 * len(rows) + 2))
    fig, ax = plt.subplots(figsize=(width, 3.6), dpi=110)
    x = np.arange(len(rows))
    from matplotlib.patches import Patch

    ax.bar(x, [g["units"] for g in rows], color="#e6e6e6", edgecolor="#bbbbbb")
    ax.bar(x, [g["kept"] for g in rows], color=[KIND_COLORS[g["kind"]] for g in rows])
    handles = [Patch(facecolor="#e6e6e6", edgecolor="#bbbbbb", label="total")] + [
        Patch(color=color, label=f"kept ({kind})") for kind, color in KIND_COLORS.items() if any(g["kind"] == kind for g in rows)
    ]
    if len(rows) <= 40:
        ax.set_xticks(x, [str(g["id"]) for g in rows], fontsize=7)
    ax.set_xlabel("group id")
    ax.set_ylabel("units")
    ax.set_title("Kept units per group", loc="left")
    ax.legend(handles=handles, fontsize=8, ncols=4, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.margins(x=0.01)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def status_series(train: Mapping[str, Any]) -> dict[str, list[float]]:
    """The series of a training log (``TrainLog.as_dict()``) worth plotting: every status figure
    the method reported with a finite non-zero value (a log written before the generic ``status``
    has its one ``alpha`` series instead).

    >>> status_series({"steps": [1, 2], "loss": [1, 1], "status": {"rate": [0.0, 0.5], "idle": [0.0, 0.0]}})
    {'rate': [0.0, 0.5]}
    """
    series = dict(train.get("status") or ({"alpha": train["alpha"]} if train.get("alpha") else {}))
    return {name: list(values) for name, values in series.items()
            if any(v is not None and math.isfinite(v) and v != 0 for v in values)}


def plot_training(train: dict[str, Any], path: str | Path) -> Path:
    """Loss against step, and under it one panel per figure of the method's status (:func:`status_series`)."""
    plt = _pyplot()
    series = status_series(train)
    fig, axes = plt.subplots(1 + len(series), 1, figsize=(7, 3.2 + 1.4 * len(series)), dpi=110, sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [2] + [1] * len(series)})
    ax = axes[0][0]
    ax.plot(train["steps"], train["loss"], color="#4c72b0", lw=1)
    ax.set_ylabel("L1 loss", color="#4c72b0")
    for row, (name, values) in enumerate(series.items(), start=1):
        axes[row][0].plot(train["steps"], values, color="#dd8452", lw=1)
        axes[row][0].set_ylabel(name, color="#dd8452")
    axes[-1][0].set_xlabel("step")
    ax.set_title("Training")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _figure(value: float | int | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.3f}"


def comparison_table(dense: ModelStats, small: ModelStats, input_size: tuple[int, int]) -> list[str]:
    """Markdown rows: dense vs compressed with their ratio."""
    h, w = input_size
    rows = [
        ("params", _figure(dense.params / 1e3, ".1f") + "K", _figure(small.params / 1e3, ".1f") + "K", _ratio(small.params, dense.params)),
        (f"MACs ({h}×{w} input)", _figure(dense.macs / 1e9, ".3f") + "G", _figure(small.macs / 1e9, ".3f") + "G", _ratio(small.macs, dense.macs)),
        ("ONNX Runtime latency", _figure(dense.latency_ms, ".1f") + " ms" if dense.latency_ms else "—",
         _figure(small.latency_ms, ".1f") + " ms" if small.latency_ms else "—", _ratio(small.latency_ms, dense.latency_ms)),
        ("Y-PSNR", _figure(dense.psnr, ".2f") + " dB" if dense.psnr else "—", _figure(small.psnr, ".2f") + " dB" if small.psnr else "—",
         "—" if dense.psnr is None or small.psnr is None else f"{small.psnr - dense.psnr:+.2f} dB"),
        ("SSIM", _figure(dense.ssim, ".4f"), _figure(small.ssim, ".4f"),
         "—" if dense.ssim is None or small.ssim is None else f"{small.ssim - dense.ssim:+.4f}"),
    ]
    lines = ["| | dense | compressed | compressed / dense |", "|---|---|---|---|"]
    return lines + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]


def group_table(groups: Sequence[dict[str, Any]], limit: int = 60) -> list[str]:
    lines = ["| group | kind | kept / total units | unit | producers |", "|---|---|---|---|---|"]
    for g in groups[:limit]:
        producers = ", ".join(p or "<root>" for p in g["producers"][:4]) + (" …" if len(g["producers"]) > 4 else "")
        lines.append(f"| {g['id']} | {g['kind']} | {g['kept']} / {g['units']} | {g['unit']} | {producers} |")
    if len(groups) > limit:
        lines.append(f"| … | | | | {len(groups) - limit} more groups |")
    return lines


def plot_nm(layers: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Bar chart of the kept fraction N/M of every N:M layer (the record's ``nm``).

    >>> import tempfile, pathlib
    >>> rows = {"body.0.conv1.weight": {"n": 2, "m": 8}, "body.0.conv2.weight": {"n": 5, "m": 8}}
    >>> plot_nm(rows, pathlib.Path(tempfile.mkdtemp()) / "nm.png").stat().st_size > 1000
    True
    """
    plt = _pyplot()
    names = list(layers)
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.25 * len(names) + 2)), 3.6), dpi=110)
    ax.bar(np.arange(len(names)), [layers[n]["n"] / layers[n]["m"] for n in names], color="#4c72b0")
    if len(names) <= 40:
        ax.set_xticks(np.arange(len(names)), [n.rsplit(".", 1)[0] for n in names], fontsize=7, rotation=60, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("N / M kept")
    ax.set_title("N:M per layer", loc="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _nm_section(layers: dict[str, dict[str, Any]], folder: Path) -> list[str]:
    plot_nm(layers, folder / "nm_layers.png")
    rows = [f"| `{name}` | {v['n']}:{v['m']} |" for name, v in layers.items()]
    return ["## N:M per layer", "", "![N/M per layer](nm_layers.png)", "", "| weight | N:M |", "| --- | --- |",
            *rows, ""]


# the spec fields a report names for a stage, where the stage's method owns them and they are set
HEADLINE_FIELDS = ("ratio", "macs", "budget", "latency", "round_to", "n", "m", "hardware", "steps")


def settings(spec: dict[str, Any]) -> str:
    """The headline settings of a stage's spec, e.g. ``ratio 0.5, round_to 16``.

    >>> settings({"method": "nm", "ratio": 0.5, "round_to": 16, "n": 2, "m": 8, "budget": None})
    'n 2, m 8'
    """
    from .spec import FIELD_OWNERS

    method = spec.get("method")
    return ", ".join(f"{name} {spec[name]:g}" if isinstance(spec[name], float) else f"{name} {spec[name]}"
                     for name in HEADLINE_FIELDS
                     if spec.get(name) is not None and method in FIELD_OWNERS.get(name, (method,)))


def _macs_text(macs: int | None) -> str:
    return "—" if macs is None else f"{macs / 1e6:.3f}M"


def stage_table(stages: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown rows: per stage (``record["stages"]``) its MACs and params, the fraction of its
    input and of the original model, and the overall fractions.

    >>> rows = [{"method": "l1", "spec": {"method": "l1", "ratio": 0.5}, "macs": 50, "params": 40,
    ...          "macs_of_input": 0.5, "macs_of_original": 0.5, "params_of_input": 0.4, "params_of_original": 0.4}]
    >>> stage_table(rows)[-1]
    '| overall | | | 0.000M | | **0.500** | 40 | | **0.400** |'
    """
    lines = ["| stage | method | settings | MACs | of its input | of the original | params | of its input | "
             "of the original |", "|---|---|---|---|---|---|---|---|---|"]
    for index, row in enumerate(stages):
        lines.append(f"| {index + 1} | `{row['method']}` | {settings(row['spec'])} | {_macs_text(row['macs'])} | "
                     f"{_figure(row['macs_of_input'], '.3f')} | {_figure(row['macs_of_original'], '.3f')} | "
                     f"{_figure(row['params'], 'd')} | {_figure(row['params_of_input'], '.3f')} | "
                     f"{_figure(row['params_of_original'], '.3f')} |")
    last = stages[-1]
    lines.append(f"| overall | | | {_macs_text(last['macs'])} | | **{_figure(last['macs_of_original'], '.3f')}** | "
                 f"{_figure(last['params'], 'd')} | | **{_figure(last['params_of_original'], '.3f')}** |")
    return lines


def plot_stages(stages: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """MACs and params after every stage, as fractions of the original model."""
    plt = _pyplot()
    labels = ["dense"] + [f"{i + 1}: {row['method']}" for i, row in enumerate(stages)]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(labels) + 1.5), 3.2), dpi=110)
    x = np.arange(len(labels))
    for offset, key, color in ((-0.2, "macs", "#4c72b0"), (0.2, "params", "#dd8452")):
        values = [1.0] + [row[f"{key}_of_original"] or 0.0 for row in stages]
        ax.bar(x + offset, values, width=0.4, color=color, label=f"{key} / original")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("After each stage", loc="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _stages_section(stages: Sequence[dict[str, Any]], folder: Path) -> list[str]:
    lines = ["## Stages", "", *stage_table(stages), ""]
    if all(row["macs_of_original"] is not None for row in stages):
        plot_stages(stages, folder / "stages.png")
        lines += ["![MACs and params after each stage](stages.png)", ""]
    return lines


def write_report(
    folder: str | Path,
    record: dict[str, Any],
    dense: ModelStats,
    small: ModelStats,
    input_size: tuple[int, int],
    model_name: str,
    files: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, ``groups.png`` and (if trained) ``training.png`` into ``folder``.

    ``record`` is the compressed model's ``meta["fxprune"]`` (see :mod:`fxprune.record`); with
    more than one stage the report gets a ``## Stages`` section and ``stages.png``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_groups(record["groups"], folder / "groups.png")
    groups = record["groups"]
    pruned = [g for g in groups if g["kept"] < g["units"]]
    spec = record.get("spec", {})
    lines = [
        f"# fxprune report: {model_name}",
        "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, method `{record.get('method')}`, {settings(spec)}"
        + f". {len(groups)} channel groups "
        f"({sum(g['kind'] == 'free' for g in groups)} free, {sum(g['kind'] == 'coupled' for g in groups)} coupled, "
        f"{sum(g['kind'] == 'fixed' for g in groups)} fixed); {len(pruned)} were pruned.",
        "",
        "## Dense vs compressed",
        "",
        *comparison_table(dense, small, input_size),
        "",
        *(f"- {note}" for note in notes),
        "",
        "## Kept units per group",
        "",
        "![kept units per group](groups.png)",
        "",
        *group_table(groups),
        "",
    ]
    stages = record.get("stages") or []
    if len(stages) > 1:
        lines += _stages_section(stages, folder)
    if record.get("nm"):
        lines += _nm_section(record["nm"], folder)
    train = record.get("train")
    if train and train.get("steps"):
        plot_training(train, folder / "training.png")
        lines += ["## Training", "", f"{train['steps'][-1]} steps.", "", "![training](training.png)", ""]
    if files:
        lines += ["## Files", "", *(f"- `{name}`: {what}" for name, what in files.items()), ""]
    lines += ["## Spec", "", "```yaml", _yaml(spec).rstrip(), "```", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)
