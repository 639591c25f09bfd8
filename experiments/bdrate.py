"""Bjøntegaard delta rate between two rate-distortion curves, and the window of a dense reference curve
that a test curve is compared against."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

MIN_POINTS = 4
"""A cubic fit needs at least four points per curve."""


def bd_rate(rate_a: list[float], psnr_a: list[float], rate_b: list[float], psnr_b: list[float]) -> float:
    """Bjontegaard delta rate (%) of curve B against reference A: cubic fit of log-rate over PSNR,
    integrated over the overlapping PSNR interval. Negative = B needs fewer bits. NaN without overlap,
    or when a curve has too few distinct PSNRs for a cubic (its fit would be meaningless).

    The fits run on PSNR centred and scaled (an affine change of variable: the interval average is the
    same), which keeps the cubic's Vandermonde matrix well conditioned at any PSNR level."""
    if min(len(rate_a), len(rate_b)) < MIN_POINTS:
        raise ValueError("BD-rate needs at least 4 points per curve")
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    pa, pb = np.asarray(psnr_a, float), np.asarray(psnr_b, float)
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if not hi > lo:
        return math.nan
    both = np.concatenate([pa, pb])
    centre, scale = float(both.mean()), float(both.std()) or 1.0
    pa, pb = (pa - centre) / scale, (pb - centre) / scale
    lo, hi = (lo - centre) / scale, (hi - centre) / scale
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.RankWarning)
        try:
            fa, fb = np.polyfit(pa, la, 3), np.polyfit(pb, lb, 3)
        except np.exceptions.RankWarning:
            return math.nan
    ia, ib = np.polyint(fa), np.polyint(fb)
    avg_a = (np.polyval(ia, hi) - np.polyval(ia, lo)) / (hi - lo)
    avg_b = (np.polyval(ib, hi) - np.polyval(ib, lo)) / (hi - lo)
    return float((math.exp(avg_b - avg_a) - 1) * 100)


def window(ref: Sequence[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """The points of a dense reference curve (rate, PSNR), sorted by rate, that span the PSNR interval
    [lo, hi] of a test curve: from the last point at or under ``lo`` to the first at or over ``hi``,
    widened on both sides to at least MIN_POINTS. A cubic over a few octaves around the test curve
    fits the reference there; one over its whole range (a dozen octaves) would not."""
    pts = sorted(ref)
    if len(pts) <= MIN_POINTS:
        return pts
    below = [i for i, (_, p) in enumerate(pts) if p <= lo]
    above = [i for i, (_, p) in enumerate(pts) if p >= hi]
    first = below[-1] if below else 0
    last = above[0] if above else len(pts) - 1
    low_side = True
    while last - first + 1 < MIN_POINTS:  # widen alternately, on the side that has points left
        if (low_side and first > 0) or last == len(pts) - 1:
            first -= 1
        else:
            last += 1
        low_side = not low_side
    return pts[first : last + 1]


def bd_rate_curves(ref: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float:
    """:func:`bd_rate` of ``test`` against the :func:`window` of ``ref`` around it; NaN when either
    curve has too few points or the PSNR ranges do not overlap."""
    if len(test) < MIN_POINTS or len(ref) < MIN_POINTS:
        return math.nan
    ps = [p for _, p in test]
    near = window(ref, min(ps), max(ps))
    try:
        return bd_rate([b for b, _ in near], [p for _, p in near], [b for b, _ in test], [p for _, p in test])
    except (ValueError, np.linalg.LinAlgError):
        return math.nan
