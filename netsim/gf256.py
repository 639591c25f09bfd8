"""Arithmetic in GF(2^8) and a systematic MDS erasure code (identity over a Cauchy matrix).

Bytes are field elements; addition is XOR. The code's generator is ``[I_k; C]`` with ``C`` an
``m x k`` Cauchy matrix ``C[i, j] = 1 / (x_i + y_j)``, ``x_i = k + i``, ``y_j = j`` (all distinct, so
``x_i + y_j != 0``). Every square submatrix of a Cauchy matrix is invertible, hence any ``k`` of the
``k + m`` rows determine the data: up to ``m`` erasures per group are recoverable. Rows are whole
packets, so each operation is a table lookup over a numpy array: column-wise Reed-Solomon-style
coding without a Python loop per byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netsim.errors import ChannelConfigError

POLY = 0x11D  # x^8 + x^4 + x^3 + x^2 + 1, the usual Reed-Solomon polynomial (2 is a generator)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.int64)
    log = np.zeros(256, dtype=np.int64)
    x = 1
    for i in range(255):
        exp[i], log[x] = x, i
        x <<= 1
        if x & 0x100:
            x ^= POLY
    exp[255:510] = exp[:255]
    a = np.arange(256)
    mul = exp[(log[a][:, None] + log[a][None, :])].astype(np.uint8)
    mul[0, :] = 0
    mul[:, 0] = 0
    return exp, log, mul


EXP, LOG, MUL = _tables()
"""``MUL[a]`` is the 256-entry table of ``a * x``; ``MUL[a][row]`` multiplies a whole row by ``a``."""


def inverse(a: int) -> int:
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    return int(EXP[255 - LOG[a]])


def cauchy(m: int, k: int) -> list[list[int]]:
    """The ``m x k`` parity part of the generator."""
    if k < 1 or m < 0 or k + m > 256:
        raise ChannelConfigError(f"rs(k={k}, m={m}) needs k >= 1, m >= 0 and k + m <= 256")
    return [[inverse((k + i) ^ j) for j in range(k)] for i in range(m)]


def combine(coefficients: Sequence[int], rows: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_j coefficients[j] * rows[j]`` over GF(256); rows are equal-length uint8 arrays."""
    out = np.zeros_like(rows[0])
    for c, row in zip(coefficients, rows, strict=True):
        if c == 1:
            out ^= row
        elif c:
            out ^= MUL[c][row]
    return out


def invert(matrix: Sequence[Sequence[int]]) -> list[list[int]]:
    """Inverse of a square matrix over GF(256) by Gauss-Jordan elimination."""
    n = len(matrix)
    a = [list(row) + [int(i == j) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if a[r][col]), None)
        if pivot is None:
            raise ValueError("matrix is singular over GF(256)")
        a[col], a[pivot] = a[pivot], a[col]
        scale = inverse(a[col][col])
        a[col] = [int(MUL[scale][v]) for v in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [v ^ int(MUL[f][p]) for v, p in zip(a[r], a[col], strict=True)]
    return [row[n:] for row in a]


def encode(data: Sequence[np.ndarray], m: int) -> list[np.ndarray]:
    """The ``m`` parity rows of ``k = len(data)`` equal-length data rows."""
    return [combine(coeffs, data) for coeffs in cauchy(m, len(data))]


def decode(k: int, m: int, rows: dict[int, np.ndarray]) -> list[np.ndarray]:
    """The ``k`` data rows from any ``k`` available rows, keyed by position (data ``0..k-1``, parity
    ``k..k+m-1``). Raises ValueError when fewer than ``k`` rows are given."""
    if len(rows) < k:
        raise ValueError(f"{len(rows)} rows cannot determine {k} data rows")
    if all(j in rows for j in range(k)):
        return [rows[j] for j in range(k)]
    parity = cauchy(m, k)
    chosen = sorted(rows)[:k]  # data rows sort first, so as few parity rows as needed are used
    generator = [[int(r == j) for j in range(k)] if r < k else parity[r - k] for r in chosen]
    inv = invert(generator)
    chosen_rows = [rows[r] for r in chosen]
    return [rows[j] if j in rows else combine(inv[j], chosen_rows) for j in range(k)]
