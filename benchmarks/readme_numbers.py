"""Copy the headline lines of RESULTS.md's script-written sections into the README.

The README's numbers must come from benchmark runs, not from typing: this script takes, from each
section a benchmark wrote into ``benchmarks/RESULTS.md``, the lines that state its outcome (the
goal verdicts and the measured orders) and writes them, verbatim, between the README's markers
``<!-- readme_numbers: start -->`` and ``<!-- readme_numbers: end -->``. Run it after a benchmark:

    python benchmarks/readme_numbers.py            # rewrites the README block
    python benchmarks/readme_numbers.py --check    # exit 1 if the README block is stale
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- readme_numbers: start -->", "<!-- readme_numbers: end -->"
# (RESULTS heading, label in the README, pattern of the lines to copy)
PICKS = (
    ("## ASSL ablation (bench_assl.py)", "ASSL vs L1 + fine-tuning vs scratch", r"^Ratio [0-9.]+: measured order"),
    ("## SLS: learned N:M vs one-shot N:M, L1 and ASSL (bench_sls.py)", "SLS vs one-shot N:M",
     r"^- Budget [0-9.]+: SLS "),
    ("## Distillation from the original model (bench_distill.py)", "Distillation from the original model",
     r"^L1 one-shot \+ fine-tune, "),
    ("## Dynamic patch routing (bench_routing.py)", "Dynamic patch routing", r"^(Goal|No β|On this scene)"),
    ("## Latency budgets: Spec(latency=t) vs one global ratio (bench_latency.py --section latency)",
     "Latency budgets", r"^(Whole section|At a global ratio)"),
    ("## Latency budget vs MAC budget: PSNR after equal fine-tuning (bench_latency_psnr.py)",
     "Latency budget vs MAC budget after equal fine-tuning", r"^- MAC budget [0-9.]+: the latency plan"),
    ("## Channel analysis (bench_analysis.py)", "Capture time vs Torch-Pruning", r"^- (Goal|Warm)"),
    ("## Fuzzing compress (random architectures and specs)", "Fuzzing compress", r"^\| (exact|rejected|broken)"),
    ("## Normalized trunks: exact statistics vs fixed (bench_norm.py)",
     "Normalized trunks (MACs kept fixed, exact; max gap; ORT parity; latency fixed, exact)",
     r"^(\| NAFNet|\| SwinIR \(|- Latency floor|- Spec\(latency)"),
    ("## Normalized trunks after fine-tuning: exact vs renormalize (bench_norm_finetune.py)",
     "Exact vs renormalized statistics after equal fine-tuning (trained SwinIR)", r"^After \d+ steps: renormalize"),
)


def section(results: str, heading: str) -> str:
    """The body of the ``## `` section ``heading`` ('' when RESULTS.md has none)."""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", results, flags=re.S | re.M)
    return match.group(1) if match else ""


def block(results: str) -> str:
    lines = [START, "", "Copied from `benchmarks/RESULTS.md` by `benchmarks/readme_numbers.py` (each line as its "
             "benchmark wrote it):", ""]
    for heading, label, pattern in PICKS:
        picked = [_sentence(line) for line in section(results, heading).splitlines() if re.match(pattern, line)]
        if picked:
            lines.append(f"- **{label}**: " + " ".join(picked))
    return "\n".join(lines + ["", END])


def _sentence(line: str) -> str:
    """A bullet's text, or a table row ``| a | b |`` as ``a: b.``."""
    if line.startswith("|"):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        return f"{cells[0]}: {', '.join(cells[1:])}."
    return line.lstrip("- ").strip()


def updated(readme: str, results: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"the README has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    return head + block(results) + rest.split(END, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README block differs from RESULTS.md")
    args = parser.parse_args()
    readme, results = args.readme.read_text(), args.results.read_text()
    new = updated(readme, results)
    if args.check:
        sys.exit(0 if new == readme else 1)
    args.readme.write_text(new)
    print(block(results))


if __name__ == "__main__":
    main()
