"""Replay the fuzz corpus (tests/fuzz_corpus/v1): every reproducer the long run filed.

An ``open`` entry is a known failure left to the second wave of issue 11 (items 4 and 5: the numpy
forward does not check units against the architecture, and decoding has no resource budget); it is
expected to fail, strictly, so the fix shows up here as an unexpected pass and the entry is then
marked ``fixed``. A ``fixed`` entry must give only documented outcomes from then on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fuzz.corpus import corpus_dir, load_manifest
from fuzz.driver import RunConfig, run, summary
from fuzz.formats import Case
from fuzz.targets import TARGETS

MANIFEST = load_manifest(1)


def _param(entry: dict[str, Any]) -> Any:
    marks = []
    if entry["kind"] != "crash":
        marks.append(pytest.mark.slow)  # a resource bomb: seconds of CPU and up to the worker's memory limit
    if entry["status"] == "open":
        marks.append(
            pytest.mark.xfail(
                strict=True, reason=f"issue 11 item {entry['issue_item']}: {entry['signature']}"
            )
        )
    return pytest.param(entry, id=entry["file"], marks=marks)


def test_manifest_lists_every_reproducer_and_nothing_else() -> None:
    files = {p.name for p in corpus_dir(1).glob("*.spnr")}
    assert files == {e["file"] for e in MANIFEST}
    assert all(e["status"] in ("open", "fixed") and e["targets"] for e in MANIFEST)


@pytest.mark.parametrize("entry", [_param(e) for e in MANIFEST])
def test_reproducer_gives_only_documented_outcomes(entry: dict[str, Any], tmp_path: Path) -> None:
    data = (corpus_dir(1) / entry["file"]).read_bytes()
    if entry["kind"] == "crash":  # fast: in process
        for name in entry["targets"]:
            outcome = TARGETS[name](data, tmp_path)
            assert outcome.kind in ("ok", "error"), (name, outcome)
        return
    cfg = RunConfig(targets=tuple(entry["targets"]), kill_s=20.0, out=tmp_path, warmup=1)
    report = run(cfg, [Case(data, entry["family"], entry["note"])])
    assert report.anything_else == 0, summary(report, cfg)
