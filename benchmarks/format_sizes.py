"""``spinr bench format``: what format v2 costs, measured on the demo image (docs/FORMAT.md, "Sizes").

The 128 x 128 astronaut is encoded with the real encoder: a fixed-network preset (``paper``, ``tiny``)
once per ``--bits``; a rate preset (``quick``, ``standard``, ``thorough``: the size model's network,
quantized to a byte target, where ``--bits`` does nothing) once, at its default rate (``bits`` null,
``target_bytes`` given). Each stream is taken apart: total bytes and bpp, PSNR, the header packet, the bytes every unit packet spends outside
its payload, what the entropy coder's own checksum would add per packet (and how many single-bit flips
behind a valid CRC it alone would catch), what splitting it into base and refinement packets costs
(``refinements``: the same final picture for more bytes; docs/FORMAT.md "Refinement packets"), and what
JPEG, WebP, JPEG 2000 and AVIF reach at the same bytes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

DEMO_PRESETS = ("quick", "paper")
"""``quick`` is the server's default (a rate preset); ``paper`` the study's fixed SPINR 64 x 16."""


def settings(name: str, bits: list[int]) -> list[int | None]:
    """The ``--bits`` values a preset is encoded at: each for a fixed network, none (its rate) otherwise."""
    from codec.config import preset

    return list(bits) if preset(name).model.width is not None else [None]


def ladder_bytes(header: Any) -> int:
    """Bytes the rate-quality ladder extension adds to the header packet (tag, length and body)."""
    from codec.header import EXT_LADDER
    from codec.varint import uvarint

    data = header.extensions.get(EXT_LADDER, b"")
    return 1 + len(uvarint(len(data))) + len(data) if data else 0


def checksum_cost(bs: Any, flips: int = 200, seed: int = 0) -> dict[str, float]:
    """Bytes the coder's checksum state would add per unit packet, and the share of single-bit flips of
    the coded block that the decoder refuses (or that change no code) with and without it."""
    from codec.entropy import decode_arrays, encode_arrays
    from codec.errors import BitstreamError

    rng = np.random.default_rng(seed)
    extra, seen = 0, {True: 0, False: 0}
    for unit in bs.units.values():
        codes = [np.asarray(t.codes) for t in unit.tensors]
        counts = [c.size for c in codes]
        plain = encode_arrays(codes, checksum=False)
        for checksum in (True, False):
            data = encode_arrays(codes, checksum=checksum)
            extra += (len(data) - len(plain)) if checksum else 0
            for _ in range(flips):
                bad = bytearray(data)
                bit = int(rng.integers(len(bad) * 8))
                bad[bit // 8] ^= 1 << (bit % 8)
                try:
                    out = decode_arrays(bytes(bad), counts, checksum=checksum)
                    seen[checksum] += all(np.array_equal(a, b) for a, b in zip(out, codes, strict=True))
                except BitstreamError:
                    seen[checksum] += 1
    n = max(1, len(bs.units))
    return {
        "bytes_per_packet": extra / n,
        "flips_caught_with_checksum": seen[True] / (flips * n),
        "flips_caught_without": seen[False] / (flips * n),
    }


SPLITS = ((1, 1), (1, 2), (1, 3), (2, 1))
"""(levels, bits per level) of the refinement splits measured."""


def refinement_cost(bs: Any, image: np.ndarray) -> list[dict[str, Any]]:
    """Per split: the refined file's bytes against the one-shot file's (the same final picture), and
    the base's bytes and PSNR (every unit at level 0), from the encoder's own grid measurement."""
    from codec.refined import refine_stream

    one = len(bs.to_bytes())
    out = []
    for levels, shift in SPLITS:
        rb = refine_stream(bs, image, levels, shift)
        ladder = rb.header.ladder
        assert ladder is not None
        n = rb.header.num_units
        base = len(rb.packets()[0].to_bytes()) + sum(int(r.bytes) for r in ladder.rungs[:n])
        out.append(
            {
                "levels": levels,
                "bits": shift,
                "bytes": len(rb.to_bytes()),
                "one_shot_bytes": one,
                "split_cost": round(len(rb.to_bytes()) / one - 1, 4),
                "base_bytes": base,
                "base_psnr": ladder.rungs[n - 1].psnr,
                "final_psnr": ladder.rungs[-1].psnr,
            }
        )
    return out


def bench_format(bits: list[int], presets: tuple[str, ...], device: str) -> dict[str, Any]:
    from skimage import data

    from codec.classical import CODECS, at_bytes, decode
    from codec.config import preset
    from codec.encode import encode_image
    from codec.metrics import psnr

    image = np.ascontiguousarray(data.astronaut()[::4, ::4])
    rows = []
    for name in presets:
        for b in settings(name, bits):
            cfg = preset(name).replace(**{"train.device": device})
            if b is not None:
                cfg = cfg.replace(**{"quant.bits": b})
            t = time.perf_counter()
            r = encode_image(image, cfg)
            packets = r.bitstream.packets()
            classical = {}
            for codec in CODECS:
                found = at_bytes(image, codec, r.bytes)
                classical[codec] = {
                    "bytes": len(found.data),
                    "fits": found.fits,
                    "psnr": round(psnr(decode(found.data), image), 2),
                }
            rows.append(
                {
                    "preset": name,
                    "bits": b,
                    "target_bytes": r.target_bytes,
                    "network": r.bitstream.header.arch,
                    "bytes": r.bytes,
                    "bpp": round(r.bpp, 4),
                    "psnr": round(r.psnr, 3),
                    "psnr_float": round(r.float_psnr, 3),
                    "stage_psnr": [round(p, 2) for p in r.stage_psnr],
                    "header_bytes": len(packets[0].to_bytes()),
                    "ladder_bytes": ladder_bytes(r.bitstream.header),
                    "unit_packet_overhead": [p.overhead for p in packets[1:]],
                    "checksum": checksum_cost(r.bitstream),
                    "refinements": refinement_cost(r.bitstream, image),
                    "classical": classical,
                    "seconds": round(time.perf_counter() - t, 1),
                }
            )
    return {"image": "scikit-image astronaut, 128x128", "rows": rows}
