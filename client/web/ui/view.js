// The decoded picture: decode what the stream holds at the chosen zoom, paint it, show the stats and
// which engine decoded it.

import { ui } from "./dom.js";
import { formatBytes, formatPsnr, reason } from "./format.js";
import { state } from "./state.js";
import { showError } from "./status.js";

/** Largest decode (pixels) the zoom buttons may ask for. */
const MAX_ZOOM_PIXELS = 16_000_000;

/** @param {boolean} [clearJpeg=true] */
export function resetView(clearJpeg = true) {
  const ctx = ui.canvas.getContext("2d");
  ctx.clearRect(0, 0, ui.canvas.width, ui.canvas.height);
  ui.canvas.dataset.layers = "0";
  ui.placeholder.hidden = false;
  ui.placeholder.textContent = state.imageId ? "Waiting for the first layer…" : "Encode or pick an image to stream it.";
  for (const el of [ui.statLayers, ui.statDepth, ui.statBytes, ui.statPsnr, ui.statDecode]) el.textContent = "–";
  ui.packets.replaceChildren();
  ui.timeline.replaceChildren();
  if (clearJpeg) {
    ui.jpeg.hidden = true;
    ui.jpegPlaceholder.hidden = false;
    ui.jpegCaption.textContent = "JPEG";
  }
}

/** Decode what the current stream holds at the chosen zoom and paint it. */
export function render() {
  const s = state.stream;
  if (!s) return;
  const dec = s.decoder;
  const total = dec.numUnits;
  const layers = dec.available().length;
  ui.statLayers.textContent = total ? `${layers} / ${total}` : "–";
  ui.statBytes.textContent = s.bytes ? `${formatBytes(s.bytes)} (${s.bytes} B)` : "–";
  if (!dec.header) return;
  const depth = dec.usableDepth();
  if (depth === null) {
    ui.statDepth.textContent = `none of ${dec.depths}`;
    ui.placeholder.hidden = false;
    ui.placeholder.textContent = "Waiting for the layers every decode needs…";
    return;
  }
  const zoom = effectiveZoom(dec.header.width, dec.header.height);
  const w = dec.header.width * zoom;
  const h = dec.header.height * zoom;
  let rgba;
  try {
    rgba = dec.decode(w, h, { backend: ui.backend.value === "js" ? "js" : "auto" });
  } catch (e) {
    showError(`Decoding failed: ${reason(e)}`);
    return;
  }
  const info = dec.lastInfo;
  if (ui.canvas.width !== w || ui.canvas.height !== h) {
    ui.canvas.width = w;
    ui.canvas.height = h;
  }
  ui.canvas.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
  ui.canvas.dataset.layers = String(layers);
  ui.canvas.dataset.depth = String(info.depth);
  ui.canvas.dataset.zoom = String(zoom);
  ui.placeholder.hidden = true;
  ui.statDepth.textContent = `${info.depth} / ${dec.depths}`;
  const psnr = dec.header.stagePsnr[info.depth - 1];
  ui.statPsnr.textContent = formatPsnr(psnr);
  ui.statDecode.textContent = `${info.ms.toFixed(1)} ms · ${w}×${h}`;
  showBackend(info);
}

/** The zoom the user picked, lowered when the decode would be too large. */
function effectiveZoom(w, h) {
  let z = state.zoom;
  while (z > 1 && w * z * h * z > MAX_ZOOM_PIXELS) z /= 2;
  return z;
}

/** @param {import("../codec/decoder.js").DecodeInfo|null} info */
export function showBackend(info) {
  let text;
  let title;
  if (info && info.backend !== "js") {
    text = `decoder: ${info.backend}`;
    title = state.accelerator ? state.accelerator.renderer : "";
  } else if (info && info.fallback) {
    text = "decoder: JavaScript (WebGL2 failed)";
    title = info.fallback;
  } else if (state.accelerator) {
    text = "decoder: webgl2";
    title = state.accelerator.renderer;
  } else {
    text = "decoder: JavaScript";
    title = `WebGL2 unavailable: ${state.acceleratorReason}`;
  }
  ui.badge.textContent = text;
  ui.badge.title = title;
  ui.badge.dataset.backend = info ? info.backend : state.accelerator ? "webgl2" : "js";
}
