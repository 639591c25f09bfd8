"""codec/entropy.py: bit-exact round trips, the table rule, constriction's exactness and clean errors.

A plain-Python ANS coder (tests/_entropy_ref.py) is the specification that client/web/codec/entropy.js
mirrors; the tests check that constriction writes exactly its words, so the browser reads what numpy
writes.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from _entropy_ref import EDGE_CASES, random_table, ref_decode, ref_encode, weights_like
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import entropy_tables as tables
from codec.entropy import PLAIN_STATE, checksum_state, decode_arrays, encode_arrays, parse_models
from codec.entropy_models import CONST, GAUSS, LAPLACE, UNIFORM, Model, choose_model
from codec.errors import BitstreamError, ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_constriction_writes_the_reference_words_for_integer_tables(rng):
    """Categorical(f - 1, perfect=False) is exactly the table f: the words equal the reference coder's."""
    import constriction

    from codec.entropy import _categorical

    for trial in range(60):
        jobs = []
        for _ in range(int(rng.integers(1, 4))):
            f = random_table(rng, int(rng.choice([2, 3, 17, 300, 5000])))
            jobs.append((rng.choice(f.size, int(rng.integers(0, 400)), p=f / f.sum()), f))
        state = int(rng.choice([0, 1, 2**24 + 12345]))
        coder = constriction.stream.stack.AnsCoder(np.array([state] if state else [], dtype=np.uint32))
        for s, f in reversed(jobs):
            coder.encode_reverse(s.astype(np.int32), _categorical(f))
        words = [int(w) for w in coder.get_compressed()]
        assert words == ref_encode(jobs, state), trial
        decoded, final, left = ref_decode(words, [(s.size, f) for s, f in jobs])
        assert [d for d in decoded] == [s.tolist() for s, _ in jobs]
        assert (final, left) == (state, 0)


def test_encode_arrays_is_descriptors_then_reference_words(rng):
    arrays = [np.rint(rng.normal(0, 9, 300)), np.rint(rng.uniform(-5, 5, 40)), np.full(3, 4), []]
    arrays = [np.asarray(a, dtype=np.int64) for a in arrays]
    for checksum in (True, False):
        data = encode_arrays(arrays, checksum=checksum)
        models, start = parse_models(data, [a.size for a in arrays])
        pairs = [(a, m) for a, m in zip(arrays, models, strict=True) if m is not None and m.kind != CONST]
        jobs = [(a - m.lo, m.frequencies()) for a, m in pairs]
        state = checksum_state(data[:start], [a for a, _ in pairs]) if checksum else PLAIN_STATE
        words = np.array(ref_encode(jobs, state), dtype="<u4").tobytes().rstrip(b"\0")
        assert data[start:] == words


# ---------------------------------------------------------------------------------------------
# the table rule (what entropy.js mirrors)


def loop_kernel(kind: int, length: int, k: int) -> list[float]:
    """The kernel as entropy.js computes it: one multiplication per step, stop below the cutoff."""
    base = 1.0 - tables.decay(k)
    sq, step, a = base * base, base, [1.0] + [0.0] * (length - 1)
    for j in range(1, length):
        v = a[j - 1] * step
        if v < tables.CUTOFF:
            break
        a[j] = v
        if kind == GAUSS:
            step *= sq
    return a


@pytest.mark.parametrize("kind", [LAPLACE, GAUSS])
def test_numpy_kernel_equals_the_sequential_loop(kind):
    for k in range(256):
        for length in (1, 2, 7, 300, 5000):
            assert tables.kernel(kind, length, k).tolist() == loop_kernel(kind, length, k), (k, length)


def test_decay_is_exact_on_powers_of_two_and_close_elsewhere():
    for j in range(32):
        assert tables.decay(8 * j) == 2.0**-j
    for k in range(256):
        assert abs(tables.decay(k) / 2 ** (-k / 8) - 1) < 1e-14


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.integers(0, tables.TOTAL), min_size=2, max_size=300).filter(lambda w: sum(w) > 0))
def test_normalize_is_the_documented_integer_rule(weights):
    f = tables.normalize(np.array(weights, dtype=np.int64))
    n, total = len(weights), sum(weights)
    floors = [1 + (w * (tables.TOTAL - n)) // total for w in weights]
    top = max(range(n), key=lambda i: (floors[i], -i))
    floors[top] += tables.TOTAL - sum(floors)
    assert f.tolist() == floors
    assert int(f.sum()) == tables.TOTAL and int(f.min()) >= 1
    # the floors only round down: within one unit of the exact share
    assert all(
        abs(Fraction(int(f[i]) - 1) - Fraction(w * (tables.TOTAL - n), total)) < 1
        for i, w in enumerate(weights)
        if i != top
    )


# ---------------------------------------------------------------------------------------------
# round trips


def roundtrip(arrays: list, checksum: bool = True) -> bytes:
    arrays = [np.asarray(a) for a in arrays]
    data = encode_arrays(arrays, checksum=checksum)
    assert encode_arrays(arrays, checksum=checksum) == data, "encoding is deterministic"
    out = decode_arrays(data, [a.size for a in arrays], checksum=checksum)
    assert len(out) == len(arrays)
    for a, o in zip(arrays, out, strict=True):
        assert o.dtype == np.int32 and o.shape == (a.size,)
        assert np.array_equal(o, a.reshape(-1).astype(np.int64))
    return data


@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_roundtrip(case, checksum):
    roundtrip(EDGE_CASES[case], checksum)


def test_constant_and_empty_arrays_cost_only_their_descriptors():
    assert encode_arrays([]) == b""
    assert encode_arrays([np.zeros(0, np.int32)]) == b""
    assert encode_arrays([np.full(1000, 3)]) == bytes([CONST, 6])  # tag, zigzag(3)
    assert len(encode_arrays([np.full(10, -(2**31), np.int64)])) == 6


@pytest.mark.parametrize("step", [1 / 2, 1 / 8, 1 / 32, 1 / 3000])
@pytest.mark.parametrize("kind", ["hidden", "siren", "bias", "input"])
def test_weight_like_tensors_roundtrip(rng, kind, step):
    roundtrip([weights_like(rng, kind, n, step) for n in (4096, 64, 3)])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["hidden", "siren", "bias", "input"]),
            st.integers(0, 600),
            st.floats(1e-4, 1e3),
            st.integers(-1000, 1000),
        ),
        max_size=4,
    ),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_property_roundtrip(specs, seed, checksum):
    rng = np.random.default_rng(seed)
    arrays = []
    for kind, n, scale, shift in specs:
        codes = weights_like(rng, kind, n, 1.0 / scale) + shift
        span = int(codes.max() - codes.min()) if n else 0
        if span > tables.MAX_SPAN:  # the encoder refuses these (tested below); keep the draw valid
            codes = np.clip(codes, shift - tables.MAX_SPAN // 2, shift + tables.MAX_SPAN // 2)
        arrays.append(codes)
    roundtrip(arrays, checksum)


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6), max_size=3))
def test_property_roundtrip_arbitrary_small_arrays(lists):
    arrays = [np.array(v, dtype=np.int64) for v in lists]
    if any(a.size and a.max() - a.min() > tables.MAX_SPAN for a in arrays):
        with pytest.raises(ConfigError, match="apart"):
            encode_arrays(arrays)
    else:
        roundtrip(arrays)


# ---------------------------------------------------------------------------------------------
# the model choice


def test_models_chosen_by_shape(rng):
    pick = {
        kind: choose_model(weights_like(rng, kind, 4096, 1 / 16))[1]
        for kind in ("hidden", "siren", "bias", "input")
    }
    assert pick["hidden"].kind == GAUSS and pick["hidden"].plateau == 0
    assert (
        pick["siren"].kind == GAUSS and pick["siren"].plateau > 16
    )  # the uniform part: |w| < 1.7 -> 27 codes
    assert pick["bias"].kind == LAPLACE
    assert pick["input"].kind in (UNIFORM, GAUSS)
    assert choose_model(np.array([4, 4, 4]))[1] == Model(CONST, 4)


def test_coded_size_is_the_predicted_cost_and_near_the_entropy(rng):
    codes = np.rint(rng.normal(0, 20, 4096)).astype(np.int64)
    bits, _ = choose_model(codes)
    data = encode_arrays([codes], checksum=False)
    assert abs(len(data) - bits / 8) <= 8  # the ANS final state: at most 8 bytes
    x = np.arange(-200, 201)
    p = np.exp(-(x**2) / 800.0)
    p /= p.sum()
    entropy = -(p * np.log2(p)).sum() * codes.size / 8  # bytes of the ideal discretised Gaussian
    assert len(data) < 1.01 * entropy + 16


def test_checksum_costs_a_byte_or_two(rng):
    extra = []
    for _ in range(20):
        arrays = [weights_like(rng, "hidden", 1024, 1 / 16), weights_like(rng, "bias", 32, 1 / 16)]
        extra.append(len(encode_arrays(arrays, checksum=True)) - len(encode_arrays(arrays, checksum=False)))
    assert min(extra) >= 0 and max(extra) <= 4 and 0.5 <= np.mean(extra) <= 2.5


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "arrays, match",
    [
        ([np.array([0.5, 1.0])], "integer codes, got dtype float64"),
        ([np.array([True, False])], "integer codes, got dtype bool"),
        ([np.array([2**31], np.int64)], "outside int32"),
        ([np.array([0, tables.MAX_SPAN + 1])], "at most 1048576 apart"),
    ],
)
def test_encoder_rejects_bad_arrays(arrays, match):
    with pytest.raises(ConfigError, match=match):
        encode_arrays(arrays)


@pytest.mark.parametrize("counts", [[-1], [2**24 + 1], [1.0], [True], ["3"]])
def test_decoder_rejects_bad_counts(counts):
    with pytest.raises(BitstreamError, match="code count"):
        decode_arrays(b"\x00\x00", counts)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "model tag of array 0 missing"),
        (bytes([0x10, 0]), "flags on a constant"),
        (bytes([0x05, 0, 1]), "flags on a uniform"),
        (bytes([0x13, 0, 1, 0]), "unknown flag bits"),
        (bytes([1, 0, 0]), "code span 0"),
        (bytes([1, 0, 0x81, 0x80, 0x40]), "code span 1048577"),
        (bytes([1, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 1]), "lowest code -2147483648 .* int32|code span"),
        (bytes([1, 0x80, 0x00, 1]), "overlong varint"),
        (bytes([1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), "longer than 5 bytes"),
        (bytes([0x07, 0, 4, 10, 3]), "centre 7 of array 0 is outside its codes 0..4"),
        (bytes([0x0B, 0, 4, 3, 4]), "plateau 4 of array 0 is out of range: allowed 1..3"),
        (bytes([0x03, 0, 4]), "scale index of array 0 missing"),
        (bytes([1, 0, 4]), "missing after the descriptors"),
        (bytes([1, 0, 4, 7, 0]), "ends in a zero byte"),
    ],
)
def test_decoder_rejects_bad_descriptors(data, match):
    with pytest.raises(BitstreamError, match=match):
        decode_arrays(data, [5])


def test_bytes_after_constant_descriptors_are_rejected():
    data = encode_arrays([np.full(4, 9)])
    with pytest.raises(BitstreamError, match="1 bytes follow the last model descriptor"):
        decode_arrays(data + b"\x01", [4])
    with pytest.raises(BitstreamError, match="model tag of array 1 missing"):
        decode_arrays(data, [4, 2])


def packet(rng: np.random.Generator) -> tuple[bytes, list[int]]:
    arrays = [weights_like(rng, "hidden", 96, 1 / 8), weights_like(rng, "bias", 12, 1 / 8), np.array([1, 1])]
    return encode_arrays(arrays), [a.size for a in arrays]


def test_every_truncation_raises(rng):
    data, counts = packet(rng)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            decode_arrays(data[:n], counts)


def test_every_bit_flip_raises(rng):
    data, counts = packet(rng)
    for i in range(8 * len(data)):
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(BitstreamError):
            decode_arrays(bytes(bad), counts)


def test_extended_and_random_bytes_raise(rng):
    data, counts = packet(rng)
    for extra in (b"\x01", b"\x00", b"\xff" * 4, rng.bytes(13)):
        with pytest.raises(BitstreamError):
            decode_arrays(data + extra, counts)
    for n in (1, 5, 64, len(data), 3000):
        with pytest.raises(BitstreamError):
            decode_arrays(rng.bytes(n), counts)


def test_wrong_checksum_setting_or_counts_raise(rng):
    data, counts = packet(rng)
    with pytest.raises(BitstreamError, match="coder state"):
        decode_arrays(data, counts, checksum=False)
    with pytest.raises(BitstreamError, match="coder state"):
        decode_arrays(encode_arrays([np.arange(50)], checksum=False), [50], checksum=True)
    with pytest.raises(BitstreamError):
        decode_arrays(data, [counts[0] + 1, *counts[1:]])


def test_without_checksum_corruption_raises_or_decodes_the_right_sizes(rng):
    """Without the CRC the coder still catches most damage; what it misses decodes to arrays of the
    right sizes (no other exception, no unbounded work)."""
    caught = total = 0
    for _ in range(6):
        arrays = [weights_like(rng, "hidden", 256, 1 / 16), weights_like(rng, "bias", 16, 1 / 16)]
        counts = [a.size for a in arrays]
        data = encode_arrays(arrays, checksum=False)
        variants = [data[:n] for n in range(len(data))] + [data + rng.bytes(int(rng.integers(1, 6)))]
        for i in rng.choice(8 * len(data), 64, replace=False):
            bad = bytearray(data)
            bad[i // 8] ^= 1 << (i % 8)
            variants.append(bytes(bad))
        for v in variants:
            total += 1
            try:
                out = decode_arrays(v, counts, checksum=False)
            except BitstreamError:
                caught += 1
            else:
                assert [o.size for o in out] == counts
    assert caught / total > 0.9


def test_decoding_garbage_with_large_counts_is_bounded(rng):
    with pytest.raises(BitstreamError):
        decode_arrays(bytes([3, 1, 0x80, 0x80, 0x40, 0]) + rng.bytes(40) + b"\x01", [2_000_000])


def test_entropy_modules_need_no_torch():
    code = (
        "import sys, codec.entropy, codec.entropy_models, codec.entropy_tables; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
