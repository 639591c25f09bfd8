"""The probability models of codec/entropy.py: their descriptor bytes, and how the encoder picks one.

A model is a kind (constant, uniform, Laplace, Gaussian), its support [lo, lo + span] and, for a
Laplace or Gaussian, a centre, a one-byte scale index and a plateau width (docs/ENTROPY.md, "Models").
The encoder tries each on an array's histogram and keeps the one with the smallest exact coded size,
descriptor bytes included: parameters are chosen for size, not by a maximum-likelihood fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codec import entropy_tables as tables
from codec.errors import BitstreamError, ConfigError
from codec.varint import Reader, svarint, uvarint

CONST, UNIFORM, LAPLACE, GAUSS = 0, 1, tables.LAPLACE, tables.GAUSS
KIND_NAMES = {CONST: "const", UNIFORM: "uniform", LAPLACE: "laplace", GAUSS: "gauss"}
FLAG_CENTER = 0x04
"""Tag bit: the centre is sent (as centre - midpoint); else it is the midpoint floor((lo + hi) / 2)."""
FLAG_PLATEAU = 0x08
"""Tag bit: a plateau width follows (p = 1 up to that distance from the centre, then the kernel)."""
MAX_COUNT = 1 << 24
"""Most codes one array may hold."""
VALUE_MIN, VALUE_MAX = -(1 << 31), (1 << 31) - 1
"""Codes are int32."""


@dataclass(frozen=True)
class Model:
    """The probability model of one array, as its descriptor states it."""

    kind: int
    lo: int
    span: int = 0
    """hi - lo: the table has span + 1 symbols (0 for CONST)."""
    center: int = 0
    """Absolute code of the mode (LAPLACE/GAUSS)."""
    k: int = 0
    """Scale index: decay d = 2**(-k/8)."""
    plateau: int = 0
    explicit_center: bool = False

    @property
    def hi(self) -> int:
        return self.lo + self.span

    def midpoint(self) -> int:
        return (self.lo + self.hi) // 2

    def frequencies(self) -> np.ndarray:
        return tables.frequencies(self.kind, self.span + 1, self.center - self.lo, self.k, self.plateau)

    def to_bytes(self) -> bytes:
        if self.kind == CONST:
            return bytes([CONST]) + svarint(self.lo)
        tag = self.kind
        out = bytearray(svarint(self.lo) + uvarint(self.span))
        if self.kind in (LAPLACE, GAUSS):
            if self.explicit_center:
                tag |= FLAG_CENTER
                out += svarint(self.center - self.midpoint())
            out.append(self.k)
            if self.plateau:
                tag |= FLAG_PLATEAU
                out += uvarint(self.plateau)
        return bytes([tag]) + bytes(out)


def parse_model(r: Reader, index: int) -> Model:
    """One descriptor at ``r``'s position (array ``index`` names it in errors)."""
    where = f"array {index}"
    at = r.pos
    tag = r.byte(f"model tag of {where}")
    kind, flags = tag & 3, tag & ~3
    lo = r.svarint(f"lowest code of {where}")
    if not VALUE_MIN <= lo <= VALUE_MAX:
        raise BitstreamError(f"lowest code {lo} of {where} is outside int32")
    if kind == CONST:
        if flags:
            raise BitstreamError(f"model tag {tag:#04x} of {where} (byte {at}) has flags on a constant")
        return Model(CONST, lo)
    span = r.uvarint(f"code span of {where}")
    if not 1 <= span <= tables.MAX_SPAN or lo + span > VALUE_MAX:
        raise BitstreamError(
            f"code span {span} of {where} is out of range: allowed 1..{tables.MAX_SPAN} within int32"
        )
    if kind == UNIFORM:
        if flags:
            raise BitstreamError(f"model tag {tag:#04x} of {where} (byte {at}) has flags on a uniform model")
        return Model(UNIFORM, lo, span)
    if flags & ~(FLAG_CENTER | FLAG_PLATEAU):
        raise BitstreamError(f"model tag {tag:#04x} of {where} (byte {at}) has unknown flag bits")
    center = (lo + lo + span) // 2
    if flags & FLAG_CENTER:
        center += r.svarint(f"centre of {where}")
        if not lo <= center <= lo + span:
            raise BitstreamError(f"centre {center} of {where} is outside its codes {lo}..{lo + span}")
    k = r.byte(f"scale index of {where}")
    plateau = 0
    if flags & FLAG_PLATEAU:
        plateau = r.uvarint(f"plateau of {where}")
        if not 1 <= plateau < span:
            raise BitstreamError(f"plateau {plateau} of {where} is out of range: allowed 1..{span - 1}")
    return Model(kind, lo, span, center, k, plateau, bool(flags & FLAG_CENTER))


# ---------------------------------------------------------------------------------------------
# choosing a model: the smallest exact coded size, descriptor bytes included


def codes_of(array: np.ndarray, index: int) -> np.ndarray:
    """``array`` flattened to int64, checked: integer dtype, int32 values, at most MAX_COUNT."""
    a = np.asarray(array)
    if a.dtype.kind not in "iu":
        raise ConfigError(f"array {index} must hold integer codes, got dtype {a.dtype}")
    flat = a.reshape(-1)
    if flat.size > MAX_COUNT:
        raise ConfigError(f"array {index} has {flat.size} codes; at most {MAX_COUNT} are allowed")
    if flat.size and (int(flat.min()) < VALUE_MIN or int(flat.max()) > VALUE_MAX):
        raise ConfigError(f"array {index} has codes outside int32 ({int(flat.min())}..{int(flat.max())})")
    return flat.astype(np.int64)


def _search_k(cost: Callable[[int], float], start: int) -> tuple[float, int]:
    """Minimum of ``cost`` over k = 0..255 near ``start`` (the coded size is unimodal in k): steps that
    double while they improve, then halve; ~2 log2(distance) evaluations."""
    seen: dict[int, float] = {}

    def ev(k: int) -> float:
        k = min(max(k, 0), tables.MAX_K)
        if k not in seen:
            seen[k] = cost(k)
        return seen[k]

    k = min(max(start, 0), tables.MAX_K)
    step = 1
    while step:
        best = min((k - step, k + step), key=ev)
        if ev(best) < ev(k):
            k = min(max(best, 0), tables.MAX_K)
            step *= 2
        else:
            step //= 2
    return ev(k), k


def _fit(
    kind: int, hist: np.ndarray, base: Model, center: int, explicit: bool, plateaus: bool
) -> tuple[float, Model]:
    """Best (k, plateau) for one kernel and centre: k by a doubling/halving search, the plateau by
    doubling then bisection, every candidate costed exactly."""
    m0 = center - base.lo
    q = np.arange(hist.size) - m0
    n = int(hist.sum())
    var = max(float((hist * q * q).sum()) / n, 1e-3)
    mad = max(float((hist * np.abs(q)).sum()) / n, 1e-3)
    d0 = 1.0 / (2.0 * var) if kind == GAUSS else min(1.0 / mad, 1.0)
    k0 = round(-8.0 * np.log2(max(d0, 2.0**-31)))

    def at(plateau: int, k_start: int) -> tuple[float, Model]:
        m = Model(kind, base.lo, base.span, center, 0, plateau, explicit)
        bits, k = _search_k(lambda k: tables.cost_bits(hist, _with_k(m, k).frequencies()), k_start)
        m = _with_k(m, k)
        return bits + 8 * len(m.to_bytes()), m

    best = at(0, k0)
    reach = max(m0, base.span - m0)
    if plateaus and n >= 16:  # a plateau pays for its byte only on tensors of some size
        width = 1
        while width < reach:
            cand = at(width, best[1].k)
            if cand[0] >= best[0] and width > 2 * max(best[1].plateau, 1):
                break
            best = min(best, cand, key=lambda c: c[0])
            width *= 2
        step = max(best[1].plateau // 2, 1)
        while step >= 1 and best[1].plateau:
            for w in (best[1].plateau - step, best[1].plateau + step):
                if 1 <= w < base.span:
                    best = min(best, at(w, best[1].k), key=lambda c: c[0])
            step //= 2
    return best


def _with_k(m: Model, k: int) -> Model:
    return Model(m.kind, m.lo, m.span, m.center, k, m.plateau, m.explicit_center)


def candidates(codes: np.ndarray, plateaus: bool = True) -> dict[str, tuple[float, Model]]:
    """Each model family's best fit to ``codes`` (non-empty, int64) as (coded bits including the
    descriptor, model): ``const`` alone when all codes are equal, else ``uniform``, ``laplace`` and
    ``gauss`` (each the better of the midpoint and the median as centre; plateaus searched unless
    ``plateaus`` is False)."""
    lo, hi = int(codes.min()), int(codes.max())
    if lo == hi:
        m = Model(CONST, lo)
        return {"const": (8.0 * len(m.to_bytes()), m)}
    if hi - lo > tables.MAX_SPAN:
        raise ConfigError(f"codes span {lo}..{hi}: at most {tables.MAX_SPAN} apart are allowed")
    hist = np.bincount(codes - lo, minlength=hi - lo + 1)
    uniform = Model(UNIFORM, lo, hi - lo)
    out = {"uniform": (tables.cost_bits(hist, uniform.frequencies()) + 8 * len(uniform.to_bytes()), uniform)}
    median = int(np.searchsorted(np.cumsum(hist), (codes.size + 1) // 2)) + lo
    centres = [(uniform.midpoint(), False)] + ([(median, True)] if median != uniform.midpoint() else [])
    for kind in (LAPLACE, GAUSS):
        fits = [_fit(kind, hist, uniform, c, explicit, plateaus) for c, explicit in centres]
        out[KIND_NAMES[kind]] = min(fits, key=lambda c: c[0])
    return out


def choose_model(codes: np.ndarray) -> tuple[float, Model]:
    """(coded bits including the descriptor, model) of the cheapest model for ``codes`` (non-empty)."""
    return min(candidates(codes).values(), key=lambda c: c[0])
