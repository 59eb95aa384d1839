"""ASSL under real torch.distributed (gloo on CPU, two processes)."""
from __future__ import annotations

import numpy as np
import torch
import torch.multiprocessing as mp

import ddp_worker


def test_two_ranks_prune_identically(tmp_path):
    mp.spawn(ddp_worker.run, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["unimportant"].keys() == ranks[1]["unimportant"].keys()
    for gid, units in ranks[0]["unimportant"].items():
        np.testing.assert_array_equal(units, ranks[1]["unimportant"][gid])
        assert 0 < units.sum() < len(units)
    torch.testing.assert_close(ranks[0]["sliced"], ranks[1]["sliced"])
    for rank in ranks:
        torch.testing.assert_close(rank["sliced"], rank["gated"])
