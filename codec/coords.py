"""Pixel-centre coordinate grids, each axis normalised to [-1, 1] on its own (see FORMAT.md).

Normalising x by the width and y by the height (not both by one side) is what keeps non-square and
portrait images in their own orientation and lets any output size sample the same function.
"""

from __future__ import annotations

import numpy as np


def axis(n: int) -> np.ndarray:
    return ((2.0 * np.arange(n, dtype=np.float64) + 1.0) / n - 1.0).astype(np.float32)


def grid(width: int, height: int) -> np.ndarray:
    """(height * width, 2) float32 array of [x, y] in row-major pixel order."""
    xs, ys = axis(width), axis(height)
    out = np.empty((height, width, 2), dtype=np.float32)
    out[..., 0] = xs[None, :]
    out[..., 1] = ys[:, None]
    return out.reshape(-1, 2)


def to_rgb8(y: np.ndarray, width: int, height: int) -> np.ndarray:
    """Network output in [-1, 1] (N, 3) -> uint8 (height, width, 3). A NaN (weights of a hostile stream
    can overflow) becomes 0, as the browser's Uint8ClampedArray stores it."""
    rgb = np.nan_to_num(np.clip((y.astype(np.float32) + 1.0) * 0.5, 0.0, 1.0), nan=0.0)
    return np.rint(rgb * 255.0).astype(np.uint8).reshape(height, width, 3)
