"""Written with fxprune at commit 8e9f8e7 (format_version 1, before the typed record).

Run from the repository root with that commit checked out: ``python tests/data/make_format1_fixture.py``.
The guard matters: pytest imports every module under tests/ for doctests, and running this with
today's code would overwrite the old-format fixture.
"""
import torch

import fxprune
from fxprune.models import build


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    model = build("edsr", blocks=2, channels=16).eval()
    small = fxprune.compress(model, [fxprune.Spec(method="l1", ratio=0.5, round_to=4),
                                     fxprune.Spec(method="nm", n=2, m=8)], (x,))
    rec = small.meta["fxprune"]
    path = fxprune.save(small, "tests/data/edsr_l1_nm_format1.pt2", (x,),
                        report={"groups": rec["groups"], "spec": rec["spec"]})
    torch.save({"x": x, "y": small(x).detach()}, "tests/data/edsr_l1_nm_format1_io.pt")
    print(path.stat().st_size, rec.keys(), rec["stages"])


if __name__ == "__main__":
    main()
