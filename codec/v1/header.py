"""The v1 header payload, a msgpack map (docs/FORMAT.md, "Appendix: format version 1"), parsed field by
field so that a bad header names what is wrong with it. :func:`codec.header.parse_header` turns it into
the one :class:`codec.header.StreamHeader` both versions share (and checks its units against its arch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from codec.errors import BitstreamError, brief
from codec.mpack import check_plain
from codec.units import MAX_NAME_LEN, MAX_TENSORS_PER_UNIT, MAX_TOTAL_ELEMENTS, MAX_UNITS, UnitSpec
from codec.v1.payload import decode_payload
from codec.v1.quant import MAX_BITS, MIN_BITS, parse_shape

FORMAT_VERSION = 1
MAX_IMAGE_SIDE = 65535
MAX_ARCH_KEYS = 64
MAX_ARCH_LIST = MAX_UNITS
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
        raise BitstreamError(f"{what} must be a string of 1..{MAX_NAME_LEN} characters, got {brief(value)}")
    return value


def int_in(value: Any, lo: int, hi: int, what: str) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise BitstreamError(f"{what} {brief(value)} is out of range {lo}..{hi}")
    return value


def fields_of(value: Any, keys: set[str], what: str, optional: Collection[str] = ()) -> dict[str, Any]:
    """``value`` must be a dict with exactly ``keys`` (those in ``optional`` may be absent)."""
    if not isinstance(value, dict):
        raise BitstreamError(f"{what} must be a map, got {type(value).__name__}")
    missing = sorted(keys - set(optional) - value.keys())
    extra = sorted(str(k) for k in value.keys() - keys)
    if missing or extra:
        raise BitstreamError(f"{what} has missing keys {missing} / unexpected keys {extra}")
    return value


@dataclass
class V1Header:
    """The fields of a v1 header payload as parsed (the units not yet checked against the arch)."""

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

    @classmethod
    def from_payload(cls, d: Any) -> V1Header:
        d = fields_of(d, _HEADER_KEYS, "header payload", _OPTIONAL_HEADER_KEYS)
        if not _is_int(d["format"]) or d["format"] != FORMAT_VERSION:
            raise BitstreamError(f"unsupported header format {d['format']!r:.40}: expected {FORMAT_VERSION}")
        model = d["model"]
        if not isinstance(model, str) or not _MODEL_RE.fullmatch(model):
            raise BitstreamError(
                f"header model {brief(model)} is not an identifier matching [a-z0-9_]{{1,32}}"
            )
        image = fields_of(d["image"], {"width", "height"}, "header image")
        width = int_in(image["width"], 1, MAX_IMAGE_SIDE, "header image width")
        height = int_in(image["height"], 1, MAX_IMAGE_SIDE, "header image height")
        if d["coords"] != "center":
            raise BitstreamError(f"header coords {d['coords']!r:.40} not supported: expected 'center'")
        if d["output"] != "pm1":
            raise BitstreamError(f"header output {d['output']!r:.40} not supported: expected 'pm1'")
        quant = fields_of(d["quant"], {"bits", "per_channel"}, "header quant")
        bits = int_in(quant["bits"], MIN_BITS, MAX_BITS, "header quant bits")
        if not isinstance(quant["per_channel"], bool):
            raise BitstreamError(f"header quant per_channel must be a bool, got {quant['per_channel']!r:.40}")
        stage_psnr = d.get("stage_psnr", [])
        if not isinstance(stage_psnr, list) or len(stage_psnr) > MAX_UNITS + 1:
            raise BitstreamError(f"header stage_psnr must be a list of at most {MAX_UNITS + 1} numbers")
        if not all(_is_number(p) for p in stage_psnr):
            raise BitstreamError(f"header stage_psnr must hold numbers, got {brief(stage_psnr)}")
        for i, p in enumerate(stage_psnr):
            _finite_number(p, f"header stage_psnr[{i}]")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise BitstreamError(f"header meta must be a map, got {type(meta).__name__}")
        check_plain(meta, "header meta")
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


def _parse_units(units: Any) -> list[UnitSpec]:
    if not isinstance(units, list) or not 1 <= len(units) <= MAX_UNITS:
        count = len(units) if isinstance(units, list) else type(units).__name__
        raise BitstreamError(f"header units must be a list of 1..{MAX_UNITS} entries, got {count}")
    specs, total = [], 0
    for i, u in enumerate(units):
        u = fields_of(u, {"name", "tensors"}, f"header unit {i}")
        name = _name(u["name"], f"header unit {i} name")
        tensors = u["tensors"]
        if not isinstance(tensors, list) or not 1 <= len(tensors) <= MAX_TENSORS_PER_UNIT:
            raise BitstreamError(
                f"header unit {name!r} tensors must be a list of 1..{MAX_TENSORS_PER_UNIT} entries"
            )
        parsed = []
        for t in tensors:
            if not isinstance(t, list) or len(t) != 2:
                raise BitstreamError(f"header unit {name!r} tensor entry {brief(t)} is not [name, shape]")
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


def parse_v1_header(payload: bytes) -> V1Header:
    """A v1 header packet's payload (zstd frame of a msgpack map) -> its fields."""
    return V1Header.from_payload(decode_payload(payload))
