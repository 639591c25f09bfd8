"""Small bitstreams built from seeded random arrays (no torch), and raw packets that skip validation."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from codec.bitstream import Bitstream, LayerUnit, StreamHeader, UnitSpec
from codec.packets import FLAG_ZSTD, HEADER_FORMAT, MAGIC, VERSION
from codec.quant import quantize


def siren_specs(width: int = 8, hidden: int = 2) -> list[UnitSpec]:
    specs = [UnitSpec("input", (("weight", (width, 2)), ("bias", (width,))))]
    specs += [
        UnitSpec(f"hidden.{k}", (("weight", (width, width)), ("bias", (width,))))
        for k in range(1, hidden + 1)
    ]
    specs.append(UnitSpec("output", (("weight", (3, width)), ("bias", (3,)))))
    return specs


def make_stream(
    seed: int = 0,
    width: int = 8,
    hidden: int = 2,
    bits: int = 8,
    per_channel: bool = False,
    stream_id: int = 0x5EED,
) -> Bitstream:
    rng = np.random.default_rng(seed)
    specs = siren_specs(width, hidden)
    header = StreamHeader(
        model="siren",
        arch={"width": width, "hidden_layers": hidden, "first_omega_0": 30.0, "hidden_omega_0": 30.0},
        width=12,
        height=9,
        bits=bits,
        per_channel=per_channel,
        units=specs,
        stage_psnr=[21.5],
        meta={"encoder": "test"},
    )
    units = {
        i: LayerUnit(
            i,
            [
                quantize(name, rng.standard_normal(shape).astype(np.float32), bits, per_channel)
                for name, shape in spec.tensors
            ],
        )
        for i, spec in enumerate(specs)
    }
    return Bitstream(header, units, stream_id)


def raw_packet(
    payload: bytes,
    ptype: int = 1,
    layer: int = 0,
    seq: int = 1,
    stream_id: int = 0x5EED,
    flags: int = FLAG_ZSTD,
    magic: bytes = MAGIC,
    version: int = VERSION,
    length: int | None = None,
) -> bytes:
    """Packet bytes with a correct CRC over whatever fields are given, valid or not."""
    n = len(payload) if length is None else length
    head = struct.pack(HEADER_FORMAT, magic, version, ptype, flags, stream_id, seq, layer, n, 0)[:20]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def codes_of(bs: Bitstream) -> dict[int, list[np.ndarray]]:
    return {i: [t.codes.ravel().copy() for t in u.tensors] for i, u in bs.units.items()}


def zstd_bomb(size: int = 2**30) -> bytes:
    """A 16-byte zstd frame that declares ``size`` content bytes (single segment, 8-byte content size)."""
    rle_block = (1 | (1 << 1) | (100 << 3)).to_bytes(3, "little") + b"A"  # last block, RLE, 100 x "A"
    return b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", size) + rle_block
