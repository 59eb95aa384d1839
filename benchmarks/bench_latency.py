"""ONNX Runtime CPU latency of dense vs L1-pruned models, next to their MAC ratio.

For each model (EDSR-baseline, RCAN, NAFNet) and each pruning ratio (0.25 / 0.5 / 0.75), with
channel rounding to 16 and without, this compresses with ``Spec(method="l1")``, exports to ONNX
once per variant (static input shape, with fxprune's ONNX Runtime parity check), and times ONNX
Runtime (2 intra-op threads) and PyTorch eager (2 threads) on the same input. PyTorch also runs the
original dense ``nn.Module``, so the cost of the GraphModule itself is visible.

Timing rounds interleave all variants of one model (every round runs each variant once in ONNX
Runtime, then each once in PyTorch), so slow phases of a shared machine hit every variant alike;
figures are medians over the rounds. ONNX Runtime sessions are created with
``session.intra_op.allow_spinning=0``: spinning ORT workers would otherwise keep burning a core
after each run and slow the PyTorch run that follows (and other users of the machine). CPU
contention is read from Linux PSI (/proc/pressure/cpu) and printed with the results.

PyTorch eager on a shared 2-core machine: a tiny RCAN (groups=1, blocks=2, 32 channels, 32×32)
took ~176 ms per forward with 2 threads and 1.8 ms with 1 thread, and the original nn.Module was
just as slow (~295 ms). torch.profiler put 95% of that time in aten::conv2d
(aten::_slow_conv2d_forward / mkldnn_convolution), per-thread CPU time showed the process mostly
not running: the 2 OpenMP threads wait at a barrier after every op while another process holds a
core. It is contention, not the GraphModule: ``_guards_fn`` (the input check torch.export adds)
costs ~0.007 ms per call, and without contention GraphModule and nn.Module ran alike (2.3 vs
2.1 ms). The earlier script also timed ORT (spinning workers) right before each PyTorch call.

Each model's subsection is written to RESULTS.md as soon as that model is done, so an interrupted
run keeps what it measured.

The latency-budget section (``--section latency``) prunes each model with
``Spec(latency=t, round_to=16)`` for t = 0.25 / 0.5 / 0.75 and, at the same predicted latency, with
one global L1 ratio (what a MAC budget gives: ``ratio_for_macs`` also searches one ratio), then
exports both and measures them in ORT: measured ÷ target (goal within ±10%), predicted vs measured,
the kept MACs of each at that latency, and the time spent building the conv latency table (a fresh
table: the cache goes to a temporary folder). Each target's two plans are timed interleaved with
the dense model, and "measured" is relative to that dense run. Whole-model and table times are the fastest of
repeated runs (see ``fxprune.latency.time_session``).

    python benchmarks/bench_latency.py           # both sections (~40-60 min on 2 idle cores), writes RESULTS.md
    python benchmarks/bench_latency.py --section ratio     # dense vs L1-pruned only
    python benchmarks/bench_latency.py --section latency   # latency budgets only (~15-20 min; EDSR ~3 min)
    python benchmarks/bench_latency.py --quick   # smoke test (~1 min), tiny models, prints only
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort
import torch

import fxprune
from fxprune.latency import LatencyModel, LatencyTable, measure_latencies, plan_for_latency
from fxprune.models import build
from fxprune.passes.slice_channels import slice_channels
from fxprune.selection import plan_keep

from bench_analysis import cpu_stall_s
from results_file import replace_section

HEADING = "## Latency: dense vs L1-pruned (bench_latency.py)"
BUDGET_HEADING = "## Latency budgets: Spec(latency=t) vs one global ratio (bench_latency.py --section latency)"
TARGETS = (0.25, 0.5, 0.75)
QUICK_TARGETS = (0.5,)
TOLERANCE = 0.10  # goal: measured latency within ±10% of the target
RATIOS = (0.25, 0.5, 0.75)
QUICK_RATIOS = (0.5,)
ROUNDINGS = (16, 1)
QUICK_ROUNDINGS = (16,)
GOAL = 1.15  # ORT latency ratio at most this many times the MAC ratio
THREADS = 2
FULL = {
    "edsr": ("EDSR-baseline", dict(blocks=16, channels=64, scale=2)),
    "rcan": ("RCAN", dict(groups=5, blocks=10, channels=64, reduction=16, scale=2)),
    "nafnet": ("NAFNet", dict(width=32, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1))),
}
QUICK = {
    "edsr": ("EDSR", dict(blocks=2, channels=32)),
    "rcan": ("RCAN", dict(groups=1, blocks=2, channels=32)),
    "nafnet": ("NAFNet", dict(width=16)),
}


@dataclass
class Variant:
    label: str
    model: torch.nn.Module
    ratio: float = 0.0
    round_to: int | None = None
    macs: int = 0
    params: int = 0
    session: ort.InferenceSession | None = None  # None: PyTorch only (the original nn.Module)
    ort_ms: list[float] = field(default_factory=list)
    torch_ms: list[float] = field(default_factory=list)


class Stall:
    """PSI 'some' stall time over an interval: the share of wall time some task waited for a CPU."""

    def __init__(self) -> None:
        self.start_wall, self.start_stall = time.perf_counter(), cpu_stall_s()

    def text(self) -> str:
        wall = time.perf_counter() - self.start_wall
        if self.start_stall is None:
            return f"{wall / 60:.1f} min wall, no PSI on this machine"
        return f"{wall / 60:.1f} min wall, some task waited for a CPU during {(cpu_stall_s() - self.start_stall) / wall:.0%} of it"


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def make_variants(name: str, options: dict, x: torch.Tensor, ratios, roundings, folder: Path) -> list[Variant]:
    """Dense GraphModule (traced, not pruned), the pruned ones, each exported and checked once."""
    torch.manual_seed(0)
    original = build(name, **options).eval()
    variants = [Variant("dense (fxprune.trace)", fxprune.trace(original, (x,)))]
    for ratio in ratios:
        for round_to in roundings:
            spec = fxprune.Spec(method="l1", ratio=ratio, round_to=round_to)
            variants.append(Variant(f"l1 {ratio:.2f}, round {round_to}", fxprune.compress(original, spec, (x,)),
                                    ratio, round_to))
    for v in variants:
        v.macs, v.params = fxprune.count_macs(v.model, (x,)), sum(p.numel() for p in v.model.parameters())
        path = folder / f"{name}_{v.label.replace(' ', '_').replace(',', '')}.onnx"
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = fxprune.export_onnx(v.model, path, (x,), dynamic_hw=False, check=True)
        v.session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        print(f"  {name} {v.label}: export + parity check {time.perf_counter() - start:.1f} s "
              f"(max abs error {report.max_abs_error:.2g} <= {report.tolerance:.2g})", flush=True)
    module = Variant("dense nn.Module (PyTorch only)", original)
    module.macs, module.params = variants[0].macs, sum(p.numel() for p in original.parameters())
    return variants + [module]


def time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(variants: list[Variant], x: torch.Tensor, repeats: int, budget_s: float, min_rounds: int) -> int:
    """Interleaved rounds; stops after ``repeats`` rounds, or after ``budget_s`` once ``min_rounds`` are done."""
    feed = {"input": x.numpy()}
    with torch.inference_mode():
        for v in variants:  # warm-up: first calls allocate and pick kernels
            if v.session is not None:
                v.session.run(None, feed)
            v.model(x)
        start, rounds = time.perf_counter(), 0
        while rounds < repeats and (rounds < min_rounds or time.perf_counter() - start < budget_s):
            for v in variants:
                if v.session is not None:
                    v.ort_ms.append(time_ms(lambda: v.session.run(None, feed)))
            for v in variants:
                v.torch_ms.append(time_ms(lambda: v.model(x)))
            rounds += 1
    return rounds


def table(title: str, config: dict, variants: list[Variant], rounds: int, size: int, stall: str) -> tuple[list[str], list[dict]]:
    dense, module = variants[0], variants[-1]
    med = statistics.median
    ort_dense, torch_dense = med(dense.ort_ms), med(dense.torch_ms)
    config_text = ", ".join(f"{k}={v}" for k, v in config.items())
    lines = [
        f"### {title} ({config_text})",
        "",
        f"Input 1×3×{size}×{size}; dense: {dense.params / 1e3:.0f}K params, {dense.macs / 1e9:.2f} GMACs. "
        f"Median of {rounds} interleaved rounds; {stall}.",
        "",
        "| variant | params | MAC ratio | ORT ms | ORT ratio | ORT ratio / MAC ratio | goal ≤1.15 | PyTorch ms | PyTorch ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for v in variants:
        mac_ratio = v.macs / dense.macs
        torch_ms = med(v.torch_ms)
        if v.session is None:
            lines.append(f"| {v.label} | {v.params / 1e3:.0f}K | {mac_ratio:.3f} | — | — | — | — | {torch_ms:.1f} | "
                         f"{torch_ms / torch_dense:.3f} |")
            continue
        ort_ms = med(v.ort_ms)
        over = (ort_ms / ort_dense) / mac_ratio
        goal = "—" if v is dense else ("yes" if over <= GOAL else "no")
        lines.append(
            f"| {v.label} | {v.params / 1e3:.0f}K | {mac_ratio:.3f} | {ort_ms:.1f} | {ort_ms / ort_dense:.3f} | "
            f"{over:.2f} | {goal} | {torch_ms:.1f} | {torch_ms / torch_dense:.3f} |")
        rows.append(dict(label=v.label, ratio=v.ratio, round_to=v.round_to, mac=mac_ratio, ort=ort_ms / ort_dense,
                         over=over, ort_ms=ort_ms, torch_ms=torch_ms, dense=v is dense))
    lines.append("")
    lines.append(f"PyTorch eager, dense: GraphModule from fxprune.trace {torch_dense:.1f} ms, original nn.Module "
                 f"{med(module.torch_ms):.1f} ms; ONNX Runtime dense {ort_dense:.1f} ms.")
    return lines, rows


def intro(args, size: int) -> str:
    return (f"Measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} cores (shared with "
            f"other jobs), torch {torch.__version__}, onnxruntime {ort.__version__}; {THREADS} threads for both "
            "(ORT intra-op threads without spinning, `torch.set_num_threads(2)`). Pruned: "
            "`fxprune.compress(model, Spec(method=\"l1\", ratio=r, round_to=16 or 1), (x,))`; dense: the "
            "`fxprune.trace` GraphModule of the same model. Every variant was exported once with "
            "`fxprune.export_onnx(..., dynamic_hw=False)` (static input shape, to keep the dynamo export short) and "
            "passed its ONNX Runtime parity check. ORT ratio = ORT median / dense ORT median; the goal is ORT ratio ≤ "
            f"{GOAL}× MAC ratio. Timing rounds interleave all variants of a model; at most {args.repeats} rounds or "
            f"{args.budget:g} s of timing per model (at least {args.min_rounds} rounds).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, ratio 0.5 rounded to 16 only, 32×32 (smoke test, prints only)")
    parser.add_argument("--size", type=int, default=None, help="input height and width (default 128, quick 32)")
    parser.add_argument("--repeats", type=int, default=None, help="max interleaved rounds per model (default 15, quick 3)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timing per model before stopping early (default 200)")
    parser.add_argument("--min-rounds", type=int, default=5, help="rounds done even past the budget")
    parser.add_argument("--models", nargs="*", default=None, help="subset of edsr rcan nafnet")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--section", choices=("all", "ratio", "latency"), default="all",
                        help="ratio: dense vs L1-pruned; latency: latency budgets (default: both)")
    args = parser.parse_args()
    size = args.size or (32 if args.quick else 128)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.budget = args.budget or (20 if args.quick else 200)
    args.min_rounds = min(args.min_rounds, args.repeats)
    configs = QUICK if args.quick else FULL
    names = args.models or list(configs)
    torch.set_num_threads(THREADS)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    if args.section in ("all", "latency"):
        budget_section(args, configs, names, x, size)
    if args.section == "latency":
        return
    run = Stall()
    done: list[str] = [intro(args, size), ""]
    summary: list[tuple[str, list[dict]]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            title, config = configs[name]
            model_stall = Stall()
            print(f"{title}: compress + export", flush=True)
            variants = make_variants(name, config, x, QUICK_RATIOS if args.quick else RATIOS,
                                     QUICK_ROUNDINGS if args.quick else ROUNDINGS, Path(folder))
            timing = Stall()
            rounds = measure(variants, x, args.repeats, args.budget, args.min_rounds)
            stall = f"timing phase {timing.text()}; whole model {model_stall.text()}"
            lines, rows = table(title, config, variants, rounds, size, stall)
            done += lines + [""]
            summary.append((title, rows))
            if not args.quick:
                print("\n".join(lines), flush=True)
                write(args.out, done, summary, run, final=False)
    text = write(None if args.quick else args.out, done, summary, run, final=True)
    if args.quick:
        print(text)


def write(out: Path | None, done: list[str], summary, run: Stall, final: bool) -> str:
    status = f"Whole run: {run.text()}." if final else f"(run in progress: {run.text()} so far)"
    text = "\n".join(done + [status, ""] + goal_count(summary))
    if out is not None:
        replace_section(out, HEADING, text)
    return text


def goal_count(summary) -> list[str]:
    pruned = [r for _, rows in summary for r in rows if not r["dense"]]
    met = [r for r in pruned if r["over"] <= GOAL]
    return [f"Goal (ORT ratio ≤ {GOAL}× MAC ratio) met by {len(met)} of {len(pruned)} pruned variants."]


def uniform_ratio_for(graph, spec, latency: LatencyModel, target_ms: float, steps: int = 12) -> float:
    """The smallest global ratio whose plan is predicted at or under ``target_ms`` (bisection)."""
    low, high = 0.0, 0.999
    for _ in range(steps):
        middle = (low + high) / 2
        if latency.predict(plan_keep(graph, spec, ratio=middle)) <= target_ms:
            high = middle
        else:
            low = middle
    return high


def equal_latency_row(name: str, graph, round_to: int, latency: LatencyModel, x: torch.Tensor, uniform_small, fraction: float,
                      uniform_row: dict) -> dict:
    """A latency budget set to the global-ratio plan's measured latency, timed beside it: what each
    keeps at the same measured latency (the MAC budget's plan vs the latency budget's)."""
    label = f"latency budget at that ratio's measured {fraction:.3f}"
    try:
        plan = plan_for_latency(graph, fxprune.Spec(latency=fraction, round_to=round_to), (x,), model=latency)
    except fxprune.SpecError as error:
        print(f"  {label}: {error}", flush=True)
        return dict(label=f"{label}: unreachable", target=fraction, macs=math.nan, predicted=math.nan,
                    measured=math.nan, budget=False)
    small = slice_channels(graph, plan.keep)
    dense_ms, uniform_ms, ms = measure_latencies([graph.gm, uniform_small, small], (x,), THREADS)
    row = dict(label=label, target=fraction, macs=fxprune.count_macs(small, (x,)) / fxprune.count_macs(graph.gm, (x,)),
               predicted=latency.predict(plan.keep) / latency.dense_ms, measured=ms / dense_ms, budget=False,
               versus=dict(uniform_macs=uniform_row["macs"], uniform_measured=uniform_ms / dense_ms))
    print(f"  {name} {label}: measured {row['measured']:.3f} (ratio again {uniform_ms / dense_ms:.3f}), MACs "
          f"{row['macs']:.3f} vs {uniform_row['macs']:.3f}", flush=True)
    return row


def budget_rows(name: str, config: dict, x: torch.Tensor, targets, round_to: int) -> tuple[list[str], list[dict]]:
    """One model: table build time, then per target the latency-budget and the global-ratio plans."""
    torch.manual_seed(0)
    model = build(name, **config).eval()
    graph = fxprune.analyze(model, (x,))
    dense_macs = fxprune.count_macs(graph.gm, (x,))
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        latency = LatencyModel(graph, (x,), THREADS, LatencyTable(cache))
        build_s, table_s, signatures = time.perf_counter() - start, latency.table.seconds, latency.table.measured
        rows = []
        for target in targets:
            spec = fxprune.Spec(latency=target, round_to=round_to)
            try:
                plan = plan_for_latency(graph, spec, (x,), model=latency)
            except fxprune.SpecError as error:
                print(f"  {name} target {target:g}: {error}", flush=True)
                rows.append(dict(label=f"latency budget {target:g}: unreachable", target=target, macs=math.nan,
                                 predicted=math.nan, measured=math.nan, budget=True))
                continue
            ratio = uniform_ratio_for(graph, fxprune.Spec(round_to=round_to), latency, plan.predicted_ms)
            uniform = plan_keep(graph, fxprune.Spec(round_to=round_to), ratio=ratio)
            plans = ((f"latency budget {target:g} ({plan.measured_plans} plans timed)", plan.keep), (f"global ratio {ratio:.3f}", uniform))
            smalls = [slice_channels(graph, keep) for _, keep in plans]
            dense_ms, *measured = measure_latencies([graph.gm, *smalls], (x,), THREADS)  # interleaved with dense
            for (label, keep), small, ms in zip(plans, smalls, measured):
                rows.append(dict(label=label, target=target, macs=fxprune.count_macs(small, (x,)) / dense_macs,
                                 predicted=latency.predict(keep) / latency.dense_ms,
                                 measured=ms / dense_ms, budget=keep is plan.keep))
                print(f"  {name} {label}: predicted {rows[-1]['predicted']:.3f}, measured {rows[-1]['measured']:.3f}, "
                      f"MACs {rows[-1]['macs']:.3f}", flush=True)
            rows.append(equal_latency_row(name, graph, round_to, latency, x, smalls[1], measured[1] / dense_ms, rows[-1]))
        table_total = latency.table.seconds
    lines = [f"### {name} ({', '.join(f'{k}={v}' for k, v in config.items())})", "",
             f"Dense ORT latency {latency.dense_ms:.2f} ms ({THREADS} threads, 1×3×{x.shape[-2]}×{x.shape[-1]}); "
             f"{len(latency.convs)} convs, {signatures} distinct signatures timed for the dense model in "
             f"{table_s:.1f} s ({table_total:.1f} s of conv timing over all targets; model setup incl. the dense "
             f"and calibration exports {build_s:.1f} s); of the dense latency the table covers "
             f"{latency.conv_ms / latency.dense_ms:.2f}, the calibrated remainder scales "
             f"{latency.scaling_ms / latency.dense_ms:.2f} with the non-conv elements and keeps "
             f"{latency.fixed_ms / latency.dense_ms:.2f} fixed.", "",
             "| target | plan | MACs kept | predicted | measured | measured ÷ target | goal ±10% |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ok = "yes" if abs(r["measured"] / r["target"] - 1) <= TOLERANCE else "no"
        lines.append(f"| {r['target']:.3g} | {r['label']} | {r['macs']:.3f} | {r['predicted']:.3f} | {r['measured']:.3f} | "
                     f"{r['measured'] / r['target']:.3f} | {ok if r['budget'] else '—'} |")
    return lines + [""], rows


def budget_section(args, configs: dict, names: list[str], x: torch.Tensor, size: int) -> None:
    run = Stall()
    done = [f"Measured {datetime.date.today()}, onnxruntime {ort.__version__}, {THREADS} ORT threads, input "
            f"{size}×{size}, round_to {8 if args.quick else 16}. Latencies are fractions of the dense model's measured ORT latency; "
            "'global ratio' is one L1 ratio for every group (a MAC budget's plan) searched to the same predicted "
            "latency as the budget plan, so the MACs column compares what each keeps at that latency. "
            "The budget plan is `plan_for_latency`'s: chosen on the prediction, then sliced, timed against the "
            "dense model and re-chosen with the measured/predicted correction (up to 3 timed plans); the "
            "'measured' column is this script's own timing, separate from those.", ""]
    summary: list[dict] = []
    for name in names:
        title, config = configs[name]
        print(f"{title}: latency budgets", flush=True)
        lines, rows = budget_rows(name, config, x, QUICK_TARGETS if args.quick else TARGETS, 8 if args.quick else 16)
        done += lines
        summary += rows
        if not args.quick:
            replace_section(args.out, BUDGET_HEADING, "\n".join(done + [f"(run in progress: {run.text()})"]))
    met = [r for r in summary if r["budget"] and abs(r["measured"] / r["target"] - 1) <= TOLERANCE]
    pairs = [r for r in summary if "versus" in r]
    gains = ", ".join(f"{r['macs'] / r['versus']['uniform_macs']:.2f}× at {r['measured']:.3f} vs "
                      f"{r['versus']['uniform_measured']:.3f}" for r in pairs)
    text = "\n".join(done + [f"Whole section: {run.text()}. Goal (measured within ±{TOLERANCE:.0%} of the target) "
                              f"met by {len(met)} of {sum(r['budget'] for r in summary)} latency-budget plans.", "",
                              "At a global ratio's own measured latency (rows 'latency budget at that ratio's "
                              "measured ...', timed interleaved with it), the latency budget keeps this multiple of "
                              f"the global ratio's MACs (at its measured latency vs the ratio's): {gains or 'none'}."])
    if args.quick:
        print(text)
    else:
        replace_section(args.out, BUDGET_HEADING, text)


if __name__ == "__main__":
    main()
