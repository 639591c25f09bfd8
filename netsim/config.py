"""``ChannelConfig``: one flat, validated description of a channel, with named presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from netsim.errors import ChannelConfigError
from netsim.fragment import DEFAULT_MTU
from netsim.validate import integer, number, probability

MAX_TIME_MS = 1e7


@dataclass
class ChannelConfig:
    """A channel by its parameters; :func:`netsim.channel.build_stages` turns it into a pipeline.

    Every field is checked on construction; a bad one raises :class:`ChannelConfigError` naming the
    value and the allowed range.
    """

    loss: float = 0.0
    """Long-run fraction of datagrams lost, [0, 1]."""
    burst: float = 1.0
    """Mean length of a run of consecutive losses. 1.0: independent losses; above 1: a Gilbert-Elliott
    chain with that mean run (needs burst >= loss / (1 - loss))."""
    ber: float = 0.0
    """Bit error rate: each bit of a datagram flips independently with this probability, [0, 1]."""
    truncate: float = 0.0
    """Fraction of packets cut to a random shorter length, [0, 1]."""
    duplicate: float = 0.0
    """Fraction of packets that arrive twice, [0, 1]."""
    reorder: float = 0.0
    """Fraction of datagrams held back behind 1..reorder_depth later ones, [0, 1]."""
    reorder_depth: int = 3
    """Largest displacement (in datagrams) of a reordered datagram, >= 1."""
    delay_ms: float = 0.0
    """One-way propagation delay added to every datagram, milliseconds."""
    jitter_ms: float = 0.0
    """Extra delay per datagram, uniform in [0, jitter_ms] milliseconds; large jitter reorders."""
    bandwidth_kbps: float = 0.0
    """Link rate in kilobits (1000 bits) per second; 0: unlimited (everything leaves at once)."""
    queue_bytes: int = 0
    """Sender queue limit under a bandwidth limit; a datagram that overflows it is dropped. 0: unlimited."""
    mtu: int = DEFAULT_MTU
    """Largest datagram payload; longer packets are fragmented and arrive whole or not at all. 0: off.
    A packet that would need more than 65535 fragments is refused, naming the smallest MTU it allows."""
    seed: int = 0
    """Seed of every random draw; the same seed reproduces a transmission packet for packet."""

    def __post_init__(self) -> None:
        self.loss = probability("loss", self.loss)
        self.burst = number("burst", self.burst, 1.0, 1e9)
        self.ber = probability("ber", self.ber)
        self.truncate = probability("truncate", self.truncate)
        self.duplicate = probability("duplicate", self.duplicate)
        self.reorder = probability("reorder", self.reorder)
        self.reorder_depth = integer("reorder_depth", self.reorder_depth, 1, 100_000)
        self.delay_ms = number("delay_ms", self.delay_ms, 0.0, MAX_TIME_MS)
        self.jitter_ms = number("jitter_ms", self.jitter_ms, 0.0, MAX_TIME_MS)
        self.bandwidth_kbps = number("bandwidth_kbps", self.bandwidth_kbps, 0.0, 1e12)
        self.queue_bytes = integer("queue_bytes", self.queue_bytes, 0)
        self.mtu = integer("mtu", self.mtu, 0, 1 << 24)
        if 0 < self.mtu < 16:
            raise ChannelConfigError(f"mtu={self.mtu} is out of range; allowed 0 (no fragmentation) or >= 16")
        self.seed = integer("seed", self.seed, 0, 2**63 - 1)
        if self.burst > 1.0 and 0 < self.loss < 1 and self.burst < self.loss / (1 - self.loss):
            raise ChannelConfigError(
                f"burst={self.burst:g} is too short for loss={self.loss:g}; "
                f"allowed burst >= loss/(1-loss) = {self.loss / (1 - self.loss):g} (or 1.0 for independent loss)"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ChannelConfig:
        """A copy of the named preset (see :data:`PRESETS`), with ``overrides`` applied."""
        if name not in PRESETS:
            raise ChannelConfigError(f"unknown channel preset {name!r}; allowed: {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelConfig:
        """Build from a (possibly partial) mapping; an optional ``"preset"`` key names the base config.

        Unknown keys are refused by name, so a typo never silently means a perfect link."""
        if not isinstance(data, Mapping):
            raise ChannelConfigError(f"a channel config must be a mapping, got {type(data).__name__}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in allowed and k != "preset")
        if unknown:
            raise ChannelConfigError(
                f"unknown channel option(s) {', '.join(map(repr, unknown))}; allowed: preset, {', '.join(allowed)}"
            )
        values = {k: v for k, v in data.items() if k != "preset"}
        if "preset" in data:
            if not isinstance(data["preset"], str):
                raise ChannelConfigError(f"preset must be a preset name, got {data['preset']!r}")
            return cls.preset(data["preset"], **values)
        return cls(**values)

    @property
    def is_perfect(self) -> bool:
        """No effect at all other than fragmentation (which a perfect link undoes)."""
        return self == dataclasses.replace(ChannelConfig(), mtu=self.mtu, seed=self.seed)


PRESETS: dict[str, ChannelConfig] = {
    "perfect": ChannelConfig(),
    "lossy-5": ChannelConfig(loss=0.05),
    "lossy-10": ChannelConfig(loss=0.10),
    "lossy-20": ChannelConfig(loss=0.20),
    "bursty": ChannelConfig(loss=0.10, burst=4.0),
    # A cellular path: moderate bursty loss, tens of ms delay with jitter, a few Mbit/s.
    "mobile": ChannelConfig(
        loss=0.03, burst=3.0, reorder=0.01, delay_ms=60.0, jitter_ms=30.0, bandwidth_kbps=4000.0
    ),
    "wifi": ChannelConfig(
        loss=0.01, burst=2.0, duplicate=0.002, delay_ms=5.0, jitter_ms=5.0, bandwidth_kbps=20_000.0
    ),
    "satellite": ChannelConfig(loss=0.01, delay_ms=300.0, jitter_ms=20.0, bandwidth_kbps=2000.0),
    # Damage rather than loss: exercises CRC checks and decoders' handling of bad bytes.
    "corrupting": ChannelConfig(ber=1e-5, truncate=0.01),
    "chaos": ChannelConfig(
        loss=0.1,
        burst=2.0,
        ber=1e-6,
        truncate=0.01,
        duplicate=0.02,
        reorder=0.05,
        delay_ms=20.0,
        jitter_ms=40.0,
    ),
}
"""Named channels; :meth:`ChannelConfig.preset` returns copies, so callers may edit them."""
