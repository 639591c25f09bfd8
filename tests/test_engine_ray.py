"""Ray as an optional engine: a missing extra is named in one line; ``spinr experiment --engine ray``
sends its fits to a real local Ray cluster and gets the numbers the process pool gets."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from _server import poll
from PIL import Image

from client.cli import main
from codec.distributed import gpu_share, import_ray
from codec.errors import ConfigError


def test_without_ray_the_engine_names_the_extra(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without spinr[ray] sees
    with pytest.raises(ConfigError, match=r"spinr\[ray\]"):
        import_ray()
    assert main(["serve", "--engine", "ray", "--data-dir", str(tmp_path / "d"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "--engine ray needs Ray" in err and "pip install 'spinr[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_ray_flags_need_the_ray_engine(tmp_path, capsys) -> None:
    argv = ["serve", "--data-dir", str(tmp_path / "d"), "--ray-gpus", "0.5"]
    assert main(argv) == 1 and "need engine 'ray'" in capsys.readouterr().err
    assert main([*argv[:3], "--engine", "ray", "--ray-gpus", "1.5"]) == 1
    assert "allowed a share 0..1 or whole GPUs" in capsys.readouterr().err


def test_gpu_share_of_an_explicit_request_and_of_a_cpu_device() -> None:
    assert gpu_share(0.25, "auto", 8) == 0.25 and gpu_share(None, "cpu", 2) == 0.0


@pytest.mark.ray
def test_experiment_fits_on_ray_equal_the_process_pool(tmp_path: Path, ray_cluster: str) -> None:
    import ray
    from skimage import data

    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(data.astronaut()[100:132, 180:212]).save(folder / "a.png")
    Image.fromarray(data.coffee()[100:132, 200:232]).save(folder / "b.png")
    rows = {}
    for engine in ("process", "ray"):
        out = tmp_path / engine
        extra = ["--ray-address", ray_cluster] if engine == "ray" else []
        argv = ["models", "--dataset", str(folder), "--profile", "tiny", "--device", "cpu"]
        argv += ["--models", "spinr", "--seeds", "1", "--steps", "20", "--out", str(out), "--json"]
        assert main(["experiment", *argv, "--engine", engine, *extra]) == 0
        with open(out / "models.csv", newline="") as f:
            rows[engine] = list(csv.DictReader(f))
    assert len(rows["ray"]) == len(rows["process"]) == 2  # spinr x 2 images x 1 seed
    for a, b in zip(rows["process"], rows["ray"], strict=True):
        assert (a["model"], a["size"], a["image"], a["bytes"]) == (
            b["model"],
            b["size"],
            b["image"],
            b["bytes"],
        )
        assert float(a["psnr"]) == pytest.approx(float(b["psnr"]), abs=0.05)
    assert ray.is_initialized()  # this session's cluster, joined rather than replaced


def test_the_readme_runs_a_server_against_a_ray_cluster_in_two_commands() -> None:
    """README, "On a Ray cluster": a head started with ``ray start``, then ``spinr serve --engine ray``
    pointed at that head's port. (The session's own cluster runs the same path: tests/_engines.py.)"""
    import re
    import shlex

    from client.cli import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("### On a Ray cluster", 1)[1].split("```shell\n", 1)[1].split("```", 1)[0]
    head, serve = (shlex.split(line, comments=True) for line in block.strip().splitlines())
    assert head[:3] == ["ray", "start", "--head"]
    port = head[head.index("--port") + 1]
    assert serve[0] == "spinr"
    args = build_parser().parse_args(serve[1:])
    assert args.engine == "ray" and re.fullmatch(rf"127\.0\.0\.1:{port}", args.ray_address)


@pytest.mark.ray
@pytest.mark.slow  # two servers, a minute on a busy 2-core machine; `spinr bench train` is run by hand
def test_the_server_bench_times_ray_one_job_at_a_time_and_in_batches(
    tmp_path: Path, ray_cluster: str, capsys
) -> None:
    import json

    argv = ["bench", "train", "--sections", "server", "--k", "2", "--fit-steps", "5", "--images", "1"]
    argv += [
        "--server-engines",
        "ray",
        "--ray-address",
        ray_cluster,
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    rows = json.loads((tmp_path / "train.json").read_text())["server"]["rows"]
    # (The process pool's rows, the default reference beside these: tests/test_bench.py.)
    assert [r["variant"] for r in rows] == ["ray, --batch 1 (reference)", "ray, --batch 2"]
    assert rows[0]["speedup"] == 1.0
    assert all(r["seconds"] > 0 and r["speedup"] > 0 and 0 < r["psnr"] < 60 for r in rows)
    assert all(r["start_seconds"] > 0 for r in rows)


@pytest.mark.ray
def test_an_experiment_pool_on_ray_cancels_what_its_time_budget_leaves(
    tmp_path: Path, ray_cluster: str
) -> None:
    import time

    from experiments.pool import JobPool

    pool = JobPool(
        quiet=True, budget=3.0, spill=tmp_path, engine="ray", ray_address=ray_cluster, device="cpu"
    )
    start = time.perf_counter()
    out = pool.map(time.sleep, [600.0, 600.0], "budget")
    assert time.perf_counter() - start < 120  # cancelled (ray.cancel), not waited for
    assert out == [None, None] and not (tmp_path / "budget.partial.jsonl").exists()  # none finished
    # The cancelled fits give their CPUs back (force-cancelled with their workers): a later server on
    # this cluster gets a worker (a plain ray.cancel left time.sleep running for 600 s).
    ray = import_ray()
    poll(
        lambda: ray.available_resources().get("CPU", 0) >= ray.cluster_resources()["CPU"],
        60,
        "the cluster's CPUs back after the cancel",
    )
