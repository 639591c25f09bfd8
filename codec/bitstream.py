"""Header and layer payloads, the packets that carry them, and the ``.spnr`` file (docs/FORMAT.md).

The header carries everything a decoder needs to rebuild the network's shape, so every layer packet is
checked against it tensor by tensor before a single code is unpacked.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import struct
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codec.errors import BitstreamError, brief
from codec.packets import HEADER_LAYER, HEADER_LENGTH, MAX_PAYLOAD, Packet, PacketType
from codec.payload import decode_payload, encode_payload
from codec.quant import MAX_BITS, MIN_BITS, QuantizedTensor, parse_shape

FORMAT_VERSION = 1
MAX_UNITS = 1024
MAX_TENSORS_PER_UNIT = 64
MAX_TOTAL_ELEMENTS = 2**26
"""All tensors of a stream together (a layer packet is bounded on its own by ``MAX_PAYLOAD``)."""
MAX_IMAGE_SIDE = 65535
MAX_NAME_LEN = 64
MAX_ARCH_KEYS = 64
MAX_ARCH_LIST = MAX_UNITS
MAX_FILE_BYTES = 256 * 2**20
RECORD_PREFIX = struct.Struct(">I")
_MODEL_RE = re.compile(r"[a-z0-9_]{1,32}")
_HEADER_KEYS = {
    "format",
    "model",
    "arch",
    "image",
    "coords",
    "output",
    "quant",
    "units",
    "stage_psnr",
    "meta",
}
_OPTIONAL_HEADER_KEYS = {"stage_psnr", "meta"}


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LEN:
        raise BitstreamError(f"{what} must be a string of 1..{MAX_NAME_LEN} characters, got {value!r:.80}")
    return value


def _int_in(value: Any, lo: int, hi: int, what: str) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise BitstreamError(f"{what} {value!r:.80} is out of range {lo}..{hi}")
    return value


def _map(value: Any, keys: set[str], what: str, optional: Collection[str] = ()) -> dict[str, Any]:
    """``value`` must be a dict with exactly ``keys`` (those in ``optional`` may be absent)."""
    if not isinstance(value, dict):
        raise BitstreamError(f"{what} must be a map, got {type(value).__name__}")
    missing = sorted(keys - set(optional) - value.keys())
    extra = sorted(str(k) for k in value.keys() - keys)
    if missing or extra:
        raise BitstreamError(f"{what} has missing keys {missing} / unexpected keys {extra}")
    return value


@dataclass(frozen=True)
class UnitSpec:
    name: str
    tensors: tuple[tuple[str, tuple[int, ...]], ...]
    """(tensor name, shape) in packet order."""


@dataclass
class StreamHeader:
    model: str
    arch: dict[str, Any]
    width: int
    height: int
    bits: int
    per_channel: bool
    units: list[UnitSpec]
    stage_psnr: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    coords: str = "center"
    output: str = "pm1"

    @property
    def num_units(self) -> int:
        return len(self.units)

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "arch": self.arch,
            "image": {"width": self.width, "height": self.height},
            "coords": self.coords,
            "output": self.output,
            "quant": {"bits": self.bits, "per_channel": self.per_channel},
            "units": [
                {"name": u.name, "tensors": [[n, [int(s) for s in shape]] for n, shape in u.tensors]}
                for u in self.units
            ],
            "stage_psnr": [float(p) for p in self.stage_psnr],
            "meta": self.meta,
        }

    @classmethod
    def from_payload(cls, d: Any) -> StreamHeader:
        d = _map(d, _HEADER_KEYS, "header payload", _OPTIONAL_HEADER_KEYS)
        if not _is_int(d["format"]) or d["format"] != FORMAT_VERSION:
            raise BitstreamError(f"unsupported header format {d['format']!r:.40}: expected {FORMAT_VERSION}")
        model = d["model"]
        if not isinstance(model, str) or not _MODEL_RE.fullmatch(model):
            raise BitstreamError(
                f"header model {model!r:.80} is not an identifier matching [a-z0-9_]{{1,32}}"
            )
        image = _map(d["image"], {"width", "height"}, "header image")
        width = _int_in(image["width"], 1, MAX_IMAGE_SIDE, "header image width")
        height = _int_in(image["height"], 1, MAX_IMAGE_SIDE, "header image height")
        if d["coords"] != "center":
            raise BitstreamError(f"header coords {d['coords']!r:.40} not supported: expected 'center'")
        if d["output"] != "pm1":
            raise BitstreamError(f"header output {d['output']!r:.40} not supported: expected 'pm1'")
        quant = _map(d["quant"], {"bits", "per_channel"}, "header quant")
        bits = _int_in(quant["bits"], MIN_BITS, MAX_BITS, "header quant bits")
        if not isinstance(quant["per_channel"], bool):
            raise BitstreamError(f"header quant per_channel must be a bool, got {quant['per_channel']!r:.40}")
        stage_psnr = d.get("stage_psnr", [])
        if not isinstance(stage_psnr, list) or len(stage_psnr) > MAX_UNITS + 1:
            raise BitstreamError(f"header stage_psnr must be a list of at most {MAX_UNITS + 1} numbers")
        if not all(_is_number(p) for p in stage_psnr):
            raise BitstreamError(f"header stage_psnr must hold numbers, got {brief(stage_psnr)}")
        for i, p in enumerate(stage_psnr):
            _finite_number(p, f"header stage_psnr[{i}]")
        meta = _parse_meta(d.get("meta", {}))
        return cls(
            model=model,
            arch=_parse_arch(d["arch"]),
            width=width,
            height=height,
            bits=bits,
            per_channel=quant["per_channel"],
            units=_parse_units(d["units"]),
            stage_psnr=[float(p) for p in stage_psnr],
            meta=meta,
        )


def _finite_number(value: Any, what: str) -> None:
    if not _is_number(value):
        raise BitstreamError(f"{what} must be a number, got {brief(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BitstreamError(f"{what} is {value}: numbers in a header must be finite")


def _parse_arch(arch: Any) -> dict[str, Any]:
    if not isinstance(arch, dict) or len(arch) > MAX_ARCH_KEYS:
        raise BitstreamError(f"header arch must be a map of at most {MAX_ARCH_KEYS} entries")
    for key, value in arch.items():
        _name(key, "header arch key")
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_ARCH_LIST or not all(isinstance(v, (int, float, str, bool)) for v in items):
            raise BitstreamError(
                f"header arch {key!r} must be an int, float, str, bool or a list of them "
                f"(at most {MAX_ARCH_LIST}), got {brief(value)}"
            )
        for v in items:
            if isinstance(v, str):
                _name(v, f"header arch {key!r} value")
            elif isinstance(v, float):
                _finite_number(v, f"header arch {key!r}")
    return arch


def _parse_meta(meta: Any) -> dict[str, Any]:
    """``meta`` is free-form but JSON-shaped, so that ``spinr info --json`` and the API can show any header
    that parses: maps with string keys, lists, strings, finite numbers, booleans and null."""
    if not isinstance(meta, dict):
        raise BitstreamError(f"header meta must be a map, got {type(meta).__name__}")
    stack: list[tuple[str, Any]] = [("header meta", meta)]
    while stack:  # depth is bounded by the payload's MAX_DEPTH; iterative all the same
        path, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise BitstreamError(f"{path} has a key {brief(k)} that is not a string")
                stack.append((f"{path}.{k[:MAX_NAME_LEN]}", v))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float):
            _finite_number(value, path)
        elif value is not None and not isinstance(value, (str, int, bool)):
            raise BitstreamError(
                f"{path} is {type(value).__name__}; meta holds maps, lists, strings, numbers, booleans, null"
            )
    return meta


def _parse_units(units: Any) -> list[UnitSpec]:
    if not isinstance(units, list) or not 1 <= len(units) <= MAX_UNITS:
        count = len(units) if isinstance(units, list) else type(units).__name__
        raise BitstreamError(f"header units must be a list of 1..{MAX_UNITS} entries, got {count}")
    specs, total = [], 0
    for i, u in enumerate(units):
        u = _map(u, {"name", "tensors"}, f"header unit {i}")
        name = _name(u["name"], f"header unit {i} name")
        tensors = u["tensors"]
        if not isinstance(tensors, list) or not 1 <= len(tensors) <= MAX_TENSORS_PER_UNIT:
            raise BitstreamError(
                f"header unit {name!r} tensors must be a list of 1..{MAX_TENSORS_PER_UNIT} entries"
            )
        parsed = []
        for t in tensors:
            if not isinstance(t, list) or len(t) != 2:
                raise BitstreamError(f"header unit {name!r} tensor entry {t!r:.80} is not [name, shape]")
            tname = _name(t[0], f"header unit {name!r} tensor name")
            shape = parse_shape(t[1], f"header unit {name!r} tensor {tname!r}")
            total += math.prod(shape)
            parsed.append((tname, shape))
        if len({n for n, _ in parsed}) != len(parsed):
            raise BitstreamError(f"header unit {name!r} repeats a tensor name")
        if total > MAX_TOTAL_ELEMENTS:
            raise BitstreamError(f"header units hold more than {MAX_TOTAL_ELEMENTS} elements in all")
        specs.append(UnitSpec(name, tuple(parsed)))
    return specs


@dataclass
class LayerUnit:
    index: int
    tensors: list[QuantizedTensor]

    def to_payload(self) -> dict[str, Any]:
        return {"unit": self.index, "tensors": [t.to_dict() for t in self.tensors]}

    @classmethod
    def from_payload(cls, d: Any, header: StreamHeader) -> LayerUnit:
        d = _map(d, {"unit", "tensors"}, "layer payload")
        index = _int_in(d["unit"], 0, header.num_units - 1, "layer payload unit index")
        spec = header.units[index]
        tensors = d["tensors"]
        if not isinstance(tensors, list) or len(tensors) != len(spec.tensors):
            count = len(tensors) if isinstance(tensors, list) else type(tensors).__name__
            raise BitstreamError(
                f"unit {index} ({spec.name}) must carry {len(spec.tensors)} tensors as the header says, got {count}"
            )
        return cls(
            index,
            [QuantizedTensor.from_dict(t, n, s) for t, (n, s) in zip(tensors, spec.tensors, strict=True)],
        )


def new_stream_id() -> int:
    """A random nonzero u32."""
    return secrets.randbelow(0xFFFFFFFF) + 1


def make_header_packet(header: StreamHeader, stream_id: int) -> Packet:
    data = encode_payload(header.to_payload())
    StreamHeader.from_payload(decode_payload(data))  # never send a header that a receiver would reject
    return Packet(PacketType.HEADER, stream_id, 0, HEADER_LAYER, data)


def make_layer_packet(unit: LayerUnit, stream_id: int) -> Packet:
    if not 0 <= unit.index < HEADER_LAYER - 1:  # seq = index + 1 must fit a u16
        raise BitstreamError(f"unit index {unit.index} is out of range 0..{HEADER_LAYER - 2}")
    payload = encode_payload(unit.to_payload())
    if len(payload) > MAX_PAYLOAD:
        raise BitstreamError(
            f"unit {unit.index} payload of {len(payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}"
        )
    return Packet(PacketType.LAYER, stream_id, unit.index + 1, unit.index, payload)


def parse_header(packet: Packet) -> StreamHeader:
    if packet.ptype != PacketType.HEADER:
        raise BitstreamError(f"expected a header packet, got a {packet.ptype.name.lower()} packet")
    return StreamHeader.from_payload(decode_payload(packet.payload))


def parse_layer(packet: Packet, header: StreamHeader) -> LayerUnit:
    if packet.ptype != PacketType.LAYER:
        raise BitstreamError(f"expected a layer packet, got a {packet.ptype.name.lower()} packet")
    if packet.layer >= header.num_units:
        raise BitstreamError(
            f"layer packet for unit {packet.layer}, but the header has {header.num_units} units"
        )
    unit = LayerUnit.from_payload(decode_payload(packet.payload), header)
    if unit.index != packet.layer:
        raise BitstreamError(f"layer payload is unit {unit.index} but its packet says layer {packet.layer}")
    return unit


@dataclass
class Bitstream:
    header: StreamHeader
    units: dict[int, LayerUnit]
    stream_id: int

    def packets(self) -> list[Packet]:
        """Header packet (seq 0), then one layer packet per unit present, in index order."""
        out = [make_header_packet(self.header, self.stream_id)]
        for index in sorted(self.units):
            unit = self.units[index]
            if unit.index != index:
                raise BitstreamError(f"unit stored under key {index} has index {unit.index}")
            out.append(make_layer_packet(unit, self.stream_id))
        return out

    def to_bytes(self) -> bytes:
        return frame_packets(self.packets())

    def missing(self) -> list[int]:
        return [i for i in range(self.header.num_units) if i not in self.units]

    @classmethod
    def from_packets(cls, packets: Iterable[Packet]) -> Bitstream:
        """Packets in any order; exactly one header; every packet of the header's stream."""
        packets = list(packets)
        headers = [p for p in packets if p.ptype == PacketType.HEADER]
        if not headers:
            raise BitstreamError("no header packet among the packets")
        if any(h.payload != headers[0].payload or h.stream_id != headers[0].stream_id for h in headers):
            raise BitstreamError("packets hold more than one distinct header packet")
        bs, _ = _assemble(headers[0], [p for p in packets if p.ptype == PacketType.LAYER], strict=True)
        return bs


def _assemble(
    header_packet: Packet, layer_packets: list[Packet], strict: bool
) -> tuple[Bitstream, list[str]]:
    """Parse the layer packets against the header; lenient mode records bad ones as damaged."""
    header = parse_header(header_packet)
    sid = header_packet.stream_id
    units: dict[int, LayerUnit] = {}
    payloads: dict[int, bytes] = {}
    damaged: list[str] = []
    for p in layer_packets:
        if p.stream_id != sid:
            raise BitstreamError(f"packet seq {p.seq} is of stream {p.stream_id:#010x}, not {sid:#010x}")
        if p.layer in payloads:
            if p.payload != payloads[p.layer]:
                raise BitstreamError(f"two different packets for unit {p.layer}")
            continue
        try:
            units[p.layer] = parse_layer(p, header)
        except BitstreamError as exc:
            if strict:
                raise
            damaged.append(f"layer {p.layer} (packet seq {p.seq}): {exc}")
            continue
        payloads[p.layer] = p.payload
    return Bitstream(header, units, sid), damaged


def frame_packets(packets: Iterable[Packet]) -> bytes:
    """``.spnr`` file body: each packet prefixed by its length as a u32 big-endian."""
    out = bytearray()
    for p in packets:
        data = p.to_bytes()
        out += RECORD_PREFIX.pack(len(data)) + data
    return bytes(out)


@dataclass
class FileReadResult:
    header_packet: Packet
    layer_packets: list[Packet]
    damaged: list[str] = field(default_factory=list)
    """One human-readable reason per layer record skipped in lenient mode."""


def _records(data: bytes) -> Iterable[tuple[int, int, bytes]]:
    """(record number, offset, packet bytes); raises on broken framing in any mode."""
    offset, n = 0, 0
    while offset < len(data):
        if len(data) - offset < RECORD_PREFIX.size:
            raise BitstreamError(
                f"file truncated: record {n} at offset {offset} needs a 4-byte length, got {len(data) - offset}"
            )
        (length,) = RECORD_PREFIX.unpack_from(data, offset)
        start = offset + RECORD_PREFIX.size
        if not HEADER_LENGTH <= length <= HEADER_LENGTH + MAX_PAYLOAD:
            raise BitstreamError(
                f"record {n} at offset {offset} has length {length}, outside {HEADER_LENGTH}..{HEADER_LENGTH + MAX_PAYLOAD}"
            )
        # Compare with the packet's own length field before checking for truncation, so that a
        # corrupted prefix is reported as such and not as a short file.
        if len(data) - start >= HEADER_LENGTH:
            (declared,) = struct.unpack_from(">I", data, start + 16)
            if declared + HEADER_LENGTH != length:
                raise BitstreamError(
                    f"record {n} at offset {offset} has length {length} but its packet says {declared + HEADER_LENGTH}"
                )
        if start + length > len(data):
            raise BitstreamError(
                f"file truncated: record {n} at offset {offset} needs {length} bytes, got {len(data) - start}"
            )
        yield n, offset, data[start : start + length]
        offset, n = start + length, n + 1


def read_stream(data: bytes, strict: bool = True) -> FileReadResult:
    """Split a ``.spnr`` file into packets. Lenient mode skips layer records that fail to parse."""
    data = bytes(data)
    if not data:
        raise BitstreamError("file is empty: expected a header packet record")
    header_packet: Packet | None = None
    layers: list[Packet] = []
    damaged: list[str] = []
    for n, offset, record in _records(data):
        if header_packet is None:
            try:
                header_packet = Packet.parse(record)
            except BitstreamError as exc:
                raise BitstreamError(f"header packet (record 0) is damaged: {exc}") from None
            if header_packet.ptype != PacketType.HEADER:
                raise BitstreamError("file does not start with a header packet")
            continue
        try:
            packet = Packet.parse(record)
        except BitstreamError as exc:
            if strict:
                raise BitstreamError(f"record {n} at offset {offset}: {exc}") from None
            damaged.append(f"record {n} at offset {offset}: {exc}")
            continue
        if packet.ptype == PacketType.HEADER:
            raise BitstreamError(f"record {n} at offset {offset} is a second header packet")
        layers.append(packet)
    assert header_packet is not None  # data is non-empty, so there was a record 0 or _records raised
    return FileReadResult(header_packet, layers, damaged)


def load_bitstream(data: bytes, strict: bool = True) -> tuple[Bitstream, list[str]]:
    """Parse a ``.spnr`` file. Returns the bitstream and the damaged records (always [] when strict)."""
    result = read_stream(data, strict)
    bs, bad = _assemble(result.header_packet, result.layer_packets, strict)
    return bs, result.damaged + bad


def read_file(path: str | os.PathLike[str], strict: bool = True) -> tuple[Bitstream, list[str]]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BitstreamError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise BitstreamError(f"file {os.fspath(path)!r} is larger than {MAX_FILE_BYTES} bytes")
    return load_bitstream(data, strict)


def write_file(path: str | os.PathLike[str], bitstream: Bitstream) -> None:
    """Write atomically: a reader sees the old file or the whole new one, never half of it."""
    target = Path(path)
    data = bitstream.to_bytes()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o644)  # mkstemp makes 0600; a stored image is not a secret
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
