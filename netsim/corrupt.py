"""Damage to bytes that still arrive: independent bit flips and truncation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from netsim.datagram import Delivery
from netsim.stage import Stage, StageRun, UniformStage
from netsim.validate import integer, probability

# Above this BER, one uniform per bit is cheaper than walking geometric gaps between flips.
DENSE_BER = 0.01


class BitFlips(Stage):
    """Flip every bit independently with probability ``ber``; a datagram with a flip is ``corrupted``."""

    name = "bitflips"

    def __init__(self, ber: float) -> None:
        self.ber = probability("ber", ber)

    def open(self, rng: np.random.Generator) -> StageRun:
        return _BitFlipRun(self.ber, rng)


class _BitFlipRun(StageRun):
    def __init__(self, ber: float, rng: np.random.Generator) -> None:
        self.ber, self.rng = ber, rng

    def positions(self, nbits: int) -> np.ndarray:
        """Indices of flipped bits: exactly Bernoulli(ber) per bit, drawn per datagram."""
        if self.ber == 0.0 or nbits == 0:
            return np.empty(0, dtype=np.int64)
        if self.ber >= DENSE_BER:
            return np.flatnonzero(self.rng.random(nbits) < self.ber)
        # Sparse: gaps between successive flips are geometric, so draws ~ number of flips + 1.
        flips, pos = [], int(self.rng.geometric(self.ber)) - 1
        while pos < nbits:
            flips.append(pos)
            pos += int(self.rng.geometric(self.ber))
        return np.asarray(flips, dtype=np.int64)

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        out = []
        for d in deliveries:
            flips = self.positions(8 * len(d.data))
            if flips.size == 0:
                out.append(d)
                continue
            buf = np.frombuffer(d.data, dtype=np.uint8).copy()
            # Bit 0 is the most significant bit of byte 0 (network order). XOR at repeated bytes
            # must accumulate, hence np.bitwise_xor.at rather than fancy-index assignment.
            np.bitwise_xor.at(buf, flips // 8, (0x80 >> (flips % 8)).astype(np.uint8))
            out.append(replace(d, data=buf.tobytes(), corrupted=True))
        return out


class Truncation(UniformStage):
    """With probability ``rate`` cut a datagram to a length uniform in ``[min_keep, len - 1]``."""

    name = "truncation"
    draws = 2  # decide, then length

    def __init__(self, rate: float, min_keep: int = 0) -> None:
        self.rate = probability("truncation rate", rate)
        self.min_keep = integer("min_keep", min_keep, 0)

    def process(self, deliveries: Sequence[Delivery], u: np.ndarray) -> list[Delivery]:
        out = []
        for d, (u_cut, u_len) in zip(deliveries, u.tolist(), strict=True):
            span = len(d.data) - self.min_keep
            if u_cut < self.rate and span > 0:
                keep = self.min_keep + int(u_len * span)  # in [min_keep, len - 1]
                d = replace(d, data=d.data[:keep], truncated=True)
            out.append(d)
        return out
