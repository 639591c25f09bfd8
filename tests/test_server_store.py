"""The job state machine, the store (SQLite + checksummed files) and the layering, in process."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from codec.errors import ConfigError
from server.jobs import encode_config
from server.states import TRANSITIONS, IllegalTransition, JobState, check_transition
from server.store import RESTART_REASON, QueueFull, Store, StoreError

ROOT = Path(__file__).resolve().parent.parent


def test_every_transition_is_either_allowed_or_raises_naming_both_states():
    for current in JobState:
        for wanted in JobState:
            if wanted in TRANSITIONS[current]:
                check_transition("j", current, wanted)
            else:
                with pytest.raises(IllegalTransition, match=f"from {current.value} to {wanted.value}"):
                    check_transition("j", current, wanted)
    assert TRANSITIONS[JobState.QUEUED] >= {JobState.RUNNING, JobState.CANCELLED}
    assert all(not TRANSITIONS[s] for s in (JobState.DONE, JobState.FAILED, JobState.CANCELLED))


def test_store_jobs_files_and_recovery(tmp_path):
    store = Store(tmp_path)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    job = store.create_job("a1", "one", {"steps": 5}, 4, 3, b"png-bytes", max_queued=2)
    assert job["state"] == "queued" and job["image"] == {"width": 4, "height": 3}
    store.create_job("b2", "two", {}, 4, 3, b"x", max_queued=2)
    with pytest.raises(QueueFull) as info:
        store.create_job("c3", "three", {}, 4, 3, b"x", max_queued=2, retry_after=7)
    assert info.value.retry_after == 7 and store.get_job("c3") is None  # nothing half-created

    assert store.read_file("a1", "original") == b"png-bytes"
    assert store.get_job("a1")["phase"] is None  # queued: no phase yet
    store.transition("a1", JobState.RUNNING)
    assert store.get_job("a1")["phase"] == "training"
    store.update_progress("a1", step=3, steps=5, progress=0.6, psnr=20.5, bogus=1)
    assert store.get_job("a1")["step"] == 3 and store.get_job("a1")["psnr"] == 20.5
    store.update_progress("a1", progress=1.0, phase="quantizing")
    assert store.get_job("a1")["phase"] == "quantizing"
    done = store.finish("a1", b"SPNR...", {"psnr": 30.0})
    assert done["state"] == "done" and done["result"]["bytes"] == 7 and len(done["result"]["sha256"]) == 64
    assert done["phase"] is None  # a phase is a running job's
    with pytest.raises(IllegalTransition):
        store.transition("a1", JobState.RUNNING)
    store.update_progress("a1", step=99)  # ignored: no longer running
    assert store.get_job("a1")["step"] == 3

    path = store.file_path("a1", "bitstream")
    assert path.read_bytes() == b"SPNR..." and not list(path.parent.glob(".*tmp*"))
    path.write_bytes(b"SPNR..!")
    with pytest.raises(StoreError, match="damaged"):
        store.read_file("a1", "bitstream")

    store.transition("b2", JobState.RUNNING)
    (path.parent / ".bitstream.spnr.tmp123").write_bytes(b"half")
    store.close()

    reopened = Store(tmp_path)
    recovered = reopened.recover()
    assert recovered == {"failed": ["b2"], "requeued": []}
    assert reopened.get_job("b2")["error"] == RESTART_REASON
    assert not list(path.parent.glob(".*tmp*"))
    assert [j["id"] for j in reopened.list_jobs()] == ["b2", "a1"]  # newest first


def test_job_options_become_a_validated_encode_config():
    cfg = encode_config(
        {"preset": "tiny", "width": 8, "depth": 1, "steps": 7, "bits": 6, "head": "shared"}, "cpu"
    )
    assert (cfg.model.width, cfg.model.hidden_layers, cfg.train.steps, cfg.quant.bits) == (8, 1, 7, 6)
    assert cfg.model.options["head"] == "shared" and cfg.train.device == "cpu"
    with pytest.raises(ConfigError, match="head"):
        encode_config({"model": "siren", "head": "shared"}, "cpu")


def _imports(folder: str) -> set[str]:
    out = set()
    for path in (ROOT / folder).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.add(node.module.split(".")[0])
    return out


def test_layering_streaming_below_server_and_client():
    assert not _imports("streaming") & {"server", "client"}
    assert not _imports("server") & {"client"}


def test_worker_progress_sends_every_quantization_with_its_phase():
    import queue

    from codec.fit_core import TrainProgress
    from server.worker import _progress_fn

    events: queue.Queue = queue.Queue()
    report = _progress_fn("j1", events)

    def at(step: int, event: str = "step") -> TrainProgress:
        return TrainProgress(
            1, 2, step, 100, 0.01, 20.0 + step / 100, 1.0, event, "quantizing 2 stage(s) to 500 bytes"
        )

    for step in range(1, 51):  # far faster than PROGRESS_INTERVAL: the first is sent, the rest are not
        report(at(step))
    report(at(100, "quantize"))
    report(at(100, "quantize"))  # the next prefix tried: sent too
    sent = [events.get_nowait() for _ in range(events.qsize())]
    assert [p["phase"] for _, _, _, p in sent] == ["training", "quantizing", "quantizing"]
    assert all(kind == "progress" and job == "j1" for kind, _, job, _ in sent)
    assert sent[1][3]["progress"] == 1.0 and sent[0][3]["step"] == 1
