"""Integer frequency tables of the entropy models (docs/ENTROPY.md, "Frequency tables").

A decoder rebuilds each table from a few transmitted integers, and the browser decoder
(client/web/codec/entropy.js) must build the very same table. So no transcendental function (exp, log, pow)
decides a table: only IEEE float64 ``+ - * /`` and ``sqrt`` (correctly rounded in every language) in a
fixed order, then integer arithmetic. Everything here is the specification the JS mirrors line by line.
"""

from __future__ import annotations

import math

import numpy as np

PRECISION = 24
"""Frequencies sum to 2**PRECISION: constriction's default ANS coder (u32 words, u64 state)."""
TOTAL = 1 << PRECISION
MAX_SPAN = 1 << 20
"""Largest hi - lo of one array's codes: bounds a table at 2**20 + 1 entries (every entry >= 1)."""
MAX_K = 255
"""Scale indices are one byte: the kernel's decay d = 2**(-k/8), k = 0..255."""
CUTOFF = 2.0**-30
"""Kernel values below this are 0 (their floor(p * 2**24) is 0 anyway); no subnormal is ever used."""

LAPLACE = 2
GAUSS = 3

# 2**(-j/8) for j = 0..7, from sqrt and products only: identical in numpy and JS.
_EIGHTH = 1.0 / math.sqrt(math.sqrt(math.sqrt(2.0)))
_ROOTS = [1.0]
for _ in range(7):
    _ROOTS.append(_ROOTS[-1] * _EIGHTH)


def decay(k: int) -> float:
    """d = 2**(-k/8) for a scale index k in 0..255 (exact powers of two times a fixed root)."""
    return _ROOTS[k & 7] * math.ldexp(1.0, -(k >> 3))


def kernel(kind: int, length: int, k: int) -> np.ndarray:
    """a[j] for j = 0..length-1, a[0] = 1, non-increasing: r**j (Laplace, r = 1 - d) or t**(j*j)
    (Gaussian, t = 1 - d, built as a[j] = a[j-1] * t**(2j-1) with t**(2j+1) = t**(2j-1) * t*t)."""
    base = 1.0 - decay(k)
    steps = np.empty(length, dtype=np.float64)
    steps[:1] = 1.0
    if kind == LAPLACE:
        steps[1:] = base
    else:  # GAUSS: the factors t, t*t^2, t*t^2*t^2, ... by a running product
        sq = base * base
        odd = np.empty(max(length - 1, 0), dtype=np.float64)
        odd[:1] = base
        odd[1:] = sq
        steps[1:] = np.cumprod(odd)
    a = np.cumprod(steps)  # a sequential left fold, as the JS loop
    a[a < CUTOFF] = 0.0
    return a


def model_weights(kind: int, size: int, center: int, k: int, plateau: int) -> np.ndarray:
    """Unnormalised integer weights of ``size`` symbols: floor(2**24 * p(|i - center|)) where p is 1 up
    to distance ``plateau`` and then the kernel, a[j - plateau]."""
    reach = max(center, size - 1 - center)
    a = kernel(kind, max(reach - plateau, 0) + 1, k)
    dist = np.abs(np.arange(size, dtype=np.int64) - center)
    p = a[np.maximum(dist - plateau, 0)]
    return np.floor(p * TOTAL).astype(np.int64)


def uniform_weights(size: int) -> np.ndarray:
    return np.full(size, TOTAL, dtype=np.int64)


def normalize(weights: np.ndarray) -> np.ndarray:
    """Integer weights (>= 0, not all 0) -> frequencies >= 1 that sum to 2**24:
    f[i] = 1 + floor(w[i] * (2**24 - n) / sum(w)), and what the floors left over goes to the first
    largest frequency."""
    n = int(weights.size)
    if not 2 <= n <= MAX_SPAN + 1:
        raise ValueError(f"a table needs 2..{MAX_SPAN + 1} symbols, got {n}")
    total = int(weights.sum())
    freqs = 1 + (weights * (TOTAL - n)) // total  # < 2**48 and exact in int64 (and in JS doubles)
    freqs[int(np.argmax(freqs))] += TOTAL - int(freqs.sum())
    return freqs


def frequencies(kind: int, size: int, center: int = 0, k: int = 0, plateau: int = 0) -> np.ndarray:
    """The table of a model: ``kind`` 1 (uniform), LAPLACE or GAUSS over ``size`` symbols."""
    if kind in (LAPLACE, GAUSS):
        return normalize(model_weights(kind, size, center, k, plateau))
    return normalize(uniform_weights(size))


def cost_bits(hist: np.ndarray, freqs: np.ndarray) -> float:
    """Exact information content (bits) of symbols with counts ``hist`` under the table ``freqs``:
    what the ANS coder writes, to within its final state (<= 64 bits per packet)."""
    used = hist > 0
    return float(-(hist[used] * (np.log2(freqs[used]) - PRECISION)).sum())
