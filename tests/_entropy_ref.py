"""Shared by tests/test_entropy.py and tests/test_browser_entropy.py: the reference ANS coder
(constriction's stack.rs in plain Python, the specification client/web/codec/entropy.js mirrors), edge
cases and weight-like codes."""

from __future__ import annotations

import numpy as np

from codec import entropy_tables as tables

P = tables.PRECISION


def ref_encode(jobs: list[tuple[np.ndarray, np.ndarray]], state: int) -> list[int]:
    """Words of ``(symbols, freqs)`` jobs encoded from ``state``, the first job decoded first."""
    bulk: list[int] = []
    for symbols, freqs in reversed(jobs):
        cdf = np.concatenate([[0], np.cumsum(freqs)]).tolist()
        for s in reversed(symbols.tolist()):
            f = int(freqs[s])
            if state >> (64 - P) >= f:
                bulk.append(state & 0xFFFFFFFF)
                state >>= 32
            state = ((state // f) << P) | (cdf[s] + state % f)
    return bulk + ([state & 0xFFFFFFFF, state >> 32] if state >> 32 else [state] if state else [])


def ref_decode(words: list[int], jobs: list[tuple[int, np.ndarray]]) -> tuple[list[list[int]], int, int]:
    """(symbols per job, final state, words left) for ``(count, freqs)`` jobs."""
    words = list(words)
    state = 0
    if words:
        state = words.pop()
        if words:
            state = (state << 32) | words.pop()
    out = []
    for count, freqs in jobs:
        cdf = np.concatenate([[0], np.cumsum(freqs)])
        syms = []
        for _ in range(count):
            q = state & ((1 << P) - 1)
            s = int(np.searchsorted(cdf, q, side="right")) - 1
            state = (state >> P) * int(freqs[s]) + q - int(cdf[s])
            if state < 1 << 32 and words:
                state = (state << 32) | words.pop()
            syms.append(s)
        out.append(syms)
    return out, state, len(words)


def random_table(rng: np.random.Generator, n: int) -> np.ndarray:
    w = rng.exponential(1.0, n) ** rng.uniform(0.5, 8.0)
    f = 1 + np.floor(w / w.sum() * (tables.TOTAL - n)).astype(np.int64)
    f[int(np.argmax(f))] += tables.TOTAL - int(f.sum())
    return f


EDGE_CASES = {
    "nothing": [],
    "empty arrays": [np.zeros(0, np.int32), np.zeros((0, 4), np.int16)],
    "one code": [np.array([7])],
    "one negative code": [np.array([-123456])],
    "all equal": [np.full((8, 8), -3)],
    "two symbols": [np.array([0, 1, 1, 0, 1])],
    "three biases": [np.array([-2, 0, 5])],
    "huge range": [np.array([-(2**16), 0, 1, 2**16, 3])],
    "widest span": [np.array([-(2**19), 2**19, 0])],
    "int32 floor": [np.array([-(2**31), -(2**31) + 5, -(2**31) + 2], np.int64)],
    "int32 ceiling": [np.array([2**31 - 1, 2**31 - 7], np.int64)],
    "dtypes": [np.arange(-5, 5, dtype=np.int8), np.arange(9, dtype=np.uint16), np.arange(3, dtype=np.uint8)],
    "matrix": [np.arange(-6, 6).reshape(3, 4)],
    "mixed": [np.zeros(0, np.int32), np.full(5, 2), np.array([1]), np.arange(-40, 40), np.zeros(0, np.int8)],
}


def weights_like(rng: np.random.Generator, kind: str, n: int, step: float) -> np.ndarray:
    """Codes q = round(w / step) of synthetic weights shaped like trained ones (docs/ENTROPY.md)."""
    if kind == "hidden":  # ~ Gaussian, std 1
        w = rng.normal(0, 1, n)
    elif kind == "siren":  # a uniform init blurred by training: a plateau with Gaussian shoulders
        w = rng.uniform(-1.7, 1.7, n) + rng.normal(0, 0.3, n)
    elif kind == "bias":  # heavy-tailed
        w = rng.laplace(0.2, 0.7, n)
    else:  # input layer: uniform
        w = rng.uniform(-1.7, 1.7, n)
    return np.rint(w / step).astype(np.int64)
