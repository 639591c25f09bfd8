"""Every experiment of the study end to end on a tiny generated dataset (2 images, 32x32, 2 seeds,
30 steps, nets 1/8 of the study's width), checking real properties of the outputs, not only that files exist."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codec.errors import ConfigError
from experiments import cli
from experiments.bdrate import bd_rate, bd_rate_curves, window
from experiments.neurons import draw_count
from experiments.rd import grid


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage import data

    folder = tmp_path_factory.mktemp("tinyset")
    Image.fromarray(data.astronaut()[100:164, 180:244]).save(folder / "a.png")
    Image.fromarray(data.coffee()[100:164, 200:264]).save(folder / "b.png")
    return folder


def run(name: str, dataset: Path, out: Path, *extra: str) -> dict:
    rc = cli.main(
        [
            name,
            "--dataset",
            str(dataset),
            "--profile",
            "tiny",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
            *extra,
        ]
    )
    assert rc == 0
    summary = json.loads((out / f"{name}.json").read_text())
    steps = int(extra[extra.index("--steps") + 1]) if "--steps" in extra else 30
    assert summary["experiment"] == name and summary["profile"]["steps"] == steps
    md = (out / f"{name}.md").read_text()
    assert md.startswith("# ") and "|---|" in md
    with open(out / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    for png in out.glob("*.png"):
        with Image.open(png) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    summary["_rows"] = rows
    return summary


def test_models_table(dataset: Path, tmp_path: Path) -> None:
    s = run("models", dataset, tmp_path, "--images", "1")
    rows = s["_rows"]
    labels = {r["model"] for r in rows}
    assert {"fourier", "siren", "mfn", "wire", "diner", "spinr", "spinr-paper"} <= labels
    assert len(rows) == 10 * 2  # 10 rows of Table 1 (+ SPINR variants) x 1 image x 2 seeds
    for r in rows:
        assert float(r["cf"]) == pytest.approx(32 * 32 * 3 / int(r["bytes"]), rel=1e-4)
    assert (tmp_path / "models.png").exists()


def test_neurons_counts_and_losses(dataset: Path, tmp_path: Path) -> None:
    s = run("neurons", dataset, tmp_path, "--models", "siren", "spinr-paper")
    rows = s["_rows"]
    assert {int(r["lost"]) for r in rows} == {1, 5, 10}
    # The tiny profile's widths are x0.125: each draw loses the paper's *fraction* of the neurons.
    assert all(int(r["lost_count"]) == draw_count(int(r["lost"]), 0.125, int(r["trial"]), 2) for r in rows)
    assert {int(r["lost_count"]) for r in rows if int(r["lost"]) == 10} == {1}
    for model in ("siren", "spinr-paper"):
        for c in (1, 5, 10):
            rs = [r for r in rows if r["model"] == model and int(r["lost"]) == c]
            assert len(rs) == 2 * 2 * 2  # images x seeds x trials
            lost = np.mean([float(r["psnr_lost"]) for r in rs])
            intact = np.mean([float(r["psnr_intact"]) for r in rs])
            assert lost <= intact + 0.05
    assert set(s["summary"]) == {"siren", "spinr-paper"}


@pytest.mark.parametrize(("k", "mean"), [(1, 0.25), (5, 1.25), (10, 2.5)])
def test_draw_count_loses_the_papers_fraction_on_average(k: int, mean: float) -> None:
    counts = [draw_count(k, 0.25, t, 8) for t in range(8)]
    assert sum(counts) / 8 == mean
    assert max(counts) - min(counts) <= 1
    assert [draw_count(k, 1.0, t, 5) for t in range(5)] == [k] * 5


def test_lose_neurons_zeroes_exactly_the_requested_rows() -> None:
    import torch

    from codec.models import build_model
    from experiments.neurons import lose_neurons, neuron_rows

    torch.manual_seed(0)
    m = build_model("siren", 8, 3)
    lost = lose_neurons(m, 5, np.random.default_rng(0))
    assert len(set(lost)) == 5
    rows = [(w.detach(), b.detach()) for w, b in neuron_rows(m)]
    zero_rows = [
        (li, j)
        for li, (w, b) in enumerate(rows)
        for j in range(w.shape[0])
        if bool(torch.all(w[j] == 0)) and float(b[j]) == 0.0
    ]
    assert sorted(zero_rows) == sorted(lost)
    assert float(m.output.weight.detach().abs().sum()) > 0  # the readout is never touched


def test_noise_sigma_zero_changes_nothing(dataset: Path, tmp_path: Path) -> None:
    s = run("noise", dataset, tmp_path, "--models", "siren")
    rows = s["_rows"]
    zero = [r for r in rows if float(r["sigma"]) == 0.0]
    assert len(zero) == 4
    for r in zero:
        assert float(r["psnr_weights"]) == float(r["psnr_clean"])
    big = [r for r in rows if float(r["sigma"]) == 0.1]
    assert np.mean([float(r["psnr_pixels"]) for r in big]) < 25  # pixel noise of 0.1 is ~20 dB
    assert (tmp_path / "noise_grid.png").exists()


def test_progressive_strip(dataset: Path, tmp_path: Path) -> None:
    s = run("progressive", dataset, tmp_path, "--depth", "3")
    assert all(len(v) == 4 for v in s["summary"].values())  # depths 0..3
    assert (tmp_path / "progressive_spinr.png").exists() and (
        tmp_path / "progressive_spinr-paper.png"
    ).exists()


def test_sensitivity_bands(dataset: Path, tmp_path: Path) -> None:
    s = run("sensitivity", dataset, tmp_path, "--models", "siren", "--images", "1", "--seeds", "1")
    rows = s["_rows"]
    assert {r["axis"] for r in rows} == {"lr", "width", "depth"}
    assert len({r["value"] for r in rows if r["axis"] == "lr"}) == 5
    assert len(s["summary"]["siren:lr"]) == 5


def test_rd_rate_controlled_encodes_against_the_classical_codecs(dataset: Path, tmp_path: Path) -> None:
    """Real rate-controlled encodes on one 32x32 crop: every file in its window, SPINR's prefixes
    nested inside its final file, PSNR growing with the rate (loosely: nets of 4-9 neurons trained 100
    steps are noisy), the classical codecs measured at the same bytes, and finite BD-rates."""
    s = run("rd", dataset, tmp_path, "--images", "1", "--steps", "100", "--rates", "3", "4", "6", "8")
    rates = [3.0, 4.0, 6.0, 8.0]
    assert s["settings"]["rates"] == rates and s["settings"]["effort"] == "quick" and s["errors"] == 0
    pts = s["points"]
    assert set(pts) == {"spinr", "spinr-p1", "spinr-p2", "spinr-p3", "siren"}
    for model in ("spinr", "siren"):
        assert [p["target_bpp"] for p in pts[model]] == rates
        for p in pts[model]:
            target = p["target_bpp"] * 32 * 32 / 8
            assert 0.9 * target <= p["bytes"] <= target and p["in_window"] == 1  # the rate window
            for codec in ("jpeg", "webp", "jpeg2000", "avif"):
                # the codec's file is at most the INR's bytes unless it cannot make one that small
                assert p[f"{codec}_over"] == 1 or p[f"{codec}_bytes"] <= p["bytes"]
                assert 5 < p[codec] < 80
        psnrs = [p["psnr"] for p in pts[model]]
        assert psnrs[-1] > psnrs[0] + 1.0, psnrs  # 8 bpp clearly beats 3 bpp
        assert psnrs[2] + psnrs[3] > psnrs[0] + psnrs[1], psnrs  # monotone enough: the upper half wins
    for k, t in enumerate(rates):  # prefixes: nested bytes, the final decode above the first prefix's
        chain = [pts[f"spinr-p{i}"][k] for i in (1, 2, 3)] + [pts["spinr"][k]]
        # a stream sent without its last stages (--trim) has fewer packets: those prefixes are all of it
        for a, b in zip(chain, chain[1:], strict=False):
            assert a["bytes"] < b["bytes"] or (a["bytes"], a["psnr"]) == (b["bytes"], b["psnr"]), t
        assert chain[-1]["psnr"] > chain[0]["psnr"], t
    rows = s["_rows"]
    for r in rows:  # a prefix as long as its stream is the final file, and says so
        if r["curve"].startswith("spinr-p") and str(r.get("trimmed")) == "True":  # the CSV's strings
            final = next(f for f in rows if f["curve"] == "spinr" and f["target_bpp"] == r["target_bpp"])
            assert (r["bytes"], r["psnr"]) == (final["bytes"], final["psnr"]) and int(final["hidden"]) < 3
    assert {r["curve"] for r in rows} >= {"jpeg", "webp", "jpeg2000", "avif", "spinr", "spinr-p1", "siren"}
    assert {float(r["target_bpp"]) for r in rows if r["curve"] == "avif"} == set(grid(tuple(rates)))
    bd = s["bd_rate"]
    assert set(bd["spinr"]) == {"jpeg", "webp", "jpeg2000", "avif"}
    # JPEG cannot make a 32x32 file under ~5 bpp (its headers): its BD-rates may be undefined (None)
    finite = [v for c in ("spinr", "siren") for v in bd[c].values() if v is not None]
    assert len(finite) >= 2 and all(v > -100 for v in finite)
    assert s["bd_rate_vs_jpeg"]["spinr"] == bd["spinr"]["jpeg"]
    md = (tmp_path / "rd.md").read_text()
    assert "BD-rate" in md and "prefix 1" in md and "JPEG 2000" in md


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rates", "1", "2"], "at least 4 rates"),
        (["--models", "wire"], "rd experiment encodes spinr and siren"),
        (["--effort", "paper"], "not a rate preset"),
    ],
)
def test_rd_refuses_too_few_rates_and_other_models(
    dataset: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cli.main(["rd", "--dataset", str(dataset), "--profile", "tiny", *extra, "--out", str(tmp_path)])


def test_bd_window_spans_the_test_curve() -> None:
    ref = [(0.1 * 2**k, 20.0 + 2 * k) for k in range(10)]  # PSNR 20, 22, ... 38
    assert window(ref, 25.0, 29.0) == ref[2:6]  # 24 (last <= 25) .. 30 (first >= 29)
    assert window(ref, 27.0, 27.5) == ref[2:6]  # widened to 4 points
    assert window(ref, 10.0, 50.0) == ref
    assert window(ref, 37.5, 60.0) == ref[6:]
    # a reference twice as dense in rate: BD-rate -50 % for a curve at half its rates, from the window
    test = [(b / 2, p) for b, p in ref[3:7]]
    assert bd_rate_curves(ref, test) == pytest.approx(-50.0, abs=1e-6)
    assert np.isnan(bd_rate_curves(ref, test[:3]))


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    rate = [0.1, 0.2, 0.4, 0.8, 1.6]
    p = [24.0, 27.0, 30.0, 33.0, 35.5]
    assert abs(bd_rate(rate, p, rate, p)) < 1e-9
    half = [r / 2 for r in rate]
    assert bd_rate(rate, p, half, p) == pytest.approx(-50.0, abs=1e-6)
    assert np.isnan(bd_rate(rate, p, rate, [x + 50 for x in p]))


def test_abr_policies_at_the_deadline(dataset: Path, tmp_path: Path) -> None:
    s = run(
        "abr", dataset, tmp_path, "--images", "1", "--depth", "4", "--traces", "steady", "drop-10x",
        "--deadlines", "1", "--loss-rates", "0", "0.1", "--channel-seeds", "2",
    )  # fmt: skip
    traces = s["traces"]
    stream = s["stream"][0]
    assert set(traces) == {"steady/loss0/1s", "steady/loss0.1/1s", "drop-10x/loss0/1s", "drop-10x/loss0.1/1s"}
    for cond, policies in traces.items():
        assert {"all", "abr", "abr-units", "fixed-base"} <= set(policies)
        for p in policies.values():
            assert set(p) >= {"psnr_at_deadline", "bytes", "first_picture_s", "stalls"} and p["runs"] == 2
        # the controller never does worse than send-everything and never spends more on a lossless link
        # than the stream it streams (abr: the refined one, whose splitting costs bytes)
        assert policies["abr"]["psnr_at_deadline"] >= policies["all"]["psnr_at_deadline"] - 1e-9, cond
        assert policies["abr-units"]["psnr_at_deadline"] >= policies["all"]["psnr_at_deadline"] - 1e-9, cond
        if "loss0/" in cond:
            assert policies["abr-units"]["bytes"] <= policies["all"]["bytes"]
            assert policies["abr"]["bytes"] <= stream["refined_bytes"]
    # losses are repaired: with 10 % loss ABR's picture is better than send-everything's on average
    assert (
        traces["drop-10x/loss0.1/1s"]["abr"]["psnr_at_deadline"]
        >= traces["drop-10x/loss0.1/1s"]["all"]["psnr_at_deadline"]
    )
    assert (
        s["decide"]["decisions"] > 0
        and s["decide"]["median_us"] < 1000
        and s["decide"]["cpu_median_us"] < 1000
    )
    assert stream["packets"] == 5 and stream["bytes"] > 0 and stream["refined_packets"] == 10
    ladder = stream["ladder"]  # the final level is the one-shot picture, in more bytes
    assert ladder["level_1"]["psnr"] == pytest.approx(ladder["one_shot"]["psnr"], abs=0.006)
    assert ladder["level_0"]["bytes"] < ladder["one_shot"]["bytes"] < ladder["level_1"]["bytes"]
    assert ladder["split_cost"] == pytest.approx(
        ladder["level_1"]["bytes"] / ladder["one_shot"]["bytes"] - 1, abs=1e-3
    )
    assert stream["bpp"] == pytest.approx(stream["bytes"] * 8 / (32 * 32), rel=1e-3)
    for c in ("jpeg-progressive", "webp"):  # classical codecs in at most the stream's bytes
        assert stream["classical"][c]["psnr"] is None or stream["classical"][c]["bytes"] <= stream["bytes"]
    assert (tmp_path / "abr_at_deadline.png").exists() and (tmp_path / "abr_over_time.png").exists()


def test_rd_resume_reuses_only_equal_finished_jobs(tmp_path: Path) -> None:
    """--resume: rows an earlier run spilled are reused for jobs with the same image, model, rate,
    effort, steps and seed (a half-written last line is skipped); anything else runs again."""
    from experiments.rd import CLASSICAL, CodecGrid, EncodeGroup, _done_grid, _done_group, earlier_rows

    img = np.zeros((8, 8, 3), np.uint8)
    key = {"model": "spinr", "target_bpp": 0.5, "effort": "quick", "steps": 100, "seed": 0}
    rows = [{"image": n, "curve": c, **key} for n in ("a", "b") for c in ("spinr-p1", "spinr")]
    grid_rows = [{"image": "a", "curve": c, "target_bpp": r} for c in CLASSICAL for r in (0.25, 0.5)]
    with open(tmp_path / "rd-encode.partial.jsonl", "w") as f:
        f.write(json.dumps(rows) + "\n" + '[{"image": "c", "cur')  # the kill cut the last line
    with open(tmp_path / "rd-classical.partial.jsonl", "w") as f:
        f.write(json.dumps(grid_rows) + "\n")
    earlier = earlier_rows(tmp_path, "rd-encode")
    assert len(earlier) == 4

    def group(names: list[str], **kw: object) -> EncodeGroup:
        fields = {"model": "spinr", "bpp": 0.5, "effort": "quick", "steps": 100, "seed": 0, **kw}
        return EncodeGroup(images=[img] * len(names), names=names, **fields)  # type: ignore[arg-type]

    kept = _done_group(earlier, group(["a", "b"]))
    assert kept is not None and sorted((r["image"], r["curve"]) for r in kept) == [
        ("a", "spinr"), ("a", "spinr-p1"), ("b", "spinr"), ("b", "spinr-p1")]  # fmt: skip
    assert _done_group(earlier, group(["a", "c"])) is None  # c never finished
    assert _done_group(earlier, group(["a"], steps=120)) is None  # other settings run again
    assert _done_group(earlier, group(["a"], bpp=1.0)) is None
    grids = earlier_rows(tmp_path, "rd-classical")
    assert _done_grid(grids, CodecGrid(image=img, image_name="a", rates=[0.25, 0.5])) is not None
    assert _done_grid(grids, CodecGrid(image=img, image_name="a", rates=[0.25, 1.0])) is None
    assert earlier_rows(tmp_path / "nothing", "rd-encode") == []
