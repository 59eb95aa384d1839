"""Channel analysis: fxprune (trace + build_channel_graph) next to Torch-Pruning (DependencyGraph).

fxprune is timed cold (first capture of the model in the process) and warm (a second model of the
same structure, whose capture comes from fxprune's per-process cache).

Every measurement runs in a fresh subprocess (one tool, one model); imports, one forward of the model
and a warm-up of the tool on a tiny model come first and are not timed. Peak memory is the growth of
the process's peak RSS (``resource.getrusage().ru_maxrss``) during the timed calls. Torch-Pruning
runs under a timeout because it hangs on some models. Correctness checks are objective (see METHOD).

    python benchmarks/bench_analysis.py --out benchmarks/RESULTS.md   # full run (~20-25 min idle)
    python benchmarks/bench_analysis.py --quick                        # smoke test (< 1 min), prints
"""
from __future__ import annotations

import argparse
import copy
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from tqdm import tqdm

import fxprune
from fxprune.models import build
from results_file import replace_section

HEADING = "## Channel analysis (bench_analysis.py)"
INPUT = (1, 3, 32, 32)
GOAL_MODEL, GOAL_LAYERS, GOAL_RATIO, SMALL_GOAL_RATIO = "rcan", 814, 2.0, 3.0
FULL = {
    "edsr": dict(blocks=32, channels=256, res_scale=0.1), "rcan": dict(groups=10, blocks=20, channels=64, reduction=16),
    "srresnet": dict(blocks=16, channels=64), "carn": dict(blocks=3, channels=64, units=3),
    "imdn": dict(blocks=6, channels=64), "nafnet": dict(width=32, enc_blocks=(2, 2, 4, 8), middle_blocks=12,
                                                         dec_blocks=(2, 2, 2, 2)),
    "espcn": dict(channels=64), "fsrcnn": dict(d=56, s=12, m=4), "dncnn": dict(depth=17, channels=64),
    "vdsr": dict(depth=20, channels=64), "unet": dict(channels=64, depth=4),
    "swinir": dict(channels=60, depth=24, heads=6, window=8), "restormer": dict(channels=48, blocks=8, heads=4),
}
QUICK = {"edsr": dict(blocks=2, channels=16), "rcan": dict(groups=1, blocks=2, channels=16)}
SCALING_FULL = [("edsr", dict(blocks=b, channels=64)) for b in (8, 16, 32, 64)] + [
    ("rcan", dict(groups=g, blocks=20, channels=64, reduction=16)) for g in (1, 2, 5, 10)]
SCALING_QUICK = [("edsr", dict(blocks=b, channels=16)) for b in (2, 4)]
LAYERS = (nn.modules.conv._ConvNd, nn.Linear)
TIMES = ("trace_s", "analysis_s", "warm_s", "build_s", "groups_s", "rss_mb", "warmup_s")
METHOD = (
    "**Units** — each tool partitions the output channels of every conv/linear into units that must be dropped "
    "together (fxprune: `unit_index` of each group's weight members; TP: the output channels one root index of a "
    "`get_all_groups()` group prunes). The column counts distinct TP units identical to an fxprune unit. "
    "**fx PixelShuffle**: every unit of the conv before PixelShuffle(r) must hold r² consecutive channels. "
    "**TP prune 1 unit of every group**: on a deep copy, `group.prune(idxs=[0])` for every group of "
    "`get_all_groups(ignored_layers=[output layer])`, then a forward must run and keep the output shape. "
    "**TP PixelShuffle**: `get_pruning_group(conv after PixelShuffle(r), prune_conv_in_channels, idxs=[0])"
    ".prune()` must remove r² output channels of the conv before, and the model must still run. "
    "**TP channel attention**: output channel 0 of the first two convs with an N×C×1×1 output (the branch "
    "broadcast-multiplied onto the features) pruned through their groups, then a forward. fxprune's pruned "
    "forward is not run here: tests/test_slice.py slices random units of every group on the default-size zoo "
    "models and compares the forward with the masked model's.")


# ---------------------------------------------------------------- worker side (one tool, one model)
def emit(**values) -> None:
    """Report values to the parent at once, so a later hang cannot lose them."""
    print("BENCH " + json.dumps(values), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def execution_order(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple]]:
    """(name, module, output shape) of every leaf module, in the order the forward runs them."""
    order, hooks = [], []
    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: order.append((n, m, tuple(o.shape)))))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return order


def pixel_shuffles(order) -> list[tuple[str, str, int]]:
    """(layer before, layer after, factor) around every PixelShuffle, in execution order."""
    triples = []
    for i, (_, module, _) in enumerate(order):
        if isinstance(module, nn.PixelShuffle):
            before = next(n for n, m, _ in reversed(order[:i]) if isinstance(m, LAYERS))
            after = next((n for n, m, _ in order[i + 1:] if isinstance(m, LAYERS)), None)
            if after:
                triples.append((before, after, module.upscale_factor))
    return triples


def fx_units(graph, layers: dict[str, nn.Module]) -> dict[tuple[int, int], dict[str, list[int]]]:
    """(group, unit) -> {layer: its output channels in that unit}."""
    units: dict[tuple[int, int], dict[str, list[int]]] = {}
    for group in graph.groups:
        for member in group.members:
            layer = (member.param or "").removesuffix(".weight")
            out_dim = 1 if isinstance(layers.get(layer), nn.modules.conv._ConvTransposeNd) else 0
            if layer in layers and member.param.endswith(".weight") and member.dim == out_dim:
                for channel, unit in enumerate(graph.unit_index(group, member).tolist()):
                    units.setdefault((group.id, unit), {}).setdefault(layer, []).append(channel)
    return units


def fx_pixel_shuffle_check(units, triples) -> str:
    for before, _, r in triples:
        for unit in units.values():
            channels = unit.get(before)
            if channels and (len(channels) != r * r or np.ptp(channels) != r * r - 1):
                return f"wrong: {before} has units of {len(channels)} channels, not {r * r} consecutive"
    return "ok" if triples else "—"


def fx_worker(model, x, order, layers, check: bool) -> None:
    tiny = nn.Sequential(nn.Conv2d(3, 8, 3), nn.PixelShuffle(2))
    _, warmup_s = timed(lambda: fxprune.analyze(tiny, torch.randn(1, 3, 8, 8)))
    base = peak_rss_mb()
    gm, trace_s = timed(lambda: fxprune.trace(model, x))
    graph, analysis_s = timed(lambda: fxprune.build_channel_graph(gm))
    emit(trace_s=trace_s, analysis_s=analysis_s, rss_mb=peak_rss_mb() - base, warmup_s=warmup_s,
         path=gm.meta["fxprune_capture"].path)
    # Warm: a second model of the same structure with other weights, as the CLI, tests and a
    # compress after an analyze do; the capture comes from the per-process cache.
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    _, warm_s = timed(lambda: fxprune.analyze(other, x))
    emit(warm_s=warm_s)
    if check:
        units = fx_units(graph, layers)
        emit(groups=len(graph.groups), kinds={k: len(graph.by_kind(k)) for k in ("free", "coupled", "fixed")},
             units=[[f"{layer}:{c}" for layer, cs in u.items() for c in cs] for u in units.values()],
             pixel_shuffle_fx=fx_pixel_shuffle_check(units, pixel_shuffles(order)))


def tp_units(DG, groups) -> list[list[str]]:
    """TP's units: the output channels that pruning one root index of a group removes.

    Where every item of a group holds as many indices as its root, root index k maps to index k of each
    item; elsewhere (a many-to-one mapping, e.g. a chunk) each root index is probed with get_pruning_group.
    """
    units = []
    for group in groups:
        root = group[0]
        probes = [group] if all(len(item.idxs) == len(root.idxs) for item in group) else [
            DG.get_pruning_group(root.dep.target.module, root.dep.handler, [r]) for r in root.idxs]
        for probe in probes:
            by_root: dict[int, list[str]] = {}
            for item in probe:
                if isinstance(item.dep.target.module, LAYERS) and DG.is_out_channel_pruning_fn(item.dep.handler):
                    name = DG._module2name[item.dep.target.module]
                    for channel, r in zip(item.idxs, item.root_idxs):
                        by_root.setdefault(int(r), []).append(f"{name}:{channel}")
            units += by_root.values()
    return units


def tp_check(model, x, prune, arg) -> str:
    """Prune a deep copy through TP with ``prune(DG, modules, arg)``, run it: 'ok', 'crash: …' or 'wrong …'."""
    expected = model(x).shape
    pruned = copy.deepcopy(model)
    try:
        DG = tp.DependencyGraph().build_dependency(pruned, example_inputs=x)
        problem = prune(DG, dict(pruned.named_modules()), arg)
        with torch.no_grad():
            y = pruned(x)
    except Exception as error:  # noqa: BLE001 - a crash is the result being measured
        return f"crash: {type(error).__name__}: {str(error).splitlines()[0][:50]}…"
    return problem or ("ok" if y.shape == expected else f"wrong shape {tuple(y.shape)}")


def prune_every_group(DG, modules, output_layer: str) -> None:
    for group in list(DG.get_all_groups(ignored_layers=[modules[output_layer]])):
        group.prune(idxs=[0])


def prune_after_pixel_shuffles(DG, modules, triples) -> str | None:
    for before, after, r in triples:
        width = modules[before].out_channels
        DG.get_pruning_group(modules[after], tp.prune_conv_in_channels, idxs=[0]).prune()
        if width - modules[before].out_channels != r * r:
            return f"wrong: {width - modules[before].out_channels} of {r * r} channels left {before}"
    return None


def prune_outputs(DG, modules, names) -> None:
    for name in names:
        DG.get_pruning_group(modules[name], tp.prune_conv_out_channels, idxs=[0]).prune()


def tp_worker(model, x, order, layers, check: bool) -> None:
    tiny = nn.Sequential(nn.Conv2d(3, 8, 3))
    _, warmup_s = timed(lambda: tp.DependencyGraph().build_dependency(tiny, example_inputs=torch.randn(1, 3, 8, 8)))
    base = peak_rss_mb()
    DG, build_s = timed(lambda: tp.DependencyGraph().build_dependency(model, example_inputs=x))
    groups, groups_s = timed(lambda: list(DG.get_all_groups()))
    emit(build_s=build_s, groups_s=groups_s, rss_mb=peak_rss_mb() - base, warmup_s=warmup_s)


def tp_check_worker(model, x, order, layers, check: bool) -> None:
    """TP's units and pruned-forward checks; a process of its own, so slow checks never cost a timing."""
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = list(DG.get_all_groups())
    emit(groups=len(groups), units=tp_units(DG, groups))
    output_layer = [n for n, m, _ in order if isinstance(m, LAYERS)][-1]
    emit(prune_all=tp_check(model, x, prune_every_group, output_layer))
    triples = pixel_shuffles(order)
    emit(pixel_shuffle=tp_check(model, x, prune_after_pixel_shuffles, triples) if triples else "—")
    squeeze = [n for n, m, shape in order if isinstance(m, nn.Conv2d) and shape[2:] == (1, 1)][:2]
    emit(attention=tp_check(model, x, prune_outputs, squeeze) if squeeze else "—")


def worker(job: dict) -> None:
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model, x = build(job["model"], **job["kwargs"]).eval(), torch.randn(*INPUT)
    order = execution_order(model, x)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LAYERS)}
    emit(layers=len(layers))
    tools = {"fxprune": fx_worker, "tp": tp_worker, "tp-check": tp_check_worker}
    tools[job["tool"]](model, x, order, layers, job["check"])


# ---------------------------------------------------------------- parent side
def run_once(job: dict, timeout: float) -> dict:
    """One fresh subprocess; the values it reported before a crash or a timeout are kept."""
    command = [sys.executable, __file__, "--worker", json.dumps(job)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        out, status = proc.stdout, "ok" if proc.returncode == 0 else "failed: " + proc.stderr.strip()[-60:]
    except subprocess.TimeoutExpired as expired:
        out, status = expired.stdout or "", "timeout"
        out = out.decode() if isinstance(out, bytes) else out
    values = {"status": status}
    for line in out.splitlines():
        if line.startswith("BENCH "):
            values.update(json.loads(line[6:]))
    return values


def best_of(runs: list[dict], parts: tuple[str, str]) -> dict:
    """Structure and checks from the first run; each time is the minimum over the runs that reached it."""
    merged = dict(runs[0])
    for key in TIMES:
        merged[key] = min((r[key] for r in runs if key in r), default=None)
    merged["total_s"] = None if None in (merged[k] for k in parts) else sum(merged[k] for k in parts)
    return merged


def measure(specs, args, check: bool, desc: str) -> list[tuple]:
    """Both tools on every model, repetitions interleaved so a busy moment of the machine hits both.

    A tool that timed out is not run again on that model; TP's checks run once, unless TP timed out.
    """
    rows = []
    for name, kwargs in tqdm(specs, desc=desc, unit="model"):
        runs = {"fxprune": [], "tp": []}
        for i in range(args.repeat):
            for tool, timeout in (("fxprune", args.fx_timeout), ("tp", args.timeout)):
                if not runs[tool] or runs[tool][-1]["status"] != "timeout":
                    job = dict(tool=tool, model=name, kwargs=kwargs, check=check and i == 0)
                    runs[tool].append(run_once(job, timeout))
        fx, tp_row = best_of(runs["fxprune"], ("trace_s", "analysis_s")), best_of(runs["tp"], ("build_s", "groups_s"))
        if check and tp_row["status"] != "timeout":
            checks = run_once(dict(tool="tp-check", model=name, kwargs=kwargs, check=True), args.check_timeout)
            tp_row.update({k: v for k, v in checks.items() if k != "status"}, check_status=checks["status"])
        rows.append((name, kwargs, fx, tp_row))
    return rows


def cpu_stall_s() -> float | None:
    """Seconds some task waited for a CPU, from Linux pressure stall information (None elsewhere)."""
    try:
        return int(Path("/proc/pressure/cpu").read_text().split("total=")[1].split()[0]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def ratio(fx: dict, tp: dict, key: str = "total_s") -> str:
    if fx.get(key) is None or tp["total_s"] is None:
        return f"n/a (TP {tp['status']})" if tp["total_s"] is None else f"n/a (fxprune {fx['status']})"
    return f"{fx[key] / tp['total_s']:.2f}×"


def table(header: str, lines: list[str]) -> list[str]:
    return [f"| {header} |", "|" + "---|" * (header.count("|") + 1), *lines]


def timing_table(rows) -> list[str]:
    return table("model | size | conv+linear | fx capture path | fx trace s | fx analysis s | fx total s (cold) | fx ΔRSS MB | "
                 "fx warm s (cached capture) | TP build s | TP groups s | TP total s | TP ΔRSS MB | fx cold / TP | "
                 "fx warm / TP", [
        f"| {n} | {label(kw)} | {fx.get('layers', '—')} | {fx.get('path', '—')} | {fmt(fx['trace_s'])} | {fmt(fx['analysis_s'])} | "
        f"{fmt(fx['total_s'])} | {fmt(fx['rss_mb'], 0)} | {fmt(fx.get('warm_s'))} | {fmt(tp['build_s'])} | "
        f"{fmt(tp['groups_s'])} | {fmt(tp['total_s'])} | {fmt(tp['rss_mb'], 0)} | {ratio(fx, tp)} | "
        f"{ratio(fx, tp, 'warm_s')} |" for n, kw, fx, tp in rows])


def scaling_table(rows) -> list[str]:
    def per_layer(r, fx):
        return fmt(None if r["total_s"] is None else 1000 * r["total_s"] / fx["layers"], 2)
    return table("model | size | conv+linear | fx capture path | fx trace s | fx analysis s | fx ms/layer | TP total s | TP ms/layer | "
                 "fx / TP", [
        f"| {n} | {label(kw)} | {fx.get('layers', '—')} | {fx.get('path', '—')} | {fmt(fx['trace_s'])} | {fmt(fx['analysis_s'])} | "
        f"{per_layer(fx, fx)} | {fmt(tp['total_s'])} | {per_layer(tp, fx)} | {ratio(fx, tp)} |"
        for n, kw, fx, tp in rows])


def unit_counts(fx: dict, tp: dict) -> tuple[int, int, int] | None:
    """(TP units identical to an fxprune unit, TP units, fxprune units), distinct units only."""
    if "units" not in fx or "units" not in tp:
        return None
    fx_units, tp_units = ({frozenset(u) for u in r["units"]} for r in (fx, tp))
    return len(tp_units & fx_units), len(tp_units), len(fx_units)


def units_agree(fx: dict, tp: dict) -> bool:
    counts = unit_counts(fx, tp)
    return counts is not None and counts[0] == counts[1]


def same_units(fx: dict, tp: dict) -> str:
    counts = unit_counts(fx, tp)
    return "—" if counts is None else "{}/{} (fx has {})".format(*counts)


def correctness_table(rows) -> list[str]:
    def cell(r, key):
        return str(r.get(key, r.get("check_status", r["status"]))).replace("|", "/")
    return table("model | fx groups (free/coupled/fixed) | fx PixelShuffle | TP groups | TP units equal to an fx unit "
                 "| TP prune 1 unit of every group | TP PixelShuffle | TP channel attention | fx pruned forward", [
        f"| {n} | {fx['groups']} ({'/'.join(str(v) for v in fx['kinds'].values())}) | {cell(fx, 'pixel_shuffle_fx')} "
        f"| {cell(tp, 'groups')} | {same_units(fx, tp)} | {cell(tp, 'prune_all')} | {cell(tp, 'pixel_shuffle')} | "
        f"{cell(tp, 'attention')} | not run here (tests/test_slice.py) |" if "kinds" in fx
        else f"| {n} | fxprune {fx['status']} |" for n, _, fx, tp in rows])


def label(kwargs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "") or "defaults"


def reading(rows, scaling) -> list[str]:
    done = [fx for *_, fx, _ in rows if fx["total_s"] is not None]
    share = sum(fx["trace_s"] for fx in done) / max(sum(fx["total_s"] for fx in done), 1e-9)
    notes = [f"- Capture (`trace`: the size-blind trace where the forward reads no size, torch.export otherwise) "
             f"is {share:.0%} of fxprune's time summed over the zoo; `build_channel_graph` is the rest."]
    for name, _, fx, tp in rows:
        if name == GOAL_MODEL and fx.get("layers") == GOAL_LAYERS and fx["total_s"] and tp["total_s"]:
            r = fx["total_s"] / tp["total_s"]
            notes.append(f"- Goal \"at most {GOAL_RATIO:g}× Torch-Pruning's build + grouping time on the "
                         f"{fx['layers']}-conv RCAN\" (cold capture): {'met' if r <= GOAL_RATIO else '**not met**'} "
                         f"({fx['total_s']:.2f} s vs {tp['total_s']:.2f} s, {r:.2f}×).")
    small = [fx["total_s"] / tp["total_s"] for name, _, fx, tp in rows
             if name != GOAL_MODEL and fx["total_s"] and tp["total_s"]]
    if small:
        notes.append(f"- Other models, cold: fxprune / TP from {min(small):.1f}× to {max(small):.1f}× "
                     f"(goal ≤ {SMALL_GOAL_RATIO:g}×: {'met' if max(small) <= SMALL_GOAL_RATIO else '**not met**'}).")
    warm = [fx["warm_s"] / tp["total_s"] for *_, fx, tp in rows if fx.get("warm_s") and tp["total_s"]]
    if warm:
        notes.append(f"- Warm (the same structure analyzed again in one process, capture from the cache): "
                     f"fxprune / TP from {min(warm):.2f}× to {max(warm):.2f}×.")
    def models(test) -> str:
        names = [name for name, _, fx, tp in rows if test(fx, tp)]
        return f"{len(names)} ({', '.join(names) or 'none'})"
    notes.append(f"- Torch-Pruning's model with one unit of every group pruned runs with the right output shape on "
                 f"{models(lambda fx, tp: tp.get('prune_all') == 'ok')} of {len(rows)} models; it timed out on "
                 f"{models(lambda fx, tp: tp['status'] == 'timeout')}. Its PixelShuffle check fails on "
                 f"{models(lambda fx, tp: tp.get('pixel_shuffle', '—') not in ('ok', '—'))}, its channel-attention "
                 f"check on {models(lambda fx, tp: tp.get('attention', '—') not in ('ok', '—'))}.")
    notes.append("- TP's units are all identical to fxprune's on "
                 f"{models(units_agree)}"
                 "; fxprune's own PixelShuffle units are right on "
                 f"{models(lambda fx, tp: fx.get('pixel_shuffle_fx') == 'ok')}.")
    for model in dict.fromkeys(name for name, *_ in scaling):
        pts = [(fx["layers"], 1000 * fx["total_s"] / fx["layers"])
               for n, _, fx, _ in scaling if n == model and fx["total_s"]]
        if len(pts) > 1:
            notes.append(f"- {model} scaling: fxprune {pts[0][1]:.1f} ms/layer at {pts[0][0]} layers, "
                         f"{pts[-1][1]:.1f} ms/layer at {pts[-1][0]} layers.")
    return notes


def report(rows, scaling, args, stall: float | None, wall: float) -> str:
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch "
               f"{torch.__version__}, torch-pruning {importlib.metadata.version('torch-pruning')}")
    warm = {t: min((r[i]["warmup_s"] for r in rows if r[i].get("warmup_s") is not None), default=None)
            for t, i in (("fxprune", 2), ("TP", 3))}
    busy = "" if stall is None else f" Some task waited for a CPU during {stall / wall:.0%} of the run (PSI)."
    intro = (f"Run {datetime.date.today()} on {machine}{' (--quick)' if args.quick else ''}; input 1×3×32×32. "
             f"Times: best of {args.repeat} fresh processes per tool per model, the two tools interleaved; "
             "imports, one forward and a warm-up of the tool on a tiny model are excluded (that one-time warm-up: "
             f"{fmt(warm['fxprune'], 2)} s fxprune, {fmt(warm['TP'], 2)} s TP). ΔRSS: growth of the process's peak "
             "RSS (getrusage ru_maxrss) during the timed calls; fxprune's includes its own copy of the weights. "
             f"Torch-Pruning runs under a {args.timeout:g} s timeout.{busy}")
    return "\n".join([intro, "", *timing_table(rows), "", "### Scaling", "", *scaling_table(scaling), "",
                      "### Correctness", "", METHOD, "", *correctness_table(rows), "", "### Reading", "",
                      *reading(rows, scaling)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, one repetition (< 1 min)")
    parser.add_argument("--out", type=Path, help="write the section into this markdown file (else only print it)")
    parser.add_argument("--repeat", type=int, help="fresh processes per measurement (default 3, quick 1)")
    parser.add_argument("--timeout", type=float, help="seconds per Torch-Pruning process (default 120, quick 20)")
    parser.add_argument("--fx-timeout", type=float, default=600, help="seconds per fxprune process")
    parser.add_argument("--check-timeout", type=float, default=900, help="seconds for TP's correctness checks")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.timeout = args.timeout or (20 if args.quick else 120)
    start, stall = time.perf_counter(), cpu_stall_s()
    rows = measure(list((QUICK if args.quick else FULL).items()), args, check=True, desc="zoo")
    scaling = measure(SCALING_QUICK if args.quick else SCALING_FULL, args, check=False, desc="scaling")
    stall = None if stall is None else cpu_stall_s() - stall
    text = report(rows, scaling, args, stall, time.perf_counter() - start)
    if args.out:
        replace_section(args.out, HEADING, text)
    print(f"{HEADING}\n\n{text}")


if __name__ == "__main__":
    main()
