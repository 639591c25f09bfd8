"""``python -m fuzz run|replay|seeds`` (with ``tests`` on ``PYTHONPATH``; ``make fuzz`` does that)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fuzz.driver import RunConfig, run, summary
from fuzz.targets import TARGETS, run_all, scratch


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="generate inputs and count outcomes; exit 1 on anything else")
    d = RunConfig()
    r.add_argument("--inputs", type=int, default=d.inputs)
    r.add_argument("--seed", type=int, default=d.seed)
    r.add_argument("--format", type=int, default=d.version, dest="version", help="format version (2 or 1)")
    r.add_argument("--families", help="comma-separated mutation families (default: all, by weight)")
    r.add_argument("--targets", default=",".join(d.targets), help="comma-separated entry points")
    r.add_argument(
        "--cli-every", type=int, default=d.cli_every, help="run the CLI targets on every n-th input"
    )
    r.add_argument(
        "--slow", type=float, default=d.slow_s, help="seconds over which an input counts as a failure"
    )
    r.add_argument(
        "--kill",
        type=float,
        default=d.kill_s,
        help="CPU seconds (or seconds blocked) after which a worker is killed (hang)",
    )
    r.add_argument(
        "--wall-kill",
        type=float,
        default=d.wall_kill_s,
        help="wall seconds after which a worker is killed even if it is runnable but starved",
    )
    r.add_argument("--memory-mb", type=int, default=d.memory_mb, help="address-space limit of the worker")
    r.add_argument("--max-seconds", type=float, help="stop after this many seconds even if fewer inputs ran")
    r.add_argument("--out", type=Path, default=d.out)
    r.add_argument("--corpus", type=Path, help="folder for reproducers (default OUT/reproducers)")
    rp = sub.add_parser("replay", help="run files through every entry point and print the outcomes")
    rp.add_argument("files", nargs="+", type=Path)
    sub.add_parser(
        "seeds", help="rebuild the committed v2 seed streams (needs torch; the v1 ones are frozen)"
    )
    c = sub.add_parser(
        "corpus", help="file a run's distinct failures under tests/fuzz_corpus as known failures"
    )
    c.add_argument("report", type=Path, help="fuzz.json of a run")
    c.add_argument("--format", type=int, default=2, dest="version")
    args = p.parse_args(argv)

    if args.command == "seeds":
        from fuzz.seeds import write_seeds

        for path in write_seeds(2):
            print(path)
        return 0
    if args.command == "corpus":
        from fuzz.corpus import file_report

        for entry in file_report(args.report, args.version):
            print(
                f"{entry['status']:5s} {entry['kind']:5s} {entry['count']:6d}  {entry['signature']}  -> {entry['file']}"
            )
        return 0
    if args.command == "replay":
        worst = 0
        with scratch() as workdir:
            for path in args.files:
                for name, o in run_all(path.read_bytes(), tuple(TARGETS), workdir).items():
                    worst = max(worst, o.kind == "crash")
                    print(
                        f"{path.name}  {name:12s} {o.kind:5s} {o.signature if o.kind == 'crash' else o.detail[:100]}"
                    )
        return worst
    cfg = RunConfig(
        inputs=args.inputs,
        seed=args.seed,
        version=args.version,
        families=tuple(args.families.split(",")) if args.families else None,
        targets=tuple(args.targets.split(",")),
        cli_every=args.cli_every,
        slow_s=args.slow,
        kill_s=args.kill,
        wall_kill_s=args.wall_kill,
        memory_mb=args.memory_mb,
        out=args.out,
        max_seconds=args.max_seconds,
        corpus=args.corpus,
    )
    report = run(cfg)
    print(summary(report, cfg))
    print(f"report: {cfg.out / 'fuzz.json'}")
    return 0 if report.passed(cfg) else 1


if __name__ == "__main__":
    sys.exit(main())
