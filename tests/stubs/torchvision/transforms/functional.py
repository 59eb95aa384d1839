"""Stand-in (tests only) for the three names spandrel imports; calling them fails loudly."""
from __future__ import annotations

import enum
from typing import Any


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _unavailable(name: str) -> Any:
    def function(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"torchvision.transforms.functional.{name} is a test stand-in")

    function.__name__ = name
    return function


rotate = _unavailable("rotate")
normalize = _unavailable("normalize")
