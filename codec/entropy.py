"""Entropy coding of integer arrays: the tensors of one packet <-> one self-describing byte string.

Byte layout, models and measurements: docs/ENTROPY.md. In short: one model descriptor per non-empty
array (codec/entropy_models.py), then the ANS words of every non-constant array's codes, coded with
constriction's ``AnsCoder`` from integer frequency tables that the decoder rebuilds exactly
(codec/entropy_tables.py). A packet is coded on its own: no coder state crosses calls.

The decoder's work and memory are bounded by the counts it is given (from the architecture, so
trusted). It checks what the coder allows: descriptors that parse, a canonical last byte, and that
the ANS state after the last code is exactly the encoder's initial state with every word consumed.
With ``checksum=True`` (the default) that initial state carries 24 bits of a CRC-32 of the packet, so
truncation, extra bytes and corruption are all caught; without it (1-2 bytes less per packet, for
containers that have their own CRC) a bit flip in the coded words may go unnoticed. Every problem
raises :class:`BitstreamError`.
"""

from __future__ import annotations

import zlib
from typing import Any

import constriction
import numpy as np

from codec.entropy_models import CONST, MAX_COUNT, Model, choose_model, codes_of, parse_model
from codec.entropy_tables import TOTAL
from codec.errors import BitstreamError
from codec.varint import Reader

PLAIN_STATE = 1
"""The encoder's initial ANS state without a checksum, which the decoder must reach after the last code.
Not 0: a truncated stream drains into a state below the first symbol's frequency, which is 0 when that
frequency is 1 (a Gaussian's tails), so with 0 such truncations would pass; 1 costs no more than 0."""


def checksum_state(descriptors: bytes, coded: list[np.ndarray]) -> int:
    """The initial state with a checksum: 2**24 + the low 24 bits of the CRC-32 of the descriptor bytes
    followed by the int32 little-endian codes of every coded array. At least 2**24, so never a state
    that a truncated stream drains into (those are below 2**24). It costs 1-2 bytes per packet, not 3:
    a coder started from state 1 already spends ~2 bytes on its first codes, one started high does not."""
    crc = zlib.crc32(descriptors)
    for codes in coded:
        crc = zlib.crc32(np.ascontiguousarray(codes, dtype="<i4").tobytes(), crc)
    return TOTAL + (crc & (TOTAL - 1))


def _categorical(freqs: np.ndarray) -> Any:
    """constriction's ``Categorical(perfect=False)`` reproduces integer frequencies f exactly when given
    the float64 weights f - 1: it sets cdf[i] = floor(sum_{j<i} p_j * (2**24 - n) / sum(p)) + i, and
    with p = f - 1 the scale is exactly 1 (docs/ENTROPY.md, "The coder")."""
    return constriction.stream.model.Categorical((freqs - 1).astype(np.float64), perfect=False)


def encode_arrays(arrays: list[np.ndarray], checksum: bool = True) -> bytes:
    """Integer arrays (any shape, row-major; int32 values) -> one byte string.

    ``decode_arrays(data, [a.size for a in arrays], checksum)`` returns them flattened, as int32."""
    models: list[Model] = []
    coded: list[np.ndarray] = []
    for i, array in enumerate(arrays):
        codes = codes_of(array, i)
        if codes.size == 0:
            continue
        models.append(choose_model(codes)[1])
        if models[-1].kind != CONST:
            coded.append(codes)
    descriptors = b"".join(m.to_bytes() for m in models)
    if not coded:
        return descriptors
    state = checksum_state(descriptors, coded) if checksum else PLAIN_STATE
    coder = constriction.stream.stack.AnsCoder(np.array([state], dtype=np.uint32))
    jobs = [(codes, m) for codes, m in zip(coded, (m for m in models if m.kind != CONST), strict=True)]
    for codes, m in reversed(jobs):  # a stack: the first array is decoded first
        coder.encode_reverse((codes - m.lo).astype(np.int32), _categorical(m.frequencies()))
    words = np.asarray(coder.get_compressed(), dtype="<u4").tobytes()
    return descriptors + words.rstrip(b"\0")  # the last word's zero high bytes are implied


def _counts(counts: list[int]) -> list[int]:
    out = []
    for i, n in enumerate(counts):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= MAX_COUNT:
            raise BitstreamError(f"code count {n!r} of array {i} is out of range 0..{MAX_COUNT}")
        out.append(int(n))
    return out


def parse_models(data: bytes, counts: list[int]) -> tuple[list[Model | None], int]:
    """The descriptors at the start of ``data`` (None for an empty array) and where the ANS words start."""
    r = Reader(bytes(data), "entropy-coded data")
    models = [None if n == 0 else parse_model(r, i) for i, n in enumerate(_counts(counts))]
    return models, r.pos


def decode_arrays(data: bytes, counts: list[int], checksum: bool = True) -> list[np.ndarray]:
    """Inverse of :func:`encode_arrays`: flat int32 arrays of ``counts[i]`` codes each.

    Raises :class:`BitstreamError` for malformed, truncated, extended or corrupted data."""
    data = bytes(data)
    counts = _counts(counts)
    models, start = parse_models(data, counts)
    tail = data[start:]
    out = [np.zeros(n, dtype=np.int32) for n in counts]
    coded = [i for i, m in enumerate(models) if m is not None and m.kind != CONST]
    for i, m in enumerate(models):
        if m is not None and m.kind == CONST:
            out[i][:] = m.lo
    if not coded:
        if tail:
            raise BitstreamError(f"{len(tail)} bytes follow the last model descriptor, none expected")
        return out
    if not tail or tail[-1] == 0:
        raise BitstreamError(
            "entropy-coded data " + ("ends in a zero byte" if tail else "is missing after the descriptors")
        )
    words = np.frombuffer(tail + b"\0" * (-len(tail) % 4), dtype="<u4").astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    for i in coded:
        m = models[i]
        assert m is not None
        symbols = np.asarray(coder.decode(_categorical(m.frequencies()), counts[i]))
        out[i] = (symbols.astype(np.int64) + m.lo).astype(np.int32)
    want = checksum_state(data[:start], [out[i] for i in coded]) if checksum else PLAIN_STATE
    if coder.num_words() != 1 or int(coder.get_compressed()[0]) != want:
        raise BitstreamError(
            "entropy-coded data does not end in the coder state it started from"
            + (" or fails its checksum" if checksum else "")
            + " (truncated, extended or corrupted)"
        )
    return out
