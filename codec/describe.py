"""A bitstream described as plain data: what ``spinr info --json`` prints and ``GET .../header`` returns."""

from __future__ import annotations

from typing import Any

from codec.bitstream import Bitstream, frame_packets
from codec.packets import PacketType


def describe_stream(bs: Bitstream) -> dict[str, Any]:
    """Header fields, units, and one row per packet; the packets are serialised once."""
    h = bs.header
    packets = bs.packets()
    return {
        "model": h.model,
        "arch": h.arch,
        "image": {"width": h.width, "height": h.height},
        "quant": {"bits": h.bits, "per_channel": h.per_channel},
        "stream_id": f"{bs.stream_id:#010x}",
        "stage_psnr": h.stage_psnr,
        "meta": h.meta,
        "units": [
            {"index": i, "name": u.name, "tensors": [[n, list(s)] for n, s in u.tensors]}
            for i, u in enumerate(h.units)
        ],
        "packets": [
            {
                "seq": p.seq,
                "layer": None if p.ptype == PacketType.HEADER else p.layer,
                "name": "header" if p.ptype == PacketType.HEADER else h.units[p.layer].name,
                "bytes": len(p.to_bytes()),
            }
            for p in packets
        ],
        "missing": bs.missing(),
        "bytes": len(frame_packets(packets)),
    }
