"""The progressive decoder: packets in any order, some missing, a picture from whatever arrived.

Pure numpy. Activations of the deepest decoded prefix are cached per output size, so when stage k+1
arrives after stage k was shown, decoding it costs one layer, not the whole network again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from codec.arch import ArchDecoder, decoder_for
from codec.bitstream import AnyUnit, Bitstream, StreamHeader, parse_header, parse_unit
from codec.coords import grid, to_rgb8
from codec.errors import BitstreamError
from codec.packets import Packet, PacketType

CONCEAL_CHOICES = ("prefix", "skip")
MAX_PENDING = 1024
"""Unit packets held while the header has not arrived yet."""
MAX_OUTPUT_PIXELS = 64_000_000
"""Largest decode size accepted (e.g. a 4x zoom of an 8-megapixel image is 128 M: refused)."""
CACHE_PIXELS = 4_000_000
"""Activations are cached only for outputs up to this many pixels; larger decodes run in chunks."""
CHUNK = 262_144


@dataclass
class PacketStatus:
    """What happened to one packet given to the decoder."""

    accepted: bool
    layer: int | None = None
    error: str | None = None
    kind: str = "layer"


@dataclass
class Decoded:
    rgb: np.ndarray
    """uint8 (height, width, 3)."""
    depth: int
    """Stages used, 1..``depths`` (1 for a non-progressive model), as ``decode(depth=...)`` and ``--layers`` count."""
    units: list[int]
    """Unit indices whose tensors were used."""
    steps: list[int] = field(default_factory=list)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (W, H) with both in 1..65535."""
    try:
        w_s, h_s = text.lower().split("x")
        w, h = int(w_s), int(h_s)
    except ValueError:
        raise BitstreamError(f"size {text!r} is not of the form WIDTHxHEIGHT, e.g. 512x384") from None
    if not (1 <= w <= 65535 and 1 <= h <= 65535):
        raise BitstreamError(f"size {text!r} is out of range: each side must be 1..65535")
    return w, h


class ProgressiveDecoder:
    def __init__(
        self, header: StreamHeader | None = None, stream_id: int | None = None, conceal: str = "prefix"
    ):
        if conceal not in CONCEAL_CHOICES:
            raise BitstreamError(f"concealment {conceal!r} is not one of {', '.join(CONCEAL_CHOICES)}")
        self.conceal = conceal
        self.stream_id = stream_id
        self.header: StreamHeader | None = None
        self.arch: ArchDecoder | None = None
        self.params: dict[int, dict[str, np.ndarray]] = {}
        self._pending: list[Packet] = []
        self._cache: OrderedDict[tuple[int, int], tuple[tuple[int, ...], np.ndarray]] = OrderedDict()
        if header is not None:
            self._set_header(header)

    @classmethod
    def from_bitstream(cls, bs: Bitstream, conceal: str = "prefix") -> ProgressiveDecoder:
        dec = cls(bs.header, bs.stream_id, conceal)
        for unit in bs.units.values():
            dec.add_unit(unit)
        return dec

    # -- input ----------------------------------------------------------------------------------
    def _set_header(self, header: StreamHeader) -> None:
        self.header, self.arch = header, decoder_for(header.model, header.arch)

    def add_unit(self, unit: AnyUnit) -> None:
        self.params[unit.index] = {t.name: t.dequantize() for t in unit.tensors}

    def add_packet(self, data: bytes | Packet) -> PacketStatus:
        """Take one packet; a bad one is reported in the status, never raised, so a stream goes on."""
        try:
            packet = data if isinstance(data, Packet) else Packet.parse(bytes(data))
            if self.stream_id is None:
                self.stream_id = packet.stream_id
            elif packet.stream_id != self.stream_id:
                raise BitstreamError(
                    f"packet of stream {packet.stream_id:#x} does not belong to stream {self.stream_id:#x}"
                )
            if packet.ptype == PacketType.HEADER:
                if self.header is None:
                    self._set_header(parse_header(packet))
                    pending, self._pending = self._pending, []
                    for p in pending:
                        self.add_packet(p)
                return PacketStatus(True, None, kind="header")
            if self.header is None:
                if len(self._pending) >= MAX_PENDING:
                    raise BitstreamError(f"more than {MAX_PENDING} unit packets arrived before the header")
                self._pending.append(packet)
                return PacketStatus(True, packet.unit)
            if packet.unit not in self.params or packet.ptype != PacketType.UNIT:
                self.add_unit(parse_unit(packet, self.header))
            return PacketStatus(True, packet.unit)
        except BitstreamError as exc:
            return PacketStatus(False, None, str(exc))

    # -- state ----------------------------------------------------------------------------------
    @property
    def available(self) -> set[int]:
        return set(self.params)

    @property
    def depths(self) -> int:
        return self.arch.depths if self.arch else 0

    def plan(self, depth: int | None = None) -> tuple[int, list[int]] | None:
        """Deepest usable (depth, trunk steps), or the plan for at most ``depth``."""
        if self.arch is None:
            return None
        avail = self.available
        if depth is not None:
            if not 0 <= depth < self.arch.depths:
                raise BitstreamError(
                    f"depth {depth} is out of range: this stream has depths 0..{self.arch.depths - 1}"
                )
            # Pretend later stages are missing so the plan stops at ``depth``.
            avail = avail - {u for k in range(depth + 1, self.arch.depths) for u in self._stage_only_units(k)}
        return self.arch.plan(avail, self.conceal)

    def _stage_only_units(self, k: int) -> set[int]:
        assert self.arch is not None
        # A readout shared with depth 0 (the shared head) is never stage-only.
        readout = set(self.arch.readout_units(k)) - set(self.arch.readout_units(0))
        return set(self.arch.trunk_units(k)) | readout

    def used_units(self, depth: int | None = None) -> list[int]:
        plan = self.plan(depth)
        if plan is None or self.arch is None:
            return []
        d, steps = plan
        units = {u for k in steps for u in self.arch.trunk_units(k)} | set(self.arch.readout_units(d))
        return sorted(units)

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, size: tuple[int, int] | None = None, depth: int | None = None) -> Decoded:
        """Decode the deepest usable prefix (or at most its first ``depth`` stages, 1..``depths``, as
        ``spinr decode --layers`` counts) at ``size`` (default: the image's)."""
        if self.header is None or self.arch is None:
            raise BitstreamError("cannot decode: the header packet has not arrived")
        if depth is not None and not 1 <= depth <= self.depths:
            raise BitstreamError(f"depth {depth} is out of range: this stream has 1..{self.depths} stages")
        plan = self.plan(None if depth is None else depth - 1)
        if plan is None:
            missing = sorted(set(self.arch.trunk_units(0)) - self.available)
            raise BitstreamError(
                f"cannot decode: indispensable unit(s) {missing or 'for the readout'} missing"
            )
        d, steps = plan
        w, h = size or (self.header.width, self.header.height)
        if w * h > MAX_OUTPUT_PIXELS:
            raise BitstreamError(f"output size {w}x{h} is over the limit of {MAX_OUTPUT_PIXELS} pixels")
        # A hostile stream's weights may overflow float32 on the way (inf, then NaN): no warnings, and
        # to_rgb8 paints a NaN as the browser does.
        with np.errstate(over="ignore", invalid="ignore"):
            if w * h <= CACHE_PIXELS:
                act = self._trunk_cached((w, h), steps)
                y = self.arch.readout(d, act, self.params)
            else:
                coords = grid(w, h)
                y = np.empty((w * h, 3), dtype=np.float32)
                for s in range(0, w * h, CHUNK):
                    a = coords[s : s + CHUNK]
                    for k in steps:
                        a = self.arch.trunk(k, a, self.params)
                    y[s : s + CHUNK] = self.arch.readout(d, a, self.params)
        return Decoded(to_rgb8(y, w, h), d + 1, self.used_units(d if depth is not None else None), steps)

    def _trunk_cached(self, size: tuple[int, int], steps: list[int]) -> np.ndarray:
        assert self.arch is not None
        key = tuple(steps)
        done: tuple[int, ...] = ()
        act = None
        hit = self._cache.get(size)
        if hit is not None and hit[0] == key[: len(hit[0])]:
            done, act = hit
        if act is None:
            act = grid(*size)
        for k in key[len(done) :]:
            act = self.arch.trunk(k, act, self.params)
        # Keep the deepest activations for this size; a shallower request must not evict them.
        shallower = hit is not None and len(key) < len(hit[0]) and hit[0][: len(key)] == key
        if not shallower:
            self._cache[size] = (key, act)
        self._cache.move_to_end(size)
        while len(self._cache) > 2:
            self._cache.popitem(last=False)
        return act
