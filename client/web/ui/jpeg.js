// The comparison pane: the original as JPEG at the same byte budget (docs/API.md, /jpeg?bytes=N).

import { ui } from "./dom.js";
import { formatBytes, reason } from "./format.js";
import { detailText } from "./remote.js";
import { state } from "./state.js";

/** JPEG of the original at the same byte budget (received bytes or the whole bitstream). */
export async function updateJpeg() {
  const s = state.stream;
  if (!s || !state.header) return;
  const id = state.imageId;
  const gen = state.generation;
  const full = state.header.packets.reduce((n, p) => n + p.bytes, 0);
  const budget = ui.jpegBudget.value === "full" ? full : s.bytes;
  ui.jpegCaption.textContent = `JPEG · budget ${formatBytes(budget)}…`;
  try {
    const r = await fetch(`/api/images/${id}/jpeg?bytes=${budget}`);
    if (gen !== state.generation) return;
    if (!r.ok) {
      let detail = r.statusText;
      try {
        detail = detailText((await r.json()).detail);
      } catch {
        // keep the status text
      }
      ui.jpeg.hidden = true;
      ui.jpegPlaceholder.hidden = false;
      ui.jpegPlaceholder.textContent = `No JPEG fits ${budget} bytes (HTTP ${r.status}: ${detail}).`;
      ui.jpegCaption.textContent = "JPEG · does not fit";
      return;
    }
    const blob = await r.blob();
    if (gen !== state.generation) return;
    if (state.jpegUrl) URL.revokeObjectURL(state.jpegUrl);
    state.jpegUrl = URL.createObjectURL(blob);
    ui.jpeg.src = state.jpegUrl;
    ui.jpeg.hidden = false;
    ui.jpegPlaceholder.hidden = true;
    const q = r.headers.get("X-Quality");
    const b = r.headers.get("X-Bytes");
    ui.jpegCaption.textContent = `JPEG · quality ${q} · ${formatBytes(Number(b))} (budget ${formatBytes(budget)})`;
    ui.jpeg.dataset.quality = q || "";
    ui.jpeg.dataset.bytes = b || "";
  } catch (e) {
    ui.jpegCaption.textContent = "JPEG";
    ui.jpegPlaceholder.hidden = false;
    ui.jpegPlaceholder.textContent = `JPEG comparison failed: ${reason(e)}`;
  }
}
