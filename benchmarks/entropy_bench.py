"""Bits per weight of the entropy coder against raw packing, per tensor kind (docs/ENTROPY.md).

    python -m benchmarks.entropy_corpus --out bench-out/entropy-weights.npz   # real weights (sun80)
    python -m benchmarks.entropy_bench --weights bench-out/entropy-weights.npz --out bench-out/entropy.json

Each float tensor is quantized with a uniform step, q = round(w / step), at steps relative to its
standard deviation (std/8, std/16, std/32) and at steps that mimic the min/max quantizer of 6, 8 and
10 bits (step = (max - min) / (2**b - 1)). Columns, all in bits per weight, summed per tensor kind:

- ``raw8``: v1's 8-bit packing; ``rawbits``: packing at the bits the range of q needs;
- ``zstd``: zstd -19 over that packing (per tensor, frame included), what v1's zstd can do;
- ``H``: the empirical entropy of q (a bound for any fixed model, with its parameters free);
- ``kt``: an adaptive (Krichevsky-Trofimov) count model over [min, max], its ideal code length plus
  the descriptor bytes of that support;
- ``uniform``, ``laplace``, ``gauss``, ``gauss_np`` (no plateau): one model family each, exact coded
  size with descriptor bytes; ``chosen``: the coder's pick; ``coded``: actual ``encode_arrays`` bytes
  of the tensor alone, without checksum (the ANS final state included).

Per layer packet (the tensors of one unit), the actual bytes with and without the checksum; layers
whose codes are all equal (all-zero stages) are counted apart.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("input", "hidden", "bias", "head")
COLUMNS = ("raw8", "rawbits", "zstd", "H", "kt", "uniform", "laplace", "gauss", "gauss_np", "chosen", "coded")


def steps_for(w: np.ndarray) -> dict[str, float]:
    std = float(w.std())
    rng = float(w.max() - w.min())
    steps = {f"std/{d}": std / d for d in (8, 16, 32)}
    steps.update({f"{b}bit": rng / (2**b - 1) for b in (6, 8, 10)})
    return {k: (v if v > 0 else 1.0) for k, v in steps.items()}


def kt_bits(hist: np.ndarray) -> float:
    """Ideal code length of an adaptive count model with +1/2 priors over len(hist) symbols."""
    n, k = int(hist.sum()), hist.size
    lg = math.lgamma
    nats = lg(n + k / 2) - lg(k / 2) - sum(lg(c + 0.5) - lg(0.5) for c in hist.tolist() if c)
    return nats / math.log(2)


def tensor_costs(q: np.ndarray) -> dict[str, Any]:
    import zstandard

    from codec.entropy import encode_arrays
    from codec.entropy_models import candidates
    from codec.v1.quant import pack_bits

    n = q.size
    lo, hi = int(q.min()), int(q.max())
    need = max(1, math.ceil(math.log2(hi - lo + 1))) if hi > lo else 0
    hist = np.bincount(q - lo)
    p = hist[hist > 0] / n
    packed = pack_bits((q - lo).astype(np.uint32), min(max(need, 2), 16)) if need <= 16 else b""
    out: dict[str, Any] = {
        "n": n,
        "raw8": 8.0 * n,
        "rawbits": float(need * n),
        "zstd": 8.0 * len(zstandard.ZstdCompressor(level=19).compress(packed)) if packed else float("nan"),
        "H": float(-(p * np.log2(p)).sum() * n),
        "kt": kt_bits(hist),  # + the support's descriptor bytes, below
        "coded": 8.0 * len(encode_arrays([q], checksum=False)),
    }
    cands = candidates(q)
    best = min(cands.values(), key=lambda c: c[0])
    for name in ("uniform", "laplace", "gauss"):
        out[name] = cands.get(name, best)[0]
    out["gauss_np"] = candidates(q, plateaus=False).get("gauss", best)[0]
    out["kt"] += 8 * len(cands["uniform"][1].to_bytes())
    out["chosen"] = best[0]
    m = best[1]
    out["model"] = f"{m.kind}{'c' if m.explicit_center else ''}{'p' if m.plateau else ''}"
    return out


def measure(weights: dict[str, np.ndarray]) -> dict:
    from codec.entropy import encode_arrays

    table: dict = defaultdict(lambda: defaultdict(float))
    picks: dict = defaultdict(lambda: defaultdict(int))
    packets: dict = defaultdict(lambda: defaultdict(float))
    constant: dict[str, int] = defaultdict(int)
    units: dict = defaultdict(list)
    for key in weights:
        units[key.rsplit("/", 2)[0]].append(key)  # image/model/unit
    for _, keys in sorted(units.items()):
        for sname in steps_for(np.zeros(1)):
            qs = []
            for key in keys:
                w = weights[key].astype(np.float64)
                q = np.rint(w / steps_for(w)[sname]).astype(np.int64).reshape(-1)
                qs.append(q)
                kind = key.rsplit("/", 1)[1]
                if q.min() == q.max():
                    constant[kind] += 1
                    continue
                costs = tensor_costs(q)
                row = table[f"{kind} {sname}"]
                row["tensors"] += 1
                for c in ("n", *COLUMNS):
                    row[c] += costs[c]
                picks[f"{kind} {sname}"][costs["model"]] += 1
            if all(q.min() == q.max() for q in qs):  # an all-zero layer (a rejected SPINR stage)
                packets["constant"][sname] += len(encode_arrays(qs))
                continue
            p = packets[sname]
            p["packets"] += 1
            p["weights"] += sum(q.size for q in qs)
            p["raw8_bytes"] += sum(q.size for q in qs)
            p["bytes_checksum"] += len(encode_arrays(qs, checksum=True))
            p["bytes_plain"] += len(encode_arrays(qs, checksum=False))
    per_weight = {
        k: {
            "tensors": int(r["tensors"]),
            "weights": int(r["n"]),
            **{c: round(r[c] / r["n"], 4) for c in COLUMNS},
        }
        for k, r in sorted(table.items())
    }
    names = {0: "const", 1: "uniform", 2: "laplace", 3: "gauss"}
    chosen = {
        k: {names[int(m[0])] + m[1:]: c for m, c in sorted(v.items())} for k, v in sorted(picks.items())
    }
    return {"per_kind": per_weight, "chosen_models": chosen, "packets": packets, "constant_tensors": constant}


def markdown(res: dict) -> str:
    lines = [
        "| kind, step | tensors | weights | " + " | ".join(COLUMNS) + " |",
        "|---" * (3 + len(COLUMNS)) + "|",
    ]
    for k, r in res["per_kind"].items():
        lines.append(
            f"| {k} | {r['tensors']} | {r['weights']} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS) + " |"
        )
    lines += [
        "",
        "| step | packets | weights | raw 8-bit bytes | coded bytes (checksum) | coded bytes (plain) |",
        "|---|---|---|---|---|---|",
    ]
    for s, p in res["packets"].items():
        if s == "constant":
            continue
        lines.append(
            f"| {s} | {int(p['packets'])} | {int(p['weights'])} | {int(p['raw8_bytes'])} | "
            f"{int(p['bytes_checksum'])} | {int(p['bytes_plain'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("bench-out/entropy-weights.npz"))
    ap.add_argument("--out", type=Path, default=Path("bench-out/entropy.json"))
    args = ap.parse_args(argv)
    if not args.weights.exists():
        print(f"{args.weights} not found: run python -m benchmarks.entropy_corpus first", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with np.load(args.weights) as z:
        weights = {k: z[k] for k in z.files}
    res = measure(weights)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"-> {args.out} ({res['seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
