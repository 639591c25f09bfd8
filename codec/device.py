"""The ``--device`` option (``auto``, ``cpu``, ``cuda``, ``cuda:N``): checked without torch, resolved with it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from codec.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
_DEVICE = re.compile(r"(auto|cpu|cuda)(?::(\d{1,4}))?")


def check_device_name(name: str) -> None:
    """ConfigError unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (no torch needed)."""
    m = _DEVICE.fullmatch(name) if isinstance(name, str) else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA where there is none (or for a GPU
    index beyond those present) is an error that names the flag to change, not a silent fallback."""
    check_device_name(name)
    import torch

    base, _, index = name.partition(":")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device(name)
