"""Known failures: reproducers kept in the repository with what they show, for the tests to replay.

``python -m fuzz corpus bench-out/fuzz/fuzz.json`` files every distinct failure of a run under
``tests/fuzz_corpus/v<N>/`` (one input per place in the code: the same bug reached through
``decode`` and ``spinr decode`` is one entry) and writes ``known_failures.json``. An entry is
``open`` until the code is fixed; tests/test_fuzz_corpus.py expects open ones to fail (strictly, so
a fix shows up as an unexpected pass) and every other one to give only documented outcomes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from fuzz.seeds import CORPUS

MANIFEST = "known_failures.json"


def corpus_dir(version: int) -> Path:
    return CORPUS / f"v{version}"


def load_manifest(version: int = 1) -> list[dict[str, Any]]:
    path = corpus_dir(version) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else []


def _item(kind: str, place: str, family: str) -> str:
    """Which item of issue 11 the failure belongs to."""
    if kind in ("hang", "slow", "died") or "MemoryError" in place:
        return "5 (decoder resource budget)"
    if re.search(r"codec/(arch|arch_zoo|coords)\.py", place):
        return "4 (validate units against the architecture)"
    return "new"


def file_report(report_path: Path, version: int = 1) -> list[dict[str, Any]]:
    """Copy the reproducers of a run's report into the corpus; returns the new manifest."""
    report = json.loads(report_path.read_text())
    folder = corpus_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {e["file"]: e for e in load_manifest(version)}
    by_place: dict[str, dict[str, Any]] = {}
    for f in report["failures"]:
        place = f["signature"].split(": ", 1)[-1]
        key = place if f["kind"] == "crash" else f["signature"]
        entry = by_place.get(key)
        if entry is None:
            entry = by_place[key] = {
                "signature": place,
                "kind": f["kind"],
                "targets": [],
                "count": 0,
                "size": None,
            }
        entry["targets"] = sorted({*entry["targets"], *f["target"].split("+")})
        entry["count"] += f["count"]
        if entry["size"] is None or f["size"] < entry["size"]:
            entry.update(
                size=f["size"], detail=f["detail"], family=f["family"], note=f["note"], source=f["reproducer"]
            )
    for entry in by_place.values():
        slug = re.sub(r"[^a-z0-9]+", "-", entry["signature"].lower()).strip("-")[:70]
        name = f"{entry['kind']}-{slug}.spnr"
        shutil.copyfile(entry.pop("source"), folder / name)
        entries[name] = {
            "file": name,
            "status": "open",
            "issue_item": _item(entry["kind"], entry["signature"], entry["family"]),
            **entry,
        }
    manifest = sorted(entries.values(), key=lambda e: (e["kind"], e["signature"]))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
