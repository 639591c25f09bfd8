"""netsim: a deterministic, composable network channel simulator. It moves bytes and imports nothing
else of spinr (stdlib and numpy only).

- :mod:`netsim.channel`: :class:`Channel`, :class:`ChannelConfig`, presets, streaming sessions.
- Stages (each ``apply(deliveries, rng)``): :mod:`netsim.drop`, :mod:`netsim.corrupt`,
  :mod:`netsim.order`, :mod:`netsim.shaping`, :mod:`netsim.fragment`.
- :mod:`netsim.protect`: unequal error protection (repeat, XOR, Reed-Solomon-style) with CRC checks.
- :mod:`netsim.trace`: time-varying links (bandwidth traces from CSV, step, on-off and Markov generators).
- :mod:`netsim.measure`: loss rate, burst lengths, bit errors, throughput of a transmission.
"""

from __future__ import annotations

from netsim.channel import PRESETS, Channel, ChannelConfig, ChannelSession
from netsim.corrupt import BitFlips, Truncation
from netsim.datagram import Delivery
from netsim.drop import GilbertElliott, IndependentLoss
from netsim.errors import ChannelConfigError, DatagramError, NetsimError
from netsim.fragment import Fragmenter, Reassembler
from netsim.order import Delay, Duplication, Reorder
from netsim.protect import Decoder, Encoded, ProtectionPlan, Recovery, Scheme, encode, parse_scheme, recover
from netsim.shaping import TokenBucket, TraceBucket
from netsim.stage import Stage, StageRun
from netsim.trace import BandwidthTrace, load_trace, parse_trace

__all__ = [
    "PRESETS",
    "BandwidthTrace",
    "BitFlips",
    "Channel",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelSession",
    "DatagramError",
    "Decoder",
    "Delay",
    "Delivery",
    "Duplication",
    "Encoded",
    "Fragmenter",
    "GilbertElliott",
    "IndependentLoss",
    "NetsimError",
    "ProtectionPlan",
    "Reassembler",
    "Recovery",
    "Reorder",
    "Scheme",
    "Stage",
    "StageRun",
    "TokenBucket",
    "TraceBucket",
    "Truncation",
    "encode",
    "load_trace",
    "parse_scheme",
    "parse_trace",
    "recover",
]
