"""A spinr bitstream (or any list of packets) through a seeded netsim channel: what the receiver holds.

Sits above ``codec`` and ``netsim`` and imports both. :func:`transmit` takes packets through optional
unequal error protection and the channel, and splits what arrives into intact packets and damaged ones
(bit errors, truncation); :func:`restamp` is what a receiver that ignores CRCs would make of a damaged
one. Scoring what arrived is :mod:`streaming.subjects`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from codec.errors import BitstreamError
from codec.packets import Packet, PacketType
from netsim import Channel, ChannelConfig, ProtectionPlan, encode, recover


@dataclass
class Received:
    """What one transmission left at the receiver, by packet index (0 = a spinr header packet)."""

    intact: dict[int, bytes]
    damaged: dict[int, bytes] = field(default_factory=dict)
    """Packets that only arrived with bit errors or truncated (no intact copy, no rebuild)."""
    wire_bytes: int = 0
    """Bytes handed to the channel (packets, envelopes, copies and parity), as the channel counted them."""


def transmit(
    packets: Sequence[bytes],
    channel: ChannelConfig,
    plan: ProtectionPlan | None = None,
    reliable: Collection[int] = (),
) -> Received:
    """Send ``packets`` through ``channel`` (seeded, so repeatable), protected by ``plan`` if given.

    ``reliable`` indices are handed over intact whatever the channel did to them: e.g. a header sent
    over a reliable side channel. They still travel through the lossy channel so that every other
    packet meets exactly the same channel draws with and without that assumption (paired runs)."""
    packets = [bytes(p) for p in packets]
    link = Channel(channel)
    if plan is None:
        deliveries = link.transmit(packets)
        intact: dict[int, bytes] = {}
        damaged: dict[int, bytes] = {}
        for d in deliveries:  # duplicates: the first intact copy wins
            if d.corrupted or d.truncated:
                damaged.setdefault(d.index, d.data)
            else:
                intact.setdefault(d.index, d.data)
    else:
        rec = recover(link.transmit(encode(packets, plan).wire), use_corrupted=True)
        intact = {i: p for i, p in rec.packets.items() if i not in rec.flagged}
        damaged = {i: rec.packets[i] for i in rec.flagged}
    for i in reliable:
        intact[i] = packets[i]
    damaged = {i: d for i, d in damaged.items() if i not in intact}
    return Received(intact, damaged, int(link.stats["bytes_sent"]))


def overhead(packets: Sequence[bytes], plan: ProtectionPlan | None) -> tuple[int, float]:
    """Extra bytes a plan puts on the wire (envelopes, copies, parity) and their ratio to the payload."""
    if plan is None:
        return 0, 0.0
    encoded = encode([bytes(p) for p in packets], plan)
    return encoded.overhead_bytes, encoded.overhead_ratio


def restamp(data: bytes) -> bytes | None:
    """A damaged spinr packet with its CRC recomputed: what a receiver that ignores CRCs would parse.

    None when even the packet header is unusable (too short, bad magic, version or type, a malformed
    varint, a length that disagrees with the bytes)."""
    try:
        head = Packet.peek(data)
        payload = data[head.head_length :]
        if len(payload) != head.length:
            return None
        return Packet(
            PacketType(head.ptype), head.stream_id, head.seq, head.unit, payload, head.level, head.version
        ).to_bytes()
    except (BitstreamError, ValueError):
        return None
