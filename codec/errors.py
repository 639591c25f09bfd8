"""The exception types of the codec. Every error a user can cause is one of these."""

from __future__ import annotations

import reprlib
from typing import Any

_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother = 3, 60, 60
_BRIEF.maxlist = _BRIEF.maxdict = _BRIEF.maxtuple = 8


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message about untrusted data: bounded in depth and length, so a
    value nested a thousand deep or a megabyte long gives a short line, not a RecursionError."""
    text = _BRIEF.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SpinrError(Exception):
    """Base class of every error spinr raises on purpose; its message is meant for a user."""


class BitstreamError(SpinrError, ValueError):
    """A packet, payload or ``.spnr`` file is malformed: truncated, wrong magic, bad CRC, unknown
    version, absurd sizes, or fields that disagree with the header."""


class ImageError(SpinrError, ValueError):
    """An input image is missing, unreadable, of an unsupported format or too large."""


class ConfigError(SpinrError, ValueError):
    """An option is out of range or inconsistent; the message names the option and what is allowed."""


class TrainingDiverged(SpinrError, RuntimeError):
    """The loss became non-finite or exploded and no usable weights were seen."""


class Cancelled(SpinrError):
    """Work was cancelled through its cancel event."""


class InitError(BitstreamError):
    """A θ0 file (a shared initialisation, ``.spnri``) is damaged, mismatched or missing."""
