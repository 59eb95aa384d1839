"""One rank of the DDP test: ASSL hooks under DistributedDataParallel (gloo, CPU)."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import fxprune
from fxprune.models import build


def run(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = build("edsr", blocks=2, channels=16)
        with torch.no_grad():  # ranks start from different weights: their L1 plans differ
            for p in model.parameters():
                p.add_(0.05 * rank * torch.randn_like(p))
        x = torch.randn(2, 3, 12, 12)
        pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=16), (x,))
        ddp = DistributedDataParallel(pruner.model)  # broadcasts rank 0's weights
        optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-2)
        generator = torch.Generator().manual_seed(100 + rank)  # each rank sees its own data
        while not pruner.done:
            lr_batch = torch.rand(2, 3, 12, 12, generator=generator)
            loss = (ddp(lr_batch) - torch.rand(2, 3, 24, 24, generator=generator)).abs().mean() + pruner.penalty()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            pruner.step()
        small = fxprune.convert(pruner)
        probe = torch.linspace(0, 1, 3 * 10 * 14).reshape(1, 3, 10, 14)
        with torch.no_grad():
            torch.save({"unimportant": pruner.unimportant, "sliced": small(probe), "gated": pruner.model(probe)},
                       f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
