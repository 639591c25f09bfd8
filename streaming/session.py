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
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from codec.bitstream import Bitstream
from codec.errors import BitstreamError, SpinrError, brief
from codec.mpack import check_depth
from codec.packets import Packet
from netsim.channel import Channel, ChannelConfig

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


def packet_bytes(packet: Packet | bytes | bytearray | memoryview) -> tuple[bytes, int | None]:
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
        raise SessionError(f"the {what} nests lists and objects more than {MAX_MESSAGE_DEPTH} deep") from None
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


class StreamSession:
    """Plans one transmission of ``bitstream`` to a client that already holds the units in ``have``."""

    def __init__(
        self,
        bitstream: Bitstream,
        channel: ChannelConfig | dict[str, Any] | None = None,
        have: Iterable[int] = (),
    ) -> None:
        self.bitstream = bitstream
        self.channel = channel_config(channel)
        units = bitstream.header.num_units
        self.have = parse_have(sorted(have) if not isinstance(have, list) else have, units)
        self._plan: list[Message] | None = None
        self.summary = SessionSummary()

    def plan(self) -> list[Message]:
        """Every message the client receives, in arrival order (computed once, deterministic per seed)."""
        if self._plan is not None:
            return self._plan
        packets = [packet_bytes(p) for p in self.bitstream.packets()]
        header = next(data for data, unit in packets if unit is None)
        layers = [(data, unit) for data, unit in packets if unit is not None and unit not in self.have]
        plan = [Message(header, None, 0.0)]
        summary = SessionSummary(sent=1 + len(layers), skipped=sorted(self.have))
        if self.channel is None:
            plan += [Message(data, unit, 0.0) for data, unit in layers]
        elif layers:
            deliveries = Channel(self.channel).transmit([data for data, _ in layers])
            deliveries = sorted(deliveries, key=lambda d: d.arrival_time)  # stable: ties keep send order
            plan += [
                Message(bytes(d.data), layers[d.index][1], arrival_seconds(d), damaged(d)) for d in deliveries
            ]
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
