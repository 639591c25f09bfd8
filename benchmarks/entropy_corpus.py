"""Real trained INR weights for choosing the entropy model (docs/ENTROPY.md, "Measurements").

Fits small SIREN and SPINR networks to downscaled sun80 photographs (the training corpus; never the
Kodak/Set5/Set14 test sets) and stores their float weights, labelled by tensor kind, in one ``.npz``:

    python -m benchmarks.entropy_corpus --out bench-out/entropy-weights.npz

Kinds: ``input`` (the sine input layer's weight), ``hidden`` (hidden weight matrices), ``bias`` (every
bias vector) and ``head`` (readout weights). One thread, one fit at a time: the CPUs are shared.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np

SUN80 = "/work/shared/datasets/sun80"

# (model, width, hidden layers, model options, steps, image long side)
CONFIGS: list[tuple[str, int, int, dict[str, object], int, int]] = [
    ("siren", 32, 4, {}, 600, 96),
    ("spinr", 32, 4, {"head": "shared", "joint": 0.5}, 400, 96),
    ("spinr", 32, 6, {}, 500, 96),
    ("siren", 64, 6, {}, 500, 128),
    ("spinr", 64, 8, {}, 600, 128),
    ("spinr", 64, 12, {"head": "shared"}, 600, 128),
]


def tensor_kind(unit: str, tensor: str, index: int) -> str:
    """The kind of one tensor of ``model.units()``: input, hidden, bias or head."""
    if tensor.endswith("bias"):
        return "bias"
    if tensor.startswith("head_") or unit == "output":
        return "head"
    if tensor.startswith("in_") or unit == "input" or (index == 0 and unit == "stage.0"):
        return "input"
    return "hidden"


def load_small(path: str, long_side: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = long_side / max(w, h)
    return np.asarray(img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS))


def fit_weights(image: np.ndarray, cfg: tuple, seed: int) -> dict[str, np.ndarray]:
    import torch

    from codec.config import TrainConfig
    from codec.models import build_model
    from codec.train import fit

    name, width, hidden, options, steps, _ = cfg
    torch.manual_seed(seed)
    model = build_model(name, width, hidden, dict(options))
    fit(model, image, TrainConfig(steps=steps, seed=seed))
    out = {}
    for u, (uname, tensors) in enumerate(model.units()):
        for tname, t in tensors:
            kind = tensor_kind(uname, tname, u)
            out[f"{name}{width}x{hidden}/{u:02d}.{uname}/{tname}/{kind}"] = t.detach().cpu().numpy()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/entropy-weights.npz"))
    ap.add_argument("--images", type=int, default=4, help="sun80 images per configuration")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    paths = sorted(glob.glob(f"{SUN80}/*.jpg"))
    weights: dict[str, np.ndarray] = {}
    for c, cfg in enumerate(CONFIGS):
        for i in range(args.images):
            path = paths[(7 * c + 11 * i) % len(paths)]  # spread over the corpus
            t0 = time.perf_counter()
            image = load_small(path, cfg[5])
            for key, w in fit_weights(image, cfg, seed=i).items():
                weights[f"{Path(path).stem}/{key}"] = w
            print(
                f"{cfg[0]} {cfg[1]}x{cfg[2]} on {Path(path).name}: {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **weights)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
    print(f"{len(weights)} tensors -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
