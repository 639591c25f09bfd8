"""``/api/images/{id}/packets``: a finished image's packets one by one, for pull clients (docs/API.md
"Pull mode"): the packet index (JSON) and ``.../packets/{seq}`` (the packet's bytes), direct packets
of a stream with refinements included (they are derived, so the index and the packets are kept for
the last few streams asked for, within :data:`KEPT_BYTES`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from server.services import FinishedJob, ServicesDep

router = APIRouter(tags=["images"])
KEPT_STREAMS = 8
KEPT_BYTES = 64 * 2**20
"""The packets kept for pull clients: at most this many streams and bytes (the newest is always kept)."""
_kept: OrderedDict[tuple[str, str], tuple[dict[str, Any], list[bytes]]] = OrderedDict()
_lock = threading.Lock()


def _packets(job_id: str, svc: Any) -> tuple[dict[str, Any], list[bytes]]:
    from codec.refined import direct_packets
    from streaming.pull import packet_index

    info = svc.store.file_info(job_id, "bitstream")
    key = (job_id, info["sha256"] if info else "")
    with _lock:
        hit = _kept.get(key)
        if hit is not None:
            _kept.move_to_end(key)
            return hit
    bs = svc.cache.get(svc.store, job_id)
    packets = bs.packets() + (direct_packets(bs) if bs.levels else [])
    value = (packet_index(bs), [p.to_bytes() for p in packets])
    with _lock:
        _kept[key] = value
        while len(_kept) > 1 and (
            len(_kept) > KEPT_STREAMS or sum(sum(map(len, v[1])) for v in _kept.values()) > KEPT_BYTES
        ):
            _kept.popitem(last=False)
    return value


@router.get("/api/images/{job_id}/packets")
def packets_index(job: FinishedJob, svc: ServicesDep) -> dict[str, Any]:
    """Every packet a pull client may ask for: seq, unit, level, direct, bytes, PSNR, file offset."""
    return _packets(job["id"], svc)[0]


@router.get("/api/images/{job_id}/packets/{seq}", response_class=Response)
def packet(
    job: FinishedJob, svc: ServicesDep, seq: int = Path(..., description="0: the header packet")
) -> Response:
    index, data = _packets(job["id"], svc)
    if not 0 <= seq < len(data):
        raise HTTPException(
            404, f"packet seq {seq} is out of range: this stream has packets 0..{len(data) - 1}"
        )
    headers = {"X-Packet-Bytes": str(len(data[seq]))}
    if seq:
        row = index["packets"][seq - 1]
        headers |= {
            "X-Unit": str(row["unit"]),
            "X-Level": str(row["level"]),
            "X-Direct": str(row["direct"]).lower(),
        }
    return Response(data[seq], media_type="application/octet-stream", headers=headers)
