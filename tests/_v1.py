"""Format v1 streams built straight from the v1 spec (docs/FORMAT.md, "Appendix: format version 1"):
msgpack + zstd payloads, min/max affine codes, u32-framed files. Encoders write v2 only, so the v1 tests
make their v1 input here."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from codec.v1.packets import FLAG_ZSTD, HEADER_FORMAT, HEADER_LAYER, MAGIC, VERSION
from codec.v1.payload import encode_payload
from codec.v1.quant import pack_bits

SID = 0x5EED


def raw_v1_packet(
    payload: bytes,
    ptype: int = 1,
    layer: int = 0,
    seq: int = 1,
    stream_id: int = SID,
    flags: int = FLAG_ZSTD,
    magic: bytes = MAGIC,
    version: int = VERSION,
    length: int | None = None,
) -> bytes:
    """v1 packet bytes with a correct CRC over whatever fields are given, valid or not."""
    n = len(payload) if length is None else length
    head = struct.pack(HEADER_FORMAT, magic, version, ptype, flags, stream_id, seq, layer, n, 0)[:20]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def v1_tensor(name: str, w: np.ndarray, bits: int = 8, per_channel: bool = False) -> dict[str, Any]:
    """The v1 tensor map of ``w``: min/max affine codes, bit-packed."""
    levels = (1 << bits) - 1
    axis = 0 if per_channel and w.ndim >= 2 else None
    rows = w.reshape(1, -1) if axis is None else w.reshape(w.shape[0], -1)
    lo, hi = rows.min(1).astype(np.float64), rows.max(1).astype(np.float64)
    scale = ((hi - lo) / levels).astype(np.float32)
    scale[hi == lo] = 1.0
    offset = lo.astype(np.float32)
    q = np.clip(np.rint((rows - offset[:, None].astype(np.float64)) / scale[:, None]), 0, levels)
    return {
        "name": name,
        "shape": list(w.shape),
        "bits": bits,
        "axis": axis,
        "scale": scale.astype("<f4").tobytes(),
        "offset": offset.astype("<f4").tobytes(),
        "data": pack_bits(q.astype(np.uint32), bits),
    }


def siren_units(width: int, hidden: int) -> list[dict[str, Any]]:
    def lin(o: int, i: int) -> list[list[Any]]:
        return [["weight", [o, i]], ["bias", [o]]]

    units = [{"name": "input", "tensors": lin(width, 2)}]
    units += [{"name": f"hidden.{k}", "tensors": lin(width, width)} for k in range(1, hidden + 1)]
    return units + [{"name": "output", "tensors": lin(3, width)}]


def v1_header(width: int = 8, hidden: int = 2, bits: int = 8) -> dict[str, Any]:
    return {
        "format": 1,
        "model": "siren",
        "arch": {"width": width, "hidden_layers": hidden, "first_omega_0": 30.0, "hidden_omega_0": 30.0},
        "image": {"width": 12, "height": 9},
        "coords": "center",
        "output": "pm1",
        "quant": {"bits": bits, "per_channel": False},
        "units": siren_units(width, hidden),
        "stage_psnr": [21.5],
        "meta": {"encoder": "test"},
    }


def v1_layers(header: dict[str, Any], seed: int = 0, bits: int = 8) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "unit": i,
            "tensors": [
                v1_tensor(name, rng.standard_normal(shape).astype(np.float32), bits)
                for name, shape in u["tensors"]
            ],
        }
        for i, u in enumerate(header["units"])
    ]


def v1_records(header: dict[str, Any], layers: list[dict[str, Any]], stream_id: int = SID) -> list[bytes]:
    """Packet bytes: the header, then one layer packet per entry of ``layers``."""
    out = [raw_v1_packet(encode_payload(header), ptype=0, layer=HEADER_LAYER, seq=0, stream_id=stream_id)]
    for d in layers:
        i = d["unit"]
        out.append(raw_v1_packet(encode_payload(d), layer=i, seq=i + 1, stream_id=stream_id))
    return out


def v1_file(*records: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(r)) + r for r in records)


def make_v1_file(width: int = 8, hidden: int = 2, seed: int = 0) -> bytes:
    header = v1_header(width, hidden)
    return v1_file(*v1_records(header, v1_layers(header, seed)))
