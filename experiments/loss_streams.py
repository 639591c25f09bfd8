"""The packet-loss experiment's streams: real rate-controlled encodes and the classical streams matched
to them byte for byte, as *lanes* (one transmission per channel draw, scored by one or more subjects).

The INR streams are exactly what ``spinr encode --bpp B`` makes, through the RD experiment's own encode
jobs (:func:`experiments.rd.encode_group`). For every SPINR stream the lanes are:

- ``siren``: the SIREN encode at the same target (its own bytes, within the same rate window);
- ``spinr/prefix``, ``spinr/skip``: the SPINR stream unprotected, decoded with each concealment;
- ``spinr/prefix+SPEC``: the SPINR stream under protection ``SPEC`` (header and stage 0 get CRIT);
- ``jpeg``: the best progressive JPEG of at most the SPINR stream's bytes, padded to exactly them and
  cut at the SPINR packets' sizes (:func:`streaming.matched.matched_jpeg`);
- ``jpeg+SPEC``: that JPEG under the same protection plan: the same packet indices get the same scheme,
  so its bytes *including* protection are exactly the protected SPINR stream's, and every channel seed
  drops the same packets of both;
- ``jpeg/mtu``: the ``jpeg`` file sent as MTU-sized packets (one datagram each: a loss truncates the
  file at that datagram instead of at the start of a SPINR-sized packet, the JPEG's best case);
- ``jpeg/mtu+SPEC``: a JPEG in MTU-sized packets under ``SPEC``, its packets holding the bytes of SPINR's
  critical packets getting CRIT, the best quality whose bytes on the wire are at most the protected
  SPINR stream's (:func:`streaming.matched.jpeg_in_packets`: same bytes, not the same datagrams).

Subjects are named ``"{bpp} bpp {lane subject}"`` (e.g. ``0.5 bpp jpeg+repeat:3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.errors import ConfigError, SpinrError
from experiments import rd
from experiments.profiles import Profile

RATES: dict[str, tuple[float, ...]] = {
    "tiny": (8.0,),
    "quick": (1.0, 2.0),
    "mini": (0.5, 1.0),
    "paper": (0.3, 0.6),
}
"""Rate targets (bpp) per profile: rates where progressive JPEG can make a file of the same size."""
MAX_RATES = 4
MODELS = ("siren", "spinr")
STREAM_ID = 0x5E00
PROTECTED_CONCEAL = "prefix"
"""Concealment of the protected streams: the decoder's default, and the better one in docs/LOSS.md."""


def subject_name(bpp: float, name: str) -> str:
    return f"{bpp:g} bpp {name}"


def split_subject(subject: str) -> tuple[float, str]:
    """``"0.5 bpp jpeg"`` -> (0.5, "jpeg")."""
    bpp, _, name = subject.partition(" bpp ")
    return float(bpp), name


def settings(profile: Profile, args: Any) -> tuple[tuple[float, ...], str, int]:
    """Rate targets, encode preset and steps (``--rates`` 1..4 rates, ``--effort``, ``--steps``)."""
    return rd.rd_settings(profile, args, RATES, (1, MAX_RATES, "for the loss experiment"))


def encode_jobs(images: list[tuple[str, np.ndarray]], profile: Profile, args: Any) -> list[rd.EncodeGroup]:
    rates, effort, steps = settings(profile, args)
    return rd.encode_groups(
        images,
        list(MODELS),
        rates,
        1,
        effort=effort,
        steps=steps,
        seed=0,
        device=getattr(args, "device", "cpu"),
    )


def stream_job(job: rd.EncodeGroup) -> list[dict[str, Any]]:
    """Each image's encode (bitstream, bytes, PSNR) and the classical codecs at the same bytes."""
    out: list[dict[str, Any]] = []
    for name, image, res in zip(job.names, job.images, rd.encode_group(job), strict=True):
        row: dict[str, Any] = {"image": name, "model": job.model, "bpp_target": job.bpp}
        if isinstance(res, SpinrError):
            out.append(row | {"error": str(res)})
            continue
        # The stream id is random: fixing it makes seeded runs byte-identical (the bytes drive the
        # channel's corruption); it is 2 bytes either way and does not affect decoding.
        res.bitstream.stream_id = STREAM_ID + (job.model == "spinr")
        size = sum(len(p.to_bytes()) for p in res.bitstream.packets())
        if size != res.bytes:
            raise ConfigError(f"internal: {name}'s packets hold {size} bytes, its file {res.bytes}")
        pixels = image.shape[0] * image.shape[1]
        out.append(row | {"psnr": res.psnr, "bytes": size, "bpp": size * 8 / pixels,
                          "bitstream": res.bitstream, **rd.at_same_bytes(image, size)})  # fmt: skip
    return out


@dataclass
class Lane:
    """One transmission per channel draw (packets, protection), scored by one or more subjects."""

    packets: list[bytes]
    plan: Any
    subjects: dict[str, Any]
    spec: str = ""


def parse_protection(spec: str) -> tuple[str, str]:
    """``CRIT[+REST]`` -> (critical scheme, rest scheme), each checked by netsim's parser."""
    from netsim import parse_scheme
    from netsim.errors import ChannelConfigError

    crit, _, rest = spec.partition("+")
    try:
        return str(parse_scheme(crit)), str(parse_scheme(rest or "none"))
    except ChannelConfigError as exc:
        raise ConfigError(
            f"--protection {spec!r}: {exc}; expected CRIT[+REST], e.g. repeat:3 or rs:2:2+xor:4"
        ) from None


def plan_for(critical: list[int], spec: str) -> Any:
    """``n -> ProtectionPlan`` giving the ``critical`` indices CRIT and the rest REST (``CRIT[+REST]``)."""
    from netsim import ProtectionPlan

    crit, rest = parse_protection(spec)
    return lambda n: ProtectionPlan.unequal(n, [i for i in critical if i < n], crit, rest)


def rate_lanes(
    image: np.ndarray, siren: dict[str, Any], spinr: dict[str, Any], protection: list[str], mtu: int
) -> tuple[list[Lane], dict[str, float], dict[str, Any]]:
    """The lanes of one image at one rate, the no-loss PSNR of every subject, and the facts (bytes on
    the wire of every SPINR/JPEG pair, JPEG qualities)."""
    from streaming.matched import jpeg_in_packets, matched_jpeg, wire_bytes
    from streaming.subjects import InrSubject, JpegSubject, critical_packets

    bpp = spinr["bpp_target"]

    def n(name: str) -> str:
        return subject_name(bpp, name)

    sir = InrSubject(siren["bitstream"], image, "prefix")
    pre = InrSubject(spinr["bitstream"], image, "prefix")
    skp = InrSubject(spinr["bitstream"], image, "skip")
    sizes = [len(p) for p in pre.packets]
    critical = critical_packets(spinr["bitstream"])
    lanes = [
        Lane(sir.packets, None, {n("siren"): sir}),
        Lane(pre.packets, None, {n("spinr/prefix"): pre, n("spinr/skip"): skp}),
    ]
    clean = {n("siren"): siren["psnr"], n("spinr/prefix"): spinr["psnr"], n("spinr/skip"): spinr["psnr"]}
    pairs: dict[str, dict[str, Any]] = {}
    for spec in ["", *protection]:
        plan = plan_for(critical, spec) if spec else (lambda k: None)
        target = wire_bytes(sizes, plan(len(sizes)))
        jpeg = matched_jpeg(image, sizes, plan)
        subj = JpegSubject(jpeg.data, sizes, image)
        tag = f"+{spec}" if spec else ""
        if spec:
            name = n(f"spinr/{PROTECTED_CONCEAL}{tag}")
            lanes.append(
                Lane(pre.packets, plan(len(sizes)), {name: InrSubject(spinr["bitstream"], image)}, spec)
            )
            clean[name] = spinr["psnr"]
        lanes.append(Lane(jpeg.packets, jpeg.plan, {n(f"jpeg{tag}"): subj}, spec))
        clean[n(f"jpeg{tag}")] = subj.full_psnr
        pairs[spec or "none"] = {"spinr_wire": target, "jpeg_wire": jpeg.wire_bytes, "jpeg_bytes": jpeg.file_bytes,
                                 "jpeg_quality": jpeg.quality, "jpeg_fits": jpeg.fits, "jpeg_psnr": subj.full_psnr}  # fmt: skip
        if spec and mtu:  # the JPEG in MTU packets, its first bytes protected as SPINR's critical ones are
            first = -(-sum(sizes[i] for i in critical) // mtu)
            own = jpeg_in_packets(image, mtu, plan_for(list(range(first)), spec), target)
            subj = JpegSubject(own.data, [len(p) for p in own.packets], image)
            lanes.append(Lane(own.packets, own.plan, {n(f"jpeg/mtu{tag}"): subj}, spec))
            clean[n(f"jpeg/mtu{tag}")] = subj.full_psnr
            pairs[f"{spec} (JPEG in MTU packets)"] = {"spinr_wire": target, "jpeg_wire": own.wire_bytes,
                                                      "jpeg_bytes": own.file_bytes, "jpeg_quality": own.quality,
                                                      "jpeg_fits": own.fits, "jpeg_psnr": subj.full_psnr}  # fmt: skip
        if not spec and mtu:
            file = jpeg.data[: jpeg.file_bytes]  # no padding: every datagram is a packet of the file
            by_mtu = JpegSubject(file, [mtu] * (len(file) // mtu + 1), image)
            lanes.append(Lane(by_mtu.packets, None, {n("jpeg/mtu"): by_mtu}))
            clean[n("jpeg/mtu")] = by_mtu.full_psnr
    facts = {"bpp_target": bpp, "critical": critical, "spinr_packets": sizes, "pairs": pairs,
             "streams": {m: {k: v for k, v in e.items() if k != "bitstream"} for m, e in
                         (("siren", siren), ("spinr", spinr))}}  # fmt: skip
    return lanes, clean, facts


def build_groups(
    images: list[tuple[str, np.ndarray]], encodes: list[dict[str, Any]], protection: list[str], mtu: int
) -> tuple[list[tuple[list[Lane], dict[str, float]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Per image with every encode done: its lanes over all rates and the no-loss PSNRs (a *group*),
    and the facts per (image, rate); plus the encodes that failed."""
    found = {(e["image"], e["model"], e["bpp_target"]): e for e in encodes if e and "error" not in e}
    rates = sorted({e["bpp_target"] for e in encodes if e})
    groups, facts = [], []
    for name, image in images:
        if not all((name, m, r) in found for m in MODELS for r in rates):
            continue  # a failed or skipped encode: the image leaves every cell (paired draws)
        lanes: list[Lane] = []
        clean: dict[str, float] = {}
        for r in rates:
            ls, cl, fact = rate_lanes(
                image, found[(name, "siren", r)], found[(name, "spinr", r)], protection, mtu
            )
            lanes += ls
            clean |= cl
            facts.append(fact | {"image": name})
        groups.append((lanes, clean))
    errors = [e for e in encodes if e and "error" in e]
    if not groups:
        raise ConfigError(
            f"no image has every encode ({len(errors)} failed): raise --time-budget or the rates"
        )
    return groups, facts, errors
