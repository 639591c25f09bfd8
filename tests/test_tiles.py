"""The tiled numpy decoder (codec/tiles.py): the same pixels as a whole-frame forward pass, bit for bit,
for every family, tile size and cache path; the activation cache reused only while the weights it was
computed from are unchanged; memory bounded by the budget."""

from __future__ import annotations

import numpy as np
import pytest
from _bitstreams import random_stream

import codec.tiles as tiles
from codec.arch import decoder_for
from codec.bitstream import Bitstream
from codec.budget import ACTIVATION_COSTS, DecodeBudget
from codec.coords import grid, to_rgb8
from codec.decoder import ProgressiveDecoder

ARCHS = [
    ("siren", {"width": 9, "hidden_layers": 2, "first_omega_0": 30.0, "hidden_omega_0": 30.0}),
    ("spinr", {"width": 8, "hidden_layers": 3, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
               "head": "per_stage", "residual": True}),
    ("spinr", {"width": 8, "hidden_layers": 2, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
               "head": "shared", "residual": False}),
    ("fourier", {"width": 8, "hidden_layers": 1, "mapping_size": 6, "sigma": 10.0, "b_seed": 3}),
    ("mfn", {"width": 8, "hidden_layers": 2, "filter": "gabor"}),
    ("mfn", {"width": 8, "hidden_layers": 1, "filter": "fourier"}),
    ("wire", {"width": 6, "hidden_layers": 1, "omega_0": 20.0, "scale_0": 10.0}),
    ("diner", {"width": 8, "hidden_layers": 1, "features": 2, "omega_0": 30.0, "table_width": 7,
               "table_height": 5}),
]  # fmt: skip


stream = random_stream


def whole_frame(dec: ProgressiveDecoder, size: tuple[int, int], depth: int | None = None) -> np.ndarray:
    """The reference: every trunk step and the readout over the whole frame at once (ArchDecoder.trunk);
    ``depth`` counts stages from 1, as ``decode`` does."""
    assert dec.arch is not None
    plan = dec.plan(None if depth is None else depth - 1)
    assert plan is not None
    d, steps = plan
    a = grid(*size)
    for k in steps:
        a = dec.arch.trunk(k, a, dec.params)
    return to_rgb8(dec.arch.readout(d, a, dec.params), *size)


IDS = [f"{m}-{i}" for i, (m, _) in enumerate(ARCHS)]


@pytest.mark.parametrize(("model", "arch"), ARCHS, ids=IDS)
def test_tiles_give_the_whole_frame_pixels_bit_for_bit(model: str, arch: dict) -> None:
    """The default tile (8192 pixels) on a frame of one tile, and of three with a short last one."""
    bs = stream(model, arch)
    for size in ((37, 23), (130, 130)):
        for cache in (True, False):
            dec = ProgressiveDecoder.from_bitstream(bs, cache=cache)
            for depth in [*range(1, dec.depths + 1), 1, None]:  # every depth, shallower again, then all
                got = dec.decode(size, depth=depth).rgb
                assert got.dtype == np.uint8 and got.shape == (size[1], size[0], 3)
                assert np.array_equal(got, whole_frame(dec, size, depth)), (size, cache, depth)


@pytest.mark.parametrize(("model", "arch"), ARCHS, ids=IDS)
def test_any_tile_size_gives_the_same_pixels_on_every_path(
    model: str, arch: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the tile, a pixel does not depend on the cache or the order of decodes. (Against the
    whole frame only tiles of hundreds of rows are exact: BLAS sums tiny matrices with other
    kernels, in another order, and SIREN's sines turn that last float32 bit into a few code values
    with random weights. Hence the 8192-pixel tile, and the padded last tile.)"""
    bs = stream(model, arch)
    size = (37, 23)
    monkeypatch.setattr(tiles, "MIN_TILE_PIXELS", 1)
    for tile in (1, 64, 200):
        monkeypatch.setattr(tiles, "TILE_PIXELS", tile)
        fresh = [
            ProgressiveDecoder.from_bitstream(bs, cache=False).decode(size, depth=d + 1).rgb
            for d in range(ProgressiveDecoder.from_bitstream(bs).depths)
        ]
        dec = ProgressiveDecoder.from_bitstream(bs)
        assert dec._forward is not None and dec._forward.tile_pixels == tile
        for depth in [*range(dec.depths), 0, dec.depths - 1]:
            got = dec.decode(size, depth=depth + 1).rgb
            assert np.array_equal(got, fresh[depth]), (tile, depth)


def test_progressive_decoding_computes_each_stage_once_and_reuses_the_cache() -> None:
    bs = stream(*ARCHS[1])
    dec = ProgressiveDecoder(bs.header, bs.stream_id)
    computed = []
    for i in sorted(bs.units):
        dec.add_unit(bs.units[i])
        dec.decode((40, 30))
        computed.append(dec.computed_steps)
    assert computed == [1, 1, 1, 1]
    dec.decode((40, 30))
    assert dec.computed_steps == 0  # the same depth again: the readout only
    dec.decode((40, 30), depth=2)
    assert dec.computed_steps == 0  # shallower: every step's activations are cached (they fit)
    dec.decode((40, 30))
    assert dec.computed_steps == 0
    dec.decode((20, 10))
    assert dec.computed_steps == 4  # another size: its own entry


def test_a_changed_unit_invalidates_the_prefixes_that_read_it() -> None:
    model, arch = ARCHS[1]
    bs, other = stream(model, arch), stream(model, arch, seed=1)

    def reference(units: dict) -> np.ndarray:
        return ProgressiveDecoder.from_bitstream(Bitstream(bs.header, units, 1)).decode().rgb

    dec = ProgressiveDecoder(bs.header)
    for i in (0, 1, 2):
        dec.add_unit(bs.units[i])
    dec.decode()
    dec.add_unit(bs.units[3])
    dec.decode()
    assert dec.computed_steps == 1  # stages 0..2 came from the cache
    dec.add_unit(other.units[3])  # new weights for the last stage (a refinement would do this)
    got = dec.decode().rgb
    assert dec.computed_steps == 1  # the activations after stage 2 are kept; stage 3 is redone
    assert np.array_equal(got, reference({**bs.units, 3: other.units[3]}))
    dec.add_unit(other.units[1])
    assert np.array_equal(dec.decode().rgb, reference({**bs.units, 1: other.units[1], 3: other.units[3]}))
    assert dec.computed_steps == 3  # stage 0's activations reused, stages 1..3 redone


def test_the_cache_stays_within_the_activation_budget() -> None:
    model, arch = ARCHS[1]
    bs = stream(model, arch)
    tile_bytes = ProgressiveDecoder.from_bitstream(bs)._forward.tile_bytes  # type: ignore[union-attr]
    per_frame = 100 * 100 * 8 * 4  # pixels x width x float32
    budget = DecodeBudget(max_activation_bytes=tile_bytes + per_frame)
    dec = ProgressiveDecoder.from_bitstream(bs, budget=budget)
    dec.decode((100, 100))
    dec.decode((100, 100))
    assert dec.computed_steps == 0
    dec.decode((50, 100))  # does not fit beside the first: the first goes
    dec.decode((50, 100))
    assert dec.computed_steps == 0
    dec.decode((100, 100))
    assert dec.computed_steps == 4
    big = dec.decode((200, 100)).rgb  # does not fit at all: decoded in tiles, nothing kept
    dec.decode((200, 100))
    assert dec.computed_steps == 4 and dec._forward.cache.nbytes <= per_frame  # type: ignore[union-attr]
    assert np.array_equal(big, whole_frame(dec, (200, 100)))


def test_work_per_pixel_counts_the_layers_a_decode_runs() -> None:
    arch = decoder_for("spinr", {**ARCHS[1][1], "width": 64, "hidden_layers": 16})
    # Input 64x2, 16 hidden 64x64, the head 3x64 of the stage read out; a sine per unit per step.
    sine = ACTIVATION_COSTS["sine"]
    assert arch.macs_per_pixel([0], 0) == 64 * 2 + 3 * 64
    assert arch.work_per_pixel([0], 0) == 64 * 2 + 3 * 64 + 64 * sine
    assert arch.work_per_pixel(list(range(17)), 16) == 64 * 2 + 16 * 64 * 64 + 3 * 64 + 17 * 64 * sine
    pe = decoder_for("spinr", {**ARCHS[1][1], "width": 64, "pe_frequencies": 4})  # 2 + 16 inputs
    assert pe.work_per_pixel([0], 0) == 64 * 18 + 3 * 64 + (64 + 16) * sine
    diner = decoder_for("diner", ARCHS[-1][1])
    assert diner.macs_per_pixel([0, 1], 0) == 8 * 2 + 8 * 8 + 3 * 8  # the table is a lookup
    assert diner.work_per_pixel([0, 1], 0) == 8 * 2 + 8 * 8 + 3 * 8 + ACTIVATION_COSTS["table"] + 16 * sine
    wire = decoder_for("wire", ARCHS[-2][1])
    assert wire.macs_per_pixel([0, 1], 0) == 2 * (6 * 2 + 2 * 6 * 6 + 2 * 3 * 6)  # complex: 2 per element
    assert (
        wire.work_per_pixel([0, 1], 0) == wire.macs_per_pixel([0, 1], 0) + 12 * ACTIVATION_COSTS["wire_gabor"]
    )
    mfn = decoder_for("mfn", ARCHS[4][1])  # filters 8x2 (+ mu 8x2), layers 8x8, readout 3x8
    assert mfn.work_per_pixel([0, 1, 2], 0) == 32 + 2 * (64 + 32) + 24 + 24 * ACTIVATION_COSTS["mfn_gabor"]
    fourier = decoder_for("fourier", ARCHS[3][1])  # the projection by B (2 x 6), input 8x12, hidden 8x8
    assert fourier.work_per_pixel([0, 1], 0) == 12 + 8 * 12 + 8 * 8 + 3 * 8 + (
        12 * ACTIVATION_COSTS["fourier_features"] + 16 * ACTIVATION_COSTS["relu"]
    )


def test_memory_is_one_tile_and_the_picture_without_the_cache() -> None:
    import tracemalloc

    arch = {"width": 64, "hidden_layers": 2, "first_omega_0": 30.0, "hidden_omega_0": 30.0}
    dec = ProgressiveDecoder.from_bitstream(stream("siren", arch), cache=False)
    size = (600, 500)  # a whole-frame pass holds 300,000 x 64 float32 = 77 MB per layer
    dec.decode((40, 30))  # the tile buffers exist from now on
    tracemalloc.start()
    try:
        rgb = dec.decode(size).rgb
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dec._forward is not None
    assert peak < rgb.nbytes + dec._forward.tile_bytes + 1_000_000, peak


def test_blas_runs_on_one_thread_while_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info

    dec = ProgressiveDecoder.from_bitstream(stream(*ARCHS[0]))
    seen = []
    real = dec.arch.trunk_tile  # type: ignore[union-attr]

    def spy(k: int, h: np.ndarray, p: object, ws: object) -> np.ndarray:
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return real(k, h, p, ws)  # type: ignore[arg-type]

    monkeypatch.setattr(dec.arch, "trunk_tile", spy)
    dec.decode()
    assert seen and all(s <= {1} for s in seen)


def test_the_one_thread_limit_ends_with_each_decode_even_one_that_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        ProgressiveDecoder.from_bitstream(stream(*ARCHS[0])).decode()
        assert blas() == {2}  # the caller's setting, back after the decode
        dec = ProgressiveDecoder.from_bitstream(stream(*ARCHS[0]))
        monkeypatch.setattr(dec.arch, "trunk_tile", lambda *_: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            dec.decode()
        assert blas() == {2}
