"""A finished stream -> the same stream with precision refinements (``spinr encode --refinements``).

The split itself is :func:`codec.refine.split_unit`; here every unit is split, the pictures of the
depth x precision grid are decoded (numpy, as a receiver decodes them) and the header's ladder becomes
version 2, listing every packet (:mod:`codec.ladder`). The final level's codes are the one-shot stream's,
so the header's stage PSNRs (the full-precision pictures) do not change.
"""

from __future__ import annotations

import numpy as np

from codec.bitstream import Bitstream, Packet, StreamHeader, make_refinement_packet, make_unit_packet
from codec.budget import OWN_STREAM_BUDGET
from codec.decoder import ProgressiveDecoder, stage_psnrs
from codec.errors import ConfigError
from codec.header import EXT_LADDER, psnr_as_sent
from codec.ladder import measure_grid
from codec.payload import Unit
from codec.refine import Refinement, split_unit


def refine_stream(bs: Bitstream, reference: np.ndarray, levels: int, shift: int) -> Bitstream:
    """``bs`` (format 2, every unit present, no refinements yet) with ``levels`` refinements of
    ``shift`` bits per unit and its ladder measured against ``reference``."""
    if bs.version != 2 or bs.refinements:
        raise ConfigError("only a format 2 stream without refinements can be refined")
    if bs.missing():
        raise ConfigError(f"stream lacks units {bs.missing()}: every unit is needed to refine it")
    header = StreamHeader(
        bs.header.model, dict(bs.header.arch), bs.header.width, bs.header.height,
        list(bs.header.stage_psnr), dict(bs.header.meta), extensions=dict(bs.header.extensions),
    )  # fmt: skip
    base: dict[int, Unit] = {}
    refinements: dict[tuple[int, int], Refinement] = {}
    for index, unit in bs.units.items():
        assert isinstance(unit, Unit)
        base[index], refs = split_unit(unit, levels, shift)
        refinements |= {(index, r.level): r for r in refs}
    out = Bitstream(header, dict(base), bs.stream_id, refinements)
    n = header.num_units
    grid, sizes = [], []
    for level in range(levels + 1):
        part = Bitstream(
            header, dict(base), bs.stream_id, {k: r for k, r in refinements.items() if k[1] <= level}
        )
        decoder = ProgressiveDecoder.from_bitstream(part, budget=OWN_STREAM_BUDGET, cache=True)
        grid.append([psnr_as_sent(p) for p in stage_psnrs(decoder, reference)])
        sizes.append(
            [len(make_unit_packet(base[u], bs.stream_id).to_bytes()) for u in range(n)]
            if level == 0
            else [
                len(make_refinement_packet(refinements[(u, level)], bs.stream_id, n).to_bytes())
                for u in range(n)
            ]
        )
    decoder = ProgressiveDecoder(header)
    assert decoder.arch is not None
    header.extensions[EXT_LADDER] = measure_grid(decoder.arch.plan, grid, sizes).to_bytes()
    return out


def direct_refinements(bs: Bitstream) -> dict[int, Refinement]:
    """Unit -> its direct packet at the stream's top level (the unit's final codes in one payload,
    what the one-shot stream sends plus one byte), for a sender to choose instead of base and
    refinements. Empty for a stream without refinements."""
    levels = bs.levels
    if not levels:
        return {}
    out = {}
    for index, unit in sorted(bs.units.items()):
        assert isinstance(unit, Unit)
        tensors = list(unit.tensors)
        for level in range(1, levels + 1):
            tensors = bs.refinements[(index, level)].apply(tensors)
        out[index] = Refinement.of_unit(tensors, index, levels)
    return out


def direct_packets(bs: Bitstream) -> list[Packet]:
    """:func:`direct_refinements` as packets, numbered after every refinement (codec/refine.py)."""
    n = bs.header.num_units
    return [make_refinement_packet(r, bs.stream_id, n) for _, r in sorted(direct_refinements(bs).items())]
