"""Replay the fuzz corpus (tests/fuzz_corpus/v1 and v2): every reproducer a long run filed.

An ``open`` entry is a known failure not fixed yet; it is expected to fail, strictly, so the fix
shows up here as an unexpected pass and the entry is then marked ``fixed``. A ``fixed`` entry must give
only documented outcomes from then on. Every entry filed so far (issue 11 items 4 and 5: headers that
do not fit their arch, resource bombs) is fixed (docs/DECODER.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fuzz.corpus import corpus_dir, load_manifest
from fuzz.driver import RunConfig, run, summary
from fuzz.formats import Case
from fuzz.targets import TARGETS

VERSIONS = (1, 2)
MANIFESTS = {v: load_manifest(v) for v in VERSIONS}


def _param(version: int, entry: dict[str, Any]) -> Any:
    marks = []
    if entry["kind"] != "crash":
        marks.append(pytest.mark.slow)  # a resource bomb: seconds of CPU and up to the worker's memory limit
    if entry["status"] == "open":
        marks.append(
            pytest.mark.xfail(
                strict=True, reason=f"issue 11 item {entry['issue_item']}: {entry['signature']}"
            )
        )
    return pytest.param(version, entry, id=f"v{version}/{entry['file']}", marks=marks)


@pytest.mark.parametrize("version", VERSIONS)
def test_manifest_lists_every_reproducer_and_nothing_else(version: int) -> None:
    manifest = MANIFESTS[version]
    files = {p.name for p in corpus_dir(version).glob("*.spnr")}
    assert files == {e["file"] for e in manifest}
    assert all(e["status"] in ("open", "fixed") and e["targets"] for e in manifest)
    assert all(set(e["targets"]) <= set(TARGETS) for e in manifest)


@pytest.mark.parametrize(("version", "entry"), [_param(v, e) for v in VERSIONS for e in MANIFESTS[v]])
def test_reproducer_gives_only_documented_outcomes(
    version: int, entry: dict[str, Any], tmp_path: Path
) -> None:
    data = (corpus_dir(version) / entry["file"]).read_bytes()
    if entry["kind"] == "crash":  # fast: in process
        for name in entry["targets"]:
            outcome = TARGETS[name](data, tmp_path)
            assert outcome.kind in ("ok", "error"), (name, outcome)
        return
    cfg = RunConfig(targets=tuple(entry["targets"]), kill_s=20.0, out=tmp_path, warmup=1)
    report = run(cfg, [Case(data, entry["family"], entry["note"])])
    assert report.anything_else == 0, summary(report, cfg)
