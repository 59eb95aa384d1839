"""Helpers the training benchmarks share (bench_assl.py, bench_sls.py, bench_latency_psnr.py): their
command-line options, the run clock with its CPU contention, the setup line, the worker pool, and
ONNX Runtime timing."""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from bench_analysis import cpu_stall_s

ORT_THREADS = 2


class Clock:
    """Wall time since creation and the share of it during which some task waited for a CPU (Linux PSI)."""

    def __init__(self) -> None:
        self.wall, self.stall = time.perf_counter(), cpu_stall_s()

    def minutes(self) -> float:
        return (time.perf_counter() - self.wall) / 60

    def stall_share(self) -> float | None:
        if self.stall is None:
            return None
        return (cpu_stall_s() - self.stall) / max(1e-9, time.perf_counter() - self.wall)

    def text(self) -> str:
        """``x.x min`` and, where PSI exists, ``, CPU-wait (PSI some) y%``."""
        stall = self.stall_share()
        return f"{self.minutes():.1f} min" + ("" if stall is None else f", CPU-wait (PSI some) {stall:.0%}")


def run_line(date: str, jobs: int, clock: Clock) -> str:
    """The first line of a section: date, machine, torch, workers, time so far and CPU contention."""
    return (f"Run {date} on {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {jobs} "
            f"worker process(es) with 1 torch thread each; whole run so far {clock.text()}.")


def run_pool(work: Callable[[dict], Any], jobs: Iterable[dict], workers: int,
             follow: Callable[[Any], Iterable[dict]] | None = None) -> Iterator[Any]:
    """``work(job)`` for every job in ``workers`` spawned processes; yields the results as they finish.
    ``follow(result)``, if given, returns more jobs to run (e.g. ones that need that result)."""
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = {pool.submit(work, job) for job in jobs}
        while pending:
            done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for future in done:
                result = future.result()
                if follow is not None:
                    pending |= {pool.submit(work, job) for job in follow(result)}
                yield result


def ort_session(path: Path, threads: int = ORT_THREADS):
    """A CPU ONNX Runtime session with ``threads`` intra-op threads that do not spin between runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")   # idle workers would steal a core
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def interleaved_median_ms(sessions: dict[str, Any], feed: dict, rounds: int) -> dict[str, float]:
    """Median ms per session over ``rounds`` rounds that run every session once, the order reversed
    every other round, so a busy phase of the machine hits them alike (one warm-up run each first)."""
    for session in sessions.values():
        session.run(None, feed)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for r in range(rounds):
        for k in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
            start = time.perf_counter()
            sessions[k].run(None, feed)
            times[k].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def training_parser(description: str, unit: str) -> argparse.ArgumentParser:
    """--quick, --out, --steps, --seeds and --jobs, as every seeded training benchmark takes them
    (``unit``: what one run trains, for the help text)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny untrained model, few steps: checks the script works")
    parser.add_argument("--out", type=Path, help="markdown file for the section (default RESULTS.md; --quick: a temp file)")
    parser.add_argument("--steps", type=int, help=f"training steps per {unit} (default 1000)")
    parser.add_argument("--seeds", type=int, help=f"seeds per {unit} (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, 1 torch thread each (default 2)")
    return parser


def training_config(args: argparse.Namespace, quick: dict, full: dict, name: str,
                    overrides: tuple[str, ...] = ("steps", "seeds")) -> dict:
    """The run's settings (``quick`` or ``full``, then the options given), and ``args.out`` set:
    RESULTS.md beside the scripts, or a temporary file named after ``name`` for ``--quick``."""
    cfg = dict(quick if args.quick else full)
    for option in overrides:
        if getattr(args, option) is not None:
            cfg[option] = getattr(args, option)
    if args.out is None:
        args.out = (Path(tempfile.gettempdir()) / f"{name}_quick.md" if args.quick
                    else Path(__file__).resolve().parent / "RESULTS.md")
    return cfg


def run_jobs(work: Callable[[dict], Any], jobs: list[dict], args: argparse.Namespace, steps: int,
             add: Callable[[Any], None]) -> None:
    """Say what will run, then ``add`` every job's result as it finishes (``args.jobs`` workers)."""
    print(f"{len(jobs)} runs of {steps} steps on {args.jobs} worker(s); writing {args.out}", flush=True)
    for run in run_pool(work, jobs, args.jobs):
        add(run)
