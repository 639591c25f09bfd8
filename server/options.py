"""The server's view of the encode-option table: which options a user may set, within which limits.

Everything here is generated from ``codec.config.ENCODE_OPTIONS``: the job form (``JobForm``), the
checks of a job's options, and ``/api/config``. The server adds no second table; it only narrows the
codec's: ``Settings.option_caps`` caps a few options for the server's memory and time, and
``Settings.models`` may keep fewer models than the codec registers (docs/API.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from codec.config import ENCODE_OPTIONS, PRESETS, apply_overrides, option_value, preset
from codec.errors import ConfigError
from codec.image import SUPPORTED_FORMATS
from codec.options import EncodeOption

if TYPE_CHECKING:
    from server.settings import Settings

SERVER_OWNED = ("device", "max_memory")
"""Options the server decides itself (``spinr serve --device``, ``--max-job-memory``), never a job."""
FORM_OPTIONS = tuple(o for o in ENCODE_OPTIONS if o.name not in SERVER_OWNED)
_FORM_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "choice": str, "str": str}


def server_options(settings: Settings) -> tuple[EncodeOption, ...]:
    """The options a job may set, in display order, narrowed by the server's settings; ConfigError
    when a setting would widen the codec's table (a cap above its range, an unknown model)."""
    numeric = [o.name for o in FORM_OPTIONS if o.kind in ("int", "float")]
    unknown = sorted(set(settings.option_caps) - set(numeric))
    if unknown:
        raise ConfigError(
            f"option cap(s) on {', '.join(unknown)}: only these can be capped: {', '.join(numeric)}"
        )
    out = []
    for opt in FORM_OPTIONS:
        if opt.name == "model":
            opt = opt.narrowed(choices=tuple(settings.models))
        cap = settings.option_caps.get(opt.name)
        if cap is not None:
            opt = opt.narrowed(max=cap, note=f"this server's limit; the codec allows {opt.allowed()}")
        out.append(opt)
    return tuple(out)


def job_options(
    values: dict[str, Any], table: tuple[EncodeOption, ...], default_preset: str
) -> dict[str, Any]:
    """A job's form values (None = not given) -> the options stored with the job: the given ones,
    the preset and the resulting step count. ConfigError names the bad value and what is allowed."""
    given = {k: v for k, v in values.items() if v is not None}
    name = given.pop("preset", None) or default_preset
    cfg = apply_overrides(preset(name), given, table=table)
    return {**given, "preset": name, "steps": cfg.train.steps}


def _json_number(opt: EncodeOption, x: float | None) -> float | int | None:
    if x is None:
        return None
    return int(x) if opt.kind == "int" else float(x)


def api_config(settings: Settings, table: tuple[EncodeOption, ...]) -> dict[str, Any]:
    """The ``/api/config`` object (docs/API.md): limits, presets, and one entry per option a job may
    set, so a client can build its form from it. Every preset gives every option's value; an
    option's ``default`` is its value in the server's default preset."""
    defaults = preset(settings.preset)
    options = []
    for opt in table:
        entry = opt.to_json()
        entry.update(
            min=_json_number(opt, opt.min),
            max=_json_number(opt, opt.max),
            default=option_value(defaults, opt),
        )
        options.append(entry)
    by_name = {o.name: o for o in table}
    return {
        "default_preset": settings.preset,
        "presets": {name: {o.name: option_value(cfg, o) for o in table} for name, cfg in PRESETS.items()},
        "models": list(by_name["model"].choices or ()),
        "heads": list(by_name["head"].choices or ()),
        "ranges": {
            o.name: [_json_number(o, o.min), _json_number(o, o.max)]
            for o in table
            if o.min is not None and o.max is not None
        },
        "limits": {
            "max_upload_bytes": settings.max_upload_bytes,
            "max_pixels": settings.max_pixels,
            "max_queued_jobs": settings.max_queued_jobs,
            "max_job_memory": settings.job_memory,
        },
        "formats": list(SUPPORTED_FORMATS),
        "options": options,
    }


def _form_field(opt: EncodeOption) -> tuple[Any, Any]:
    scope = f"{', '.join(opt.models)} only; " if opt.models else ""
    text = f"{opt.help} ({scope}{opt.allowed()}; this server's limits: GET /api/config)"
    return _FORM_TYPES[opt.kind] | None, Field(None, description=text)


def _job_form() -> type[BaseModel]:
    fields: dict[str, Any] = {opt.name: _form_field(opt) for opt in FORM_OPTIONS}
    fields["preset"] = (
        str | None,
        Field(
            None, description=f"starting configuration: {', '.join(PRESETS)} (default: the server's --preset)"
        ),
    )
    fields["name"] = (
        str | None,
        Field(None, max_length=200, description="job name (default: the file name)"),
    )
    # Unknown fields are ignored, as an HTML form may carry more than the API reads.
    return create_model("JobForm", __config__=ConfigDict(extra="ignore"), **fields)


JobForm = _job_form()
"""The form fields of ``POST /api/jobs`` besides the file: one per option of the table (less the
server's own), ``preset`` and ``name``. Types are checked here; ranges, choices and models by
:func:`job_options` through the (narrowed) table, so every message has the same form."""
