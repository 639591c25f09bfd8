"""The arch record of a v2 header: a family's arch fields in a few bytes, no field names.

Each family declares its fields (:class:`Field`, in the order of its arch dict) and the record is
written and read by the generic code here, so Python and JS read every family the same way
(docs/FORMAT.md, "Arch records"):

    flags  varint   bit i: the i-th field that has a default. A bool field's bit is its value; any
                    other field's bit says that its value follows (it differs from the default).
    values          in field order: every required field, then (in the same pass) every flagged
                    non-bool field. uint: varint; float: float64 big-endian; choice: varint index.

A SIREN at the defaults (ω0 = 30) is 3 bytes: flags 0, width, hidden layers. Floats are float64 because
a decoder must compute exactly what the encoder's model computed (FourierNet's B = N(0, 1)·σ in float64);
they are only written when not at their default. Reading gives the same dict of fields a v1 header
holds, defaults filled in, so the forward modules never know which version they read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codec.errors import BitstreamError, ConfigError
from codec.varint import Reader, f64_bytes, uvarint

REQUIRED = object()
"""Default of a field that is always written."""
KINDS = ("uint", "float", "choice", "bool")
MAX_UINT = 2**32 - 1


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert (self.kind == "choice") == bool(self.choices), self.name
        assert self.kind != "bool" or isinstance(self.default, bool), self.name

    @property
    def flagged(self) -> bool:
        """Whether the field has a bit in the flags (every field with a default)."""
        return self.default is not REQUIRED


def uint(name: str, default: Any = REQUIRED) -> Field:
    return Field(name, "uint", default)


def real(name: str, default: Any = REQUIRED) -> Field:
    return Field(name, "float", default)


def choice(name: str, choices: tuple[str, ...], default: str) -> Field:
    return Field(name, "choice", default, choices)


def flag(name: str, default: bool) -> Field:
    return Field(name, "bool", default)


def _value_bytes(f: Field, value: Any, model: str) -> bytes:
    if f.kind == "uint":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT:
            raise ConfigError(
                f"{model} arch field {f.name!r} is {value!r}; a record holds ints 0..{MAX_UINT}"
            )
        return uvarint(value)
    if f.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{model} arch field {f.name!r} is {value!r}; expected a number")
        return f64_bytes(float(value))
    if value not in f.choices:
        raise ConfigError(f"{model} arch field {f.name!r} is {value!r}; expected one of {f.choices}")
    return uvarint(f.choices.index(value))


def write_record(fields: tuple[Field, ...], arch: Mapping[str, Any], model: str) -> bytes:
    """The record of ``arch``, which must hold every required field and no undeclared one (an
    encoder's own model); a field with a default may be left out (a family's later optional fields,
    such as the positional encoding, are then at their defaults)."""
    names = [f.name for f in fields]
    missing = [f.name for f in fields if not f.flagged and f.name not in arch]
    if set(arch) - set(names) or missing:
        raise ConfigError(f"{model} arch has fields {sorted(arch)}; its record declares {names}")
    flags, values, bit = 0, bytearray(), 0
    for f in fields:
        value = arch.get(f.name, f.default)
        if f.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{model} arch field {f.name!r} is {value!r}; expected a bool")
            flags |= int(value) << bit
        elif not f.flagged:
            values += _value_bytes(f, value, model)
        elif value != f.default:
            flags |= 1 << bit
            values += _value_bytes(f, value, model)
        bit += f.flagged
    return uvarint(flags) + bytes(values)


def read_record(fields: tuple[Field, ...], r: Reader, model: str) -> dict[str, Any]:
    """The arch dict from a record at ``r``'s position (every field, defaults filled in)."""
    n_flags = sum(f.flagged for f in fields)
    flags = r.uvarint(f"{model} arch flags")
    if flags >> n_flags:
        raise BitstreamError(
            f"{model} arch flags {flags:#x} set bits beyond the {n_flags} this decoder knows"
        )
    out: dict[str, Any] = {}
    bit = 0
    for f in fields:
        what = f"{model} arch field {f.name!r}"
        on = f.flagged and bool(flags >> bit & 1)
        bit += f.flagged
        if f.kind == "bool":
            out[f.name] = on
        elif f.flagged and not on:
            out[f.name] = f.default
        elif f.kind == "uint":
            out[f.name] = r.uvarint(what)
        elif f.kind == "float":
            out[f.name] = r.f64(what)
        else:
            out[f.name] = f.choices[r.uvarint_in(0, len(f.choices) - 1, what)]
    return out
