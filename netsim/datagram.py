"""What comes out of a channel: one :class:`Delivery` per datagram (or reassembled packet) received."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """One copy of a packet as the receiver gets it. Times are seconds on the channel's clock."""

    data: bytes
    """The bytes as received: possibly bit-flipped, truncated, or a fragment with its header."""
    send_time: float
    """When the datagram entered the link (after any queueing in a :class:`~netsim.shaping.TokenBucket`)."""
    arrival_time: float
    """When it reaches the receiver; channel outputs are sorted by this."""
    index: int
    """Index of the original packet in the sequence handed to the channel."""
    corrupted: bool = False
    """At least one bit was flipped (ground truth; a receiver learns it only through a CRC)."""
    truncated: bool = False
    """The tail was cut off."""
    duplicate: bool = False
    """A copy made by the channel's duplication (the original copy is never flagged, even when lost)."""
    fragment: tuple[int, int] | None = None
    """``(fragment index, fragment count)`` for a datagram carrying part of a larger packet."""
