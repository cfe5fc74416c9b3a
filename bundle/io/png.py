"""Lossless PNG for photographs (RGB uint8) and label maps (uint8 / uint16), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from bundle._files import atomic_path

__all__ = ["write_png"]


def write_png(array: object, path: str | os.PathLike) -> Path:
    """Write ``array`` as a PNG, atomically.

    Args:
        array: ``(H, W, 3)`` uint8 RGB (e.g. :func:`bundle.io.photo_to_uint8`), or ``(H, W)`` uint8 / uint16
            grayscale or label map (other integer dtypes are accepted when their values fit uint8 / uint16).
            Not modified.
        path: destination ending in ``.png``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Argument path should end in .png, got {path.name!r}.")
    arr = np.asarray(array.detach().cpu().numpy() if hasattr(array, "detach") else array)
    if arr.ndim == 3 and arr.shape[2] == 3:
        if arr.dtype != np.uint8:
            raise ValueError(f"Argument array should be uint8 for RGB, got {arr.dtype}; see bundle.io.photo_to_uint8.")
        image = Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
    elif arr.ndim == 2 and (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"Argument array values {lo}..{hi} do not fit a PNG (0..65535).")
        arr = arr.astype(np.uint8 if hi < 256 and arr.dtype != np.uint16 else np.uint16)
        image = Image.fromarray(np.ascontiguousarray(arr))
    else:
        raise ValueError(f"Argument array should be (H, W, 3) uint8 or (H, W) integers, got shape {arr.shape} "
                         f"and dtype {arr.dtype}.")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
