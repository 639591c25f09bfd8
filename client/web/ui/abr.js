// The browser's ABR view (protocol version 2, docs/API.md): the start message's `abr` object from
// the ABR switch and deadline, the receiver reports the server's controller plans on (as
// streaming.feedback.Reporter sends them), and the line that says what the controller chose and the
// throughput the page measures.

import { peekPacket } from "../spnr.js";
import { ui } from "./dom.js";

/** Reports go at most this often (ms), as the CLI's. */
export const REPORT_MS = 25;
const MAX_ARRIVALS = 64;
const MAX_LOST = 256;
/** Throughput is measured over the arrivals of the last this many ms. */
const RATE_WINDOW_MS = 500;

/** The start message's `abr` object, or null when the switch is off. */
export function abrFromControls() {
  if (!ui.abr.checked) return null;
  const d = Number(ui.deadline.value);
  return Number.isFinite(d) && d > 0 && d <= 600 ? { deadline_s: d } : {};
}

/** Batches arrivals into reports and sends them on `ws` while the stream runs. */
export class Reporter {
  /** @param {WebSocket} ws @param {number} t0 performance.now() at the connection's start */
  constructor(ws, t0) {
    this.ws = ws;
    this.t0 = t0;
    this.pending = [];
    this.seen = new Set();
    this.timer = null;
    this.stopped = false;
  }

  /** A binary message arrived: note its seq (from the packet header), size and time. */
  arrived(bytes, tMs) {
    if (this.stopped) return;
    let seq;
    try {
      seq = peekPacket(bytes).seq;
    } catch {
      return; // a damaged packet header: nothing to report (the sender sees the gap)
    }
    this.seen.add(seq);
    this.pending.push([seq, bytes.length, Math.round(tMs * 1000) / 1000]);
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), REPORT_MS);
  }

  flush() {
    this.timer = null;
    if (this.stopped || !this.pending.length || this.ws.readyState !== WebSocket.OPEN) return;
    const batch = this.pending.splice(0, MAX_ARRIVALS);
    const top = Math.max(0, ...this.seen);
    const lost = [];
    for (let s = 1; s < top && lost.length < MAX_LOST; s++) if (!this.seen.has(s)) lost.push(s);
    const at = Math.max(performance.now() - this.t0, ...batch.map((a) => a[2]));
    this.ws.send(JSON.stringify({ type: "report", at: Math.round(at * 1000) / 1000, arrived: batch, lost }));
    if (this.pending.length) this.timer = setTimeout(() => this.flush(), REPORT_MS);
  }

  /** The server's done message came: it closes next, no more reports. */
  stop() {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

/**
 * What the controller chose so far and the throughput the page measured (kbit/s over the last
 * RATE_WINDOW_MS of arrivals), shown under the channel controls; the server's own estimate once done.
 * @param {import("./stream.js").Stream} s
 */
export function showAbr(s) {
  if (!s.abr) {
    ui.abrInfo.textContent = "";
    return;
  }
  const packets = s.arrivals.filter((a) => a.kind === "layer" || a.kind === "refinement");
  const count = (k) => packets.filter((a) => a.kind === k).length;
  const direct = packets.filter((a) => a.direct).length;
  const last = s.arrivals.length ? s.arrivals[s.arrivals.length - 1].t : 0;
  const recent = s.arrivals.filter((a) => a.t >= last - RATE_WINDOW_MS);
  const span = recent.length > 1 ? recent[recent.length - 1].t - recent[0].t : 0;
  const kbps = span > 0 ? (recent.slice(1).reduce((n, a) => n + a.bytes, 0) * 8) / span : null;
  s.throughput = kbps;
  const parts = [
    `ABR: ${count("layer")} layer packet(s), ${count("refinement") - direct} refinement(s), ${direct} whole layer(s)`,
    kbps === null ? "throughput: measuring…" : `throughput ≈ ${kbps.toFixed(1)} kbit/s`,
  ];
  const a = s.summary && s.summary.abr;
  if (a) {
    parts.push(`server: ${a.stopped || "done"}; its estimate ${a.throughput_kbps ?? "–"} kbit/s, ${a.reports} report(s)`);
  }
  ui.abrInfo.textContent = parts.join(" · ");
  ui.abrInfo.dataset.packets = String(packets.length);
  ui.abrInfo.dataset.refinements = String(count("refinement") - direct);
}
