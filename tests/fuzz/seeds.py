"""Valid streams of every model family for the generators to mutate, per format version.

They are committed (``tests/fuzz_corpus/seeds/v<N>``) so that fuzzing needs no torch and always starts
from the same bytes. The v1 seeds were written by the v1 encoder before format 2 and are frozen (v1 is
read only now); :func:`build_seeds` rebuilds the v2 ones from seeded random weights (no training: the
decoder's paths do not depend on the weights being good), each tensor quantized at a step of 1/32 of
its spread.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent.parent / "fuzz_corpus"


@dataclass(frozen=True)
class SeedSpec:
    name: str
    model: str
    width: int
    hidden: int
    options: dict[str, Any]
    image: tuple[int, int]
    """Encoded image (width, height)."""


SEEDS = (
    SeedSpec("siren", "siren", 8, 2, {}, (12, 9)),
    SeedSpec("spinr-per-stage", "spinr", 8, 3, {}, (12, 9)),
    SeedSpec("spinr-shared-plain", "spinr", 8, 2, {"head": "shared", "residual": False}, (9, 12)),
    SeedSpec("fourier", "fourier", 8, 1, {"mapping_size": 16}, (8, 8)),
    SeedSpec("mfn-gabor", "mfn", 8, 2, {}, (10, 7)),
    SeedSpec("mfn-fourier", "mfn", 8, 1, {"filter": "fourier"}, (7, 10)),
    SeedSpec("wire", "wire", 8, 2, {}, (8, 8)),
    SeedSpec("diner", "diner", 8, 1, {}, (6, 5)),
)


def seed_dir(version: int) -> Path:
    return CORPUS / "seeds" / f"v{version}"


def build_seeds(version: int = 2) -> dict[str, bytes]:
    """Rebuild the seed files (needs torch); returns name -> ``.spnr`` bytes."""
    if version != 2:
        raise ValueError(
            f"format {version} seeds are frozen (written by that version's encoder); only v2 is rebuilt"
        )
    import numpy as np
    import torch

    from codec.bitstream import Bitstream, StreamHeader
    from codec.models import build_model
    from codec.quant import min_step, representable
    from codec.stepquant import model_tensors, quantize_model

    out = {}
    for spec in SEEDS:
        torch.manual_seed(zlib.crc32(spec.name.encode()))
        model = build_model(spec.model, spec.width, spec.hidden, spec.options)
        if getattr(model, "needs_image_size", False):
            model.set_image_size(*spec.image)
        steps = []
        for t in model_tensors(model):
            values = t.detach().cpu().numpy()
            steps.append(representable(max(float(np.std(values)) / 32, min_step(values), 2**-20)))
        units = quantize_model(model, steps)
        header = StreamHeader(
            spec.model, model.arch(), spec.image[0], spec.image[1], [20.0], meta={"seed": spec.name}
        )
        sid = zlib.crc32(spec.name.encode()) & 0xFFFF or 1
        out[spec.name] = Bitstream(header, {u.index: u for u in units}, sid).to_bytes()
    return out


def write_seeds(version: int = 2) -> list[Path]:
    folder = seed_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in build_seeds(version).items():
        path = folder / f"{name}.spnr"
        path.write_bytes(data)
        paths.append(path)
    return paths


def load_seeds(version: int) -> dict[str, bytes]:
    folder = seed_dir(version)
    seeds = {p.stem: p.read_bytes() for p in sorted(folder.glob("*.spnr"))}
    if not seeds:
        raise FileNotFoundError(f"no seed streams under {folder}; run python -m fuzz seeds")
    return seeds
