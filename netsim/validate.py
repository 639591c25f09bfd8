"""Option checks shared by stages, configs and protection schemes; every failure names value and range."""

from __future__ import annotations

import math
from typing import Any

from netsim.errors import ChannelConfigError


def number(name: str, value: Any, lo: float, hi: float = math.inf) -> float:
    """``value`` as a float in ``[lo, hi]``; bools, strings and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChannelConfigError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    out = float(value)
    if math.isnan(out) or not lo <= out <= hi:
        raise ChannelConfigError(f"{name}={value!r} is out of range; allowed [{lo:g}, {hi:g}]")
    return out


def probability(name: str, value: Any) -> float:
    return number(name, value, 0.0, 1.0)


def integer(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]`` (an integral float such as 3.0 is accepted)."""
    allowed = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelConfigError(f"{name} must be an integer {allowed}, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ChannelConfigError(f"{name}={value} is out of range; allowed {allowed}")
    return value
