"""Errors raised by netsim; each is also a ``ValueError`` so callers outside netsim can catch it plainly."""

from __future__ import annotations


class NetsimError(Exception):
    """Base class of every error netsim raises on purpose."""


class ChannelConfigError(NetsimError, ValueError):
    """A channel, stage or protection option is out of range; the message names the value and the range."""


class DatagramError(NetsimError, ValueError):
    """Bytes on the wire do not parse (short, wrong magic, failed header check)."""
