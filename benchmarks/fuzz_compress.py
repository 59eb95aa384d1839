"""Fuzz the public path on random restoration-like architectures and random specs.

Each case draws a network from ``tests/randomnets.py`` (residual adds, concats, channel splits
and slices, SimpleGate and channel-attention multiplies, depthwise/grouped convs, PixelShuffle
and PixelUnshuffle, 2x2 window partitions written as SwinIR writes them, BatchNorm/GroupNorm/PReLU with random per-channel parameters) and a spec
(ratio, round_to, a ``macs=`` budget instead of a ratio, overrides that skip or re-ratio a layer),
then: analyze, compress, run the result at the example batch/size and at another one, compare it
with the masked model for the same keep-set, export it with ``fxprune.export_onnx`` (ONNX Runtime
parity is checked there). A case is

* ``exact``: everything ran and matched;
* ``rejected (ErrorType)``: fxprune declined it with one of its documented errors;
* ``broken``: a raw exception, or a mismatch: fxprune handed back a wrong model.

Hypothesis draws the cases, derandomized, so a run is reproducible; ``--seed`` picks another
sequence. Writes the "Fuzzing compress" section of RESULTS.md and a JSON line per case.

    python benchmarks/fuzz_compress.py --cases 60          # ~1-2 s per case on an idle core
    python benchmarks/fuzz_compress.py --quick             # 8 cases, no RESULTS.md
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import fxprune  # noqa: E402
from fxprune.analysis import analyze  # noqa: E402
from fxprune.budget import ratio_for_macs  # noqa: E402
from fxprune.errors import FxpruneError  # noqa: E402
from fxprune.masking import masked_model  # noqa: E402
from fxprune.selection import plan_keep  # noqa: E402
from randomnets import RandomNet, programs  # noqa: E402
from results_file import replace_section  # noqa: E402

HEADING = "## Fuzzing compress (random architectures and specs)"


@dataclass
class Case:
    """One drawn case and what happened to it."""

    program: list
    spec: dict
    seed: int
    outcome: str = ""
    detail: str = ""
    seconds: float = 0.0
    stages: list[str] = field(default_factory=list)


@st.composite
def specs(draw, program: list) -> dict:
    """A random spec: ratio or MAC budget, round_to, and sometimes an override on one layer with
    weights (an override naming a layer without weights is a SpecError by design, not worth a case)."""
    spec: dict = {"method": "l1", "round_to": draw(st.sampled_from([1, 2, 4, 8, 16]))}
    if draw(st.integers(0, 2)) == 0:
        spec["macs"] = draw(st.sampled_from([0.3, 0.5, 0.8]))
    else:
        spec["ratio"] = draw(st.sampled_from([0.25, 0.5, 0.75, 0.9, 0.0]))
    weighted = [i for i, step in enumerate(program) if step.op in ("conv", "dwconv", "gconv")]
    if weighted and draw(st.integers(0, 3)) == 0:
        layer = f"layers.{draw(st.sampled_from(weighted))}"
        spec["overrides"] = {layer: draw(st.sampled_from([None, {"ratio": 0.3}]))}
    return spec


def run_case(case: Case, onnx_dir: Path) -> None:
    """Fill ``case.outcome``: exact, rejected (type) or broken (what)."""
    torch.manual_seed(case.seed)
    model = RandomNet(case.program).eval()
    x, other = torch.randn(1, 3, 8, 8), torch.randn(2, 3, 6, 10)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = fxprune.Spec(**case.spec)
            case.stages.append("analyze")
            graph = analyze(model, (x,))
            ratio = ratio_for_macs(graph, spec, (x,)) if spec.macs is not None else None
            keep = plan_keep(graph, spec, ratio=ratio)
            case.stages.append("compress")
            small = fxprune.compress(model, spec, (x,))
            masked = masked_model(graph, keep)
            info = small.meta["fxprune_capture"]
            inputs = [x] + ([other] if info.dynamic_hw and info.dynamic_batch else [])
            for t in inputs:
                case.stages.append(f"run {tuple(t.shape)}")
                torch.testing.assert_close(small(t), masked(t), rtol=1e-4, atol=1e-5)
            case.stages.append("export_onnx")
            fxprune.export_onnx(small, onnx_dir / "case.onnx", (x,))
        case.outcome = "exact"
    except FxpruneError as error:
        case.outcome = f"rejected ({type(error).__name__})"
        case.detail = str(error).splitlines()[0]
    except AssertionError as error:
        case.outcome = "broken"
        case.detail = f"mismatch at {case.stages[-1]}: {str(error).splitlines()[0]}"
    except Exception as error:  # noqa: BLE001 - a raw exception is exactly what this run looks for
        case.outcome = "broken"
        case.detail = f"{type(error).__name__} at {case.stages[-1]}: {str(error).splitlines()[0] if str(error) else ''}"
        case.detail += "\n" + traceback.format_exc(limit=-3)
    case.seconds = time.perf_counter() - start


def fuzz(cases: int, seed: int, log: Path | None) -> list[Case]:
    """Draw and run ``cases`` cases; each is appended to ``log`` (JSON lines) as it finishes."""
    done: list[Case] = []
    onnx_dir = Path(tempfile.mkdtemp(prefix="fxprune-fuzz-"))

    @settings(max_examples=cases, derandomize=seed == 0, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data) -> None:
        program = data.draw(programs(max_steps=8, windows=True), label="program")
        spec = data.draw(specs(program), label="spec")
        case = Case(program, spec, data.draw(st.integers(0, 2**16), label="seed"))
        run_case(case, onnx_dir)
        done.append(case)
        print(f"[{len(done):3d}] {case.outcome:32s} {case.seconds:5.1f}s {json.dumps(case.spec)}", flush=True)
        if log is not None:
            with log.open("a") as f:
                f.write(json.dumps({"program": [s.__dict__ for s in program], "spec": spec, "seed": case.seed,
                                    "outcome": case.outcome, "detail": case.detail}) + "\n")

    if seed:
        one = settings(derandomize=False)(one)
        from hypothesis import seed as hypothesis_seed
        one = hypothesis_seed(seed)(one)
    one()
    return done


def section(done: list[Case], seconds: float) -> str:
    counts = collections.Counter(c.outcome for c in done)
    rows = "\n".join(f"| {outcome} | {n} |" for outcome, n in sorted(counts.items()))
    broken = [c for c in done if c.outcome == "broken"]
    lines = [
        f"{len(done)} cases drawn by Hypothesis (derandomized) from `tests/randomnets.py` and random specs "
        f"(`benchmarks/fuzz_compress.py --cases {len(done)}`, {seconds / 60:.1f} min with 1 thread on a shared "
        "2-core machine). Each case: analyze, compress, run at the example batch/size and at batch 2 / "
        "6×10 where the graph is dynamic, sliced == masked, `fxprune.export_onnx` with ONNX Runtime parity.",
        "",
        "| outcome | cases |",
        "| --- | --- |",
        rows,
    ]
    if broken:
        lines += ["", "Broken cases (first line of each; full reproducers in the JSON log):", ""]
        lines += [f"- spec {json.dumps(c.spec)}: {c.detail.splitlines()[0]}" for c in broken]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60, help="number of cases (default 60)")
    parser.add_argument("--quick", action="store_true", help="8 cases, RESULTS.md untouched")
    parser.add_argument("--seed", type=int, default=0, help="0: Hypothesis's derandomized sequence")
    parser.add_argument("--log", type=Path, default=None, help="JSON-lines log of every case")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if args.cases < 1:
        parser.error(f"--cases must be at least 1, got {args.cases}")
    torch.set_num_threads(1)
    start = time.perf_counter()
    done = fuzz(8 if args.quick else args.cases, args.seed, args.log)
    text = section(done, time.perf_counter() - start)
    print(text)
    if not args.quick:
        replace_section(args.results, HEADING, text)


if __name__ == "__main__":
    main()
