"""The packet-loss experiment (experiments/packet_loss.py, experiments/loss_streams.py) and its
simulation (streaming/transmission.py, streaming/subjects.py, streaming/matched.py).

One tiny run (2 generated 32x32 images, tiny profile: real rate-controlled encodes at 8 bpp) is shared
by the property tests; a second run checks that seeded runs reproduce. Unit tests cover the JPEG "a
lost packet loses everything after" logic, the equal-bytes match (bytes incl. protection, identical
channel draws), overhead accounting, CRC handling and option validation without training anything.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _bitstreams import make_stream
from PIL import Image, ImageFile

from codec.classical import encode as encode_image
from codec.errors import ConfigError
from codec.metrics import psnr
from experiments import cli, loss_streams
from experiments import packet_loss as loss_exp
from experiments.datasets import load_dataset
from experiments.profiles import profile_from_args
from netsim import Channel, ChannelConfig, ProtectionPlan, encode
from streaming.matched import jpeg_in_packets, matched_jpeg, wire_bytes
from streaming.subjects import (
    GREY,
    InrSubject,
    JpegSubject,
    complete_scans,
    critical_packets,
    cut,
    decode_jpeg,
    intact_prefix,
    truncated_images_allowed,
)
from streaming.transmission import Received, overhead, restamp, transmit

TOL_DB = 0.3
"""Noise allowed when a mean over channel draws should not rise with the loss rate."""
MATCH_TOL = 0.05
"""The matched JPEG file (before its padding) is within this fraction under the SPINR stream's bytes:
one JPEG quality step is a few percent of a file."""
OWN_TOL = 0.15
"""A JPEG in packets of its own size gets within this fraction of the target wire bytes: one quality
step, or one more packet (with its envelope and parity), may overshoot."""
RATE = 8.0
"""The tiny profile's rate target (bpp): a 32x32 progressive JPEG cannot be much smaller."""
PROTECTED = ("repeat:3", "repeat:3+xor:4")


def _s(name: str) -> str:
    return loss_streams.subject_name(RATE, name)


def _args(dataset: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    argv = ["loss", "--dataset", str(dataset), "--profile", "tiny", "--out", str(out), "--json"]
    return parser.parse_args(argv + ["--channel-seeds", "30", *extra])


def _image(seed: int) -> np.ndarray:
    """A smooth 32x32 picture with some texture (an INR can fit it a little in a few steps)."""
    y, x = np.mgrid[0:32, 0:32] / 31.0
    rng = np.random.default_rng(seed)
    base = np.stack([np.sin(3 * x + seed), np.cos(2 * y), x * y], axis=-1) * 0.4 + 0.5
    return np.clip((base + rng.normal(0, 0.03, base.shape)) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lossdata")
    for i in range(2):
        Image.fromarray(_image(i)).save(folder / f"img{i}.png")
    return folder


def _run(dataset: Path, out: Path) -> dict[str, Any]:
    args = _args(dataset, out, "--mtu", "100")  # ~10 datagrams per 1 KB stream
    profile = profile_from_args(args)
    out.mkdir(parents=True, exist_ok=True)
    return loss_exp.run(load_dataset(args.dataset, profile), profile, args, out)


@pytest.fixture(scope="module")
def run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("lossout")
    return _run(dataset, out), out


def _means(curve: list[list[float]]) -> list[float]:
    return [m for _, m, _ in curve]


def test_registered_and_files_written(run: tuple[dict[str, Any], Path]) -> None:
    summary, out = run
    assert "loss" in cli.EXPERIMENTS
    for name in ("loss.md", "loss.csv", "loss.png", "loss_burst.png", "loss_ber.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "loss.md").read_text()
    assert "header unprotected" in md and "skip" in md and "overhead" in md
    assert "equal bytes" in md and "JPEG on the wire" in md
    assert summary["groups"] == 2 and summary["errors"] == []  # 2 images, every encode done
    assert summary["settings"]["rates"] == [RATE] and summary["settings"]["effort"] == "quick"
    assert all(np.isfinite(summary["conceal"][c]) for c in ("prefix", "skip"))
    names = ["siren", "spinr/prefix", "spinr/skip", "jpeg", "jpeg/mtu"]
    names += [f"{k}+{p}" for p in PROTECTED for k in ("spinr/prefix", "jpeg", "jpeg/mtu")]
    assert set(summary["clean"]) == {_s(n) for n in names}


def test_streams_are_rate_controlled_encodes(run: tuple[dict[str, Any], Path]) -> None:
    """What ``spinr encode --bpp 8`` makes: every file in its rate window, with the classical codecs
    measured at the same bytes beside it."""
    summary, _ = run
    e = summary["equal_bytes"][f"{RATE:g}"]
    assert e["images"] == 2
    target = RATE * 32 * 32 / 8
    for m in ("spinr", "siren"):
        x = e["models"][m]
        assert 0.9 * target <= x["bytes"] <= target and x["bpp"] == pytest.approx(x["bytes"] * 8 / 1024)
        assert 10 < x["psnr"] < 60
        for c in ("jpeg", "webp", "jpeg2000", "avif"):
            assert x[f"{c}_over"] > 0 or x[f"{c}_bytes"] <= x["bytes"], (m, c)
            assert 5 < x[f"{c}_psnr"] < 80
    assert summary["clean"][_s("spinr/prefix")] == pytest.approx(e["models"]["spinr"]["psnr"])


def test_jpeg_gets_the_same_bytes_and_protection(run: tuple[dict[str, Any], Path]) -> None:
    """The JPEG's bytes on the wire incl. protection are exactly SPINR's incl. the same protection on
    every image; its file (before the padding) within MATCH_TOL under SPINR's."""
    summary, _ = run
    pairs = summary["equal_bytes"][f"{RATE:g}"]["pairs"]
    own = {f"{p} (JPEG in MTU packets)" for p in PROTECTED}
    assert set(pairs) == {"none", *PROTECTED, *own}
    spinr_bytes = summary["equal_bytes"][f"{RATE:g}"]["models"]["spinr"]["bytes"]
    assert pairs["none"]["spinr_wire"] == pytest.approx(spinr_bytes)
    for spec in own:  # packetised its own way: at most the protected SPINR stream's bytes on the wire
        p = pairs[spec]
        assert p["jpeg_over"] == 0 and 1 - OWN_TOL <= p["ratio_min"] <= p["ratio_max"] <= 1.0, (spec, p)
        assert p["spinr_wire"] == pairs[spec.split()[0]]["spinr_wire"]
    for spec, p in ((s, p) for s, p in pairs.items() if s not in own):
        assert p["jpeg_over"] == 0, spec
        assert p["ratio_min"] == p["ratio_max"] == 1.0, (spec, p)  # exactly the same bytes on the wire
        assert (1 - MATCH_TOL) * spinr_bytes <= p["jpeg_bytes"] <= spinr_bytes, (spec, p)  # the file itself
        if spec != "none":  # protection costs both sides the same: well above the payload
            oh = summary["overhead"][_s(f"jpeg+{spec}")]
            assert oh["payload_bytes"] + oh["bytes"] == pytest.approx(p["jpeg_wire"])
            assert p["spinr_wire"] > spinr_bytes


def test_zero_loss_is_the_no_loss_psnr(run: tuple[dict[str, Any], Path]) -> None:
    summary, _ = run
    for subject, clean in summary["clean"].items():
        for header in ("reliable", "lossy"):
            x, mean, std = summary["loss"][header][subject][0]
            assert x == 0.0
            assert std == pytest.approx(0.0, abs=1e-9), (subject, header)  # every draw == its clean PSNR
            assert mean == pytest.approx(clean, abs=1e-9), (subject, header)
        for mode in ("crc", "use"):
            assert summary["ber_ppm"][mode][subject][0][1] == pytest.approx(clean, abs=1e-9)


def test_psnr_does_not_rise_with_loss(run: tuple[dict[str, Any], Path]) -> None:
    summary, _ = run
    for header in ("reliable", "lossy"):
        for subject, curve in summary["loss"][header].items():
            m = _means(curve)
            assert len(m) == len(loss_exp.DEFAULT_RATES)
            assert all(b <= a + TOL_DB for a, b in zip(m, m[1:], strict=False)), (subject, header, m)
            assert m[-1] < m[0] or "+" in subject, (subject, header, m)


def test_protection_pays_at_20_percent(run: tuple[dict[str, Any], Path]) -> None:
    summary, _ = run
    for header in ("reliable", "lossy"):
        at = {s: dict((x, m) for x, m, _ in c) for s, c in summary["loss"][header].items()}
        for protected in PROTECTED:
            assert at[_s(f"spinr/prefix+{protected}")][0.2] >= at[_s("spinr/prefix")][0.2], (
                header,
                protected,
            )
    # Without a reliable header the unprotected stream loses whole pictures; the protected one does not.
    lossy = summary["expected"]["lossy"]
    assert lossy[_s("spinr/prefix+repeat:3")]["10%"] >= lossy[_s("spinr/prefix")]["10%"]


def test_overhead_is_the_real_extra_bytes(run: tuple[dict[str, Any], Path]) -> None:
    summary, _ = run
    for name, oh in summary["overhead"].items():
        assert oh["bytes"] == oh["accounted_bytes"] > 0, name  # channel's count == netsim's accounting
        assert oh["ratio"] == pytest.approx(oh["bytes"] / oh["payload_bytes"]), name


def test_seeded_runs_reproduce(run: tuple[dict[str, Any], Path], dataset: Path, tmp_path: Path) -> None:
    again = _run(dataset, tmp_path / "again")
    assert json.dumps(again, sort_keys=True) == json.dumps(run[0], sort_keys=True)


# -- unit tests of the simulation ------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 180:244])


def test_lost_jpeg_packet_loses_everything_after(photo: np.ndarray) -> None:
    data = encode_image(photo, "jpeg-progressive", 90)
    sizes = [300, 250, 400, 500, 10_000]
    chunks = cut(data, sizes)
    assert b"".join(chunks) == data and [len(c) for c in chunks[:-1]] == sizes[: len(chunks) - 1]
    have = dict(enumerate(chunks))
    del have[2]
    prefix, n = intact_prefix(have, len(chunks))
    assert n == 2 and prefix == chunks[0] + chunks[1]  # packets 3, 4 arrived but are useless
    assert intact_prefix({i: c for i, c in enumerate(chunks) if i != 0}, len(chunks)) == (b"", 0)

    subject = JpegSubject(data, sizes, photo)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert subject.score(Received(dict(enumerate(chunks)))) == (psnr(full, photo), len(chunks))
    lost2, used = subject.score(Received(have))
    rgb, ok = decode_jpeg(prefix, photo.shape)
    assert ok and used == 2 and lost2 == psnr(rgb, photo) < subject.full_psnr
    # Losing the first packet: no scan at all -> the grey picture, nothing decoded.
    grey = np.full(photo.shape, GREY, np.uint8)
    assert subject.score(Received({i: c for i, c in enumerate(chunks) if i})) == (psnr(grey, photo), 0)


def test_complete_scans_cuts_back_to_a_scan_boundary(photo: np.ndarray) -> None:
    data = encode_image(photo, "jpeg-progressive", 90)
    first_sos = data.find(b"\xff\xda")
    assert complete_scans(data[: first_sos + 10]) is None  # first scan not finished
    for n in range(first_sos + 10, len(data), 97):
        body = complete_scans(data[:n])
        if body is None:
            continue
        assert len(body) <= n + 2 and body.endswith(b"\xff\xd9")
        rgb, ok = decode_jpeg(data[:n], photo.shape)
        assert ok and rgb.mean() > 20  # never Pillow's all-black picture of a mid-scan cut


def test_truncated_images_flag_is_restored() -> None:
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(RuntimeError), truncated_images_allowed():
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
        raise RuntimeError
    assert before == ImageFile.LOAD_TRUNCATED_IMAGES


def test_siren_missing_any_unit_decodes_nothing() -> None:
    bs = make_stream(width=8, hidden=2)
    ref = np.zeros((9, 12, 3), np.uint8)
    subject = InrSubject(bs, ref)
    assert critical_packets(bs) == [0, 1, 2, 3, 4]
    full = dict(enumerate(subject.packets))
    assert subject.score(Received(full))[1] == 4
    for gone in range(len(full)):
        p, used = subject.score(Received({i: d for i, d in full.items() if i != gone}))
        assert used == 0 and p == psnr(np.full(ref.shape, GREY, np.uint8), ref)


def test_overhead_matches_the_wire_and_the_channel() -> None:
    packets = [p.to_bytes() for p in make_stream(hidden=3).packets()]
    plan = ProtectionPlan.unequal(len(packets), [0, 1], "repeat:3", "xor:2")
    extra, ratio = overhead(packets, plan)
    wire = encode(packets, plan).wire
    assert extra == sum(map(len, wire)) - sum(map(len, packets)) > 0
    assert ratio == pytest.approx(extra / sum(map(len, packets)))
    ch = Channel(ChannelConfig())
    ch.transmit(wire)
    assert (
        ch.stats["bytes_sent"]
        == transmit(packets, ChannelConfig(), plan).wire_bytes
        == extra + sum(map(len, packets))
    )
    assert overhead(packets, None) == (0, 0.0)


@pytest.mark.parametrize("spec", ["", "repeat:3", "repeat:3+xor:4", "rs:2:1+xor:2"])
def test_matched_jpeg_has_the_same_bytes_packets_and_draws(photo: np.ndarray, spec: str) -> None:
    """A JPEG matched to a spinr stream: exactly its bytes on the wire incl. the same protection (the
    JPEG file itself within MATCH_TOL under the stream's payload, then zero padding), its packet sizes
    and plan, and every channel seed loses and damages exactly the same packets of both."""
    bs = make_stream(width=24, hidden=3)
    packets = [p.to_bytes() for p in bs.packets()]
    sizes = [len(p) for p in packets]
    plan_for = loss_streams.plan_for([0, 1], spec) if spec else (lambda n: None)
    target = wire_bytes(sizes, plan_for(len(sizes)))
    assert target == transmit(packets, ChannelConfig(mtu=100), plan_for(len(sizes))).wire_bytes
    m = matched_jpeg(photo, sizes, plan_for)
    assert m.fits and m.wire_bytes == target
    assert (1 - MATCH_TOL) * sum(sizes) <= m.file_bytes <= sum(sizes) == len(m.data)
    assert m.data[: m.file_bytes].endswith(b"\xff\xd9") and not any(m.data[m.file_bytes :])
    assert b"".join(m.packets) == m.data and [len(p) for p in m.packets] == sizes
    assert m.wire_bytes == transmit(m.packets, ChannelConfig(mtu=100), m.plan).wire_bytes
    if spec:
        assert m.plan is not None and m.plan.overrides.keys() == {0, 1}
        assert str(m.plan.default) == (spec.partition("+")[2] or "none")
    lost = 0
    for seed in range(40):
        for channel in (
            ChannelConfig(loss=0.2, mtu=100, seed=seed),
            ChannelConfig(ber=3e-4, mtu=100, seed=seed),
        ):
            a = transmit(packets, channel, plan_for(len(sizes)))
            b = transmit(m.packets, channel, m.plan)
            assert (a.intact.keys(), a.damaged.keys()) == (b.intact.keys(), b.damaged.keys()), (seed, channel)
            lost += len(a.intact) < len(sizes)
    assert lost > 10  # the draws did hit packets
    padded = JpegSubject(m.data, sizes, photo)
    assert padded.full_psnr == JpegSubject(m.data[: m.file_bytes], sizes, photo).full_psnr  # padding unread


@pytest.mark.parametrize("spec", ["", "repeat:3", "repeat:3+xor:4"])
def test_jpeg_in_its_own_packets_fits_the_wire_bytes(photo: np.ndarray, spec: str) -> None:
    """The JPEG in MTU-sized packets: at most the target bytes on the wire incl. its protection (and
    within OWN_TOL of it), packets of the MTU but the last, the first ones protected."""
    plan_for = loss_streams.plan_for([0, 1, 2], spec) if spec else (lambda n: None)
    target = 2000
    m = jpeg_in_packets(photo, 100, plan_for, target)
    assert m.fits and (1 - OWN_TOL) * target <= m.wire_bytes <= target
    assert b"".join(m.packets) == m.data and len(m.data) == m.file_bytes
    assert all(len(p) == 100 for p in m.packets[:-1]) and 0 < len(m.packets[-1]) <= 100
    assert m.wire_bytes == transmit(m.packets, ChannelConfig(mtu=100), m.plan).wire_bytes
    if spec:
        assert m.plan is not None and m.plan.overrides.keys() == {0, 1, 2}
        assert m.wire_bytes > m.file_bytes + 28 * len(m.packets)  # envelopes and copies counted
        assert m.file_bytes < matched_jpeg(photo, [100, 1900], lambda n: None).file_bytes


def test_matched_jpeg_too_small_a_target_is_flagged(photo: np.ndarray) -> None:
    m = matched_jpeg(photo, [100, 50], lambda n: None)
    assert not m.fits and m.wire_bytes == len(m.data) == m.file_bytes > 150 and m.quality == 1


def test_loss_rates_are_checked(tmp_path: Path) -> None:
    args = _args(tmp_path, tmp_path, "--rates", "1", "2", "3", "4", "5")
    with pytest.raises(ConfigError, match="at most 4 rates"):
        loss_streams.settings(profile_from_args(args), args)
    assert loss_streams.split_subject(loss_streams.subject_name(0.5, "jpeg+repeat:3")) == (
        0.5,
        "jpeg+repeat:3",
    )


def test_reliable_header_and_crc() -> None:
    packets = [p.to_bytes() for p in make_stream().packets()]
    rec = transmit(packets, ChannelConfig(loss=0.9, seed=3), reliable=(0,))
    assert rec.intact[0] == packets[0]
    hit = transmit(packets, ChannelConfig(ber=3e-3, seed=1))
    assert hit.damaged and all(i not in hit.intact for i in hit.damaged)
    for data in hit.damaged.values():
        fixed = restamp(data)
        assert fixed is None or len(fixed) == len(data)


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--loss-rates", "1.5", "--loss-rates"),
        ("--bursts", "0.5", "--bursts"),
        ("--bers", "0.5", "--bers"),
        ("--channel-seeds", "-3", "--channel-seeds"),
        ("--protection", "repeat:x", "repeat:x"),
        ("--mtu", "8", "--mtu 8"),
    ],
)
def test_bad_options_name_the_value(flag: str, value: str, needle: str, tmp_path: Path) -> None:
    args = _args(tmp_path, tmp_path, flag, value)
    with pytest.raises(ConfigError, match=needle.replace("+", r"\+")):
        loss_exp.options_from_args(args, profile_from_args(args))
