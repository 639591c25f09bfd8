"""Image quality metrics in plain numpy (the decoder install has no scipy or scikit-image)."""

from __future__ import annotations

import math

import numpy as np


def _float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean((_float(a) - _float(b)) ** 2))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for images in [0, 1] (float) or uint8; identical images give +inf."""
    err = mse(a, b)
    return math.inf if err == 0 else 10.0 * math.log10(1.0 / err)


def _gaussian_filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of a (H, W) array."""
    k = len(kernel)
    rows = sum(kernel[i] * x[i : x.shape[0] - k + 1 + i, :] for i in range(k))
    return sum(kernel[i] * rows[:, i : rows.shape[1] - k + 1 + i] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, size: int = 11) -> float:
    """Mean SSIM (Wang et al. 2004) over RGB channels, Gaussian window 11 x 11, sigma 1.5.

    Matches scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False,
    data_range=1)`` on images of at least ``size`` pixels a side; smaller images use a smaller window.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    x, y = _float(a), _float(b)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    size = min(size, x.shape[0], x.shape[1])
    size -= 1 - size % 2  # odd window
    r = size // 2
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    c1, c2 = 0.01**2, 0.03**2
    scores = []
    for c in range(x.shape[2]):
        xc, yc = x[..., c], y[..., c]
        mx, my = _gaussian_filter(xc, kernel), _gaussian_filter(yc, kernel)
        sxx = _gaussian_filter(xc * xc, kernel) - mx * mx
        syy = _gaussian_filter(yc * yc, kernel) - my * my
        sxy = _gaussian_filter(xc * yc, kernel) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        scores.append(float(s.mean()))
    return float(np.mean(scores))
