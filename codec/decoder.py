"""The progressive decoder: packets in any order, some missing, a picture from whatever arrived.

Pure numpy, in pixel tiles (codec/tiles.py), within a decode budget (codec/budget.py) checked before
anything is computed. Activations of the deepest decoded prefix are cached per output size while they
fit the budget, so when stage k+1 arrives after stage k was shown, decoding it costs one layer, not
the whole network again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codec.arch import ArchDecoder, decoder_for
from codec.bitstream import (
    AnyUnit,
    Bitstream,
    Refinement,
    StreamHeader,
    parse_header,
    parse_refinement,
    parse_unit,
)
from codec.budget import DEFAULT_BUDGET, DecodeBudget
from codec.errors import BitstreamError
from codec.meta import store
from codec.meta.initfile import InitFile
from codec.packets import Packet, PacketType
from codec.payload import Unit
from codec.quant import QuantizedTensor
from codec.tiles import TiledForward

CONCEAL_CHOICES = ("prefix", "skip", "theta0")
"""How a missing unit is concealed: stop at the prefix before it, skip a missing hidden stage, or (a
stream coded from a θ0) use θ0's own unit in its place (without a θ0: as ``prefix``). On a residual
stream ``skip`` also takes θ0's unit: measured better than leaving the layer out (docs/SPINR.md,
"Meta-learned initialisation", on mini Kodak)."""
MAX_PENDING = 1024
"""Unit packets held while the header has not arrived yet; also refinements held for their unit's
base or previous level."""
MAX_OUTPUT_PIXELS = DEFAULT_BUDGET.max_pixels
"""Largest decode size the default budget accepts."""


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
    levels: list[int] = field(default_factory=list)
    """The refinement level each of ``units`` was decoded at (0: the unit packet alone)."""


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
    """``budget`` bounds what the stream and each decode may ask (codec/budget.py); ``cache=False``
    keeps no activations between decodes (memory: one tile), for one-shot decodes such as a preview."""

    def __init__(
        self,
        header: StreamHeader | None = None,
        stream_id: int | None = None,
        conceal: str = "prefix",
        budget: DecodeBudget = DEFAULT_BUDGET,
        cache: bool = True,
    ):
        if conceal not in CONCEAL_CHOICES:
            raise BitstreamError(f"concealment {conceal!r} is not one of {', '.join(CONCEAL_CHOICES)}")
        self.conceal = conceal
        self.stream_id = stream_id
        self.budget = budget
        self._use_cache = cache
        self.header: StreamHeader | None = None
        self.init: InitFile | None = None
        """The θ0 a residual stream's units are added to (header extension 0x83)."""
        self.arch: ArchDecoder | None = None
        self.params: dict[int, dict[str, np.ndarray]] = {}
        self._versions: dict[int, int] = {}
        """How many times each unit's weights were set: part of the activation cache's key, so a
        refinement recomputes its unit and what follows it and reuses what comes before."""
        self.levels: dict[int, int] = {}
        """Refinement level each unit has reached (0: its unit packet alone)."""
        self._tensors: dict[int, list[QuantizedTensor]] = {}
        self._held: dict[tuple[int, int], Refinement] = {}
        """Refinements waiting for their unit or their previous level."""
        self._pending: list[Packet] = []
        self._forward: TiledForward | None = None
        if header is not None:
            self._set_header(header)

    @classmethod
    def from_bitstream(
        cls,
        bs: Bitstream,
        conceal: str = "prefix",
        budget: DecodeBudget = DEFAULT_BUDGET,
        cache: bool = True,
    ) -> ProgressiveDecoder:
        dec = cls(bs.header, bs.stream_id, conceal, budget, cache)
        for unit in bs.units.values():
            dec.add_unit(unit)
        for key in sorted(bs.refinements, key=lambda k: k[1]):
            dec.add_refinement(bs.refinements[key])
        for ref in bs.direct.values():
            dec.add_refinement(ref)
        return dec

    # -- input ----------------------------------------------------------------------------------
    def _set_header(self, header: StreamHeader) -> None:
        arch = decoder_for(header.model, header.arch)
        self.budget.check_params(sum(sum(u.sizes) for u in arch.units()), f"this {arch.describe()} stream")
        init = None
        if header.init is not None:
            init = store.find(header.init)  # InitError naming the θ0 this decoder lacks
            init.check_matches(header.model, header.arch, prefix=True)
        self._forward = TiledForward(arch, self.budget, self._use_cache)
        self.header, self.arch, self.init = header, arch, init

    def add_unit(self, unit: AnyUnit) -> None:
        if self.levels.get(unit.index, 0) > 0:
            return  # a base after a direct packet gave the unit a finer level
        params = {t.name: t.dequantize() for t in unit.tensors}
        self._set(unit.index, list(unit.tensors) if isinstance(unit, Unit) else None, params)
        self.levels[unit.index] = 0
        self._apply_held(unit.index)

    def _set(self, index: int, tensors: list[QuantizedTensor] | None, params: dict[str, np.ndarray]) -> None:
        if self.init is not None:  # a residual: θ0 + Δθ, one float32 addition (as the browser's Float32Array)
            base = self.init.weights[index]
            params = {name: base[name] + value for name, value in params.items()}
        self.params[index] = params
        self._versions[index] = self._versions.get(index, 0) + 1
        if tensors is not None:
            self._tensors[index] = tensors
        else:
            self._tensors.pop(index, None)

    def add_refinement(self, ref: Refinement) -> bool:
        """Take a refinement: applied now when its unit is at the level before, held when that has
        not arrived yet, ignored when the unit already is at that level (a duplicate). Returns
        whether the weights changed."""
        have = self.levels.get(ref.index)
        if have is not None and ref.level <= have:
            return False
        if ref.direct is not None:  # the unit itself at this level, whatever arrived before
            self._set(ref.index, list(ref.direct), {t.name: t.dequantize() for t in ref.direct})
            self.levels[ref.index] = ref.level
            self._apply_held(ref.index)
            return True
        if have is None or ref.level > have + 1:
            if (ref.index, ref.level) not in self._held and len(self._held) >= MAX_PENDING:
                raise BitstreamError(f"more than {MAX_PENDING} refinements wait for their unit")
            self._held[(ref.index, ref.level)] = ref
            return False
        self._refine(ref)
        self._apply_held(ref.index)
        return True

    def _refine(self, ref: Refinement) -> None:
        tensors = self._tensors.get(ref.index)
        if tensors is None:
            raise BitstreamError(
                f"refinement {ref.level} of unit {ref.index}: the unit is not a format 2 unit"
            )
        finer = ref.apply(tensors)
        self._set(ref.index, finer, {t.name: t.dequantize() for t in finer})
        self.levels[ref.index] = ref.level

    def _apply_held(self, index: int) -> None:
        while (nxt := self._held.pop((index, self.levels[index] + 1), None)) is not None:
            self._refine(nxt)

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
            if packet.ptype == PacketType.REFINEMENT:
                self.add_refinement(parse_refinement(packet, self.header))
                return PacketStatus(True, packet.unit, kind="refinement")
            if packet.unit not in self.params or packet.ptype != PacketType.UNIT:
                self.add_unit(parse_unit(packet, self.header))
            return PacketStatus(True, packet.unit)
        except BitstreamError as exc:
            return PacketStatus(False, None, str(exc))

    # -- state ----------------------------------------------------------------------------------
    @property
    def available(self) -> set[int]:
        return set(self.params)

    def _usable(self) -> set[int]:
        """Units a decode may use: those that arrived, and every other one from θ0 when concealing so."""
        if self._fill_from_init() and self.arch is not None:
            return set(range(len(self.arch.units())))
        return self.available

    def _fill_from_init(self) -> bool:
        return self.init is not None and self.conceal in ("skip", "theta0")

    def _decode_params(self) -> dict[int, dict[str, np.ndarray]]:
        if self._fill_from_init() and self.init is not None:
            return {**self.init.weights, **self.params}
        return self.params

    @property
    def depths(self) -> int:
        return self.arch.depths if self.arch else 0

    def plan(self, depth: int | None = None) -> tuple[int, list[int]] | None:
        """Deepest usable (depth, trunk steps), or the plan for at most ``depth``."""
        if self.arch is None:
            return None
        avail = self._usable()
        if depth is not None:
            if not 0 <= depth < self.arch.depths:
                raise BitstreamError(
                    f"depth {depth} is out of range: this stream has depths 0..{self.arch.depths - 1}"
                )
            # Pretend later stages are missing so the plan stops at ``depth``.
            avail = avail - {u for k in range(depth + 1, self.arch.depths) for u in self._stage_only_units(k)}
        return self.arch.plan(avail, "skip" if self.conceal == "skip" else "prefix")

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
        ``spinr decode --layers`` counts) at ``size`` (default: the image's).

        BudgetError (before any computing) when the size or the work is over the decoder's budget."""
        if self.header is None or self.arch is None or self._forward is None:
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
        what = f"this {self.arch.describe()} stream at {len(steps)} trunk step(s)"
        self.budget.check_decode(w, h, self.arch.work_per_pixel(steps, d), what)
        key = tuple((k, tuple(self._versions.get(u, 0) for u in self.arch.trunk_units(k))) for k in steps)
        # A hostile stream's weights may overflow float32 on the way (inf, then NaN): no warnings, and
        # the 8-bit conversion paints a NaN as the browser does.
        with np.errstate(over="ignore", invalid="ignore"):
            rgb = self._forward.run((w, h), steps, key, d, self._decode_params())
        used = self.used_units(d if depth is not None else None)
        return Decoded(rgb, d + 1, used, steps, [self.levels.get(u, 0) for u in used])

    @property
    def computed_steps(self) -> int:
        """Trunk steps the last decode computed (the rest came from the activation cache)."""
        return self._forward.computed_steps if self._forward else 0

    def clear_cache(self) -> None:
        """Drop the cached activations and the tile buffers."""
        if self._forward is not None:
            self._forward.clear()


def stage_psnrs(decoder: ProgressiveDecoder, reference: np.ndarray) -> list[float]:
    """PSNR of every decodable prefix depth, shallow to deep (each reuses the cached activations)."""
    if decoder.arch is None or decoder.plan() is None:
        return []
    from codec.metrics import psnr

    if not decoder.arch.progressive:
        return [psnr(decoder.decode().rgb, reference)]
    out = []
    for depth in range(decoder.depths):
        plan = decoder.plan(depth)
        if plan is None or plan[0] != depth:
            break
        out.append(psnr(decoder.decode(depth=depth + 1).rgb, reference))
    return out
