"""Time-varying links: bandwidth traces, read from CSV or generated (steps, on-off, a Markov model).

A :class:`BandwidthTrace` is a piecewise-constant link rate: rows ``(t_i, kbps_i)`` mean the link
carries ``kbps_i`` kilobits (1000 bits) per second from ``t_i`` seconds until ``t_{i+1}``; the last
rate holds for ever after, so it must be positive (a link that never delivers again would leave a
sender waiting for ever). The first row is at ``t = 0``. Rates of 0 in between are outages.

The CSV form is two columns, ``time_s,kbps``, with an optional header line and ``#`` comments.
Generators: :func:`step` (a link that drops or recovers at one instant), :func:`on_off` (periodic
outages) and :func:`markov` (a chain of link states with named presets for typical mobile links,
:data:`MARKOV_PRESETS`). :func:`parse_trace` turns a name from :data:`TRACES` or a spec such as
``step:4000,400,1`` into a trace, which is how the CLI, the server's channel options and the
experiments name one.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netsim.errors import ChannelConfigError
from netsim.validate import integer, number

MAX_TRACE_POINTS = 100_000
"""Rows a trace may hold (a CSV, an inline list in an API request, a generator's output)."""
MAX_TRACE_SECONDS = 1e6
MAX_KBPS = 1e9
MAX_CSV_BYTES = 8 * 2**20


@dataclass(frozen=True)
class BandwidthTrace:
    """A piecewise-constant link rate; see the module docstring. Validated on construction."""

    times: tuple[float, ...]
    """Start of each segment, seconds: 0 first, strictly increasing."""
    kbps: tuple[float, ...]
    """Rate of each segment, kbit/s (>= 0; the last one > 0)."""
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        times, rates = tuple(self.times), tuple(self.kbps)
        if not 1 <= len(times) <= MAX_TRACE_POINTS or len(times) != len(rates):
            raise ChannelConfigError(
                f"a bandwidth trace needs 1..{MAX_TRACE_POINTS} rows of (time_s, kbps), "
                f"got {len(times)} times and {len(rates)} rates"
            )
        times = tuple(number(f"trace time[{i}]", t, 0.0, MAX_TRACE_SECONDS) for i, t in enumerate(times))
        rates = tuple(number(f"trace kbps[{i}]", r, 0.0, MAX_KBPS) for i, r in enumerate(rates))
        if times[0] != 0.0:
            raise ChannelConfigError(
                f"a bandwidth trace starts at time 0, its first row is at {times[0]:g} s"
            )
        for i in range(1, len(times)):
            if times[i] <= times[i - 1]:
                raise ChannelConfigError(
                    f"trace times must increase: row {i} is at {times[i]:g} s after {times[i - 1]:g} s"
                )
        if rates[-1] <= 0:
            raise ChannelConfigError(
                "the last rate of a bandwidth trace holds for ever, so it must be > 0 kbit/s "
                f"(row {len(rates) - 1} is 0)"
            )
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "kbps", rates)
        # Cumulative bytes the link can carry up to each segment start (for departure times).
        cum = [0.0]
        for i in range(1, len(times)):
            cum.append(cum[-1] + rates[i - 1] * 125.0 * (times[i] - times[i - 1]))
        object.__setattr__(self, "_cum", tuple(cum))

    @classmethod
    def constant(cls, kbps: float) -> BandwidthTrace:
        return cls((0.0,), (kbps,))

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[float]]) -> BandwidthTrace:
        """From ``[[t, kbps], ...]`` (e.g. an API request's inline trace); bounded in length."""
        times, rates = [], []
        for i, row in enumerate(rows):
            if i >= MAX_TRACE_POINTS:
                raise ChannelConfigError(f"a bandwidth trace holds at most {MAX_TRACE_POINTS} rows")
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != 2:
                raise ChannelConfigError(f"trace row {i} must be a pair [time_s, kbps], got {row!r:.60}")
            times.append(row[0])
            rates.append(row[1])
        return cls(tuple(times), tuple(rates))

    def rows(self) -> list[list[float]]:
        return [[t, r] for t, r in zip(self.times, self.kbps, strict=True)]

    @property
    def duration(self) -> float:
        """Time of the last change of rate (the last rate holds after it)."""
        return self.times[-1]

    def kbps_at(self, t: float) -> float:
        return self.kbps[max(0, bisect.bisect_right(self.times, t) - 1)]

    def mean_kbps(self, until: float) -> float:
        """Average rate over ``[0, until]``."""
        return self.capacity(until) / (125.0 * until) if until > 0 else self.kbps[0]

    def capacity(self, t: float) -> float:
        """Bytes the link can carry in ``[0, t]``."""
        if t <= 0:
            return 0.0
        i = bisect.bisect_right(self.times, t) - 1
        return self._cum[i] + self.kbps[i] * 125.0 * (t - self.times[i])

    def time_for(self, nbytes: float) -> float:
        """Earliest time by which the link can have carried ``nbytes`` since 0 (inverse of capacity)."""
        if nbytes <= 0:
            return 0.0
        cum = self._cum
        # The segment in which the capacity passes nbytes (never an outage: its capacity is flat).
        i = bisect.bisect_left(cum, nbytes) - 1
        return self.times[i] + (nbytes - cum[i]) / (self.kbps[i] * 125.0)

    def to_csv(self) -> str:
        out = io.StringIO()
        out.write("time_s,kbps\n")
        for t, r in zip(self.times, self.kbps, strict=True):
            out.write(f"{t!r},{r!r}\n")  # shortest text that reads back to the same float
        return out.getvalue()


def read_csv(path: str | Path) -> BandwidthTrace:
    """A trace from a CSV file of ``time_s,kbps`` rows; errors name the file and the row."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CSV_BYTES + 1)
    except OSError as exc:
        raise ChannelConfigError(f"cannot read trace {str(p)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CSV_BYTES:
        raise ChannelConfigError(f"trace {str(p)!r} is larger than {MAX_CSV_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ChannelConfigError(f"trace {str(p)!r} is not UTF-8 text") from None
    return parse_csv(text, str(p))


def parse_csv(text: str, name: str = "trace") -> BandwidthTrace:
    times: list[float] = []
    rates: list[float] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 2:
            raise ChannelConfigError(f"{name} line {n}: expected 2 columns time_s,kbps, got {len(cells)}")
        try:
            t, r = float(cells[0]), float(cells[1])
        except ValueError:
            if not times:  # a header line
                continue
            raise ChannelConfigError(
                f"{name} line {n}: {','.join(cells)[:60]!r} is not two numbers"
            ) from None
        if len(times) >= MAX_TRACE_POINTS:
            raise ChannelConfigError(f"{name}: more than {MAX_TRACE_POINTS} rows")
        times.append(t)
        rates.append(r)
    if not times:
        raise ChannelConfigError(f"{name} holds no rows of time_s,kbps")
    try:
        return BandwidthTrace(tuple(times), tuple(rates))
    except ChannelConfigError as exc:
        raise ChannelConfigError(f"{name}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Generators


def step(before_kbps: float, after_kbps: float, at_s: float) -> BandwidthTrace:
    """``before_kbps`` until ``at_s`` seconds, then ``after_kbps`` (a drop or a recovery)."""
    at = number("step time", at_s, 0.0, MAX_TRACE_SECONDS)
    if at == 0:
        return BandwidthTrace.constant(after_kbps)
    return BandwidthTrace((0.0, at), (before_kbps, after_kbps))


def on_off(kbps: float, on_s: float, off_s: float, duration_s: float = 60.0) -> BandwidthTrace:
    """``kbps`` for ``on_s`` seconds, nothing for ``off_s``, repeated until ``duration_s``; then on."""
    on = number("on time", on_s, 1e-3, MAX_TRACE_SECONDS)
    off = number("off time", off_s, 0.0, MAX_TRACE_SECONDS)
    duration = number("duration", duration_s, 0.0, MAX_TRACE_SECONDS)
    if off == 0:
        return BandwidthTrace.constant(kbps)
    times: list[float] = []
    rates: list[float] = []
    t = 0.0
    while t < duration:
        times += [t, t + on]
        rates += [kbps, 0.0]
        t += on + off
        if len(times) > MAX_TRACE_POINTS - 2:
            raise ChannelConfigError(
                f"on-off trace of {duration:g} s needs more than {MAX_TRACE_POINTS} rows"
            )
    times.append(t)
    rates.append(kbps)
    return BandwidthTrace(tuple(times), tuple(rates))


@dataclass(frozen=True)
class MarkovLink:
    """A Markov chain of link states, sampled every ``step_s`` seconds.

    In state ``s`` the rate of a step is ``kbps[s]`` times a log-normal factor of spread ``sigma``
    (fast fading); the chain stays in a state for a geometric number of steps with mean
    ``dwell_s[s] / step_s`` and then moves to another state with probabilities ``jump[s]``."""

    kbps: tuple[float, ...]
    dwell_s: tuple[float, ...]
    jump: tuple[tuple[float, ...], ...]
    sigma: float = 0.25
    step_s: float = 0.1

    def stationary_kbps(self) -> float:
        """Long-run mean rate (time-weighted state means; the log-normal factor has mean 1)."""
        n = len(self.kbps)
        p = np.zeros((n, n))
        for s in range(n):
            stay = 1.0 - self.step_s / self.dwell_s[s]
            p[s] = (1.0 - stay) * np.asarray(self.jump[s])
            p[s, s] += stay
        w, v = np.linalg.eig(p.T)
        pi = np.real(v[:, np.argmin(abs(w - 1.0))])
        pi = pi / pi.sum()
        return float(pi @ np.asarray(self.kbps))


MARKOV_PRESETS: dict[str, MarkovLink] = {
    # Good / fair / poor cell of a 3G (HSPA) link; seconds-long dwell.
    "3g": MarkovLink((2000.0, 900.0, 250.0), (4.0, 3.0, 2.0), ((0, 0.8, 0.2), (0.5, 0, 0.5), (0.3, 0.7, 0))),
    # LTE: high rates, deep fades to a few hundred kbit/s.
    "lte": MarkovLink(
        (15000.0, 6000.0, 1500.0, 300.0),
        (3.0, 3.0, 2.0, 1.0),
        ((0, 0.7, 0.2, 0.1), (0.4, 0, 0.5, 0.1), (0.2, 0.6, 0, 0.2), (0.1, 0.3, 0.6, 0)),
        sigma=0.35,
    ),
    # EDGE/2G: tens to a couple of hundred kbit/s.
    "edge": MarkovLink((200.0, 100.0, 40.0), (5.0, 4.0, 3.0), ((0, 0.7, 0.3), (0.5, 0, 0.5), (0.4, 0.6, 0))),
    # A train or a car: a decent LTE link with short full outages (tunnels, handovers).
    "train": MarkovLink(
        (5000.0, 1500.0, 0.0), (3.0, 2.0, 0.6), ((0, 0.7, 0.3), (0.6, 0, 0.4), (0.5, 0.5, 0)), sigma=0.3
    ),
}
"""Named Markov links for typical mobile paths (state rates in kbit/s, dwell times in seconds)."""


def markov(link: MarkovLink | str, duration_s: float = 60.0, seed: int = 0) -> BandwidthTrace:
    """A trace of ``duration_s`` seconds drawn from ``link`` (or a :data:`MARKOV_PRESETS` name);
    after that the link settles at the chain's long-run mean rate. The same seed gives the same trace."""
    if isinstance(link, str):
        if link not in MARKOV_PRESETS:
            raise ChannelConfigError(f"unknown Markov link {link!r}; allowed: {', '.join(MARKOV_PRESETS)}")
        link = MARKOV_PRESETS[link]
    duration = number("duration", duration_s, 0.0, MAX_TRACE_SECONDS)
    steps = math.ceil(duration / link.step_s)
    if steps > MAX_TRACE_POINTS - 1:
        raise ChannelConfigError(
            f"a {duration:g} s Markov trace at {link.step_s:g} s steps needs more than {MAX_TRACE_POINTS} rows"
        )
    rng = np.random.default_rng(integer("seed", seed, 0, 2**63 - 1))
    state, rates = 0, []
    for _ in range(steps):
        rates.append(link.kbps[state] * float(np.exp(link.sigma * rng.standard_normal() - link.sigma**2 / 2)))
        if rng.random() < link.step_s / link.dwell_s[state]:
            state = int(rng.choice(len(link.kbps), p=np.asarray(link.jump[state], dtype=float)))
    times = [round(i * link.step_s, 9) for i in range(steps)] + [round(steps * link.step_s, 9)]
    return BandwidthTrace(
        tuple(times), tuple(round(r, 3) for r in rates) + (round(link.stationary_kbps(), 3),)
    )


TRACES: dict[str, str] = {
    "step-down": "step:4000,400,1",
    "step-up": "step:400,4000,1",
    "on-off": "on-off:2000,1,0.5",
    "3g": "markov:3g",
    "lte": "markov:lte",
    "edge": "markov:edge",
    "train": "markov:train",
}
"""Named traces (each a spec for :func:`parse_trace`)."""

SPEC_HELP = (
    "a trace name ("
    + ", ".join(TRACES)
    + ") or a spec: constant:KBPS, step:BEFORE,AFTER,AT_S, on-off:KBPS,ON_S,OFF_S[,DURATION_S], "
    "markov:PRESET[,SEED[,DURATION_S]] (presets: " + ", ".join(MARKOV_PRESETS) + ")"
)


def parse_trace(spec: str) -> BandwidthTrace:
    """A trace from a name in :data:`TRACES` or a generator spec (see :data:`SPEC_HELP`)."""
    if not isinstance(spec, str):
        raise ChannelConfigError(f"a trace spec must be a string, got {type(spec).__name__}")
    text = TRACES.get(spec, spec).strip()
    kind, _, arg_text = text.partition(":")
    args = [a.strip() for a in arg_text.split(",")] if arg_text else []
    shapes = {"constant": (1, 1), "step": (3, 3), "on-off": (3, 4), "markov": (1, 3)}
    if kind not in shapes:
        raise ChannelConfigError(f"unknown trace {spec!r:.80}; allowed: {SPEC_HELP}")
    lo, hi = shapes[kind]
    if not lo <= len(args) <= hi:
        raise ChannelConfigError(
            f"trace {spec!r:.80}: {kind} takes {lo}..{hi} arguments; allowed: {SPEC_HELP}"
        )
    if kind == "markov":
        nums = _numbers(spec, args[1:])
        return markov(args[0], nums[1] if len(nums) > 1 else 60.0, int(nums[0]) if nums else 0)
    nums = _numbers(spec, args)
    if kind == "constant":
        return BandwidthTrace.constant(nums[0])
    if kind == "step":
        return step(*nums)
    return on_off(*nums)


def _numbers(spec: str, args: list[str]) -> list[float]:
    try:
        return [float(a) for a in args]
    except ValueError:
        raise ChannelConfigError(
            f"trace {spec!r:.80}: arguments must be numbers; allowed: {SPEC_HELP}"
        ) from None


def load_trace(value: str) -> BandwidthTrace:
    """A CLI's ``--trace``: a CSV file if ``value`` names one (or ends in .csv), else a name or spec."""
    if value.lower().endswith(".csv") or Path(value).is_file():
        return read_csv(value)
    return parse_trace(value)
