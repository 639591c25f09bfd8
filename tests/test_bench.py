"""``spinr bench``: each benchmark runs end to end at a tiny size and writes what it promises."""

from __future__ import annotations

import json
import math
from pathlib import Path

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


def test_decode_bench_writes_speed_ratios(tmp_path: Path, capsys) -> None:
    assert main(["bench", "decode", "--size", "16", "--repeats", "1", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "bench.json").read_text())["decode"]
    numbers = [v for v in report.values() if isinstance(v, int | float)]
    assert numbers and all(v > 0 for v in numbers)


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
    assert [(r["preset"], r["bits"]) for r in rows] == [("tiny", 4), ("tiny", 8)]
    assert rows[0]["bytes"] < rows[1]["bytes"] and rows[0]["bpp"] == round(rows[0]["bytes"] * 8 / 128**2, 4)
    for r in rows:
        assert r["header_bytes"] < 40 and set(r["unit_packet_overhead"]) <= {11, 12}
        assert set(r["classical"]) == {"jpeg", "jpeg-progressive", "webp", "jpeg2000", "avif"}
        assert all(c["bytes"] <= r["bytes"] or not c["fits"] for c in r["classical"].values())
        assert r["classical"]["jpeg2000"]["fits"]  # its ratio search reaches any size
        # The coder's checksum state costs 0-2 bytes a packet (a coder started from state 1 spends about
        # as much on its first codes, so a small packet may cost nothing more) and catches every flip.
        c = r["checksum"]
        assert -1 <= c["bytes_per_packet"] <= 3 and c["flips_caught_with_checksum"] == 1.0
        assert 0.5 < c["flips_caught_without"] <= c["flips_caught_with_checksum"]


def test_load_bench_streams_to_concurrent_clients_against_a_real_server(tmp_path: Path, capsys) -> None:
    assert main(["bench", "load", "--clients", "5", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "load.json").read_text())
    assert report == json.loads((tmp_path / "bench.json").read_text())["load"]
    assert report["clients"] == 5 and report["errors"] == 0 and report["error_kinds"] == {}
    assert report["started_server"] is True and report["layers_per_stream"] >= 1
    for key in ("first_layer_s", "complete_s"):
        p = report[key]
        assert 0 < p["p50"] <= p["p95"] <= p["p99"] <= p["max"] < 120
    assert report["first_layer_s"]["p50"] <= report["complete_s"]["p50"]
    rss = report["server_rss_mb"]
    assert 10 < rss["start"] <= rss["peak"] and rss["peak_over_start"] >= 1.0
    assert report["server_cpu_ms_per_stream"] > 0 and report["client_cpu_ms_per_stream"] > 0
