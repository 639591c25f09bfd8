"""Measure what a channel did: loss rate, loss bursts, bit errors, reordering, throughput."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from netsim.datagram import Delivery


def lost_mask(n_packets: int, deliveries: Sequence[Delivery]) -> np.ndarray:
    """Boolean array, True where no copy of packet ``i`` arrived (damaged copies count as arrived)."""
    lost = np.ones(n_packets, dtype=bool)
    idx = np.fromiter((d.index for d in deliveries), dtype=np.int64, count=len(deliveries))
    lost[idx[(idx >= 0) & (idx < n_packets)]] = False
    return lost


def loss_runs(lost: np.ndarray) -> np.ndarray:
    """Lengths of the runs of consecutive True values, in order."""
    x = np.concatenate(([0], np.asarray(lost, dtype=np.int8), [0]))
    edges = np.flatnonzero(np.diff(x))
    return edges[1::2] - edges[0::2]


def mean_burst(lost: np.ndarray) -> float:
    """Mean length of a run of consecutive losses; 0.0 when nothing was lost."""
    runs = loss_runs(lost)
    return float(runs.mean()) if runs.size else 0.0


def reordered(deliveries: Sequence[Delivery]) -> int:
    """Original copies that arrived after a packet sent later than them (arrival order is list order)."""
    count, highest = 0, -1
    for d in deliveries:
        if d.duplicate:
            continue
        if d.index < highest:
            count += 1
        highest = max(highest, d.index)
    return count


def bit_errors(packets: Sequence[bytes], deliveries: Sequence[Delivery]) -> tuple[int, int]:
    """(flipped bits, bits compared) over deliveries that kept their full length."""
    flipped = compared = 0
    for d in deliveries:
        original = packets[d.index]
        if len(d.data) != len(original):
            continue
        compared += 8 * len(original)
        if d.corrupted:
            diff = np.bitwise_xor(np.frombuffer(d.data, np.uint8), np.frombuffer(original, np.uint8))
            flipped += int(np.unpackbits(diff).sum())
    return flipped, compared


def summarize(packets: Sequence[bytes], deliveries: Sequence[Delivery]) -> dict[str, Any]:
    """Everything the ``netsim stats`` command reports, from the packets sent and what arrived."""
    n = len(packets)
    lost = lost_mask(n, deliveries)
    flipped, compared = bit_errors(packets, deliveries)
    originals = [d for d in deliveries if not d.duplicate]
    start = min((d.send_time for d in deliveries), default=0.0)
    end = max((d.arrival_time for d in deliveries), default=0.0)
    duration = end - start
    delivered_bytes = sum(len(d.data) for d in deliveries)
    latency = [d.arrival_time - d.send_time for d in deliveries]
    return {
        "packets": n,
        "deliveries": len(deliveries),
        "loss_rate": float(lost.mean()) if n else 0.0,
        "mean_burst": mean_burst(lost),
        "max_burst": int(loss_runs(lost).max(initial=0)),
        "corrupted_rate": sum(d.corrupted for d in originals) / max(len(originals), 1),
        "truncated_rate": sum(d.truncated for d in originals) / max(len(originals), 1),
        "bit_error_rate": flipped / compared if compared else 0.0,
        "duplicates": sum(d.duplicate for d in deliveries),
        "reordered": reordered(deliveries),
        "bytes_delivered": delivered_bytes,
        "duration_s": duration,
        "throughput_kbps": delivered_bytes * 8 / 1000 / duration if duration > 0 else None,
        "mean_latency_ms": 1000 * float(np.mean(latency)) if latency else None,
    }
