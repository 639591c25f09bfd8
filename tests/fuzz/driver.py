"""The long run: inputs through a worker process, with a memory limit, a hang watchdog and RSS tracking.

The parent generates each input and hands it to a worker (``spawn``: a clean interpreter, limited by
``RLIMIT_AS`` so that an allocation bomb is a ``MemoryError`` there, not the machine swapping). The
worker runs the entry points and answers with the outcomes, the seconds each took, its RSS after the
input and its peak RSS during it. Anything but ``ok``/``error``, an input on which one entry point
takes over ``slow_s``, a hang, or RSS growing more than ``rss_growth_mb`` over the run counts as
"anything else"; each distinct failure keeps its smallest input as a reproducer.

The 2 s rule is per entry point (:func:`slow_targets`): each of the six is a separate way in (a
client's ``decode()``, ``spinr decode``, a server's parse), and a user waits for one of them, never for
the six in a row. An input through all six costs up to six times one of them, so a sum would call
"slow" what no caller ever waits for (a 1.2 s decode plus its 1.2 s ``spinr decode``).

Time is the worker's CPU time, never the wall clock alone: on a busy shared machine a niced worker
may wait many seconds for a core, and that is not the input's fault. The watchdog (``watch``) calls
an input a hang when the worker spent ``kill_s`` CPU seconds on it, or made no CPU progress for
``kill_s`` seconds while neither runnable nor in disk wait (blocked: a sleep, a lock, a pipe), or ran past ``wall_kill_s``,
a last resort far beyond any starvation seen here; the worker is then killed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fuzz.formats import Case, generator
from fuzz.source import RandomSource
from fuzz.targets import TARGETS
from fuzz.worker import Worker

CLI_TARGETS = ("cli_info", "cli_decode")


@dataclass
class RunConfig:
    inputs: int = 100_000
    seed: int = 1
    version: int = 2
    """Format version of the generated inputs (``python -m fuzz run --format 1`` for v1)."""
    families: tuple[str, ...] | None = None
    """Mutation families to draw from (default: all of the format's, by weight)."""
    targets: tuple[str, ...] = tuple(TARGETS)
    cli_every: int = 5
    """The CLI targets run on every n-th input: ``main(argv)`` builds its whole argparse tree per call
    (~35 ms here), ten times the cost of the library entry points it wraps."""
    slow_s: float = 2.0
    """CPU seconds one entry point may take on one input (each entry point judged on its own)."""
    kill_s: float = 10.0
    """CPU seconds on one input (or seconds blocked without using any) after which it is a hang."""
    wall_kill_s: float = 300.0
    """Wall seconds on one input after which it is a hang whatever the CPU says (a starved worker
    that is runnable is waited for up to this)."""
    memory_mb: int = 3072
    rss_growth_mb: float = 200.0
    warmup: int = 300
    """Inputs a fresh worker runs before its RSS baseline is taken (imports, caches, allocator arenas)."""
    out: Path = Path("bench-out/fuzz")
    corpus: Path | None = None
    """Folder for reproducers (default ``out/reproducers``)."""
    progress_every: int = 5000
    max_seconds: float | None = None
    """Stop after this many seconds even if fewer than ``inputs`` ran (the report says so)."""


# -- the run -------------------------------------------------------------------------------------
@dataclass
class Failure:
    signature: str
    target: str
    kind: str
    detail: str
    family: str
    note: str
    count: int = 0
    size: int = 0
    reproducer: str = ""
    data: bytes = field(default=b"", repr=False)


@dataclass
class Report:
    config: dict[str, Any]
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_target: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_family: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[str, Failure] = field(default_factory=dict)
    slowest: dict[str, Any] = field(default_factory=dict)
    """The input on which one entry point took longest: its CPU seconds, the entry point, the input."""
    slowest_by_target: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per entry point: the most CPU seconds it took on one input, and which input."""
    rss: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: bool = False
    """The run hit ``max_seconds`` before ``inputs``."""

    @property
    def anything_else(self) -> int:
        return self.outcomes["anything_else"]

    def passed(self, cfg: RunConfig) -> bool:
        return self.anything_else == 0 and self.rss.get("growth_mb", 0.0) <= cfg.rss_growth_mb

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "inputs": self.inputs,
            "seconds": round(self.seconds, 1),
            "stopped_early": self.stopped_early,
            "outcomes": dict(self.outcomes),
            "by_target": {k: dict(v) for k, v in self.by_target.items()},
            "by_family": {k: dict(v) for k, v in self.by_family.items()},
            "failures": [
                {k: v for k, v in asdict(f).items() if k != "data"}
                for f in sorted(self.failures.values(), key=lambda f: -f.count)
            ],
            "slowest": self.slowest,
            "slowest_by_target": self.slowest_by_target,
            "rss": self.rss,
        }


def _note(failure_kind: str, case: Case, target: str = "") -> str:
    """Hangs and slow inputs have no traceback: one signature per family (and slowest entry point)."""
    return f"{failure_kind}{': ' + target if target else ''} in family {case.family}"


def run(cfg: RunConfig, cases: Iterable[Case] | None = None, extra_targets: str | None = None) -> Report:
    """Fuzz ``cfg.inputs`` generated inputs (or exactly ``cases``); write the JSON report and reproducers."""
    gen = generator(cfg.version) if cases is None else None
    src = RandomSource(cfg.seed)
    report = Report(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()})
    worker = Worker(cfg.memory_mb, extra_targets)
    peak_growth, final_growth, max_peak, stillborn = 0.0, 0.0, (0.0, ""), 0
    library = tuple(t for t in cfg.targets if t not in CLI_TARGETS)
    start = time.perf_counter()
    stream = iter(cases) if cases is not None else None
    try:
        for i in range(cfg.inputs if stream is None else sys.maxsize):
            if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
                report.stopped_early = True
                break
            if stream is not None:
                case = next(stream, None)
                if case is None:
                    break
            else:
                assert gen is not None
                case = gen.generate(src, gen.pick_family(src, cfg.families))
            names = cfg.targets if i % cfg.cli_every == 0 else library
            answer = worker.run(case.data, names, cfg.kill_s, cfg.wall_kill_s)
            report.inputs += 1
            if isinstance(answer, str):  # hang or died: the worker is gone
                if answer == "died" and worker.done == 0:
                    stillborn += 1
                    if stillborn >= 3:
                        raise RuntimeError(
                            "the fuzz worker died three times before its first answer: it cannot start"
                        )
                else:
                    stillborn = 0
                detail = worker.hang if answer == "hang" else answer
                how = f"{answer} ({detail.split(':', 1)[0]})" if answer == "hang" else answer
                _record(report, _note(how, case), "+".join(names), answer, detail, case)
                report.outcomes["anything_else"] += 1
                report.by_family[case.family]["anything_else"] += 1
                worker = Worker(cfg.memory_mb, extra_targets)
                continue
            results, rss, peak = answer
            bad = False
            for target, (kind, detail, place, _) in results.items():
                report.by_target[target][kind] += 1
                if kind == "crash":
                    bad = True
                    signature = f"{target}: {detail.split(':', 1)[0]} at {place}"
                    _record(report, signature, target, "crash", detail, case)
            times = {t: r[3] for t, r in results.items()}
            slow = slow_targets(times, cfg.slow_s)
            if slow:
                bad = True
                target = slow[0]
                detail = f"{times[target]:.2f} CPU s in {target}" + "".join(
                    f", {times[t]:.2f} in {t}" for t in slow[1:]
                )
                _record(report, _note("slow", case, target), target, "slow", detail, case)
            _note_slowest(report, cfg, times, case)
            worker.rss = rss
            if worker.done == cfg.warmup:
                worker.baseline = rss
            if worker.baseline is not None:
                final_growth = rss - worker.baseline
                peak_growth = max(peak_growth, final_growth)
            if peak > max_peak[0]:
                max_peak = (peak, case.note[:200])
            outcome = (
                "anything_else"
                if bad
                else ("error" if any(r[0] == "error" for r in results.values()) else "ok")
            )
            report.outcomes[outcome] += 1
            report.by_family[case.family][outcome] += 1
            if cfg.progress_every and report.inputs % cfg.progress_every == 0:
                _progress(report, start)
    finally:
        worker.close()
    report.seconds = time.perf_counter() - start
    report.rss = {
        "baseline_mb": round(worker.baseline or worker.rss, 1),
        "final_mb": round(worker.rss, 1),
        "growth_mb": round(max(peak_growth, 0.0), 1),
        "final_growth_mb": round(final_growth, 1),
        "max_peak_mb": round(max_peak[0], 1),
        "max_peak_input": max_peak[1],
    }
    for f in report.failures.values():
        f.reproducer = _save(cfg, _slug(f.signature), f.data)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "fuzz.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def slow_targets(times: dict[str, float], slow_s: float) -> list[str]:
    """The entry points that took over ``slow_s`` CPU seconds on one input, slowest first: the
    input is slow if any single one did (their sum is no one's wait)."""
    return sorted((t for t, s in times.items() if s > slow_s), key=lambda t: -times[t])


def _note_slowest(report: Report, cfg: RunConfig, times: dict[str, float], case: Case) -> None:
    """Keep the slowest input per entry point and overall (by one entry point's CPU seconds)."""
    for target, seconds in times.items():
        best = report.slowest_by_target.get(target)
        if best is None or seconds > best["seconds"]:
            report.slowest_by_target[target] = {
                "seconds": round(seconds, 3),
                "family": case.family,
                "note": case.note[:200],
            }
    target = max(times, key=lambda t: times[t])
    if times[target] > report.slowest.get("seconds", -1.0):
        report.slowest = {
            "seconds": round(times[target], 3),
            "target": target,
            "family": case.family,
            "note": case.note[:200],
            "input": _save(cfg, "slowest", case.data),
        }


def _record(report: Report, signature: str, target: str, kind: str, detail: str, case: Case) -> None:
    f = report.failures.get(signature)
    if f is None:
        f = report.failures[signature] = Failure(
            signature, target, kind, detail, case.family, case.note[:200]
        )
    f.count += 1
    if not f.data or len(case.data) < len(f.data):  # keep the smallest input as the reproducer
        f.data, f.size, f.detail, f.note, f.family = (
            case.data,
            len(case.data),
            detail,
            case.note[:200],
            case.family,
        )


def _slug(signature: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", signature.lower()).strip("-")[:60]
    return f"{text}-{hashlib.sha256(signature.encode()).hexdigest()[:8]}"


def _save(cfg: RunConfig, name: str, data: bytes) -> str:
    folder = cfg.corpus or cfg.out / "reproducers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.spnr"
    path.write_bytes(data)
    return str(path)


def _progress(report: Report, start: float) -> None:
    rate = report.inputs / max(1e-9, time.perf_counter() - start)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
    print(f"fuzz: {report.inputs} inputs ({rate:.0f}/s): {counts}", file=sys.stderr, flush=True)


def summary(report: Report, cfg: RunConfig) -> str:
    lines = [
        f"{report.inputs} inputs in {report.seconds:.0f} s (format v{cfg.version}, seed {cfg.seed}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())),
        "by target: " + "; ".join(f"{t} {dict(c)}" for t, c in report.by_target.items()),
        f"slowest input: {report.slowest.get('seconds')} CPU s in {report.slowest.get('target')} "
        f"({report.slowest.get('note', '')[:100]}) -> {report.slowest.get('input', '')}",
        "slowest per entry point (CPU s): "
        + ", ".join(f"{t} {s['seconds']} ({s['note'][:40]})" for t, s in report.slowest_by_target.items()),
        f"RSS: baseline {report.rss['baseline_mb']} MB, growth {report.rss['growth_mb']} MB "
        f"(limit {cfg.rss_growth_mb:g}), largest peak {report.rss['max_peak_mb']} MB",
    ]
    if report.stopped_early:
        lines.append(
            f"stopped at the time limit ({cfg.max_seconds:g} s) after {report.inputs} of {cfg.inputs} inputs"
        )
    if report.failures:
        lines.append(f"{len(report.failures)} distinct failures (anything else):")
        for f in sorted(report.failures.values(), key=lambda f: -f.count):
            lines.append(f"  {f.count:6d}  {f.signature}  [{f.family}] {f.detail[:90]!r} -> {f.reproducer}")
    lines.append("PASS" if report.passed(cfg) else "FAIL: anything else happened (see above)")
    return "\n".join(lines)
