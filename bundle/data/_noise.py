"""Smooth random textures shared by the photograph phantoms."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["smooth_noise", "fractal"]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Zero-mean, unit-std noise with features about ``cell`` pixels wide (bicubic upsampling of a coarse grid)."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / cell)) + 2), max(2, int(np.ceil(w / cell)) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    big = np.asarray(Image.fromarray(coarse, mode="F").resize((int(gw * cell), int(gh * cell)), Image.BICUBIC))
    oy, ox = rng.integers(0, max(1, big.shape[0] - h)), rng.integers(0, max(1, big.shape[1] - w))
    out = big[oy:oy + h, ox:ox + w]
    return (out - out.mean()) / (out.std() + 1e-6)


def fractal(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[float, ...], decay: float = 0.6) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    for i, c in enumerate(cells):
        out += (decay ** i) * smooth_noise(rng, shape, c)
    return out / (out.std() + 1e-6)
