"""The header packet's payload: everything a decoder needs to rebuild the network (docs/FORMAT.md, "Header").

Version 2 is binary, with no field names:

    model id u8 | width varint | height varint | arch record | PSNR count varint | PSNR u16 ... | extensions

The arch record belongs to the model family (:mod:`codec.arch.records`); the units are derived from it,
never sent. PSNRs are what the encoder measured after quantization for each prefix depth, in 1/100 dB
(``PSNR_INF`` for an exact picture). Extensions run to the end of the payload, each ``tag u8 | length
varint | bytes``; a tag with the high bit set is critical: a decoder that does not know it refuses
the stream, while an unknown optional one is skipped (and kept, so a stream is re-sent whole).

A v1 header (a msgpack map, :mod:`codec.v1.header`) parses into the same :class:`StreamHeader`, its
transmitted units checked against those its arch implies, so nothing downstream cares which version
a stream came in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from codec.arch import MODEL_IDS, decoder_for, model_name, read_arch, write_arch
from codec.errors import BitstreamError, ConfigError
from codec.ladder import Ladder
from codec.mpack import check_plain, pack, unpack_map
from codec.units import UnitSpec
from codec.v1.header import MAX_IMAGE_SIDE, parse_v1_header
from codec.varint import Reader, uvarint

FORMAT_VERSION = 2
MAX_STAGES = 1025
PSNR_SCALE = 100
"""PSNRs travel in 1/100 dB."""
PSNR_INF = 0xFFFF
"""The u16 of an exact picture (infinite PSNR); finite values are 0..655.34 dB."""
CRITICAL = 0x80
EXT_META = 0x01
"""Optional: the encoder's name, steps, seconds... as a msgpack map (written only when asked for)."""
EXT_LADDER = 0x02
"""Optional: the rate-quality ladder (:mod:`codec.ladder`): bytes and PSNR reached per packet."""
EXT_INIT = CRITICAL | 0x03
"""Critical: the content hash of the shared initialisation θ0 the units are residuals from
(:mod:`codec.meta.initfile`); a decoder adds θ0's weights to every unit's dequantized codes."""
INIT_HASH_BYTES = 8
"""Length of extension 0x83 (``codec.meta.initfile.HASH_BYTES``)."""
EXTENSION_NAMES = {
    EXT_META: "encoder meta",
    EXT_LADDER: "rate-quality ladder",
    EXT_INIT: "shared initialisation θ0",
}


@dataclass
class StreamHeader:
    model: str
    arch: dict[str, Any]
    """The family's arch fields, the same dict whichever version the stream came in."""
    width: int
    height: int
    stage_psnr: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    units: list[UnitSpec] = field(default_factory=list)
    """Derived from the arch when not given; a v1 header's own list must equal the derived one."""
    version: int = FORMAT_VERSION
    extensions: dict[int, bytes] = field(default_factory=dict)
    """Optional extensions this decoder does not read, kept as they came."""
    quant: dict[str, Any] | None = None
    """v1 only: the header's ``quant`` map (nominal bits, per-channel flag)."""
    source: bytes | None = field(default=None, compare=False, repr=False)
    """v1 only: the payload as received, which is what a v1 stream sends again."""
    init: bytes | None = None
    """The content hash of the θ0 the units are residuals from (extension 0x83); None: plain weights."""

    def __post_init__(self) -> None:
        if not 1 <= self.width <= MAX_IMAGE_SIDE or not 1 <= self.height <= MAX_IMAGE_SIDE:
            raise BitstreamError(
                f"header image size {self.width}x{self.height} is out of range: each side 1..{MAX_IMAGE_SIDE}"
            )
        given = self.units if self.version == 1 else None
        self.units = decoder_for(self.model, self.arch, given).units()
        if self.init is not None and len(self.init) != INIT_HASH_BYTES:
            raise ConfigError(f"a θ0 hash has {INIT_HASH_BYTES} bytes, not {len(self.init)}")
        if EXT_LADDER in self.extensions:
            self.ladder  # noqa: B018 -- parse it now: a bad ladder refuses the header, not a later reader

    @property
    def ladder(self) -> Ladder | None:
        """The rate-quality ladder (extension 0x02), checked against the units; None if absent."""
        data = self.extensions.get(EXT_LADDER)
        return None if data is None else Ladder.parse(data, self.num_units)

    @property
    def num_units(self) -> int:
        return len(self.units)

    def to_payload(self) -> bytes:
        """The header packet's payload in the header's own version."""
        if self.version == 1:
            assert self.source is not None, "a v1 header is only ever re-sent as it came"
            return self.source
        out = bytearray([MODEL_IDS[self.model]]) + uvarint(self.width) + uvarint(self.height)
        out += write_arch(self.model, self.arch)
        if len(self.stage_psnr) > MAX_STAGES:
            raise ConfigError(f"{len(self.stage_psnr)} stage PSNRs; at most {MAX_STAGES}")
        out += uvarint(len(self.stage_psnr))
        for p in self.stage_psnr:
            out += _psnr_u16(p).to_bytes(2, "big")
        if self.meta:
            out += _extension(EXT_META, pack(self.meta))
        extensions = dict(self.extensions)
        if self.init is not None:
            extensions[EXT_INIT] = self.init
        for tag, data in sorted(extensions.items()):
            out += _extension(tag, data)
        return bytes(out)


def _psnr_u16(p: float) -> int:
    if math.isinf(p) and p > 0:
        return PSNR_INF
    if not (math.isfinite(p) and p >= 0):
        raise ConfigError(f"stage PSNR {p!r} must be a number >= 0 dB")
    return min(round(p * PSNR_SCALE), PSNR_INF - 1)


def psnr_as_sent(p: float) -> float:
    """A stage PSNR as a header carries it (to 1/100 dB, infinity kept): what a decoder reads back."""
    u = _psnr_u16(p)
    return math.inf if u == PSNR_INF else u / PSNR_SCALE


def _extension(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + uvarint(len(data)) + data


def _parse_extensions(r: Reader, header: dict[str, Any]) -> None:
    seen: set[int] = set()
    while r.left:
        at = r.pos
        tag = r.byte("extension tag")
        name = EXTENSION_NAMES.get(tag, "unknown")
        length = r.uvarint(f"length of header extension {tag:#04x}")
        if length > r.left:
            raise BitstreamError(
                f"header extension {tag:#04x} ({name}) declares {length} bytes, the payload has {r.left} left"
            )
        data = r.take(length, f"header extension {tag:#04x}")
        if tag in seen:
            raise BitstreamError(f"header extension {tag:#04x} ({name}) appears twice (byte {at})")
        seen.add(tag)
        if tag == EXT_META:
            meta = unpack_map(data, "header extension 0x01 (encoder meta)")
            check_plain(meta, "header meta")
            header["meta"] = meta
        elif tag == EXT_INIT:
            if length != INIT_HASH_BYTES:
                raise BitstreamError(
                    f"header extension 0x83 (shared initialisation θ0) has {length} bytes; a θ0 hash has {INIT_HASH_BYTES}"
                )
            header["init"] = data
        elif tag & CRITICAL:
            raise BitstreamError(
                f"header extension {tag:#04x} ({name}) is critical and this decoder does not support it"
            )
        else:
            header["extensions"][tag] = data


def parse_header_payload(payload: bytes) -> StreamHeader:
    """A v2 header packet's payload -> the header (its arch checked, its units derived)."""
    r = Reader(bytes(payload), "header payload")
    model = model_name(r.byte("model id"))
    width = r.uvarint_in(1, MAX_IMAGE_SIDE, "image width")
    height = r.uvarint_in(1, MAX_IMAGE_SIDE, "image height")
    arch = read_arch(model, r)
    count = r.uvarint_in(0, MAX_STAGES, "stage PSNR count")
    psnr = [r.u16(f"stage PSNR {i}") for i in range(count)]
    fields: dict[str, Any] = {"meta": {}, "extensions": {}, "init": None}
    _parse_extensions(r, fields)
    return StreamHeader(
        model,
        arch,
        width,
        height,
        [math.inf if p == PSNR_INF else p / PSNR_SCALE for p in psnr],
        fields["meta"],
        extensions=fields["extensions"],
        init=fields["init"],
    )


def parse_v1_header_payload(payload: bytes) -> StreamHeader:
    """A v1 header payload -> the header, refused unless its units are those its arch implies."""
    h = parse_v1_header(payload)
    return StreamHeader(
        h.model,
        h.arch,
        h.width,
        h.height,
        h.stage_psnr,
        h.meta,
        h.units,
        version=1,
        quant={"bits": h.bits, "per_channel": h.per_channel},
        source=bytes(payload),
    )
