"""One rank of the SLS DDP test: learned N:M under DistributedDataParallel (gloo, CPU)."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import fxprune
from fxprune.models import build


def run(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = build("edsr", blocks=2, channels=16)
        with torch.no_grad():  # ranks start from different weights (and so different ranks in the masks)
            for p in model.parameters():
                p.add_(0.05 * rank * torch.randn_like(p))
        x = torch.randn(2, 3, 12, 12)
        spec = fxprune.Spec(method="sls", budget=0.4, m=8, steps=16, reg_weight=1.0, rerank_every=4)
        pruner = fxprune.prepare(model, spec, (x,))
        # broadcasts rank 0's weights, scores and ranks; the scores stop being used at the freeze
        ddp = DistributedDataParallel(pruner.model, find_unused_parameters=True)
        optimizer = torch.optim.Adam(pruner.param_groups(1e-2, 5e-2))
        generator = torch.Generator().manual_seed(100 + rank)  # each rank sees its own data
        while not pruner.done:
            lr_batch = torch.rand(2, 3, 12, 12, generator=generator)
            loss = (ddp(lr_batch) - torch.rand(2, 3, 24, 24, generator=generator)).abs().mean() + pruner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            pruner.step()
        small = fxprune.convert(pruner)
        probe = torch.linspace(0, 1, 3 * 10 * 14).reshape(1, 3, 10, 14)
        with torch.no_grad():
            torch.save({"frozen": pruner.frozen, "frozen_at": pruner.frozen_at, "out": small(probe)},
                       f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
