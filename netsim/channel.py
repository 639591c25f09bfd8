"""``Channel``: a seeded pipeline of stages that turns packets into timed deliveries.

Two ways to use one:

- :meth:`Channel.transmit` takes a whole sequence of packets and returns every delivery, sorted by
  arrival. It starts from the seed each time, so calling it twice gives the same result.
- :meth:`Channel.session` returns a :class:`ChannelSession` whose :meth:`~ChannelSession.send` takes
  one packet at a time and keeps every stage's state (the Gilbert-Elliott state, the token bucket,
  the random streams) between calls, for a server that sends as it goes. For the same seed and
  packets, the deliveries of all ``send`` calls plus :meth:`~ChannelSession.flush` are exactly those of
  ``transmit`` (same bytes, flags and times) unless the channel both reorders and delays: ``transmit``
  sorts a whole batch by arrival before reordering, a session can only sort what it has seen.

With ``mtu > 0`` the pipeline fragments packets and reassembles them, so callers see whole packets
(with the index they were sent under) or nothing.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from netsim.config import PRESETS, ChannelConfig
from netsim.corrupt import BitFlips, Truncation
from netsim.datagram import Delivery
from netsim.drop import GilbertElliott, IndependentLoss
from netsim.errors import ChannelConfigError
from netsim.fragment import FRAGMENT_HEADER_LENGTH, Fragmenter, Reassembler
from netsim.order import Delay, Duplication, Reorder, by_arrival
from netsim.shaping import TokenBucket, TraceBucket
from netsim.stage import Stage, StageRun
from netsim.validate import integer, number

__all__ = ["PRESETS", "Channel", "ChannelConfig", "ChannelSession", "build_stages", "stage_rng"]

MIN_BUCKET_BYTES = 1500


def build_stages(config: ChannelConfig) -> list[Stage]:
    """The pipeline for ``config``, in the order effects happen on a path.

    Duplication and truncation act on whole packets (the rates mean what they say per packet); the
    link (bandwidth, loss, bit errors, delay, reordering) acts on datagrams, so a fragmented packet
    is lost when any fragment is. Stages with a zero parameter are left out.
    """
    c = config
    stages: list[Stage] = []
    if c.duplicate:
        stages.append(Duplication(c.duplicate))
    if c.truncate:
        stages.append(Truncation(c.truncate))
    if c.mtu:
        stages.append(Fragmenter(c.mtu))
    burst = max(MIN_BUCKET_BYTES, c.mtu + FRAGMENT_HEADER_LENGTH if c.mtu else 0)
    if c.bandwidth_kbps:
        stages.append(TokenBucket(c.bandwidth_kbps * 1000 / 8, burst, c.queue_bytes))
    elif c.trace is not None:
        stages.append(TraceBucket(c.trace, burst, c.queue_bytes))
    if c.loss:
        stages.append(
            GilbertElliott.from_mean(c.loss, c.burst)
            if c.burst > 1.0 and c.loss < 1.0
            else IndependentLoss(c.loss)
        )
    if c.ber:
        stages.append(BitFlips(c.ber))
    if c.delay_ms or c.jitter_ms:
        stages.append(Delay(c.delay_ms, c.jitter_ms))
    if c.reorder:
        stages.append(Reorder(c.reorder, c.reorder_depth))
    if c.mtu:
        stages.append(Reassembler())
    return stages


def stage_rng(seed: int, name: str, occurrence: int = 0) -> np.random.Generator:
    """The random stream of a stage: keyed by its name, not its position, so that adding or removing
    another stage leaves this stage's draws unchanged."""
    key = (zlib.crc32(name.encode()), occurrence)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


class _Tally:
    """Running counts behind ``stats``."""

    def __init__(self) -> None:
        self.sent = self.bytes_sent = self.delivered = self.bytes_delivered = 0
        self.corrupted = self.truncated = self.duplicates = 0
        self.arrived: set[int] = set()
        self.start: float | None = None
        self.end: float | None = None

    def offer(self, packet: bytes, t: float) -> None:
        self.sent += 1
        self.bytes_sent += len(packet)
        self.start = t if self.start is None else min(self.start, t)
        self.end = t if self.end is None else max(self.end, t)

    def receive(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            self.delivered += 1
            self.bytes_delivered += len(d.data)
            self.corrupted += d.corrupted
            self.truncated += d.truncated
            self.duplicates += d.duplicate
            self.arrived.add(d.index)
            self.end = d.arrival_time if self.end is None else max(self.end, d.arrival_time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "dropped": self.sent - len(self.arrived),
            "corrupted": self.corrupted,
            "truncated": self.truncated,
            "duplicates": self.duplicates,
            "bytes_sent": self.bytes_sent,
            "bytes_delivered": self.bytes_delivered,
            "duration": (self.end - self.start) if self.start is not None and self.end is not None else 0.0,
        }


class ChannelSession:
    """A channel in use, packet by packet; see the module docstring for how it matches ``transmit``."""

    def __init__(self, stages: Sequence[Stage], seed: int) -> None:
        seen: dict[str, int] = {}
        self._runs: list[StageRun] = []
        for stage in stages:
            occurrence = seen.get(stage.name, 0)
            seen[stage.name] = occurrence + 1
            self._runs.append(stage.open(stage_rng(seed, stage.name, occurrence)))
        self._next_index = 0
        self._clock = 0.0
        self._tally = _Tally()

    @property
    def stats(self) -> dict[str, Any]:
        """sent, delivered, dropped (sent with no copy out yet), corrupted, truncated, duplicates,
        bytes_sent, bytes_delivered, duration (seconds from the first send to the last arrival)."""
        return self._tally.as_dict()

    def send(self, packet: bytes, send_time: float | None = None) -> list[Delivery]:
        """Hand one packet to the channel at ``send_time`` seconds (default: the previous send time, 0.0
        at first); returns what comes out because of it, by arrival. Its ``index`` is the number of
        packets sent before it. Under bandwidth limits the channel queues, so arrival times run ahead
        of the caller's clock; a caller that paces by wall time waits until ``arrival_time``."""
        if send_time is not None:
            self._clock = number("send_time", send_time, 0.0)
        return self._send_many([bytes(packet)], [self._clock])

    def flush(self) -> list[Delivery]:
        """End of stream: release what stages still hold (reordered datagrams), by arrival."""
        pending: list[Delivery] = []
        for run in self._runs:
            pending = run.push(pending) + run.flush()
        self._tally.receive(pending)
        return by_arrival(pending)

    def _send_many(self, packets: Sequence[bytes], times: Sequence[float]) -> list[Delivery]:
        deliveries = []
        for packet, t in zip(packets, times, strict=True):
            deliveries.append(Delivery(packet, t, t, self._next_index))
            self._tally.offer(packet, t)
            self._next_index += 1
        for run in self._runs:
            deliveries = run.push(deliveries)
        self._tally.receive(deliveries)
        return by_arrival(deliveries)


class Channel:
    """A channel from a :class:`ChannelConfig` (or a preset name), or from an explicit list of stages."""

    def __init__(
        self, config: ChannelConfig | str | Sequence[Stage] | None = None, seed: int | None = None
    ) -> None:
        if config is None:
            config = ChannelConfig()
        if isinstance(config, str):
            config = ChannelConfig.preset(config)
        if isinstance(config, ChannelConfig):
            config = dataclasses.replace(
                config
            )  # re-validate: fields may have been edited (a trace stays as is)
            self.config: ChannelConfig | None = config
            self.stages = build_stages(config)
            self.seed = config.seed if seed is None else integer("seed", seed, 0)
        else:
            if not all(isinstance(s, Stage) for s in config):
                raise ChannelConfigError(
                    "a Channel takes a ChannelConfig, a preset name or a list of Stage objects"
                )
            self.config = None
            self.stages = list(config)
            self.seed = integer("seed", 0 if seed is None else seed, 0)
        self.stats: dict[str, Any] = _Tally().as_dict()
        """Counts of the last :meth:`transmit` (see :attr:`ChannelSession.stats`)."""

    def session(self, seed: int | None = None) -> ChannelSession:
        """A fresh streaming session; ``seed`` defaults to the channel's."""
        return ChannelSession(self.stages, self.seed if seed is None else integer("seed", seed, 0))

    def transmit(self, packets: Sequence[bytes], send_times: Sequence[float] | None = None) -> list[Delivery]:
        """Send every packet (all at time 0.0 unless ``send_times`` says otherwise); every delivery,
        sorted by arrival time (ties keep send order). Sets :attr:`stats`."""
        packets = [bytes(p) for p in packets]
        if send_times is None:
            times = [0.0] * len(packets)
        else:
            if len(send_times) != len(packets):
                raise ChannelConfigError(
                    f"send_times has {len(send_times)} entries for {len(packets)} packets"
                )
            times = [number(f"send_times[{i}]", t, 0.0) for i, t in enumerate(send_times)]
        session = self.session()
        out = session._send_many(packets, times) + session.flush()
        self.stats = session.stats
        return by_arrival(out)
