"""What an activation value costs the numpy decoder, in multiply-adds: the calibration of
``codec.budget.ACTIVATION_COSTS`` (docs/DECODER.md, "Activation costs").

``python -m benchmarks.activation_cost [--repeats 5] [--out bench-out/activation_cost.json]``, one
BLAS thread, CPU time (fair on a shared machine). The unit is one multiply-add of a float32 matmul at
the tile's shape (8192 x 64 times 64 x 64). For each kind, one trunk step of a family that computes it
runs on one 8192-pixel tile exactly as the tiled decoder runs it (``ArchDecoder.trunk_tile``, random
weights): its time per pixel, less its multiply-adds at the matmul rate and the other kinds it computes
at their measured cost, divided by its values per pixel, is the kind's cost. Measured at widths 8 and
64, the larger counts: a narrow layer is the expensive case (its matmul is slower per multiply-add too,
and that goes into the figure), and budgets must hold for the narrow deep nets a hostile stream asks for.
DINER's lookup (once per pixel) only at width 8: at 64 its ~30 ns are lost in the 64 sines' noise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TILE = 8192
WIDTHS = (8, 64)
KINDS: dict[str, tuple[str, dict[str, Any], int]] = {
    # kind: (model, arch without its width, trunk step measured)
    "sine": ("siren", {"hidden_layers": 1, "first_omega_0": 30.0, "hidden_omega_0": 30.0}, 1),
    "relu": ("fourier", {"hidden_layers": 1, "mapping_size": 64, "sigma": 10.0, "b_seed": 0}, 1),
    "fourier_features": ("fourier", {"hidden_layers": 1, "mapping_size": 64, "sigma": 10.0, "b_seed": 0}, 0),
    "table": (
        "diner",
        {"hidden_layers": 1, "features": 2, "omega_0": 30.0, "table_width": 256, "table_height": 256},
        0,
    ),
    "wire_gabor": ("wire", {"hidden_layers": 1, "omega_0": 20.0, "scale_0": 10.0}, 1),
    "mfn_gabor": ("mfn", {"hidden_layers": 1, "filter": "gabor"}, 1),
    "mfn_fourier": ("mfn", {"hidden_layers": 1, "filter": "fourier"}, 1),
}
"""In dependency order: a step that also computes an earlier kind subtracts that kind's cost."""


def best(fn: Callable[[], object], repeats: int, inner: int) -> float:
    """Fewest CPU seconds of one call of ``fn`` over ``repeats`` rounds of ``inner`` calls."""
    out = math.inf
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            fn()
        out = min(out, (time.process_time() - start) / inner)
    return out


def matmul_seconds(repeats: int) -> float:
    """CPU seconds of one float32 multiply-add at the tile's shape."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((TILE, 64), dtype=np.float32)
    w = rng.standard_normal((64, 64), dtype=np.float32)
    out = np.empty((TILE, 64), np.float32)
    return best(lambda: np.matmul(a, w, out=out), repeats, 20) / (TILE * 64 * 64)


def step_seconds(model: str, arch: dict[str, Any], k: int, repeats: int) -> tuple[float, Any]:
    """CPU seconds per pixel of trunk step ``k`` on one tile, and the arch decoder."""
    import numpy as np

    from codec.arch import decoder_for
    from codec.coords import grid
    from codec.tiles import Workspace

    dec = decoder_for(model, arch)
    rng = np.random.default_rng(1)
    params = {
        i: {
            name: (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)
            for name, shape in unit.tensors
        }
        for i, unit in enumerate(dec.units())
    }
    ws = Workspace()
    coords = np.ascontiguousarray(grid(128, TILE // 128))
    h = coords
    for step in range(k):
        h = np.array(dec.trunk(step, h, params))
    src = np.ascontiguousarray(h)
    cur = src.copy()

    def run() -> None:
        cur[...] = src  # a step may overwrite its input
        dec.trunk_tile(k, cur, params, ws)

    copy = best(lambda: np.copyto(cur, src), repeats, 20)
    return (best(run, repeats, 10) - copy) / TILE, dec


def measure(repeats: int) -> dict[str, Any]:
    from codec.tiles import one_blas_thread

    with one_blas_thread():
        mac = matmul_seconds(repeats)
        costs: dict[str, float] = {}
        rows = []
        for kind, (model, arch, k) in KINDS.items():
            per_width = {}
            for width in WIDTHS if kind != "table" else WIDTHS[:1]:
                seconds, dec = step_seconds(model, {**arch, "width": width}, k, repeats)
                acts = dec.step_activations(k)
                units = dec.trunk_units(k)
                macs = sum(dec.unit_work()[u] for u in units) + (dec.extra_work() if k == 0 else 0)
                others = sum(costs[o] * n for o, n in acts.items() if o != kind)
                value = (seconds / mac - macs - others) / acts[kind]
                per_width[width] = round(value, 1)
                rows.append(
                    {
                        "kind": kind,
                        "model": model,
                        "width": width,
                        "step": k,
                        "ns_per_pixel": round(seconds * 1e9, 2),
                        "macs_per_pixel": macs,
                        "values_per_pixel": acts[kind],
                        "ns_per_value": round((seconds - (macs + others) * mac) / acts[kind] * 1e9, 3),
                        "cost_macs": round(value, 1),
                    }
                )
            costs[kind] = max(per_width.values())
    return {
        "mac_ns": round(mac * 1e9, 5),
        "matmul_gflops": round(2 / mac / 1e9, 2),
        "costs": {k: math.ceil(v) for k, v in costs.items()},
        "rows": rows,
        "load": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.activation_cost", description=__doc__)
    p.add_argument("--repeats", type=int, default=5, help="rounds per measurement, best counts")
    p.add_argument("--out", type=Path, default=Path("bench-out/activation_cost.json"))
    args = p.parse_args(argv)
    report = measure(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for r in report["rows"]:
        print(
            f"{r['kind']:17s} {r['model']:8s} w{r['width']:<3d} {r['ns_per_pixel']:9.1f} ns/px "
            f"{r['ns_per_value']:7.2f} ns/value = {r['cost_macs']:7.1f} MACs",
            file=sys.stderr,
        )
    print(
        f"matmul {report['mac_ns']} ns/MAC; costs {report['costs']}; load {report['load']}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
