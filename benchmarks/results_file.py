"""Write one benchmark's section into RESULTS.md without touching the other sections."""
from __future__ import annotations

import re
from pathlib import Path

TITLE = "# fxprune benchmark results\n"


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the section that starts with ``heading`` (a ``## `` line), or append it."""
    text = path.read_text() if path.exists() else TITLE
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", flags=re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
