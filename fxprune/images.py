"""Image files and arrays: the one reader and writer of image files, and the conversion to RGB ``uint8``.

:func:`read_image` decodes any file Pillow reads (PNG, JPEG, BMP, TIFF ...) into an ``HxWx3``
``uint8`` RGB array, for the command line (``fxprune infer``) and for training data
(:func:`fxprune.data.load_images`) alike; a missing file raises ``FileNotFoundError``, a corrupt,
truncated or unreadable one ``ValueError``, both naming the path. :func:`write_image` writes an
array (``uint8``, or float in ``[0, 1]``) in the format of the file's extension.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as _PILImage

__all__ = ["read_image", "to_rgb_uint8", "write_image"]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (PNG, JPEG, BMP, TIFF, or any format Pillow reads) as an ``HxWx3`` ``uint8`` RGB array.

    Grey images get three equal channels, palette images are converted to RGB, alpha is dropped,
    16-bit and float images are rescaled (see :func:`to_rgb_uint8`), and only the first frame of a
    multi-frame file is read. A missing file raises ``FileNotFoundError``; a corrupt, truncated or
    undecodable one ``ValueError``; both name the path.

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> write_image(path, np.full((4, 5, 3), 200, np.uint8))
    >>> read_image(path).shape, int(read_image(path)[0, 0, 0])
    ((4, 5, 3), 200)
    >>> _ = open(path, "wb").write(b"not a png")
    >>> read_image(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read the image '...x.png': cannot identify image file ...
    """
    from PIL import Image, UnidentifiedImageError

    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no image file at '{target}'")
    try:
        with Image.open(target) as img:
            img.load()
            arr = _pil_to_array(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"cannot read the image '{target}': {_first_line(error)}") from error
    return to_rgb_uint8(arr, name=str(target))


def _pil_to_array(im: _PILImage.Image) -> np.ndarray:
    """Pixel array of a Pillow image: palette/CMYK/YCbCr converted to RGB, others kept as read."""
    if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        im = im.convert("RGBA" if im.mode in ("P", "PA") else "RGB")
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if im.mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode == "I" and arr.max() > 255 else 255.0
        return np.clip(arr / top, 0.0, 1.0)
    return np.asarray(im)


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (HxWx3 or HxW; uint8, or float in [0, 1], clipped and rounded) as an image.

    The format follows the file extension (PNG for ``.png``); the directory is created if needed.

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "sub", "y.png")
    >>> write_image(path, np.linspace(0, 1, 12, dtype=np.float32).reshape(2, 2, 3))
    >>> read_image(path)[1, 1].tolist()
    [209, 232, 255]
    """
    from PIL import Image

    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"array must be uint8 or float in [0, 1], got dtype {array.dtype}")
        array = np.clip(np.rint(np.nan_to_num(array.astype(np.float64)) * 255.0), 0, 255).astype(np.uint8)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(np.ascontiguousarray(array)).save(target)
    except (ValueError, KeyError) as error:  # unknown extension
        raise ValueError(f"cannot write the image '{target}': {_first_line(error)} (use a .png file name)") from error


def to_rgb_uint8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``img`` as an ``HxWx3`` ``uint8`` RGB array.

    Grey (``HxW`` or ``HxWx1``) is repeated to three channels, an alpha channel (``HxWx2`` grey +
    alpha, ``HxWx4`` RGBA) is dropped, ``bool`` maps to 0/255, 16-bit integers are rescaled and
    floats are read as ``[0, 1]``. ``name`` is used in error messages.

    >>> to_rgb_uint8(np.zeros((4, 5), np.uint8)).shape
    (4, 5, 3)
    >>> to_rgb_uint8(np.full((2, 2, 4), 7, np.uint8))[0, 0].tolist()
    [7, 7, 7]
    """
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {arr.shape}")
    arr = arr[:, :, :1] if arr.shape[2] <= 2 else arr[:, :, :3]
    arr = _to_uint8(arr, name)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Convert an array of any supported dtype to ``uint8`` (see :func:`to_rgb_uint8`)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16, bool or float in [0, 1])")
