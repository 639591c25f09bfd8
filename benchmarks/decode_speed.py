"""``spinr bench decode``: the numpy decoder's speed as a share of the machine's float32 matmul rate.

Runs in a child process with one BLAS thread (``OPENBLAS_NUM_THREADS=1``, set before numpy loads), so
the decoder and the reference matmul are measured on the same single core, interleaved (a busy
machine slows both alike), best of ``repeats``. Measured on a SPINR of random weights (quantized as
the encoder would; what the decoder does with them does not depend on their values):

- one full decode in tiles (codec/tiles.py) and the same math over the whole frame at once (the
  decoder before tiling), their pixels compared;
- progressive decoding: every depth in turn as its stage arrives, against one full decode;
- the float32 matmul rate: a 1024^3 ``sgemm``, and one at the decoder's own shape (a tile times a
  hidden layer's weights);
- optionally the torch forward pass of the same net (one thread), for scale.

GFLOP/s count 2 flops per multiply-add of ``ArchDecoder.macs_per_pixel`` (the sines, biases and
conversion are not counted: they are the overhead).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_isolated(
    width: int, height: int, net_width: int, hidden: int, repeats: int, torch: bool, quick: bool = False
) -> dict[str, Any]:
    """:func:`measure` in a child process with one BLAS thread; its JSON report. ``quick``: only the
    tiled decode and the matmul rate."""
    argv = [
        sys.executable,
        "-m",
        "benchmarks.decode_speed",
        str(width),
        str(height),
        str(net_width),
        str(hidden),
    ]
    argv += [str(repeats), "1" if torch else "0", "1" if quick else "0"]
    env = {**os.environ, **SINGLE_THREAD}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"decode benchmark failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def stream(width: int, height: int, net_width: int, hidden: int) -> Any:
    import numpy as np

    from codec.bitstream import Bitstream, StreamHeader, Unit
    from codec.quant import quantize

    rng = np.random.default_rng(0)
    arch = {"width": net_width, "hidden_layers": hidden, "first_omega_0": 30.0, "hidden_omega_0": 30.0}
    header = StreamHeader("spinr", {**arch, "head": "per_stage", "residual": True}, width, height)
    units: dict[int, Any] = {}
    for i, spec in enumerate(header.units):
        tensors = []
        for name, shape in spec.tensors:
            bound = (1 / shape[-1]) if (i == 0 and name.startswith("in_")) else np.sqrt(6 / shape[-1]) / 30
            w = rng.uniform(-bound, bound, shape).astype(np.float32)
            tensors.append(quantize(name, w, float(np.std(w)) / 16 + 1e-9))
        units[i] = Unit(i, tuple(tensors))
    return Bitstream(header, units, 0xBE0C)


def _best(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Seconds of each function, best of ``repeats``, measured in turns."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def measure(
    width: int, height: int, net_width: int, hidden: int, repeats: int, torch: bool, quick: bool = False
) -> dict[str, Any]:
    import numpy as np

    from codec.coords import grid, to_rgb8
    from codec.decoder import ProgressiveDecoder
    from codec.tiles import TILE_PIXELS

    bs = stream(width, height, net_width, hidden)
    units = [bs.units[i] for i in sorted(bs.units)]
    n = width * height
    full_dec = ProgressiveDecoder.from_bitstream(bs, cache=False)
    arch = full_dec.arch
    assert arch is not None
    steps = list(range(arch.depths))
    flops = 2 * n * arch.macs_per_pixel(steps, arch.depths - 1)
    flops_all_depths = sum(
        2 * n * arch.macs_per_pixel([k], k) for k in steps
    )  # each stage once, every readout

    def tiled() -> np.ndarray:
        return full_dec.decode().rgb

    def whole_frame() -> np.ndarray:
        a = grid(width, height)
        for k in steps:
            a = arch.trunk(k, a, full_dec.params)
        return to_rgb8(arch.readout(steps[-1], a, full_dec.params), width, height)

    def progressive() -> None:
        dec = ProgressiveDecoder(bs.header)
        for u in units:
            dec.add_unit(u)
            dec.decode()

    rng = np.random.default_rng(1)
    big = rng.standard_normal((1024, 1024)).astype(np.float32)
    tile = rng.standard_normal((TILE_PIXELS, net_width)).astype(np.float32)
    layer = rng.standard_normal((net_width, net_width)).astype(np.float32)
    out = np.empty((TILE_PIXELS, net_width), np.float32)

    def sgemm() -> None:
        big @ big

    def sgemm_tile() -> None:
        for _ in range(16):
            np.matmul(tile, layer.T, out=out)

    fns: dict[str, Callable[[], Any]] = {
        "tiled": tiled,
        "whole_frame": whole_frame,
        "progressive": progressive,
        "sgemm_1024": sgemm,
        "sgemm_tile": sgemm_tile,
    }
    if quick:
        t = _best({"tiled": tiled, "sgemm_1024": sgemm}, repeats)
        return {
            "tiled_decode_s": round(t["tiled"], 4),
            "tiled_gflops": round(flops / t["tiled"] / 1e9, 2),
            "matmul_gflops_1024": round(2 * 1024**3 / t["sgemm_1024"] / 1e9, 2),
        }
    if torch:
        import torch as th

        from codec.coords import grid as coords_grid

        th.set_num_threads(1)
        x = th.from_numpy(coords_grid(width, height))
        ws = {i: {k: th.from_numpy(v) for k, v in p.items()} for i, p in full_dec.params.items()}

        def torch_forward() -> None:
            with th.no_grad():
                h = th.sin(30.0 * (x @ ws[0]["in_weight"].T + ws[0]["in_bias"]))
                for k in range(1, arch.depths):
                    h = h + th.sin(30.0 * (h @ ws[k]["weight"].T + ws[k]["bias"]))
                _ = h @ ws[arch.depths - 1]["head_weight"].T + ws[arch.depths - 1]["head_bias"]

        fns["torch"] = torch_forward
    identical = bool(np.array_equal(tiled(), whole_frame()))
    t = _best(fns, repeats)
    matmul_rate = 2 * 1024**3 / t["sgemm_1024"] / 1e9
    tile_rate = 16 * 2 * TILE_PIXELS * net_width * net_width / t["sgemm_tile"] / 1e9
    rate = flops / t["tiled"] / 1e9
    report: dict[str, Any] = {
        "image": f"{width}x{height}",
        "model": f"spinr width {net_width}, {hidden} hidden layers (per-stage heads, residual)",
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "tile_pixels": TILE_PIXELS,
        "flop_per_decode": flops,
        "tiled_decode_s": round(t["tiled"], 4),
        "tiled_gflops": round(rate, 2),
        "matmul_gflops_1024": round(matmul_rate, 2),
        "matmul_gflops_tile_shape": round(tile_rate, 2),
        "share_of_matmul_rate": round(rate / matmul_rate, 3),
        "whole_frame_decode_s": round(t["whole_frame"], 4),
        "tiled_speedup_vs_whole_frame": round(t["whole_frame"] / t["tiled"], 2),
        "tiled_identical_to_whole_frame": identical,
        "progressive_all_depths_s": round(t["progressive"], 4),
        "progressive_over_one_full_decode": round(t["progressive"] / t["tiled"], 3),
        "progressive_gflop": round(flops_all_depths / 1e9, 3),
        "repeats": repeats,
    }
    if torch:
        report["torch_forward_s"] = round(t["torch"], 4)
        report["numpy_tiled_over_torch"] = round(t["tiled"] / t["torch"], 3)
    return report


if __name__ == "__main__":
    w, h, nw, hid, rep, use_torch, quick = (int(a) for a in sys.argv[1:8])
    print(json.dumps(measure(w, h, nw, hid, rep, bool(use_torch), bool(quick))))
