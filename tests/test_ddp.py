"""ASSL under real torch.distributed (gloo on CPU, two processes)."""
from __future__ import annotations

import multiprocessing

import numpy as np
import torch
import torch.multiprocessing as mp

import ddp_worker


def start_ranks(run, args: tuple) -> None:
    """Two real processes running ``run(rank, *args)``, forked from a server process that imported
    torch and fxprune once (spawned, each rank imported them again: ~4 s of CPU each). Not plain
    fork: a parent whose OpenMP pool has run would hang its forked children."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["torch", "fxprune", "fxprune.models", run.__module__])  # no effect once the server runs
    mp.start_processes(run, args=args, nprocs=2, join=True, start_method="forkserver")


def test_two_ranks_prune_identically(tmp_path):
    start_ranks(ddp_worker.run, (2, str(tmp_path / "init"), str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["unimportant"].keys() == ranks[1]["unimportant"].keys()
    for gid, units in ranks[0]["unimportant"].items():
        np.testing.assert_array_equal(units, ranks[1]["unimportant"][gid])
        assert 0 < units.sum() < len(units)
    torch.testing.assert_close(ranks[0]["sliced"], ranks[1]["sliced"])
    for rank in ranks:
        torch.testing.assert_close(rank["sliced"], rank["gated"])
