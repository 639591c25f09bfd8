"""The fuzz harness (tests/fuzz): a short run of every format's generator in the default suite, the
driver's own checks, and the long run (``make fuzz``) as a slow test.

Every family of the short run goes through every entry point, the numpy forward included: a header
whose units do not fit its arch is refused before anything is computed (issue 11, item 4), and a
decode over the decode budget likewise (item 5, docs/DECODER.md). Only the ``resource`` family stays
out of the short run: its inputs are refused quickly, but the ones within the budget take up to a
second each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fuzz.driver import RunConfig, run, slow_targets, summary
from fuzz.formats import Case, generator
from fuzz.source import DrawSource
from fuzz.targets import TARGETS
from fuzz.worker import Watch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GENS = {version: generator(version) for version in (2, 1)}
VERSIONS = pytest.mark.parametrize("version", list(GENS), ids=lambda v: f"v{v}")
LIBRARY = ("load_strict", "load_lenient", "add_packet", "decode")
QUICK = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": list(HealthCheck)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def short(version: int) -> tuple[str, ...]:
    return tuple(f for f in GENS[version].families if f != "resource")


def targets_for(version: int, family: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Every entry point for every family (kept as the one place to narrow them again)."""
    return names


@VERSIONS
@settings(max_examples=400, **QUICK)
@given(data=st.data())
def test_library_entry_points_give_documented_errors_only(
    version: int, data: st.DataObject, workdir: Path
) -> None:
    src, gen = DrawSource(data), GENS[version]
    case = gen.generate(src, gen.pick_family(src, short(version)))
    for name in targets_for(version, case.family, LIBRARY):
        outcome = TARGETS[name](case.data, workdir)
        assert outcome.kind in ("ok", "error"), (name, outcome, case.family, case.note)


@VERSIONS
@settings(max_examples=40, **QUICK)
@given(data=st.data())
def test_cli_entry_points_answer_in_one_line_or_valid_json(
    version: int, data: st.DataObject, workdir: Path
) -> None:
    src, gen = DrawSource(data), GENS[version]
    case = gen.generate(src, gen.pick_family(src, short(version)))
    for name in targets_for(version, case.family, ("cli_info", "cli_decode")):
        outcome = TARGETS[name](case.data, workdir)
        assert outcome.kind in ("ok", "error"), (name, outcome, case.family, case.note)


@VERSIONS
def test_driver_short_run_counts_every_outcome(version: int, tmp_path: Path) -> None:
    families = tuple(f for f in short(version) if not set(targets_for(version, f, LIBRARY)) ^ set(LIBRARY))
    cfg = RunConfig(
        inputs=120, seed=3, version=version, families=families, cli_every=10, out=tmp_path, warmup=20
    )
    report = run(cfg)
    assert report.passed(cfg), summary(report, cfg)
    assert report.inputs == 120 == sum(report.outcomes.values())
    assert set(report.by_target) == set(TARGETS)
    assert (
        sum(report.by_target["cli_info"].values()) == 12 and sum(report.by_target["decode"].values()) == 120
    )
    assert report.outcomes["error"] > 0 and report.outcomes["ok"] > 0
    saved = json.loads((tmp_path / "fuzz.json").read_text())
    assert saved["inputs"] == 120 and saved["failures"] == [] and saved["rss"]["growth_mb"] <= 200
    assert Path(saved["slowest"]["input"]).is_file() and saved["slowest"]["seconds"] >= 0


def test_driver_catches_crashes_hangs_slowness_deaths_and_rss_growth(tmp_path: Path) -> None:
    cues = [
        b"ok",
        b"ok",
        b"BOOM",
        b"ok",
        b"HANG",
        b"ok",
        b"SLOW",
        b"DIE",
        b"ok",
        b"SPIN",
        b"ok",
        b"GROW",
        b"ok",
    ]
    cases = [Case(c, "selftest", c.decode()) for c in cues]
    # SLOW burns 1.5 CPU s, GROW writes 300 MB (well under 1 CPU s even with a loaded machine's page faults).
    cfg = RunConfig(targets=("selftest",), slow_s=1.0, kill_s=3.0, warmup=1, out=tmp_path, rss_growth_mb=200)
    report = run(cfg, cases, extra_targets="fuzz.selftest:SELFTEST")
    assert not report.passed(cfg)
    assert report.inputs == 13 and report.anything_else == 5, summary(report, cfg)
    kinds = {f.signature.split(" in ")[0].split(":")[0]: f for f in report.failures.values()}
    assert set(kinds) == {"selftest", "hang (blocked)", "hang (cpu)", "slow", "died"}
    assert kinds["selftest"].signature.startswith("selftest: KeyError at tests/fuzz/selftest.py:")
    # At least the limit, more when the parent's own sample came late on a busy machine.
    cpu = re.fullmatch(r"cpu: (\d+\.\d) CPU s \(limit 3\)", kinds["hang (cpu)"].detail)
    blocked = re.match(r"blocked: (\d+\.\d) s with no CPU progress", kinds["hang (blocked)"].detail)
    assert cpu and float(cpu[1]) >= 3.0 and blocked and float(blocked[1]) >= 3.0, (cpu, blocked)
    for kind, cue in (
        ("selftest", b"BOOM"),
        ("hang (blocked)", b"HANG"),
        ("hang (cpu)", b"SPIN"),
        ("slow", b"SLOW"),
        ("died", b"DIE"),
    ):
        assert Path(kinds[kind].reproducer).read_bytes() == cue
    assert report.rss["growth_mb"] >= 250  # the 300 MB kept by GROW (the worker after DIE is a new one)
    assert "FAIL" in summary(report, cfg)


def test_slowness_is_judged_per_entry_point_not_summed() -> None:
    assert slow_targets({"load_strict": 0.6, "decode": 1.2, "cli_decode": 1.9}, 2.0) == []  # 3.7 s in all
    assert slow_targets({"load_strict": 0.1, "decode": 2.5, "cli_decode": 3.1}, 2.0) == [
        "cli_decode",
        "decode",
    ]
    assert slow_targets({"decode": 2.0}, 2.0) == []  # at the limit is within it
    assert slow_targets({}, 2.0) == []


def test_driver_calls_an_input_slow_only_when_one_entry_point_is(tmp_path: Path) -> None:
    """HALF takes 0.6 CPU s in each of two entry points (1.2 s together, over the 1 s limit as a sum);
    SLOW 1.5 s in each. Only SLOW is slow, filed under its slowest entry point."""
    cases = [Case(c, "selftest", c.decode()) for c in (b"HALF", b"SLOW")]
    cfg = RunConfig(targets=("selftest", "selftest2"), slow_s=1.0, kill_s=10.0, warmup=1, out=tmp_path)
    report = run(cfg, cases, extra_targets="fuzz.selftest:SELFTEST")
    assert report.inputs == 2 and report.anything_else == 1, summary(report, cfg)
    (failure,) = report.failures.values()
    assert failure.kind == "slow" and Path(failure.reproducer).read_bytes() == b"SLOW"
    assert re.fullmatch(r"\d+\.\d\d CPU s in selftest2?, \d+\.\d\d in selftest2?", failure.detail), (
        failure.detail
    )
    assert set(report.slowest_by_target) == {"selftest", "selftest2"}
    assert all(1.5 <= s["seconds"] < 5 and s["note"] == "SLOW" for s in report.slowest_by_target.values())
    assert report.slowest["note"] == "SLOW" and report.slowest["target"] in ("selftest", "selftest2")
    assert Path(report.slowest["input"]).read_bytes() == b"SLOW"


def test_watchdog_waits_for_a_starved_worker_and_judges_by_cpu() -> None:
    """A busy shared machine may leave a niced worker runnable but without a core for a long time:
    that is no hang. Burning ``kill_s`` CPU seconds is, and so is sleeping with no progress."""
    starved = Watch(kill_s=10.0, wall_kill_s=300.0)
    for second in range(1, 200):  # 0.04 CPU s per wall second, often no progress at all, but runnable
        cpu = 0.04 * (second - second % 5)
        assert starved.sample(cpu, "R", float(second)) is None, second
    assert starved.sample(12.0, "R", 200.0) == "cpu: 12.0 CPU s (limit 10)"
    blocked = Watch(kill_s=10.0, wall_kill_s=300.0, cpu0=5.0, cpu=5.0)
    verdicts = [blocked.sample(5.5, "S", float(s)) for s in range(1, 12)]  # 0.5 CPU s, then asleep
    assert (
        verdicts[:10] == [None] * 10 and verdicts[10] == "blocked: 10.0 s with no CPU progress (0.50 CPU s)"
    )
    waiting = Watch(kill_s=10.0, wall_kill_s=300.0)  # sleeps a little, computes a little, for ever
    verdicts = [waiting.sample(0.01 * s, "S", float(s)) for s in range(1, 301)]
    assert verdicts[-1] == "wall: 300 s (limit 300) at 3.0 CPU s" and set(verdicts[:-1]) == {None}


@VERSIONS
def test_every_seed_stream_decodes(version: int, workdir: Path) -> None:
    for seed in GENS[version].seeds:
        for name in TARGETS:
            assert TARGETS[name](seed.data, workdir).kind == "ok", (seed.name, name)


@pytest.mark.slow
@VERSIONS
def test_long_run_100k_inputs(version: int, tmp_path: Path) -> None:
    """Issue 11's criterion: 100,000 inputs, nothing but documented errors and decodes, no entry point
    over 2 CPU s on an input, RSS growth within 200 MB (hours on this machine: ``make fuzz``). The
    only failures of the last long runs (93,721 inputs: a WIRE and an MFN stream at 2048 x 2048) are
    fixed (tests/fuzz_corpus); docs/DECODER.md, "Long fuzz runs", has the runs since."""
    cfg = RunConfig(inputs=100_000, seed=1, version=version, out=tmp_path)
    report = run(cfg)
    print(summary(report, cfg))
    assert report.passed(cfg), summary(report, cfg)


def test_generators_leave_seeds_and_value_pools_untouched() -> None:
    import copy as _copy

    from fuzz import trees
    from fuzz.source import RandomSource
    from fuzz.v1 import V1Generator
    from fuzz.v2 import V2Generator

    pools = _copy.deepcopy(trees.TYPE_SWAPS)
    gen1, gen2 = V1Generator(), V2Generator()
    before1 = [(_copy.deepcopy(s.header), _copy.deepcopy(s.layers), s.records[:]) for s in gen1.seeds]
    before2 = [(s.data, s.packets[:], dict(s.pieces), s.payloads[:]) for s in gen2.seeds]
    src = RandomSource(4)
    for _ in range(1500):  # every edit is made on copies: a long run stays as fast as a short one
        gen1.generate(src, gen1.pick_family(src, short(1)))
    for _ in range(1500):
        gen2.generate(src, gen2.pick_family(src, short(2)))
    assert pools == trees.TYPE_SWAPS
    assert [(s.header, s.layers, s.records) for s in gen1.seeds] == before1
    assert [(s.data, s.packets, s.pieces, s.payloads) for s in gen2.seeds] == before2


def test_v2_generator_covers_every_family_and_outcome(workdir: Path) -> None:
    """Each v2 family makes inputs that are refused and (but for whole-file edits) inputs that decode,
    and its notes say what was done; so the generator tests the decoder rather than one error path."""
    from fuzz.source import RandomSource

    gen, src = GENS[2], RandomSource(11)
    for family in gen.families:
        kinds, notes = set(), set()
        for _ in range(25 if family != "resource" else 3):
            case = gen.generate(src, family)
            assert case.family == family and case.note
            notes.add(case.note)
            kinds |= {TARGETS[n](case.data, workdir).kind for n in targets_for(2, family, LIBRARY)}
        assert "crash" not in kinds, family
        if family == "resource":  # a few inputs, each asking for a lot: no crash is what counts
            continue
        assert "error" in kinds and len(notes) > 1, (family, kinds)
        if family != "bytes":
            assert "ok" in kinds, (family, kinds)
