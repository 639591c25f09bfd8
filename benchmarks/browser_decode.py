"""``spinr bench browser``: the browser decoder's JS and WebGL2 paths in headless Chromium, beside the
numpy decoder in the same run.

The page is client/web's ``test.html`` (it loads the library as ``window.spnrLib`` and ``window.spnrGL``)
served on 127.0.0.1; the stream is the decode benchmark's SPINR of random weights. For each backend:
one cold full decode (a new decoder, every packet, one decode) and progressive decoding (a decode after
every packet, the cache reused), in milliseconds and GFLOP/s (2 flops per multiply-add of the layers
run). Chromium is launched as the browser tests launch it: without a GPU, WebGL2 runs on SwiftShader
(the CPU), so its numbers here say what a machine without a GPU gets, not what a GPU does.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codec.errors import ConfigError

WEB = Path(__file__).resolve().parent.parent / "client" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@contextlib.contextmanager
def serve_web(data_dir: Path) -> Iterator[str]:
    """client/web at ``/`` and ``data_dir``'s files at ``/data/`` on 127.0.0.1; yields the base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            clean = path.split("?", 1)[0].split("#", 1)[0]
            if clean.startswith("/data/"):
                return str(data_dir / Path(clean[len("/data/") :]).name)
            return super().translate_path(path)

        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Handler, directory=str(WEB))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


TIMING = """async ([packets, w, h, repeats]) => {
  const L = window.spnrLib, G = window.spnrGL;
  const bytes = packets.map((s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
  const now = () => performance.now();
  const out = {};
  const t0 = now();
  const { accelerator, reason } = G.tryCreateWebGLAccelerator();
  out.webgl = { available: !!accelerator, reason, renderer: accelerator ? accelerator.renderer : null, initMs: now() - t0 };
  const backends = accelerator ? ["js", "accelerator"] : ["js"];
  for (const backend of backends) {
    const r = { full_ms: Infinity, progressive_ms: Infinity };
    for (let i = 0; i < repeats; i++) {
      let dec = new L.ProgressiveDecoder({ accelerator: backend === "js" ? null : accelerator });
      for (const b of bytes) dec.addPacket(b);
      let t = now();
      dec.decode(w, h, { backend });
      r.full_ms = Math.min(r.full_ms, now() - t);
      r.info = { backend: dec.lastInfo.backend, depth: dec.lastInfo.depth };
      dec.clearCache();
      dec = new L.ProgressiveDecoder({ accelerator: backend === "js" ? null : accelerator });
      t = now();
      let decodes = 0;
      for (const b of bytes) {
        dec.addPacket(b);
        if (dec.usableDepth() !== null) { dec.decode(w, h, { backend }); decodes++; }
      }
      r.progressive_ms = Math.min(r.progressive_ms, now() - t);
      r.progressive_decodes = decodes;
      dec.clearCache();
    }
    out[backend === "js" ? "js" : "webgl2"] = r;
  }
  return out;
}"""


def bench_browser(width: int, height: int, net_width: int, hidden: int, repeats: int) -> dict[str, Any]:
    import base64
    import tempfile

    try:  # an optional dependency (the browser-tests extra), not one the image's services import
        sync_playwright = importlib.import_module("playwright.sync_api").sync_playwright
    except ImportError:
        raise ConfigError(
            "spinr bench browser drives a headless Chromium through Playwright, which this install "
            "lacks: pip install 'spinr[browser-tests]'"
        ) from None
    from benchmarks.decode_speed import run_isolated, stream

    bs = stream(width, height, net_width, hidden)
    from codec.decoder import ProgressiveDecoder

    arch = ProgressiveDecoder(bs.header).arch
    assert arch is not None
    steps = list(range(arch.depths))
    flops = 2 * width * height * arch.macs_per_pixel(steps, steps[-1])
    packets = [base64.b64encode(p.to_bytes()).decode() for p in bs.packets()]
    numpy_side = run_isolated(width, height, net_width, hidden, repeats, torch=False, quick=True)
    with tempfile.TemporaryDirectory() as tmp, serve_web(Path(tmp)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/test.html?src=/data/none.spnr&nogl=1")
            page.wait_for_function("window.spnrDone === true", timeout=30_000)
            res = page.evaluate(TIMING, [packets, width, height, repeats])
            version = browser.version
        finally:
            browser.close()
    report: dict[str, Any] = {
        "image": f"{width}x{height}",
        "model": f"spinr width {net_width}, {hidden} hidden layers",
        "chromium": version,
        "flop_per_decode": flops,
        "webgl2_context": res["webgl"],
        "numpy_tiled_decode_s": numpy_side["tiled_decode_s"],
        "numpy_tiled_gflops": numpy_side["tiled_gflops"],
        "matmul_gflops_1024": numpy_side["matmul_gflops_1024"],
    }
    for name in ("js", "webgl2"):
        if name not in res:
            continue
        r = res[name]
        full_s = r["full_ms"] / 1e3
        report[name] = {
            "backend_used": r["info"]["backend"],
            "full_decode_s": round(full_s, 4),
            "gflops": round(flops / full_s / 1e9, 3),
            "progressive_all_depths_s": round(r["progressive_ms"] / 1e3, 4),
            "progressive_over_one_full_decode": round(r["progressive_ms"] / r["full_ms"], 3),
            "over_numpy_tiled": round(full_s / numpy_side["tiled_decode_s"], 2),
        }
    return report
