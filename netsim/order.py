"""Effects on how many copies arrive and in which order: duplication, delay with jitter, reordering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from netsim.datagram import Delivery
from netsim.stage import Stage, StageRun, UniformStage
from netsim.validate import integer, number, probability


def by_arrival(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """Sorted by arrival time; stable, so ties keep the order they were sent in."""
    return sorted(deliveries, key=lambda d: d.arrival_time)


class Duplication(UniformStage):
    """With probability ``rate`` a datagram arrives twice; the extra copy is flagged ``duplicate``."""

    name = "duplication"

    def __init__(self, rate: float) -> None:
        self.rate = probability("duplication rate", rate)

    def process(self, deliveries: Sequence[Delivery], u: np.ndarray) -> list[Delivery]:
        out = []
        for d, dup in zip(deliveries, (u[:, 0] < self.rate).tolist(), strict=True):
            out.append(d)
            if dup:
                out.append(replace(d, duplicate=True))
        return out


class Delay(UniformStage):
    """Arrival = arrival + ``base_ms`` + jitter, jitter uniform in ``[0, jitter_ms]`` (never negative).

    The batch is then sorted by arrival, so jitter larger than the send spacing reorders packets the
    way a real path does.
    """

    name = "delay"

    def __init__(self, base_ms: float, jitter_ms: float = 0.0) -> None:
        self.base_ms = number("delay_ms", base_ms, 0.0, 1e7)
        self.jitter_ms = number("jitter_ms", jitter_ms, 0.0, 1e7)

    def process(self, deliveries: Sequence[Delivery], u: np.ndarray) -> list[Delivery]:
        extra = (self.base_ms + u[:, 0] * self.jitter_ms) / 1000.0
        moved = [
            replace(d, arrival_time=d.arrival_time + e)
            for d, e in zip(deliveries, extra.tolist(), strict=True)
        ]
        return by_arrival(moved)


class Reorder(Stage):
    """With probability ``rate`` hold a datagram back until 1..``max_displacement`` later ones passed.

    A held datagram's arrival time becomes that of the one it now follows (if later than its own),
    so the output stays sorted by arrival. Held datagrams are released by :meth:`StageRun.flush`
    at the end of input (a streaming session must call ``flush`` when its stream ends).
    """

    name = "reorder"

    def __init__(self, rate: float, max_displacement: int = 3) -> None:
        self.rate = probability("reorder rate", rate)
        self.max_displacement = integer("max_displacement", max_displacement, 1, 100_000)

    def open(self, rng: np.random.Generator) -> StageRun:
        return _ReorderRun(self, rng)


class _ReorderRun(StageRun):
    def __init__(self, stage: Reorder, rng: np.random.Generator) -> None:
        self.stage, self.rng = stage, rng
        self.held: list[list] = []  # [remaining passes, delivery], in the order they were held

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        u = self.rng.random((len(deliveries), 2))  # column 0: hold?, column 1: how far
        out: list[Delivery] = []
        for d, (u_hold, u_far) in zip(deliveries, u.tolist(), strict=True):
            if u_hold < self.stage.rate:
                self.held.append([1 + int(u_far * self.stage.max_displacement), d])
                continue
            out.append(d)
            for entry in self.held:
                entry[0] -= 1
            while any(e[0] <= 0 for e in self.held):
                i = next(i for i, e in enumerate(self.held) if e[0] <= 0)
                out.append(self._release(self.held.pop(i)[1], out[-1].arrival_time))
        return out

    @staticmethod
    def _release(d: Delivery, after: float) -> Delivery:
        return d if d.arrival_time >= after else replace(d, arrival_time=after)

    def flush(self) -> list[Delivery]:
        out: list[Delivery] = []
        for _, d in self.held:
            out.append(self._release(d, out[-1].arrival_time) if out else d)
        self.held = []
        return out
