"""Server side of a stream: a bitstream's packets, through a simulated channel, as timed messages.

The header packet is always delivered (a real sender would retransmit it until acknowledged); each
layer packet the client does not already hold goes through :class:`netsim.channel.Channel`, which
decides what is dropped, corrupted, duplicated, reordered and when each copy arrives. The session
only plans; whoever owns the socket sends. :meth:`StreamSession.messages` waits (with asyncio, never
blocking the loop) until each message is due, or not at all with ``pace=False``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from codec.bitstream import Bitstream
from codec.errors import BitstreamError, SpinrError, brief
from codec.mpack import check_depth
from codec.packets import Packet
from netsim.channel import Channel, ChannelConfig
from netsim.fragment import MIN_MTU

MAX_MESSAGE_DEPTH = 8
"""Deepest nesting of lists and objects in a JSON message from the network (a start message needs 2)."""


class SessionError(SpinrError, ValueError):
    """A stream request is malformed (an out-of-range unit in ``have``, a bad channel)."""


@dataclass(frozen=True)
class Message:
    """One binary WebSocket message: exactly one packet's bytes as the channel delivers them."""

    data: bytes
    unit: int | None
    """Unit index of the layer packet; None for the header packet."""
    at: float
    """Seconds after the session start at which the message is due at the receiver."""
    corrupted: bool = False


@dataclass
class SessionSummary:
    """What the sender knows once every message is out (the ``done`` message of the API)."""

    sent: int = 0
    """Packets handed to the link: the header plus every layer packet the client lacked."""
    delivered: int = 0
    """Messages that came out of the channel (the header included; duplicates count)."""
    dropped: list[int] = field(default_factory=list)
    """Units sent of which no copy came out of the channel."""
    corrupted: list[int] = field(default_factory=list)
    """Units of which every delivered copy was damaged, flipped or truncated (the receiver rejects those by CRC)."""
    skipped: list[int] = field(default_factory=list)
    """Units not sent because the client said it already has them."""
    bytes: int = 0
    """Bytes delivered, the header included."""

    def to_message(self) -> dict[str, Any]:
        return {
            "type": "done",
            "sent": self.sent,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "corrupted": self.corrupted,
            "skipped": self.skipped,
            "bytes": self.bytes,
        }


PacketBytes = tuple[bytes, int | None]
"""A packet's bytes and its unit index (None for the header packet)."""


def packet_bytes(packet: Packet | bytes | bytearray | memoryview) -> PacketBytes:
    """(bytes, unit index or None for the header) of a packet object or of its bytes."""
    if isinstance(packet, Packet):
        return packet.to_bytes(), packet.unit
    data = bytes(packet)
    return data, Packet.peek(data).unit


def arrival_seconds(delivery: Any) -> float:
    """A delivery's arrival time in seconds after the first packet was sent."""
    return float(delivery.arrival_time)


def damaged(delivery: Any) -> bool:
    """The copy differs from what was sent (bit flips or a cut tail): the receiver's CRC rejects it."""
    return bool(getattr(delivery, "corrupted", False) or getattr(delivery, "truncated", False))


def load_message(text: str, what: str = "message") -> Any:
    """A JSON text message from the network, nested at most ``MAX_MESSAGE_DEPTH`` deep; SessionError
    otherwise. ``json.loads`` recurses, so a message nested thousands deep would raise RecursionError
    (an "Exception in ASGI application" for a server) without the first ``except``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise SessionError(f"the {what} nests lists and maps more than {MAX_MESSAGE_DEPTH} deep") from None
    except ValueError as exc:
        raise SessionError(f"the {what} is not valid JSON: {exc}") from None
    try:
        check_depth(value, MAX_MESSAGE_DEPTH, f"the {what}")
    except BitstreamError as exc:
        raise SessionError(f"{exc}") from None
    return value


def channel_config(value: ChannelConfig | dict[str, Any] | None) -> ChannelConfig | None:
    """A channel from the API's ``channel`` object; SessionError names what is wrong with it."""
    if value is None or isinstance(value, ChannelConfig):
        return value
    if not isinstance(value, dict):
        raise SessionError(f"channel must be a JSON object, got {type(value).__name__}")
    try:
        return ChannelConfig.from_dict(value)
    except Exception as exc:  # netsim does not import codec, so its errors are not SpinrErrors
        raise SessionError(f"bad channel: {exc}") from None


def parse_have(value: Any, units: int) -> set[int]:
    """The API's ``have`` list -> a set of unit indices, each checked against the stream."""
    if value is None:
        return set()
    if not isinstance(value, list):
        raise SessionError(f"have must be a list of unit indices 0..{units - 1}, got {type(value).__name__}")
    out = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < units:
            raise SessionError(f"have contains {brief(item)}; unit indices of this stream are 0..{units - 1}")
        out.add(item)
    return out


Simulated = list[tuple[int, bytes, float, bool]]
"""A channel's deliveries as plain values: (packet index, bytes, arrival seconds, damaged), in
arrival order. Picklable both ways, so a server may compute them in another process."""


def simulate(packets: list[bytes], channel: ChannelConfig) -> Simulated:
    """Every delivery of ``packets`` through ``channel``, in arrival order (ties keep send order)."""
    deliveries = sorted(Channel(channel).transmit(packets), key=lambda d: d.arrival_time)
    return [(d.index, bytes(d.data), arrival_seconds(d), damaged(d)) for d in deliveries]


def datagram_count(sizes: Sequence[int], mtu: int, copies: int = 1) -> int:
    """Datagrams the channel handles for packets of these sizes: each packet longer than ``mtu``
    (when ``mtu`` > 0) is that many fragments, each packet sent at most ``copies`` times."""
    if not mtu:
        return copies * len(sizes)
    return copies * sum(max(1, math.ceil(n / mtu)) for n in sizes)


def smallest_mtu(sizes: Sequence[int], limit: int, copies: int = 1) -> int | None:
    """The smallest MTU with at most ``limit`` datagrams (None: not even unfragmented packets fit)."""
    if datagram_count(sizes, 0, copies) > limit:
        return None
    lo, hi = MIN_MTU, max([MIN_MTU, *sizes])  # the count falls as the MTU grows; at hi nothing splits
    while lo < hi:
        mid = (lo + hi) // 2
        if datagram_count(sizes, mid, copies) <= limit:
            hi = mid
        else:
            lo = mid + 1
    return lo


class StreamSession:
    """Plans one transmission of ``bitstream`` to a client that already holds the units in ``have``."""

    def __init__(
        self,
        bitstream: Bitstream,
        channel: ChannelConfig | dict[str, Any] | None = None,
        have: Iterable[int] = (),
        packets: Sequence[PacketBytes] | None = None,
    ) -> None:
        """``packets``: the bitstream's packets already serialised (:func:`packet_bytes` of each, in
        its order), as a server keeps them for every stream of an image."""
        self.bitstream = bitstream
        self.channel = channel_config(channel)
        units = bitstream.header.num_units
        self.have = parse_have(sorted(have) if not isinstance(have, list) else have, units)
        self._plan: list[Message] | None = None
        self._bytes: Sequence[PacketBytes] | None = packets
        self.summary = SessionSummary()

    def _packets(self) -> Sequence[PacketBytes]:
        if self._bytes is None:  # serialising is work: once per session
            self._bytes = [packet_bytes(p) for p in self.bitstream.packets()]
        return self._bytes

    def _layers(self) -> list[tuple[bytes, int]]:
        """(bytes, unit) of each layer packet the client lacks, in unit order."""
        out = []
        for data, unit in self._packets():
            if unit is not None and unit not in self.have:
                out.append((data, unit))
        return out

    def datagrams(self) -> int:
        """Datagrams the channel would handle for this session (the work of planning it grows with it)."""
        sizes = [len(data) for data, _ in self._layers()]
        if self.channel is None:
            return len(sizes)
        return datagram_count(sizes, self.channel.mtu, 2 if self.channel.duplicate else 1)

    def check_work(self, max_datagrams: int) -> None:
        """SessionError unless the channel handles at most ``max_datagrams`` datagrams, naming the
        count and the smallest MTU that fits (before any planning work is done)."""
        count = self.datagrams()
        if count <= max_datagrams:
            return
        assert self.channel is not None  # without a channel there is one datagram per packet
        copies = 2 if self.channel.duplicate else 1
        sizes = [len(data) for data, _ in self._layers()]
        fit = smallest_mtu(sizes, max_datagrams, copies)
        advice = f"use mtu >= {fit} (or 0)" if fit is not None else "this stream cannot be sent here"
        raise SessionError(
            f"channel mtu {self.channel.mtu} splits this stream into {count} datagrams; this server "
            f"simulates at most {max_datagrams} per stream: {advice}"
        )

    @property
    def duration(self) -> float:
        """Seconds from the first message to the last one's arrival (plans the session)."""
        return max(m.at for m in self.plan())

    def channel_input(self) -> tuple[list[bytes], ChannelConfig] | None:
        """What :func:`simulate` takes for this session (None when there is no channel or nothing to send)."""
        layers = self._layers()
        return ([data for data, _ in layers], self.channel) if self.channel is not None and layers else None

    def plan(self, simulated: Simulated | None = None) -> list[Message]:
        """Every message the client receives, in arrival order (computed once, deterministic per seed).
        ``simulated``: what :func:`simulate` returned for :meth:`channel_input`, if computed elsewhere."""
        if self._plan is not None:
            return self._plan
        header = next(data for data, unit in self._packets() if unit is None)
        layers = self._layers()
        plan = [Message(header, None, 0.0)]
        summary = SessionSummary(sent=1 + len(layers), skipped=sorted(self.have))
        if self.channel is None:
            plan += [Message(data, unit, 0.0) for data, unit in layers]
        elif layers:
            if simulated is None:
                simulated = simulate([data for data, _ in layers], self.channel)
            plan += [Message(data, layers[index][1], at, bad) for index, data, at, bad in simulated]
        intact = {m.unit for m in plan[1:] if not m.corrupted}
        arrived = {m.unit for m in plan[1:]}
        summary.dropped = sorted(unit for _, unit in layers if unit not in arrived)
        summary.corrupted = sorted(u for u in arrived - intact if u is not None)
        summary.delivered = len(plan)
        summary.bytes = sum(len(m.data) for m in plan)
        self._plan, self.summary = plan, summary
        return plan

    def __iter__(self) -> Iterator[Message]:
        return iter(self.plan())

    async def messages(
        self,
        pace: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> AsyncIterator[Message]:
        """Yield each message when it is due (``pace``) or at once; waits never block the event loop."""
        start = clock()
        for message in self.plan():
            if pace:
                wait = start + message.at - clock()
                if wait > 0:
                    await sleep(wait)
            yield message
