"""``spinr bench``: each benchmark runs end to end at a tiny size and writes what it promises."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from client.cli import main


def test_spinr_recipes_bench_reports_every_recipe_against_siren(tmp_path: Path, capsys) -> None:
    from benchmarks.recipes import LOST, RECIPES

    argv = ["bench", "spinr-recipes", "--images", "1", "--crop", "24", "--width", "8", "--depth", "2"]
    argv += ["--steps", "16", "--trials", "1", "--device", "cpu", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "bench.json").read_text())["spinr_recipes"]
    rows = {r["recipe"]: r for r in report["rows"]}
    assert list(rows) == list(RECIPES)
    assert rows["siren (reference)"]["time_vs_siren"] == 1.0
    for name, (model, _) in RECIPES.items():
        r = rows[name]
        assert len(r["stage_psnr"]) == (3 if model == "spinr" else 1)
        assert 5.0 < r["psnr"] < 60.0
        assert all(math.isfinite(r[f"L@{c}"]) for c in LOST)
        assert r["time_vs_siren"] > 0
    table = (tmp_path / "spinr-recipes.md").read_text()
    assert all(name in table for name in RECIPES)


def test_decode_bench_measures_the_tiled_decoder_against_the_matmul_rate(tmp_path: Path, capsys) -> None:
    argv = ["bench", "decode", "--size", "40x30", "--net", "8x2", "--repeats", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "bench.json").read_text())["decode"]
    assert report["image"] == "40x30" and report["blas_threads"] == "1"
    assert report["tiled_identical_to_whole_frame"] is True
    # 1200 pixels x (8x2 + 2 x 8x8 + one 3x8 head) multiply-adds, 2 flops each
    assert report["flop_per_decode"] == 2 * 1200 * (16 + 128 + 24)
    for key in (
        "tiled_gflops",
        "matmul_gflops_1024",
        "share_of_matmul_rate",
        "progressive_over_one_full_decode",
    ):
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["torch_forward_s"] > 0


def test_rate_bench_checks_the_window_and_the_default_against_raw_rgb(
    tmp_path: Path, capsys, photo_crop
) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo_crop).save(folder / "a.png")
    argv = ["bench", "rate", "--dataset", str(folder), "--images", "1", "--rate-size", "48x32,64x48"]
    argv += ["--bpp-list", "4,0.1", "--steps", "12", "--default", "--device", "cpu", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "bench.json").read_text())["rate"]
    assert report["sizes"] == ["48x32", "64x48"]
    rows = report["rows"]
    assert [(r["size"], r["target_bpp"]) for r in rows] == [
        (size, bpp) for size in ("48x32", "64x48") for bpp in (4.0, 0.1, None)
    ]
    for r in rows:
        if r["target_bpp"] == 0.1:  # 19-38 bytes: under the smallest stream, refused by name
            assert "too small" in r["error"] and "bytes" not in r
        elif r["target_bpp"] is None:
            assert r["target_bytes"] >= 1 and r["bytes"] <= r["target_bytes"] and r["under_raw"] is True
        else:
            assert r["target_bytes"] == int(4 * r["raw_bytes"] / 24)
            assert r["in_window"] == (0.9 <= r["bytes"] / r["target_bytes"] <= 1.0)
    c = report["checks"]
    assert c["targeted"] == 2 and c["defaults"] == 2 and len(c["refused"]) == 2
    targeted = [r for r in rows if r["target_bpp"] == 4.0]
    assert c["in_window"] == sum(r["in_window"] for r in targeted) and c["defaults_under_raw"] == 2
    assert [e["size"] for e in report["summary"]] == ["48x32", "64x48"]


def test_format_bench_rows_mean_what_they_say() -> None:
    from benchmarks.format_sizes import settings

    # --bits applies to a fixed network; a rate preset (the size model's network, quantized to a
    # byte target) is one row at its default rate.
    assert settings("tiny", [6, 8]) == settings("paper", [6, 8]) == [6, 8]
    assert settings("quick", [6, 8]) == settings("standard", [6, 8]) == [None]


def test_format_bench_reports_sizes_beside_the_classical_codecs(tmp_path: Path, capsys) -> None:
    argv = [
        "bench",
        "format",
        "--presets",
        "tiny",
        "--bits-list",
        "4,8",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    rows = json.loads((tmp_path / "bench.json").read_text())["format"]["rows"]
    assert [(r["preset"], r["bits"], r["target_bytes"]) for r in rows] == [
        ("tiny", 4, None),
        ("tiny", 8, None),
    ]
    assert all(r["network"]["width"] == 16 for r in rows)
    assert rows[0]["bytes"] < rows[1]["bytes"] and rows[0]["bpp"] == round(rows[0]["bytes"] * 8 / 128**2, 4)
    for r in rows:
        assert (
            r["ladder_bytes"] > 0
            and r["header_bytes"] - r["ladder_bytes"] < 40
            and set(r["unit_packet_overhead"]) <= {11, 12}
        )
        assert set(r["classical"]) == {"jpeg", "jpeg-progressive", "webp", "jpeg2000", "avif"}
        assert all(c["bytes"] <= r["bytes"] or not c["fits"] for c in r["classical"].values())
        assert r["classical"]["jpeg2000"]["fits"]  # its ratio search reaches any size
        # splitting into base and refinements: the same final picture for more bytes, a smaller base
        splits = r["refinements"]
        assert [(x["levels"], x["bits"]) for x in splits] == [(1, 1), (1, 2), (1, 3), (2, 1)]
        for x in splits:
            assert x["one_shot_bytes"] == r["bytes"] < x["bytes"] and x["base_bytes"] < r["bytes"]
            assert x["final_psnr"] == pytest.approx(r["psnr"], abs=0.006) and x["split_cost"] > 0
        # The coder's checksum state costs 0-2 bytes a packet (a coder started from state 1 spends about
        # as much on its first codes, so a small packet may cost nothing more) and catches every flip.
        c = r["checksum"]
        assert -1 <= c["bytes_per_packet"] <= 3 and c["flips_caught_with_checksum"] == 1.0
        assert 0.5 < c["flips_caught_without"] <= c["flips_caught_with_checksum"]


def test_load_bench_streams_to_concurrent_clients_against_a_real_server(tmp_path: Path, capsys) -> None:
    argv = ["bench", "load", "--clients", "5", "--reference", "--client", "lean,full", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "load.json").read_text())
    assert report == json.loads((tmp_path / "bench.json").read_text())["load"]
    assert report["clients"] == 5 and report["errors"] == 0 and report["error_kinds"] == {}
    assert report["client"] == "lean" and list(report["other_clients"]) == ["full"]
    full = report["other_clients"]["full"]  # the second generator, against the same server and image
    assert full["client"] == "full" and full["errors"] == 0 and full["reference"]["errors"] == 0
    assert full["layers_per_stream"] == report["layers_per_stream"] == full["reference"]["layers_per_stream"]
    assert 0 < full["first_layer_s"]["p50"] <= full["first_layer_s"]["p99"] < 120
    assert report["started_server"] is True and report["layers_per_stream"] >= 1
    for key in ("first_layer_s", "complete_s"):
        p = report[key]
        assert 0 < p["p50"] <= p["p95"] <= p["p99"] <= p["max"] < 120
    assert report["first_layer_s"]["p50"] <= report["complete_s"]["p50"]
    rss = report["server_rss_mb"]
    assert 10 < rss["start"] <= rss["peak"] and rss["peak_over_start"] >= 1.0
    # CPU is counted in 10 ms ticks (/proc, getrusage): 5 streams may cost less than one on a fast run.
    assert report["server_cpu_ms_per_stream"] >= 0 and report["client_cpu_ms_per_stream"] >= 0
    assert report["load_average_start"] >= 0 and report["load_average"] >= 0
    ref = report["reference"]  # the same clients against a bare app sending the same messages
    assert ref["errors"] == 0 and ref["layers_per_stream"] == report["layers_per_stream"]
    assert 0 < ref["first_layer_s"]["p50"] <= ref["first_layer_s"]["p99"] < 120
    assert report["first_layer_s_p99_over_reference"] == round(
        report["first_layer_s"]["p99"] / ref["first_layer_s"]["p99"], 2
    )
    # /proc counts CPU in 10 ms ticks: 5 streams of either server may cost less than one tick (no ratio
    # for a bare app that measured none; a ratio of 0 for a spinr server that did).
    if ref["server_cpu_ms_per_stream"]:
        assert report["server_cpu_over_reference"] == round(
            report["server_cpu_ms_per_stream"] / ref["server_cpu_ms_per_stream"], 2
        )
    else:
        assert report["server_cpu_over_reference"] is None and ref["server_cpu_ms_per_stream"] == 0


def test_load_bench_refuses_an_unknown_client_by_name(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "load", "--client", "lean,wrk", "--out", str(tmp_path)])
    assert "unknown load client(s) 'wrk'; allowed: lean, full" in capsys.readouterr().err


def test_load_server_shares_the_benchmarks_session_in_a_process_group_of_its_own(tmp_path: Path) -> None:
    from benchmarks.load import LocalServer

    server = LocalServer(tmp_path / "data")
    server.start()
    try:
        assert server.process is not None
        pid = server.process.pid
        # The scheduler groups by session (autogroup): the server runs at the benchmark's priority.
        assert os.getsid(pid) == os.getsid(0)
        assert os.getpgid(pid) == pid != os.getpgid(0)  # stopped as one group, apart from ours
    finally:
        server.stop()
    assert server.process.poll() is not None


@pytest.mark.browser
def test_browser_bench_times_the_js_and_webgl2_paths_beside_numpy(tmp_path: Path, capsys) -> None:
    pytest.importorskip("playwright.sync_api")
    argv = ["bench", "browser", "--size", "24x16", "--net", "8x2", "--repeats", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "bench.json").read_text())["browser"]
    assert report["image"] == "24x16" and report["flop_per_decode"] == 2 * 384 * (16 + 128 + 24)
    paths = ["js", "webgl2"] if report["webgl2_context"]["available"] else ["js"]
    for name in paths:
        r = report[name]
        assert r["backend_used"] == name and r["full_decode_s"] >= 0 and r["gflops"] >= 0
        assert r["progressive_all_depths_s"] >= 0 and r["over_numpy_tiled"] >= 0  # ms timers at 24x16
    assert report["numpy_tiled_gflops"] > 0 and report["matmul_gflops_1024"] > 0


def test_train_bench_times_every_fast_path_option_against_a_reference_in_the_same_run(
    tmp_path: Path, capsys
) -> None:
    from benchmarks.train_bench import OPTIONS

    argv = [
        "bench",
        "train",
        "--fit-size",
        "16",
        "--fit-steps",
        "8",
        "--k",
        "3",
        "--width",
        "8",
        "--repeats",
        "1",
    ]
    argv += ["--depth", "2", "--images", "2", "--device", "cpu", "--out", str(tmp_path)]
    argv += ["--server-engines", "process"]  # Ray's rows: tests/test_engine_ray.py
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "train.json").read_text())
    assert report == json.loads((tmp_path / "bench.json").read_text())["train"]
    for section in ("loops", "options", "threads", "batched", "server"):
        rows = report[section]["rows"]
        assert rows[0]["speedup"] == 1.0, section  # the reference, timed in this run
        assert all(r["seconds"] > 0 and r["speedup"] > 0 and 0 < r["psnr"] < 60 for r in rows), section
        if section != "server":  # fits in this process: their CPU time too
            assert rows[0]["cpu_speedup"] == 1.0 and all(r["cpu_seconds"] > 0 for r in rows), section
    options = [r["variant"] for r in report["options"]["rows"]]
    assert options == [name for name, train in OPTIONS.items() if not train.get("compile")]
    bf16 = next(r for r in report["options"]["rows"] if "bf16" in r["variant"])
    assert math.isfinite(bf16["psnr_change_db"])
    assert [r["threads"] for r in report["threads"]["rows"]] == sorted({1, report["cores"]})
    # The batch trains each model as it trains alone.
    assert report["batched"]["k"] == 3 and report["batched"]["max_psnr_difference_batch_vs_alone_db"] < 0.01
    assert [r["variant"] for r in report["server"]["rows"]] == [
        "process pool, --batch 1 (reference)",
        "process pool, --batch 3",
    ]


def test_train_bench_names_a_bad_section(tmp_path: Path, capsys) -> None:
    assert main(["bench", "train", "--sections", "loops,warp", "--out", str(tmp_path)]) != 0
    assert "warp" in capsys.readouterr().err
