"""A progressive JPEG matched to a spinr stream: exactly the same bytes on the wire, protection included,
cut into packets of the same sizes and protected by the same plan (the packet-loss experiment's fair
classical comparison).

- :func:`wire_bytes`: what packets of given sizes cost on the wire under a protection plan (netsim's
  envelopes, copies and parity; the payload alone without a plan).
- :func:`matched_jpeg`: the highest-quality progressive JPEG (Pillow, optimized) of at most the spinr
  stream's bytes, padded with zero bytes after its end-of-image marker to exactly those bytes and cut at
  the spinr packets' sizes. Same packet sizes and the same plan give the same protection bytes and the
  same datagrams, so every channel seed drops or damages the same packets of both streams. The JPEG's
  first packets hold its headers and first scans: they play the part of the spinr header and stage 0
  and the plan protects them alike. The padding (less than one quality step of the file) is bytes the
  JPEG could not use; decoders ignore data after the end-of-image marker.
- :func:`jpeg_in_packets`: the JPEG packetised its own way instead (packets of one size, e.g. the MTU,
  each useful up to the first loss), the highest quality whose bytes on the wire under a plan for that
  many packets stay at most a target (the protected spinr stream's): the same bytes and the same kind of
  protection, though not the same datagrams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from codec.classical import at_bytes, search
from netsim import ProtectionPlan, encode
from streaming.subjects import cut

PlanFor = Callable[[int], ProtectionPlan | None]
"""A protection plan for a stream of ``n`` packets (None: unprotected, no envelopes)."""


def wire_bytes(sizes: Sequence[int], plan: ProtectionPlan | None) -> int:
    """Bytes handed to the channel for packets of these sizes: the payload, and with a plan every
    envelope, copy and parity datagram (parity depends only on the packets' lengths)."""
    if plan is None:
        return int(sum(sizes))
    return encode([bytes(s) for s in sizes], plan).wire_bytes


@dataclass(frozen=True)
class Matched:
    """A classical file padded, cut and protected like the spinr stream it is matched to."""

    data: bytes
    """The file as sent: the JPEG, then its zero padding."""
    file_bytes: int
    """The JPEG's own bytes (without the padding)."""
    quality: float
    packets: list[bytes]
    plan: ProtectionPlan | None
    wire_bytes: int
    """Bytes on the wire incl. protection (the spinr stream's exactly when ``fits``)."""
    fits: bool
    """False: even the smallest JPEG is larger than the stream (it is then sent unpadded, larger)."""


def matched_jpeg(image: np.ndarray, sizes: Sequence[int], plan_for: PlanFor) -> Matched:
    """The progressive JPEG with the bytes, packet sizes and protection of a stream of ``sizes``
    packets protected by ``plan_for(len(sizes))``."""
    total = int(sum(sizes))
    found = at_bytes(image, "jpeg-progressive", total)
    data = found.data + bytes(max(0, total - len(found.data)))
    packets = cut(data, sizes)
    plan = plan_for(len(packets))
    return Matched(
        data,
        len(found.data),
        float(found.quality),
        packets,
        plan,
        wire_bytes([len(p) for p in packets], plan),
        found.fits,
    )


def jpeg_in_packets(
    image: np.ndarray, packet_bytes: int, plan_for: PlanFor, target_wire_bytes: int
) -> Matched:
    """The best progressive JPEG cut into packets of ``packet_bytes`` (the last one shorter) whose
    bytes on the wire under ``plan_for(packets)`` are at most ``target_wire_bytes`` (not padded: the
    packets' count depends on the file). Wire bytes grow with the file, so the quality search of
    :func:`codec.classical.search` applies."""

    def sizes(n: int) -> list[int]:
        return [packet_bytes] * (n // packet_bytes) + ([n % packet_bytes] if n % packet_bytes else [])

    def cost(n: int) -> int:
        s = sizes(n)
        return wire_bytes(s, plan_for(len(s)))

    found = search(image, "jpeg-progressive", lambda n: cost(n) <= target_wire_bytes)
    packets = cut(found.data, sizes(len(found.data)))
    plan = plan_for(len(packets))
    wire = wire_bytes([len(p) for p in packets], plan)
    return Matched(found.data, len(found.data), float(found.quality), packets, plan, wire, found.fits)
