"""Resolve the ``--device`` option (``auto``, ``cpu``, ``cuda``, ``cuda:N``) to a torch device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codec.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA where there is none is an error
    that names the flag to change, rather than a silent fallback."""
    import torch

    base = name.split(":", 1)[0]
    if base not in DEVICE_CHOICES:
        raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto"
        )
    return torch.device(name)
