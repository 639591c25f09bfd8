// spinr browser client: upload -> train -> stream over WebSocket -> progressive decode on a canvas.
//
// The page's entry module: it loads the server's configuration and wires the UI modules in ./ui/
// together. It talks to the server API in docs/API.md and decodes with the browser library in
// spnr.js (plus the WebGL2 accelerator in gl.js when the browser has one). Nothing is put on window.
// The root element's data-state tells tests (and CSS) where the page is: see ui/status.js.

import { tryCreateWebGLAccelerator } from "./gl.js";
import { showSliderValues } from "./ui/channel.js";
import { ui } from "./ui/dom.js";
import { formatBytes, reason } from "./ui/format.js";
import { loadFromHash, onLibraryLoad } from "./ui/image.js";
import { updateJpeg } from "./ui/jpeg.js";
import { loadLibrary } from "./ui/library.js";
import { applyPreset, buildOptions } from "./ui/options.js";
import { fetchJSON } from "./ui/remote.js";
import { state } from "./ui/state.js";
import { clearError, setState, showError } from "./ui/status.js";
import { startStream } from "./ui/stream.js";
import { wireUpload } from "./ui/upload.js";
import { render, showBackend, syncPanes } from "./ui/view.js";

/** Reconnect this long after the last slider movement (ms). */
const SLIDER_DEBOUNCE_MS = 250;

async function loadConfig() {
  const { data } = await fetchJSON("/api/config");
  state.config = data;
  ui.version.textContent = `spinr ${data.version}`;
  ui.dropHint.textContent =
    `${data.formats.join(", ")} · up to ${formatBytes(data.limits.max_upload_bytes)}, ` +
    `${(data.limits.max_pixels / 1e6).toFixed(1)} MP`;
  buildOptions(data);
}

/** A slider moved: show its value now, reconnect once the user stops moving it. */
function onSlider() {
  showSliderValues();
  clearTimeout(state.sliderTimer);
  state.sliderTimer = setTimeout(() => startStream(false), SLIDER_DEBOUNCE_MS);
}

function wire() {
  ui.errorClose.addEventListener("click", clearError);
  ui.preset.addEventListener("change", applyPreset);
  wireUpload();
  ui.libraryRefresh.addEventListener("click", () => loadLibrary(state.imageId));
  ui.libraryLoad.addEventListener("click", onLibraryLoad);
  for (const el of [ui.loss, ui.burst, ui.bw, ui.ber]) el.addEventListener("input", onSlider);
  ui.seed.addEventListener("change", onSlider);
  ui.abr.addEventListener("change", onSlider);
  ui.deadline.addEventListener("change", onSlider);
  ui.restream.addEventListener("click", () => startStream(false));
  ui.resume.addEventListener("click", () => startStream(true));
  ui.jpegBudget.addEventListener("change", updateJpeg);
  for (const radio of document.querySelectorAll('input[name="zoom"]')) {
    radio.addEventListener("change", () => {
      state.zoom = Number(radio.value);
      if (state.stream) render();
    });
  }
  ui.backend.addEventListener("change", () => {
    if (state.stream) render();
    else showBackend(null);
  });
  syncPanes();
  window.addEventListener("hashchange", () => loadFromHash(false));
}

async function main() {
  wire();
  showSliderValues();
  const r = tryCreateWebGLAccelerator();
  state.accelerator = r.accelerator;
  state.acceleratorReason = r.reason;
  if (!r.accelerator) {
    ui.backend.value = "js";
    ui.backend.disabled = true;
    ui.backend.title = `WebGL2 unavailable: ${r.reason}`;
  }
  showBackend(null);
  try {
    await loadConfig();
  } catch (e) {
    showError(`Cannot load the server's configuration: ${reason(e)}`);
    return;
  }
  setState("idle");
  loadLibrary();
  loadFromHash(true);
}

main().catch((e) => {
  showError(`The page failed to start: ${reason(e)}`);
});
