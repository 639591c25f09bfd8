// One WebSocket stream of an image into a ProgressiveDecoder (client/stream.py for the browser): the
// start message with the channel, packets as they arrive, the server's done summary, resuming with
// the units held.

import { ProgressiveDecoder, peekPacket } from "../spnr.js";
import { Reporter, abrFromControls, showAbr } from "./abr.js";
import { channelFromSliders } from "./channel.js";
import { ui } from "./dom.js";
import { updateJpeg } from "./jpeg.js";
import { streamProtocols } from "./remote.js";
import { state } from "./state.js";
import { clearError, finish, setState, showError, showNotice } from "./status.js";
import { drawTimeline } from "./timeline.js";
import { render, resetView } from "./view.js";

/** WebSocket close codes the server uses (docs/API.md). */
const CLOSE_REASONS = {
  1008: "the server refused the start message",
  1011: "the server could not read the stored file",
  4404: "unknown image",
  4409: "the image is not finished",
};

/**
 * @typedef {object} Arrival
 * @property {number} t        ms since the connection opened
 * @property {number} bytes
 * @property {number|null} layer
 * @property {string} kind     header | layer | refinement | rejected | duplicate
 * @property {number} level    refinement level of the unit after it (0 for a unit packet)
 * @property {boolean} direct  a direct refinement packet (the unit whole)
 * @property {string|null} error
 */

/** One WebSocket connection and the decoder fed from it. */
export class Stream {
  /**
   * @param {string} id
   * @param {object} channel
   * @param {ProgressiveDecoder} decoder  a fresh one, or the previous stream's (resume)
   * @param {number[]} have
   * @param {object|null} [abr]  the start message's abr object (protocol version 2), or null
   */
  constructor(id, channel, decoder, have, abr = null) {
    this.id = id;
    this.channel = channel;
    this.abr = abr;
    /** @type {Reporter|null} */
    this.reporter = null;
    /** kbit/s the page measured over the latest arrivals (ABR view). @type {number|null} */
    this.throughput = null;
    this.decoder = decoder;
    this.have = have;
    /** @type {Arrival[]} */
    this.arrivals = [];
    this.bytes = 0;
    this.rejected = 0;
    /** @type {string} the latest rejected packet's note */
    this.rejectNote = "";
    this.summary = null;
    this.closed = false;
    /** This stream failed (its error is the one showing). */
    this.failed = false;
    this.t0 = performance.now();
    this._renderQueued = null;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${proto}//${location.host}/ws/stream/${encodeURIComponent(id)}`, streamProtocols());
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this._onOpen();
    this.ws.onmessage = (ev) => this._onMessage(ev);
    this.ws.onclose = (ev) => this._onClose(ev);
    this.ws.onerror = () => {}; // the close event that follows carries what we can know
  }

  _onOpen() {
    this.t0 = performance.now();
    const start = { type: "start", channel: this.channel, have: this.have };
    if (this.abr) {
      start.version = 2;
      if (Object.keys(this.abr).length) start.abr = this.abr;
      this.reporter = new Reporter(this.ws, this.t0);
    }
    this.ws.send(JSON.stringify(start));
    setState("streaming");
    ui.statState.textContent = "streaming";
  }

  /** @param {MessageEvent} ev */
  _onMessage(ev) {
    if (this.closed) return;
    const t = performance.now() - this.t0;
    if (typeof ev.data === "string") {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        this.fail(`The server sent a text message that is not JSON: ${ev.data.slice(0, 120)}`);
        return;
      }
      if (msg && msg.type === "done") {
        this.summary = msg;
        if (this.reporter) this.reporter.stop();
        showAbr(this);
      } else {
        this.fail(`The server sent an unexpected message: ${ev.data.slice(0, 120)}`);
      }
      return;
    }
    const bytes = new Uint8Array(ev.data);
    this.bytes += bytes.length;
    if (this.reporter) this.reporter.arrived(bytes, t);
    const st = this.decoder.addPacket(bytes);
    let kind = st.kind || "rejected";
    if (!st.accepted) {
      kind = "rejected";
      this.rejected += 1;
      this.rejectNote = `${this.rejected} packet(s) rejected — latest: ${st.error}`;
      showNotice(this.rejectNote);
    } else if (st.duplicate) {
      kind = "duplicate";
    }
    const level = st.layer === null ? 0 : this.decoder.levels.get(st.layer) || 0;
    const direct = kind === "refinement" && bytes.length > 0 && isDirect(bytes);
    this.arrivals.push({ t, bytes: bytes.length, layer: st.layer, kind, error: st.error, level, direct });
    drawTimeline(this);
    showAbr(this);
    this.requestRender();
  }

  /** Coalesce decodes: packets arriving together cost one decode. @returns {Promise<void>} */
  requestRender() {
    if (!this._renderQueued) {
      this._renderQueued = new Promise((resolve) => {
        setTimeout(() => {
          this._renderQueued = null;
          if (state.stream === this) render();
          resolve();
        }, 0);
      });
    }
    return this._renderQueued;
  }

  /** @param {CloseEvent} ev */
  async _onClose(ev) {
    if (this.closed) return;
    this.closed = true;
    if (state.stream !== this) return;
    await this.requestRender();
    ui.resume.disabled = !this.missing().length;
    if (ev.code === 1000 && this.summary) {
      const s = this.summary;
      const parts = [`done: ${s.delivered} of ${s.sent} packets delivered`];
      if (s.dropped.length) parts.push(`dropped ${s.version === 2 ? "packet" : "unit"}(s) ${s.dropped.join(", ")}`);
      if ((s.corrupted || []).length) parts.push(`corrupted unit(s) ${s.corrupted.join(", ")}`);
      const unsent = this.missing().length;
      if (s.version === 2 && unsent) parts.push(`${unsent} layer(s) not worth sending by the deadline`);
      ui.statState.textContent = parts.join("; ");
      if (this.decoder.usableDepth() === null) {
        const note = "The stream ended without the layers every decode needs; lower the loss or bit errors, or press “Fetch missing”.";
        showNotice(this.rejectNote ? `${this.rejectNote}. ${note}` : note);
      }
      if (!this.failed) finish("done"); // an error another action left is over too
      updateJpeg();
      return;
    }
    const why = CLOSE_REASONS[ev.code] || (ev.code === 1006 ? "the connection was lost" : "the connection closed");
    const detail = ev.reason ? `: ${ev.reason}` : "";
    ui.statState.textContent = `closed (${ev.code})`;
    this.fail(`Stream of image ${this.id} ended early — ${why} (WebSocket code ${ev.code})${detail}.`);
  }

  /** This stream went wrong: show why; it will not end as "done". @param {string} message */
  fail(message) {
    this.failed = true;
    showError(message);
  }

  /** Units announced but not held. @returns {number[]} */
  missing() {
    const n = this.decoder.numUnits;
    const have = new Set(this.decoder.available());
    const out = [];
    for (let u = 0; u < n; u++) if (!have.has(u)) out.push(u);
    return out;
  }

  /** @param {string} why */
  close(why) {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws.close(1000, why.slice(0, 100));
    } catch {
      // already closing
    }
  }
}

/** @param {string} why */
export function stopStream(why) {
  if (state.stream) state.stream.close(why);
  state.stream = null;
}

/**
 * (Re)connect: a fresh decoder, or (resume) the current one plus the units it lacks.
 * @param {boolean} resume
 */
export function startStream(resume) {
  if (!state.imageId || !state.header) return;
  clearError();
  showNotice("");
  const prev = state.stream;
  let decoder;
  let have = [];
  if (resume && prev) {
    decoder = prev.decoder;
    have = decoder.available();
  } else {
    decoder = new ProgressiveDecoder({ accelerator: state.accelerator });
    if (state.init) decoder.addInit(state.init);
  }
  stopStream("reconnecting");
  setState("connecting");
  ui.statState.textContent = "connecting";
  ui.resume.disabled = true;
  if (!resume) resetView(false);
  state.stream = new Stream(state.imageId, channelFromSliders(), decoder, have, abrFromControls());
  ui.app.dataset.streams = String(Number(ui.app.dataset.streams || 0) + 1);
  drawTimeline(state.stream);
}

/** Whether a refinement packet is direct (its payload's shift byte is 0). @param {Uint8Array} bytes */
function isDirect(bytes) {
  try {
    const head = peekPacket(bytes);
    return bytes[head.headLength] === 0;
  } catch {
    return false;
  }
}
