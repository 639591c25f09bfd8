"""Bandwidth: a token bucket that sets when each datagram leaves, with an optional tail-drop queue."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from netsim.datagram import Delivery
from netsim.stage import Stage, StageRun
from netsim.trace import BandwidthTrace
from netsim.validate import integer, number


class TokenBucket(Stage):
    """Shape to ``rate_bytes_per_s`` with bursts up to ``burst_bytes``; FIFO, deterministic.

    Tokens (bytes) accrue at the rate up to ``burst_bytes``. A datagram leaves once the bucket holds
    ``min(size, burst_bytes)`` tokens and then takes ``size`` (the bucket may go negative, so a
    datagram larger than the burst is still sent, at the long-run rate). Its ``send_time`` becomes the
    departure time and its arrival moves by the same amount. ``queue_bytes > 0`` bounds the bytes
    waiting: a datagram that would overflow the queue is dropped (tail drop).
    """

    name = "bandwidth"

    def __init__(self, rate_bytes_per_s: float, burst_bytes: int = 1500, queue_bytes: int = 0) -> None:
        self.rate = number("rate_bytes_per_s", rate_bytes_per_s, 1e-9)
        self.burst = integer("burst_bytes", burst_bytes, 1)
        self.queue_bytes = integer("queue_bytes", queue_bytes, 0)

    def open(self, rng: np.random.Generator) -> StageRun:
        return _BucketRun(self)

    def accrued(self, t0: float, t1: float) -> float:
        """Tokens (bytes) the link earns between ``t0`` and ``t1``."""
        return (t1 - t0) * self.rate

    def time_to_earn(self, t: float, nbytes: float) -> float:
        """Earliest time after ``t`` by which the link has earned ``nbytes`` more tokens."""
        return t + nbytes / self.rate


class TraceBucket(TokenBucket):
    """A :class:`TokenBucket` whose rate follows a :class:`~netsim.trace.BandwidthTrace` (time 0 of the
    trace is time 0 of the transmission). Tokens accrue at the rate of the moment, so an outage stops
    the link and a drop of rate slows every datagram still queued."""

    def __init__(self, trace: BandwidthTrace, burst_bytes: int = 1500, queue_bytes: int = 0) -> None:
        super().__init__(max(trace.kbps) * 125.0, burst_bytes, queue_bytes)
        self.trace = trace

    def accrued(self, t0: float, t1: float) -> float:
        return self.trace.capacity(t1) - self.trace.capacity(t0)

    def time_to_earn(self, t: float, nbytes: float) -> float:
        return self.trace.time_for(self.trace.capacity(t) + nbytes)


class _BucketRun(StageRun):
    def __init__(self, bucket: TokenBucket) -> None:
        self.b = bucket
        self.tokens = float(bucket.burst)  # starts full
        self.clock = -np.inf  # time of the last departure (FIFO: departures never go back)
        self.filled_at = 0.0  # time at which self.tokens was computed
        self.queue: deque[tuple[float, int]] = deque()  # (departure, size) of datagrams not yet gone
        self.queued = 0

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        b, out = self.b, []
        for d in deliveries:
            offered, size = d.send_time, len(d.data)
            if b.queue_bytes:
                while self.queue and self.queue[0][0] <= offered:
                    self.queued -= self.queue.popleft()[1]
                if self.queued + size > b.queue_bytes:
                    continue  # tail drop: the queue is full when this datagram is offered
            t = max(offered, self.clock)
            if t > self.filled_at:
                self.tokens = min(float(b.burst), self.tokens + b.accrued(self.filled_at, t))
                self.filled_at = t
            need = min(size, b.burst)
            if self.tokens < need:
                t = b.time_to_earn(t, need - self.tokens)
                self.tokens, self.filled_at = float(need), t
            self.tokens -= size
            self.clock = t
            if b.queue_bytes:
                self.queue.append((t, size))
                self.queued += size
            out.append(replace(d, send_time=t, arrival_time=d.arrival_time + (t - offered)))
        return out
