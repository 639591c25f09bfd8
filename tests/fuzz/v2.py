"""Format 2 (docs/FORMAT.md): packets back to back, a binary header whose units the arch derives,
unit payloads of bfloat16 steps and one entropy-coded block.

Families, from the outside in:

- ``bytes``: bit flips, truncation, insertions, deletions, overwrites of the file (CRCs mostly fail).
- ``packets``: packets dropped, duplicated, reordered, from another stream, a second header, head
  fields re-stamped with a valid CRC (magic, version and type nibbles, stream id, seq, unit, level,
  overlong varints, a length that lies), refinement packets, garbage between packets.
- ``header``: one field of the header payload made hostile, re-packed with a valid CRC: model id,
  image size, arch record (flags, values, truncation, another family's), stage PSNRs, extensions
  (unknown optional and critical tags, the reserved ones, duplicates, lengths past the end), or
  byte-level edits of the payload.
- ``meta``: the encoder-meta extension carrying hostile msgpack (deep nesting, NaN, binary, ext
  types, int keys, huge declared lengths) or a hostile JSON-shaped tree.
- ``unit``: one unit payload made hostile with a valid CRC: step bits at the edges of bfloat16
  (zero, subnormal, infinity, NaN, negative), the entropy block flipped, truncated, extended, coded
  for other counts or other codes (extreme values, wide spans), another unit's payload.
- ``semantic``: a header with arch values off the seed's (sizes, frequencies, options, choices past
  the table, NaN and infinities) and unit packets that fit whatever the arch derives, so that what
  parses reaches the numpy forward pass.
- ``resource``: consistent streams that ask for a lot (huge images, wide or deep networks).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, ClassVar

import msgpack
import numpy as np
from _bitstreams import raw_packet

from codec.arch import DECODERS, MODEL_IDS
from codec.arch.records import REQUIRED
from codec.entropy import encode_arrays
from codec.errors import SpinrError
from codec.header import EXT_INIT, EXT_LADDER, EXT_META, parse_header_payload
from codec.packets import Packet
from codec.quant import MAX_CODE
from codec.varint import uvarint
from fuzz import trees
from fuzz.formats import Case, FormatGenerator, edit_packets, mutate_bytes, register
from fuzz.seeds import load_seeds
from fuzz.source import Source
from fuzz.v1 import RAW_MSGPACK
from fuzz.v2_seed import (
    FLOAT_EDGES,
    OVERLONG,
    STEP_EDGES,
    VARINT_EDGES,
    Seed,
    extreme_block,
    record_bytes,
    unit_payload,
)


@register
class V2Generator(FormatGenerator):
    version = 2
    families: ClassVar[dict[str, float]] = {
        "bytes": 0.12,
        "packets": 0.16,
        "header": 0.22,
        "meta": 0.08,
        "unit": 0.22,
        "semantic": 0.2,
        "resource": 0.002,
    }
    reach_forward = frozenset({"header", "resource"})
    """``semantic`` keeps the seed's small image and modest sizes, so it runs through every entry point
    in the short run too: the units are derived from the arch, which must refuse what it cannot run."""

    def __init__(self) -> None:
        self.seeds = [Seed(name, data) for name, data in load_seeds(2).items()]

    def generate(self, src: Source, family: str) -> Case:
        seed = src.choice(self.seeds)
        data, note = getattr(self, "_" + family)(src, seed)
        return Case(data, family, f"{seed.name}: {note}")

    # -- outside in -----------------------------------------------------------------------------
    def _bytes(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        return mutate_bytes(src, seed.data)

    def _packets(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        packets, notes = list(seed.packets), []
        other = src.choice(self.seeds)
        for _ in range(src.integer(1, 3)):
            op = src.integer(0, 9)
            note = edit_packets(src, op, packets, other.packets, other.name)
            i = src.integer(0, max(0, len(packets) - 1))
            if note is not None:
                notes.append(note)
            elif op in (6, 7) and packets:
                packets[i], what = self._restamp(src, packets[i])
                notes.append(f"restamp {i}: {what}")
            elif op == 8:
                packets.insert(src.integer(0, len(packets)), src.blob(src.integer(1, 40)))
                notes.append("garbage between packets")
            elif packets:
                level = src.choice([0, 1, 255, 256])
                unit = src.integer(0, seed.header.num_units)
                payload = seed.payloads[min(unit, len(seed.payloads) - 1)]
                packets.insert(
                    i,
                    raw_packet(payload, ptype=2, unit=unit, seq=i + 1, stream_id=seed.stream_id, level=level),
                )
                notes.append(f"refinement packet unit {unit} level {level}")
        return b"".join(packets), ", ".join(notes)

    @staticmethod
    def _restamp(src: Source, packet: bytes) -> tuple[bytes, str]:
        """The packet with one head field changed and the CRC made valid again."""
        try:
            head = Packet.peek(packet)
        except SpinrError:
            return packet, "unreadable"
        payload = packet[head.head_length :]
        fields: dict[str, Any] = {
            "ptype": head.ptype,
            "unit": head.unit,
            "seq": head.seq,
            "stream_id": head.stream_id,
            "level": head.level,
        }
        name = src.choice(
            ["magic", "version", "ptype", "stream_id", "seq", "unit", "level", "length", "overlong"]
        )
        if name == "overlong":  # seq as a non-minimal varint, the CRC computed over it
            raw = bytes([0x53, 0x20 | head.ptype]) + head.stream_id.to_bytes(2, "big") + src.choice(OVERLONG)
            if head.unit is not None:
                raw += uvarint(head.unit)
            raw += uvarint(len(payload))
            return raw + struct.pack(">I", zlib.crc32(payload, zlib.crc32(raw))) + payload, "overlong seq"
        if name == "magic":
            fields["magic"] = src.choice([0x00, 0x52, 0x54, 0xFF])
        elif name == "version":
            fields["version"] = src.choice([0, 1, 3, 5, 15])
        elif name == "ptype":
            fields["ptype"] = src.choice([0, 1, 2, 3, 15])
            if fields["ptype"] == 0:
                fields["unit"] = None
            elif fields["unit"] is None:
                fields["unit"] = 0
            fields["level"] = 1 if fields["ptype"] == 2 else None
        elif name == "stream_id":
            fields["stream_id"] = src.choice([0, 1, 0xFFFF, head.stream_id ^ 1])
        elif name == "length":
            fields["length"] = src.choice([0, len(payload) - 1, len(payload) + 1, 16 * 2**20, 16 * 2**20 + 1])
            fields["length"] = max(0, fields["length"])
        else:
            fields[name] = src.choice(VARINT_EDGES[:-1])
        return raw_packet(payload, **fields), f"{name}={fields.get(name)!r}"

    # -- the header payload ---------------------------------------------------------------------
    def _header(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        pieces = dict(seed.pieces)
        which = src.choice([*pieces, "payload bytes"])
        if which == "payload bytes":
            payload, note = mutate_bytes(src, b"".join(pieces.values()))
            return seed.file(header=payload), f"header payload: {note}"
        if which == "model":
            pieces["model"] = bytes([src.choice([0, 1, 2, 3, 4, 5, 6, 7, 127, 128, 255])])
        elif which in ("width", "height"):
            pieces[which] = src.choice([uvarint(src.choice(VARINT_EDGES)), src.choice(OVERLONG)])
        elif which == "arch":
            pieces["arch"] = self._hostile_arch(src, seed, pieces["arch"])
        elif which == "psnr":
            n = len(seed.header.stage_psnr)
            count = src.choice([0, n + 1, n + 100, 1025, 1026, 2**32 - 1])
            values = src.choice([b"\xff\xff" * n, src.blob(2 * n), b"\x00\x00" * n, b""])
            pieces["psnr"] = uvarint(count) + values
        else:
            pieces["ext"] = self._hostile_extensions(src, pieces["ext"])
        payload = b"".join(pieces.values())
        return seed.file(header=payload), f"header {which}: {payload.hex()[:80]}"

    def _hostile_arch(self, src: Source, seed: Seed, record: bytes) -> bytes:
        op = src.integer(0, 4)
        if op == 0:  # flag bits this decoder does not know, or the flags alone
            return uvarint(src.choice([1 << 6, 1 << 10, 2**32 - 1, 0x7F])) + record[1:]
        if op == 1:
            return record[: src.integer(0, max(0, len(record) - 1))]
        if op == 2:
            return src.choice(self.seeds).pieces["arch"]  # another family's record under this model id
        if op == 3:
            return record + src.blob(src.integer(1, 12))
        return bytes([record[0] | src.integer(1, 255) & 0x7F]) + record[1:]

    def _hostile_extensions(self, src: Source, ext: bytes) -> bytes:
        op = src.integer(0, 7)
        data = src.blob(src.integer(0, 24))
        if op == 0:
            return (
                ext + bytes([src.choice([0x05, 0x40, 0x7F])]) + uvarint(len(data)) + data
            )  # unknown, optional
        if op == 1:
            return (
                ext + bytes([src.choice([0x85, 0xC0, 0xFF])]) + uvarint(len(data)) + data
            )  # unknown, critical
        if op == 2:
            tag = src.choice([EXT_LADDER, EXT_INIT])
            return ext + bytes([tag]) + uvarint(len(data)) + data
        if op == 3:
            one = bytes([0x05]) + uvarint(len(data)) + data
            return ext + one + one  # a tag twice
        if op == 4:
            return ext + bytes([0x05]) + uvarint(len(data) + src.integer(1, 2**20)) + data  # past the end
        if op == 5:
            return ext + bytes([0x05])  # a tag without its length
        if op == 6:
            return ext + bytes([EXT_META]) + uvarint(len(data)) + data  # a second meta, or random bytes
        return ext + bytes([0x05]) + src.choice(OVERLONG)

    def _meta(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        pieces = dict(seed.pieces)
        if src.chance(0.4):
            note = src.choice(list(RAW_MSGPACK))
            raw = RAW_MSGPACK[note]
        else:
            tree: Any = {"encoder": "spinr", "steps": 300, "lr": 0.001, "seed": seed.name, "bits": [8, 7]}
            tree, notes = trees.mutate(src, tree, trees.vocabulary_of(tree), src.integer(1, 3))
            try:
                raw = msgpack.packb(tree, use_bin_type=True)
            except (ValueError, OverflowError, TypeError):
                raw = msgpack.packb({"k": 1})
            note = "; ".join(notes)
        pieces["ext"] = bytes([EXT_META]) + uvarint(len(raw)) + raw
        return seed.file(header=b"".join(pieces.values())), f"meta {note}"

    # -- unit payloads --------------------------------------------------------------------------
    def _unit(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        i = src.integer(0, len(seed.payloads) - 1)
        spec = seed.header.units[i]
        payload = seed.payloads[i]
        n = 2 * len(spec.tensors)
        steps, block = payload[:n], payload[n:]
        op = src.integer(0, 6)
        if op == 0:
            k = src.integer(0, len(spec.tensors) - 1)
            bits = src.choice([*STEP_EDGES, src.integer(0, 0xFFFF)])
            steps = steps[: 2 * k] + bits.to_bytes(2, "big") + steps[2 * k + 2 :]
            note = f"step {k} bits {bits:#06x}"
        elif op == 1:
            block, note = mutate_bytes(src, block)
        elif op == 2:
            sizes = [max(0, s + src.choice([-1, 0, 0, 1])) for s in spec.sizes]
            if src.chance(0.3):
                sizes = sizes[:-1] if src.chance(0.5) else [*sizes, 3]
            rng = np.random.default_rng(src.integer(0, 2**32 - 1))
            block = encode_arrays([rng.integers(-5, 6, s).astype(np.int32) for s in sizes], src.chance(0.5))
            note = f"coded for counts {sizes}"
        elif op == 3:
            block, note = self._extreme_codes(src, spec.sizes)
        elif op == 4:
            other = src.choice(self.seeds)
            j = src.integer(0, len(other.payloads) - 1)
            steps, block = other.payloads[j], b""
            note = f"payload of {other.name} unit {j}"
        elif op == 5:
            block = src.blob(src.integer(0, 48)) + block
            note = "random bytes before the block"
        else:
            steps, block = src.choice([b"", steps[:-1], steps]), b""
            note = f"{len(steps)} bytes, no block"
        return seed.file(units={i: steps + block}), f"unit {i}: {note}"

    @staticmethod
    def _extreme_codes(src: Source, sizes: list[int]) -> tuple[bytes, str]:
        """Codes the decoder must take or refuse cleanly: the largest magnitudes, wide spans."""
        value = src.choice([MAX_CODE, -MAX_CODE, MAX_CODE + 1, 2**31 - 1, -(2**31), 1])
        spread = src.choice([0, 1, 3, 4095])
        return extreme_block(tuple(sizes), value, spread), f"codes {value} and {spread} nearer 0"

    # -- consistent with itself, hostile values -------------------------------------------------
    def _consistent(self, src: Source, seed: Seed, pieces: dict[str, bytes], dense: bool = True) -> bytes:
        """A file of this header payload and unit packets that fit whatever units its arch derives (the
        seed's unit packets when the header is refused: the input then tests the refusal)."""
        payload = b"".join(pieces.values())
        try:
            header = parse_header_payload(payload)
        except SpinrError:
            return seed.file(header=payload)
        packets = [seed.header_packet(payload)]
        packets += [seed.unit_packet(i, unit_payload(header, i, dense)) for i in range(header.num_units)]
        return b"".join(packets)

    def _semantic(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        model = seed.header.model if src.chance(0.8) else src.choice(list(DECODERS))
        fields = DECODERS[model].RECORD
        arch = {f.name: seed.header.arch.get(f.name, f.default) for f in fields}
        for f in fields:  # a required field the seed's family lacks (another model): a small size
            if arch[f.name] is REQUIRED:
                arch[f.name] = 8
        notes = [] if model == seed.header.model else [f"model {model}"]
        for _ in range(src.integer(1, 3)):
            f = src.choice(fields)
            old = arch[f.name]
            if f.kind == "uint":
                base = old if isinstance(old, int) and not isinstance(old, bool) else 8
                arch[f.name] = src.choice([0, 1, 2, 3, base + 1, max(0, base - 1), 2 * base, 17, 64])
            elif f.kind == "float":
                arch[f.name] = src.choice(FLOAT_EDGES)
            elif f.kind == "choice":
                arch[f.name] = src.choice([*f.choices, len(f.choices), 255])
            else:
                arch[f.name] = not old
            notes.append(f"{f.name} = {arch[f.name]!r}")
        pieces = dict(seed.pieces, model=bytes([MODEL_IDS[model]]), arch=record_bytes(model, arch))
        return self._consistent(src, seed, pieces), "; ".join(notes)

    def _resource(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        pieces = dict(seed.pieces)
        op = src.integer(0, 2)
        if op == 0:
            w, h = src.choice([(65535, 65535), (65535, 976), (8000, 8000), (4096, 4096), (2048, 2048)])
            pieces["width"], pieces["height"] = uvarint(w), uvarint(h)
            return seed.file(header=b"".join(pieces.values())), f"image {w}x{h}"
        arch = dict(seed.header.arch)
        if op == 1:
            arch["width"] = src.choice([256, 1024, 2048, 4096])
            note = f"width {arch['width']}"
        else:
            arch["width"], arch["hidden_layers"] = 64, src.choice([64, 256])
            note = f"width 64, hidden_layers {arch['hidden_layers']}"
        pieces["arch"] = record_bytes(seed.header.model, arch)
        return self._consistent(src, seed, pieces, dense=False), note
