"""Format 1 (docs/FORMAT.md, appendix): length-prefixed records of 24-byte-header packets with zstd msgpack payloads.

Families, from the outside in:

- ``bytes``: bit flips, truncation, insertions, deletions, overwrites of the file (CRCs mostly fail).
- ``records``: packets dropped, duplicated, reordered, from another stream, a second header, header
  fields re-stamped with a valid CRC, a wrong length prefix.
- ``zstd``: hostile payload frames (no content size, bombs, trailing data, two frames, truncation).
- ``msgpack``: valid zstd around hostile msgpack (nesting past the unpacker's stack, invalid UTF-8,
  ext types, integer keys, huge declared lengths, trailing bytes).
- ``header`` / ``layer``: valid msgpack with hostile values at random nodes of a payload tree (wrong
  types, edge numbers, NaN, deep nesting, long strings), re-packed with valid CRCs.
- ``semantic``: a header and layer packets that agree with each other but not with the architecture
  (tensor shapes, names, units swapped or missing, arch fields changed, another model's name).
- ``resource``: consistent streams that ask for a lot (huge images, wide or deep networks).
"""

from __future__ import annotations

import copy
import math
import struct
from typing import Any, ClassVar

import msgpack
import zstandard
from _bitstreams import zstd_bomb
from _v1 import raw_v1_packet as raw_packet

from codec.files import RECORD_PREFIX
from codec.v1.packets import HEADER_LAYER, HEADER_LENGTH
from codec.v1.payload import decode_payload
from fuzz import trees
from fuzz.formats import Case, FormatGenerator, edit_packets, mutate_bytes, register
from fuzz.seeds import load_seeds
from fuzz.source import Source


def split_records(data: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset + RECORD_PREFIX.size <= len(data):
        (n,) = RECORD_PREFIX.unpack_from(data, offset)
        out.append(data[offset + 4 : offset + 4 + n])
        offset += 4 + n
    return out


def frame(records: list[bytes]) -> bytes:
    return b"".join(RECORD_PREFIX.pack(len(r)) + r for r in records)


def zstd(raw: bytes, content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=1, write_content_size=content_size).compress(raw)


def pack(obj: Any) -> bytes:
    return zstd(msgpack.packb(obj, use_bin_type=True))


class Seed:
    """A valid stream taken apart: its packets' payloads as trees."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data
        self.records = split_records(data)
        self.stream_id = struct.unpack_from(">I", self.records[0], 8)[0]
        self.header = decode_payload(self.records[0][HEADER_LENGTH:])
        self.layers = [decode_payload(r[HEADER_LENGTH:]) for r in self.records[1:]]
        self.vocabulary = trees.vocabulary_of([self.header, *self.layers])

    def header_packet(self, payload: bytes, stream_id: int | None = None) -> bytes:
        return raw_packet(payload, ptype=0, layer=HEADER_LAYER, seq=0, stream_id=stream_id or self.stream_id)

    def layer_packet(self, unit: int, payload: bytes) -> bytes:
        return raw_packet(payload, ptype=1, layer=unit, seq=(unit + 1) & 0xFFFF, stream_id=self.stream_id)

    def file(self, header: bytes | None = None, layers: dict[int, bytes] | None = None) -> bytes:
        """The seed's file with the header payload and some layer payloads replaced."""
        records = [self.header_packet(header) if header is not None else self.records[0]]
        for i, record in enumerate(self.records[1:]):
            payload = (layers or {}).get(i)
            records.append(self.layer_packet(i, payload) if payload is not None else record)
        return frame(records)


def tensor_payload(src: Source, name: str, shape: list[int], dense: bool = True) -> dict[str, Any]:
    """A well-formed tensor entry: 8-bit random codes, or 2-bit zeros when ``dense`` is off (cheap to
    build and to compress at any size)."""
    n = math.prod(shape)
    bits = 8 if dense else 2
    return {
        "name": name,
        "shape": shape,
        "bits": bits,
        "axis": None,
        "scale": struct.pack("<f", 0.01),
        "offset": struct.pack("<f", -0.5),
        "data": src.blob(n) if dense else bytes(math.ceil(n * bits / 8)),
    }


def consistent_file(seed: Seed, src: Source, header: dict[str, Any], dense: bool = True) -> bytes:
    """A file whose layer packets match ``header``'s units exactly (whatever the architecture says)."""
    records = [seed.header_packet(pack(header))]
    for i, unit in enumerate(header["units"]):
        tensors = [tensor_payload(src, t[0], list(t[1]), dense) for t in unit["tensors"]]
        records.append(seed.layer_packet(i, pack({"unit": i, "tensors": tensors})))
    return frame(records)


RAW_MSGPACK: dict[str, bytes] = {
    "nested 5000": b"\x81\xa4meta" + b"\x91" * 5000 + b"\xc0",
    "nested 1020": b"\x81\xa4meta" + b"\x91" * 1020 + b"\xc0",
    "invalid utf-8 key": b"\x81\xa2\xff\xfe\x01",
    "int key": b"\x81\x01\x02",
    "ext type": b"\x81\xa4meta\xd4\x01\x00",
    "array32 of 4e9": b"\x81\xa4meta\xdd\xff\xff\xff\xff\x00",
    "str32 of 4e9": b"\x81\xa4meta\xdb\xff\xff\xff\xff",
    "map16 of 5000": b"\xde\x13\x88" + b"".join(msgpack.packb(f"k{i}") + b"\x00" for i in range(5000)),
    "not a map": msgpack.packb([1, 2, 3]),
}
"""Payloads msgpack's packer would not write; the truncated, trailing and random ones are per seed."""


@register
class V1Generator(FormatGenerator):
    version = 1
    families: ClassVar[dict[str, float]] = {
        "bytes": 0.14,
        "records": 0.14,
        "zstd": 0.07,
        "msgpack": 0.08,
        "header": 0.2,
        "layer": 0.17,
        "semantic": 0.18,
        "resource": 0.002,
    }
    reach_forward = frozenset({"header", "semantic", "resource"})

    def __init__(self) -> None:
        self.seeds = [Seed(name, data) for name, data in load_seeds(1).items()]

    def generate(self, src: Source, family: str) -> Case:
        seed = src.choice(self.seeds)
        data, note = getattr(self, "_" + family)(src, seed)
        return Case(data, family, f"{seed.name}: {note}")

    # -- outside in -----------------------------------------------------------------------------
    def _bytes(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        return mutate_bytes(src, seed.data)

    def _records(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        records, notes = list(seed.records), []
        other = src.choice(self.seeds)
        for _ in range(src.integer(1, 3)):
            op = src.integer(0, 8)
            note = edit_packets(src, op, records, other.records, other.name)
            i = src.integer(0, max(0, len(records) - 1))
            if note is not None:
                notes.append(note)
            elif op in (6, 7) and records:
                records[i], what = self._restamp(src, records[i])
                notes.append(f"restamp {i}: {what}")
            elif records:
                at = sum(4 + len(r) for r in records[:i])
                data = bytearray(frame(records))
                value = src.choice(
                    [0, 1, 23, 24, 25, len(records[i]) + 1, len(records[i]) - 1, 2**24, 2**32 - 1]
                )
                struct.pack_into(">I", data, at, value % 2**32)
                return bytes(data), ", ".join([*notes, f"length prefix of record {i} = {value}"])
        return frame(records), ", ".join(notes)

    @staticmethod
    def _restamp(src: Source, record: bytes) -> tuple[bytes, str]:
        if len(record) < HEADER_LENGTH:
            return record, "short"
        magic, version, ptype, flags, sid, seq, layer, _n, _crc = struct.unpack(
            ">4sBBHIHHII", record[:HEADER_LENGTH]
        )
        field = src.integer(0, 6)
        values = {"magic": magic, "version": version, "ptype": ptype, "flags": flags, "stream_id": sid}
        values |= {"seq": seq, "layer": layer}
        name = list(values)[field]
        limits = {"magic": None, "version": 255, "ptype": 255, "flags": 0xFFFF, "stream_id": 2**32 - 1}
        top = limits.get(name, 0xFFFF)
        values[name] = (
            b"SPNS" if name == "magic" else src.choice([0, 1, 2, top, top - 1, (values[name] + 1) & top])
        )
        return raw_packet(record[HEADER_LENGTH:], **values), f"{name}={values[name]!r}"

    def _zstd(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        which = src.integer(0, len(seed.layers))
        raw = msgpack.packb(seed.header if which == 0 else seed.layers[which - 1], use_bin_type=True)
        frames = {
            "no content size": lambda: zstd(raw, content_size=False),
            "bomb 1 GiB": lambda: zstd_bomb(2**30),
            "bomb 64 MiB + 1": lambda: zstd_bomb(64 * 2**20 + 1),
            "trailing bytes": lambda: zstd(raw) + src.blob(src.integer(1, 8)),
            "two frames": lambda: zstd(raw) + zstd(raw),
            "truncated": lambda: zstd(raw)[: src.integer(0, len(zstd(raw)) - 1)],
            "skippable only": lambda: b"\x50\x2a\x4d\x18" + struct.pack("<I", 4) + b"abcd",
            "random": lambda: src.blob(src.integer(0, 64)),
            "lies about size": lambda: _lying_size(zstd(raw), src),
        }
        note = src.choice(list(frames))
        payload = frames[note]()
        layers = {which - 1: payload} if which else None
        return seed.file(
            payload if which == 0 else None, layers
        ), f"unit {which - 1} {note}" if which else f"header {note}"

    def _msgpack(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        which = src.integer(0, len(seed.layers))
        raw = msgpack.packb(seed.header if which == 0 else seed.layers[which - 1], use_bin_type=True)
        hostile = dict(RAW_MSGPACK)
        hostile["truncated"] = raw[: src.integer(0, len(raw) - 1)]
        hostile["trailing"] = raw + b"\xc0"
        hostile["random"] = src.blob(src.integer(1, 64))
        note = src.choice(list(hostile))
        payload = zstd(hostile[note])
        return seed.file(payload if which == 0 else None, {which - 1: payload} if which else None), note

    # -- valid msgpack, hostile values ----------------------------------------------------------
    def _header(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        tree, notes = trees.mutate(src, copy.deepcopy(seed.header), seed.vocabulary, src.integer(1, 3))
        return seed.file(header=pack(tree)), "; ".join(notes)

    def _layer(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        unit = src.integer(0, len(seed.layers) - 1)
        tree, notes = trees.mutate(src, copy.deepcopy(seed.layers[unit]), seed.vocabulary, src.integer(1, 3))
        return seed.file(layers={unit: pack(tree)}), f"unit {unit}: " + "; ".join(notes)

    # -- consistent with itself, not with the architecture --------------------------------------
    def _semantic(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        header, notes = copy.deepcopy(seed.header), []
        units = header["units"]
        for _ in range(src.integer(1, 3)):
            op = src.integer(0, 8)
            u = src.integer(0, len(units) - 1)
            t = src.integer(0, len(units[u]["tensors"]) - 1)
            name, shape = units[u]["tensors"][t]
            if op <= 1 and shape:
                d = src.integer(0, len(shape) - 1)
                shape[d] = src.choice([1, 2, 3, shape[d] + 1, max(1, shape[d] - 1), 2 * shape[d]])
                notes.append(f"units[{u}].{name} shape {shape}")
            elif op == 2:
                units[u]["tensors"][t][0] = src.choice(
                    [v for v in seed.vocabulary if isinstance(v, str)] + ["x"]
                )
                notes.append(f"units[{u}] tensor {t} renamed {units[u]['tensors'][t][0]!r}")
            elif op == 3 and len(units[u]["tensors"]) > 1:
                del units[u]["tensors"][t]
                notes.append(f"units[{u}] lost {name}")
            elif op == 4:
                units[u]["tensors"].append([f"extra{t}", src.choice([[3], [8, 2], [1]])])
                notes.append(f"units[{u}] extra tensor")
            elif op == 5 and len(units) > 1:
                v = src.integer(0, len(units) - 1)
                units[u], units[v] = units[v], units[u]
                notes.append(f"units {u} and {v} swapped")
            elif op == 6:
                if len(units) > 1 and src.chance(0.5):
                    del units[u]
                    notes.append(f"unit {u} removed")
                else:
                    units.insert(u, copy.deepcopy(units[u]))
                    notes.append(f"unit {u} repeated")
            elif op == 7:
                header["model"] = src.choice(["siren", "spinr", "fourier", "mfn", "wire", "diner"])
                notes.append(f"model {header['model']}")
            else:
                key = src.choice(list(header["arch"]))
                header["arch"][key] = trees.tweak(src, header["arch"][key], seed.vocabulary)
                notes.append(f"arch {key} = {trees._short(header['arch'][key])}")
        return consistent_file(seed, src, header), "; ".join(notes)

    def _resource(self, src: Source, seed: Seed) -> tuple[bytes, str]:
        header = copy.deepcopy(seed.header)
        op = src.integer(0, 2)
        if op == 0:
            w, h = src.choice([(65535, 65535), (65535, 976), (8000, 8000), (4096, 4096), (2048, 2048)])
            header["image"] = {"width": w, "height": h}
            return seed.file(header=pack(header)), f"image {w}x{h}"
        arch, old = header["arch"], header["arch"].get("width", 8)
        if op == 1:
            arch["width"] = width = src.choice([256, 1024, 2048, 4096])
            note = f"width {width}"
        else:
            arch["hidden_layers"] = src.choice([64, 256])
            arch["width"] = width = 64
            note = f"width 64, hidden_layers {arch['hidden_layers']}"
        header["units"] = _scaled_units(header["units"], old, width, arch.get("hidden_layers", 0))
        return consistent_file(seed, src, header, dense=False), note


def _scaled_units(units: list[dict[str, Any]], old: int, new: int, hidden: int) -> list[dict[str, Any]]:
    """The seed's units with every dimension equal to its width replaced by ``new``, the hidden ones
    repeated to make ``hidden`` of them (names by position, as the models name them)."""
    scaled = [
        {
            "name": u["name"],
            "tensors": [[n, [new if s == old else s for s in shape]] for n, shape in u["tensors"]],
        }
        for u in units
    ]
    middle = [
        u for u in scaled if "hidden" in u["name"] or "layer" in u["name"] or u["name"].startswith("stage.")
    ]
    if not middle or len(middle) >= hidden:
        return scaled
    template, first = middle[-1], scaled.index(middle[0])
    prefix = template["name"].rsplit(".", 1)[0]
    extra = [
        {"name": f"{prefix}.{first + len(middle) + i}", "tensors": copy.deepcopy(template["tensors"])}
        for i in range(hidden - len(middle))
    ]
    at = scaled.index(middle[-1]) + 1
    return scaled[:at] + extra + scaled[at:]


def _lying_size(frame_bytes: bytes, src: Source) -> bytes:
    """A frame whose declared content size is off by a little (the header's size field rewritten)."""
    data = bytearray(frame_bytes)
    descriptor = data[4]
    size_bytes = {0: 1 if descriptor & 0x20 else 0, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
    if size_bytes == 0:
        return bytes(data)
    at = 5 + (0 if descriptor & 0x20 else 1) + {0: 0, 1: 1, 2: 2, 3: 4}[descriptor & 3]
    value = int.from_bytes(data[at : at + size_bytes], "little") + src.choice([-1, 1, 1000])
    data[at : at + size_bytes] = (value % (1 << (8 * size_bytes))).to_bytes(size_bytes, "little")
    return bytes(data)
