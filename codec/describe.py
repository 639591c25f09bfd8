"""A bitstream described as plain data: what ``spinr info --json`` prints and ``GET .../header`` returns."""

from __future__ import annotations

import math
from typing import Any

from codec.bitstream import Bitstream
from codec.files import frame_packets
from codec.packets import PacketType


def _steps(bs: Bitstream, index: int) -> list[float] | None:
    unit = bs.units.get(index)
    if unit is None or bs.version == 1:
        return None
    return [float(t.step) for t in unit.tensors]  # type: ignore[union-attr]


def _packet_name(p: Any, h: Any) -> str:
    """``header``, the unit's name, or for a refinement packet ``NAME refinement L`` (``NAME whole at
    level L`` for a direct one)."""
    if p.ptype == PacketType.HEADER:
        return "header"
    name = h.units[p.unit or 0].name
    if p.ptype != PacketType.REFINEMENT:
        return str(name)
    return f"{name} whole at level {p.level}" if p.payload[:1] == b"\0" else f"{name} refinement {p.level}"


def describe_stream(bs: Bitstream) -> dict[str, Any]:
    """Header fields, units, and one row per packet; the packets are serialised once."""
    h = bs.header
    packets = bs.packets()
    header_bytes = len(packets[0].to_bytes())
    out: dict[str, Any] = {
        "format": h.version,
        "model": h.model,
        "arch": h.arch,
        "image": {"width": h.width, "height": h.height},
        "stream_id": f"{bs.stream_id:#06x}" if h.version > 1 else f"{bs.stream_id:#010x}",
        # JSON has no infinity: an exact prefix (infinite PSNR) is reported as null.
        "stage_psnr": [p if math.isfinite(p) else None for p in h.stage_psnr],
        "meta": h.meta,
        "units": [
            {
                "index": i,
                "name": u.name,
                "tensors": [[n, list(s)] for n, s in u.tensors],
                "steps": _steps(bs, i),
            }
            for i, u in enumerate(h.units)
        ],
        "packets": [
            {
                "seq": p.seq,
                "layer": p.unit,
                "name": _packet_name(p, h),
                "bytes": len(p.to_bytes()),
                "overhead": p.overhead,
            }
            for p in packets
        ],
        "missing": bs.missing(),
        "header_bytes": header_bytes,
        "bytes": len(frame_packets(packets)),
    }
    ladder = h.ladder
    # The rate-quality ladder: per unit packet its bytes and the PSNR once it and those before it arrived.
    out["ladder"] = None if ladder is None else ladder.to_json()
    if h.quant is not None:
        out["quant"] = h.quant
    if h.init is not None:  # a residual stream: the θ0 it adds to (GET /api/inits/{hash}.spnri)
        out["init"] = h.init.hex()
    return out
