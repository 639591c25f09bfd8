// The decoded picture: decode what the stream holds at the chosen zoom, paint it, show the stats and
// which engine decoded it. A zoom decodes the continuous representation at 2x or 4x the image's size
// and shows it that much bigger: both panes (spinr and the JPEG) scroll, together.

import { ui } from "./dom.js";
import { formatBytes, formatPsnr, reason } from "./format.js";
import { state } from "./state.js";

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
  ui.zoomNote.textContent = "";
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
    s.fail(`Decoding failed: ${reason(e)}`);
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
  ui.placeholder.hidden = true;
  ui.statDepth.textContent = `${info.depth} / ${dec.depths}`;
  const psnr = ladderPsnr(dec, info) ?? dec.header.stagePsnr[info.depth - 1];
  ui.statPsnr.textContent = formatPsnr(psnr);
  ui.statDecode.textContent = `${info.ms.toFixed(1)} ms · ${w}×${h}`;
  ui.zoomNote.textContent =
    `${w}×${h} px decoded in ${info.ms < 10 ? info.ms.toFixed(1) : Math.round(info.ms)} ms` +
    (zoom > 1 ? ` · shown ${zoom}× bigger: scroll to pan` : "") +
    (zoom < state.zoom ? ` (${state.zoom}× would be over ${MAX_ZOOM_PIXELS / 1e6} Mpx)` : "");
  showZoom(zoom);
  showBackend(info);
}

/** The zoom the user picked, lowered when the decode would be too large. */
function effectiveZoom(w, h) {
  let z = state.zoom;
  while (z > 1 && w * z * h * z > MAX_ZOOM_PIXELS) z /= 2;
  return z;
}

/** Both panes show their picture `zoom` times their box; a new zoom starts at the centre. */
function showZoom(zoom) {
  const changed = ui.canvas.dataset.zoom !== String(zoom);
  ui.canvas.dataset.zoom = String(zoom);
  for (const frame of document.querySelectorAll(".frame")) {
    frame.classList.toggle("zoomed", zoom > 1);
    frame.style.setProperty("--zoom", String(zoom));
    if (changed) {
      frame.scrollLeft = (frame.scrollWidth - frame.clientWidth) / 2;
      frame.scrollTop = (frame.scrollHeight - frame.clientHeight) / 2;
    }
  }
}

/** Scroll `to` to the place `from` shows (as fractions of what each can scroll). */
function copyScroll(from, to) {
  const fx = from.scrollLeft / Math.max(1, from.scrollWidth - from.clientWidth);
  const fy = from.scrollTop / Math.max(1, from.scrollHeight - from.clientHeight);
  to.scrollLeft = fx * (to.scrollWidth - to.clientWidth);
  to.scrollTop = fy * (to.scrollHeight - to.clientHeight);
}

/** Scrolling one zoomed pane scrolls the other to the same place, so they stay comparable; a JPEG
 * that arrives later starts where the spinr pane is. */
export function syncPanes() {
  const frames = [...document.querySelectorAll(".frame")];
  let syncing = false;
  for (const frame of frames) {
    frame.addEventListener("scroll", () => {
      if (syncing) return;
      syncing = true;
      for (const other of frames) if (other !== frame) copyScroll(frame, other);
      requestAnimationFrame(() => {
        syncing = false;
      });
    });
  }
  ui.jpeg.addEventListener("load", () => copyScroll(ui.canvas.parentElement, ui.jpeg.parentElement));
}

/**
 * The badge: the engine that decoded the picture on screen and, for JavaScript, why (chosen, no
 * WebGL2, no shaders for this model's layers, or WebGL2 failed); before any decode, the engine the
 * choice will use.
 * @param {import("../codec/decoder.js").DecodeInfo|null} info
 */
export function showBackend(info) {
  const renderer = state.accelerator ? state.accelerator.renderer : "";
  const chosenJs = ui.backend.value === "js";
  const arch = state.stream && state.stream.decoder.arch;
  let text;
  let title;
  let backend;
  if (info && info.backend !== "js") {
    [text, title, backend] = [`decoder: ${engineName(info.backend)}`, renderer, info.backend];
  } else if (!state.accelerator) {
    [text, title, backend] = ["decoder: JavaScript (no WebGL2)", `WebGL2 unavailable: ${state.acceleratorReason}`, "js"];
  } else if (chosenJs) {
    [text, title, backend] = ["decoder: JavaScript (chosen)", `WebGL2 is available (${renderer}); “Decode with” asks for JavaScript`, "js"];
  } else if (info && arch && arch.accelerated === false) {
    const model = state.stream.decoder.header.model;
    [text, title, backend] = [`decoder: JavaScript (WebGL2 has no ${model} shaders)`, info.fallback || "", "js"];
  } else if (info) {
    [text, title, backend] = ["decoder: JavaScript (WebGL2 failed)", info.fallback || "", "js"];
  } else {
    [text, title, backend] = ["decoder: WebGL2", renderer, "webgl2"];
  }
  ui.badge.textContent = text;
  ui.badge.title = title;
  ui.badge.dataset.backend = backend;
}

/** @param {string} name  an accelerator's name */
function engineName(name) {
  return name === "webgl2" ? "WebGL2" : name;
}

/**
 * With refinements, the ladder's PSNR for what the decode used: units 0..u all at the coarsest level
 * any of them has (a lower bound when some are finer); null without refinements (the stage PSNRs).
 */
function ladderPsnr(dec, info) {
  const ladder = dec.header.ladder;
  if (!ladder || !ladder.some((r) => r.level > 0) || !info.units.length) return null;
  const n = dec.numUnits;
  const level = Math.min(...info.levels);
  const rung = ladder[level * n + Math.max(...info.units)];
  return rung && rung.psnr !== null ? rung.psnr : null;
}
