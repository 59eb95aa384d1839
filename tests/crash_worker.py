"""A small ASSL run through fxprune.compress's built-in loop, for the crash-safety tests.

    python crash_worker.py DATA OUT [--checkpoint DIR] [--resume DIR]

Trains on the images in DATA (so no evaluation runs), writes the compressed model's state_dict
and kept-channel record to OUT, exits 3 with the message on TrainingInterrupted. The tests start it
as a process to kill; :func:`run` does the same run in the test's process (the uninterrupted
reference, the resumed runs).
"""
from __future__ import annotations

import argparse
import sys

import torch

import fxprune
from fxprune.checkpoint import TrainingInterrupted
from fxprune.models import build
from helpers import own_threads_and_random_states

STEPS = 150


def run(data: str, out: str, checkpoint: str | None = None, resume: str | None = None) -> int:
    """The run on one torch thread; the caller's thread count and global random states (torch's, and
    numpy's and Python's, which a resume sets from the checkpoint) are restored."""
    with own_threads_and_random_states(threads=1):
        return _run(data, out, checkpoint, resume)


def _run(data: str, out: str, checkpoint: str | None, resume: str | None) -> int:
    torch.manual_seed(0)
    model = build("edsr", blocks=1, channels=8)
    x = torch.rand(1, 3, 12, 12)
    train = fxprune.TrainConfig(data=data, steps=STEPS, batch_size=2, patch_size=12, lr=1e-3, device="cpu",
                                progress=False, checkpoint_dir=checkpoint, checkpoint_every=2 if checkpoint else 0,
                                resume=resume)
    try:
        small = fxprune.compress(model, fxprune.Spec(method="assl", ratio=0.5, round_to=4), (x,), train=train)
    except TrainingInterrupted as error:
        print(error, file=sys.stderr, flush=True)
        return 3
    torch.save({"state": small.state_dict(), "groups": small.meta["fxprune"]["groups"]}, out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume")
    args = parser.parse_args()
    return run(args.data, args.out, args.checkpoint, args.resume)


if __name__ == "__main__":
    sys.exit(main())
