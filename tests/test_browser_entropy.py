"""client/web/codec/entropy.js in a real headless Chromium: it decodes exactly what codec/entropy.py encodes.

Served and driven by the machinery of tests/_browser.py (``served``: client/web at / and
this test's files at /data/ on 127.0.0.1; ``browser``: Playwright's Chromium). A page imports the
module standalone; every case compares the browser's Int32Arrays with numpy's byte for byte, and for
damaged bytes checks that the browser and Python agree: both raise, or (without the checksum, where
damage can go unnoticed) both return the same arrays.
"""

from __future__ import annotations

import base64
import itertools
import json
import time

import numpy as np
import pytest
from _entropy_ref import EDGE_CASES, weights_like

from codec.entropy import decode_arrays, encode_arrays
from codec.entropy_models import GAUSS, LAPLACE, UNIFORM, Model
from codec.errors import BitstreamError

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><meta charset="utf-8"><title>entropy.js</title>
<script type="module">
import * as E from "/codec/entropy.js";
import { SpnrError } from "/codec/errors.js";
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
function bytesOf(arrays) {
  const n = arrays.reduce((s, a) => s + a.length, 0), all = new Int32Array(n);
  let o = 0;
  for (const a of arrays) { all.set(a, o); o += a.length; }
  const u = new Uint8Array(all.buffer);
  let s = "";
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
  return btoa(s);
}
window.decodeCases = (cases) => cases.map((c) => {
  try {
    const t0 = performance.now();
    const out = E.decodeArrays(b64(c.data), c.counts, { checksum: c.checksum });
    return { ok: true, ms: performance.now() - t0, sizes: out.map((a) => a.length), values: bytesOf(out) };
  } catch (e) {
    return { ok: false, name: e.name, isSpnrError: e instanceof SpnrError, message: String(e.message) };
  }
});
window.tables = (models) => bytesOf(models.map((m) => Int32Array.from(E.frequencies(m))));
window.ready = true;
</script>"""


@pytest.fixture(scope="module")
def page(browser, served):  # noqa: F811  (this module's own page)
    base, data_dir = served
    (data_dir / "entropy.html").write_text(PAGE)
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{base}/data/entropy.html")
    pg.wait_for_function("window.ready === true", timeout=10_000)
    yield pg
    assert not errors, f"uncaught errors in the page: {errors}"
    pg.close()


def js_decode(page, cases: list[tuple[bytes, list[int], bool]]) -> list[dict]:
    payload = [{"data": base64.b64encode(d).decode(), "counts": c, "checksum": k} for d, c, k in cases]
    return page.evaluate("(cases) => window.decodeCases(cases)", payload)


def values(res: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(res["values"]), dtype="<i4")


def py_decode(data: bytes, counts: list[int], checksum: bool) -> np.ndarray | None:
    try:
        return np.concatenate([np.zeros(0, np.int32), *decode_arrays(data, counts, checksum=checksum)])
    except BitstreamError:
        return None


def assert_same_as_python(cases, results) -> None:
    for (data, counts, checksum), res in zip(cases, results, strict=True):
        want = py_decode(data, counts, checksum)
        if want is None:
            assert not res["ok"], f"Python rejects {data.hex()[:40]}..., the browser decoded it"
            assert res["name"] == "SpnrError" and res["isSpnrError"], res
        else:
            assert res["ok"], res
            assert res["sizes"] == counts
            assert np.array_equal(values(res), want)


def real_looking_packets(rng: np.random.Generator) -> list[list[np.ndarray]]:
    """One layer packet (weight matrix, bias, readout head, head bias) per tensor shape and step."""
    packets = []
    for kind, step, width in itertools.product(
        ["hidden", "siren", "bias", "input"], [1 / 4, 1 / 16, 1 / 400], [16, 64]
    ):
        packets.append(
            [
                weights_like(rng, kind, width * width, step),
                weights_like(rng, "bias", width, step),
                weights_like(rng, "hidden", 3 * width, step),
                weights_like(rng, "bias", 3, step),
            ]
        )
    return packets


def test_edge_cases_and_real_looking_packets_decode_exactly(page, rng):
    cases = []
    for arrays, checksum in itertools.product(
        [*EDGE_CASES.values(), *real_looking_packets(rng)], [True, False]
    ):
        arrays = [np.asarray(a) for a in arrays]
        cases.append((encode_arrays(arrays, checksum=checksum), [a.size for a in arrays], checksum))
    results = js_decode(page, cases)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    assert_same_as_python(cases, results)


def test_frequency_tables_match_numpy_over_the_parameter_space(page):
    models = [Model(UNIFORM, 0, span) for span in (1, 2, 60, 1000, 2**20)]
    for kind, span, k in itertools.product((LAPLACE, GAUSS), (1, 2, 60, 1000), range(256)):
        models.append(Model(kind, -7, span, -7 + span // 3, k))
    for kind, k, plateau in itertools.product((LAPLACE, GAUSS), range(0, 256, 5), (1, 7, 40)):
        models.append(Model(kind, 100, 90, 100 + 80, k, plateau))
    want = np.concatenate([m.frequencies() for m in models]).astype(np.int32)
    js = [
        {"kind": m.kind, "lo": m.lo, "span": m.span, "center": m.center, "k": m.k, "plateau": m.plateau}
        for m in models
    ]
    got = np.frombuffer(base64.b64decode(page.evaluate("(m) => window.tables(m)", js)), dtype="<i4")
    assert np.array_equal(got, want)


def test_damaged_bytes_are_rejected_as_in_python(page, rng):
    cases = []
    for checksum in (True, False):
        arrays = [
            weights_like(rng, "hidden", 80, 1 / 8),
            weights_like(rng, "bias", 10, 1 / 8),
            np.array([2, 2]),
        ]
        counts = [a.size for a in arrays]
        data = encode_arrays(arrays, checksum=checksum)
        cases += [(data[:n], counts, checksum) for n in range(len(data))]
        for i in range(8 * len(data)):
            bad = bytearray(data)
            bad[i // 8] ^= 1 << (i % 8)
            cases.append((bytes(bad), counts, checksum))
        cases += [(data + extra, counts, checksum) for extra in (b"\x00", b"\x01", rng.bytes(7))]
        cases += [(rng.bytes(n), counts, checksum) for n in (0, 1, 9, 200)]
    results = js_decode(page, cases)
    assert_same_as_python(cases, results)
    rejected = [r for (_, _, k), r in zip(cases, results, strict=True) if k and not r["ok"]]
    assert len(rejected) == sum(1 for c in cases if c[2])  # with the checksum: every damaged input


@pytest.mark.parametrize(
    "data, counts",
    [
        (b"", [5]),
        (bytes([0x13, 0, 1, 0]), [5]),
        (bytes([1, 0x80, 0x00, 1]), [5]),
        (bytes([0x07, 0, 4, 10, 3]), [5]),
        (bytes([0x0B, 0, 4, 3, 4]), [5]),
        (bytes([1, 0, 4, 7, 0]), [5]),
        (bytes([0, 6, 1]), [4]),
        (b"\x00\x00", [-1]),
    ],
)
def test_error_messages_match_python(page, data, counts):
    with pytest.raises(BitstreamError) as exc:
        decode_arrays(data, counts)
    (res,) = js_decode(page, [(data, counts, True)])
    assert not res["ok"] and res["name"] == "SpnrError"
    assert res["message"] == str(exc.value)


def test_decodes_seventy_thousand_codes(page, rng, capsys):
    """A SPINR-sized packet set (~70 K weights, 17 layer packets): exact, and the time it takes."""
    packets = [
        [weights_like(rng, "hidden", 64 * 64, 1 / 16), weights_like(rng, "bias", 64, 1 / 16)]
        for _ in range(17)
    ]
    cases = [(encode_arrays(p), [a.size for a in p], True) for p in packets]
    t0 = time.perf_counter()
    for data, counts, _ in cases:
        decode_arrays(data, counts)
    py_ms = (time.perf_counter() - t0) * 1000
    results = js_decode(page, cases * 5)  # warm the JIT, keep the last round
    assert_same_as_python(cases, results[-len(cases) :])
    js_ms = sum(r["ms"] for r in results[-len(cases) :])
    codes = sum(sum(c) for _, c, _ in cases)
    with capsys.disabled():
        print(
            json.dumps(
                {
                    "codes": codes,
                    "bytes": sum(len(d) for d, _, _ in cases),
                    "js_ms": round(js_ms, 1),
                    "numpy_ms": round(py_ms, 1),
                }
            )
        )
