"""The exception types of the codec. Every error a user can cause is one of these."""

from __future__ import annotations


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
