"""One user option: its name, the config field it sets, its type, its range or choices, its help.

``codec.config.ENCODE_OPTIONS`` is the table of them; the CLI flags, the server's form and
``/api/config`` are generated from it. A model family declares its own options as metadata on its
Options dataclass (``field(default=..., metadata=option("help", min=..., max=...))``, see
``codec.model_options``); :func:`declared_options` reads them back. Torch-free: the command-line
parser and the server read this without importing torch.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any, Literal

from codec.errors import ConfigError

Kind = Literal["int", "float", "bool", "choice", "str"]
OPTION_KEY = "spinr.option"
"""The dataclass field metadata key under which :func:`option` stores a declaration."""
_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str"}


@dataclass(frozen=True)
class EncodeOption:
    """One user-facing encode option (a CLI flag, a server form field, an entry of /api/config)."""

    name: str
    """The name a user types: ``--name-with-dashes`` on the command line, ``name`` in a form."""
    field: str
    """The config field it sets: ``model.width``, ``train.steps``, ``quant.bits``, ``model.options.head``."""
    kind: Kind
    """Value type; ``choice`` is a string from ``choices``; ``str`` is free text checked elsewhere."""
    default: Any
    """The value of a default ``EncodeConfig`` (or the model's Options dataclass); None = decided later."""
    help: str
    """One line for a user."""
    min: float | None = None
    """Lowest allowed value (None: unbounded)."""
    max: float | None = None
    """Highest allowed value (None: unbounded)."""
    min_exclusive: bool = False
    """``min`` itself is not allowed."""
    max_exclusive: bool = False
    """``max`` itself is not allowed."""
    choices: tuple[str, ...] | None = None
    """The allowed values of a ``choice``."""
    models: tuple[str, ...] | None = None
    """The models it applies to; None = every model."""
    note: str = ""
    """Said after a range error (e.g. that a server narrowed the codec's range)."""

    @property
    def group(self) -> str:
        """``model``, ``train`` or ``quant``: the config section it belongs to."""
        return self.field.split(".", 1)[0]

    @property
    def attr(self) -> str:
        """Its field within the section: ``width``, ``hidden_layers``, ``options.head``."""
        return self.field.split(".", 1)[1]

    @property
    def model_option(self) -> str | None:
        """The key in ``ModelSpec.options`` for a model's own option (``head``), else None."""
        return self.attr.removeprefix("options.") if self.field.startswith("model.options.") else None

    def allowed(self) -> str:
        """What is allowed, in words: ``2..16``, ``0 <= joint < 1``, ``one of per_stage, shared``."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices or ())
        if self.kind == "bool":
            return "true or false"
        lo, hi = self.min, self.max
        closed = not (self.min_exclusive or self.max_exclusive)
        if self.kind == "int" and closed and lo is not None and hi is not None:
            return f"{_num(lo)}..{_num(hi)}"
        low = f"{'<' if self.min_exclusive else '<='}"
        high = f"{'<' if self.max_exclusive else '<='}"
        if lo is not None and hi is not None:
            return f"{_num(lo)} {low} {self.name} {high} {_num(hi)}"
        if lo is not None:
            return f"{self.name} {'>' if self.min_exclusive else '>='} {_num(lo)}"
        if hi is not None:
            return f"{self.name} {high} {_num(hi)}"
        return "any value"

    def coerce(self, value: Any, prefix: str = "") -> Any:
        """``value`` as this option's type (an int is a float too); ConfigError naming it otherwise.
        ``prefix`` goes before the option's name in messages (``--joint: `` on the CLI)."""
        who = prefix + self.name
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise ConfigError(f"{who} {value!r} is not true or false")
        if self.kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise ConfigError(f"{who} {value!r} is not a whole number")
        if self.kind == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            raise ConfigError(f"{who} {value!r} is not a number")
        if not isinstance(value, str):
            raise ConfigError(f"{who} {value!r} is not a string")
        return value

    def check(self, value: Any, prefix: str = "") -> Any:
        """``value`` coerced and checked against the range or the choices; ConfigError naming the
        option (after ``prefix``, e.g. the flag the user typed) and what is allowed."""
        value = self.coerce(value, prefix)
        if self.kind == "choice":
            if value not in (self.choices or ()):
                raise ConfigError(
                    f"{prefix}unknown {self.name} {value!r}; choose one of {', '.join(self.choices or ())}"
                )
        elif self.kind in ("int", "float") and not self.in_range(value):
            note = f" ({self.note})" if self.note else ""
            raise ConfigError(f"{prefix}{self.name} {value} is out of range: allowed {self.allowed()}{note}")
        return value

    def in_range(self, value: float) -> bool:
        lo_ok = self.min is None or (value > self.min if self.min_exclusive else value >= self.min)
        hi_ok = self.max is None or (value < self.max if self.max_exclusive else value <= self.max)
        return bool(lo_ok and hi_ok)  # NaN fails both

    def applies_to(self, model: str) -> bool:
        return self.models is None or model in self.models

    def narrowed(
        self,
        *,
        max: float | None = None,  # noqa: A002  (the field's own name)
        choices: tuple[str, ...] | None = None,
        note: str = "",
    ) -> EncodeOption:
        """This option with a smaller range or fewer choices (a server's caps); ConfigError if the
        narrowing would allow something this option does not."""
        changes: dict[str, Any] = {"note": note or self.note}
        if max is not None:
            if self.kind not in ("int", "float") or not self.in_range(max):
                raise ConfigError(
                    f"a cap of {_num(max)} on {self.name} is outside its range {self.allowed()}"
                )
            if self.kind == "int" and not float(max).is_integer():
                raise ConfigError(f"a cap of {_num(max)} on {self.name} is not a whole number")
            changes.update(max=max, max_exclusive=False)
        if choices is not None:
            unknown = [c for c in choices if c not in (self.choices or ())]
            if self.kind != "choice" or unknown or not choices:
                raise ConfigError(
                    f"{self.name} choices {list(choices)} are not all among {', '.join(self.choices or ())}"
                )
            changes["choices"] = tuple(choices)
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The /api/config entry (docs/API.md)."""
        return {
            "name": self.name,
            "type": self.kind,
            "min": self.min,
            "max": self.max,
            "min_exclusive": self.min_exclusive,
            "max_exclusive": self.max_exclusive,
            "choices": list(self.choices) if self.choices is not None else None,
            "default": self.default,
            "help": self.help,
            "models": list(self.models) if self.models is not None else None,
            "group": self.group,
        }


def option(
    help: str,  # noqa: A002
    *,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    min_exclusive: bool = False,
    max_exclusive: bool = False,
    choices: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Field metadata declaring a model option a user may set:
    ``head: str = field(default="per_stage", metadata=option("readout", choices=HEADS))``."""
    return {
        OPTION_KEY: {
            "help": help,
            "min": min,
            "max": max,
            "min_exclusive": min_exclusive,
            "max_exclusive": max_exclusive,
            "choices": choices,
        }
    }


@functools.cache
def declared_options(options_cls: type, model: str) -> tuple[EncodeOption, ...]:
    """The user options an Options dataclass declares (fields with :func:`option` metadata), in
    field order, as table entries of ``model``."""
    hints = typing.get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        spec = f.metadata.get(OPTION_KEY)
        if spec is None:
            continue
        kind: Kind = "choice" if spec["choices"] is not None else _kind_of(hints[f.name], f.name)
        out.append(
            EncodeOption(
                name=f.name,
                field=f"model.options.{f.name}",
                kind=kind,
                default=f.default,
                models=(model,),
                **spec,
            )
        )
    return tuple(out)


def check_declared(options: Any, model: str, prefix: str = "") -> None:
    """Check an Options instance's declared fields against their declarations (its __post_init__)."""
    options_cls: type = type(options)  # a class is hashable: the cache key
    for opt in declared_options(options_cls, model):
        opt.check(getattr(options, opt.name), prefix)


def _num(x: float) -> str:
    """2147483647 rather than 2.14748e+09; 0.5 rather than 0.500000."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _kind_of(hint: Any, name: str) -> Kind:
    kind = _KINDS.get(getattr(hint, "__name__", ""))
    if kind is None:
        raise TypeError(f"option {name}: type {hint!r} is not one of int, float, bool, str")
    return typing.cast(Kind, kind)
