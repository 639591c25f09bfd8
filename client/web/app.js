// spinr browser client: upload -> train -> stream over WebSocket -> progressive decode on a canvas.
//
// Talks to the server API in docs/API.md and decodes with the browser library in spnr.js (plus the
// WebGL2 accelerator in gl.js when the browser has one). Everything lives in this module's scope;
// nothing is put on window. The root element's data-state tells tests (and CSS) where the page is:
// loading | idle | uploading | training | connecting | streaming | done | error.

import { ProgressiveDecoder, SpnrError } from "./spnr.js";
import { tryCreateWebGLAccelerator } from "./gl.js";

/** Bandwidth slider positions, kbit/s (0: unlimited). */
const BANDWIDTHS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
/** Bit-error-rate slider positions. */
const BERS = [0, 1e-5, 1e-4, 3e-4, 1e-3];
/** Polling of a training job: first wait, growth per poll, longest wait (ms). */
const POLL_FIRST_MS = 150;
const POLL_GROWTH = 1.4;
const POLL_MAX_MS = 2000;
/** Largest decode (pixels) the zoom buttons may ask for. */
const MAX_ZOOM_PIXELS = 16_000_000;
/** Reconnect this long after the last slider movement (ms). */
const SLIDER_DEBOUNCE_MS = 250;
/** WebSocket close codes the server uses (docs/API.md). */
const CLOSE_REASONS = {
  1008: "the server refused the start message",
  1011: "the server could not read the stored file",
  4404: "unknown image",
  4409: "the image is not finished",
};

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el;
};

const ui = {
  app: $("app"),
  badge: $("backend-badge"),
  backend: $("backend"),
  error: $("error"),
  errorText: $("error-text"),
  errorClose: $("error-close"),
  notice: $("notice"),
  form: $("upload-form"),
  drop: $("drop"),
  file: $("file"),
  thumb: $("file-thumb"),
  dropHint: $("drop-hint"),
  preset: $("opt-preset"),
  model: $("opt-model"),
  width: $("opt-width"),
  depth: $("opt-depth"),
  steps: $("opt-steps"),
  bits: $("opt-bits"),
  upload: $("upload"),
  training: $("training"),
  trainLabel: $("train-label"),
  trainProgress: $("train-progress"),
  trainDetail: $("train-detail"),
  library: $("library"),
  libraryRefresh: $("library-refresh"),
  libraryLoad: $("library-load"),
  canvas: $("view"),
  placeholder: $("placeholder"),
  viewCaption: $("view-caption"),
  jpeg: $("jpeg"),
  jpegPlaceholder: $("jpeg-placeholder"),
  jpegCaption: $("jpeg-caption"),
  jpegBudget: $("jpeg-budget"),
  statLayers: $("stat-layers"),
  statDepth: $("stat-depth"),
  statBytes: $("stat-bytes"),
  statPsnr: $("stat-psnr"),
  statDecode: $("stat-decode"),
  statState: $("stat-state"),
  loss: $("ch-loss"),
  lossOut: $("ch-loss-out"),
  burst: $("ch-burst"),
  burstOut: $("ch-burst-out"),
  bw: $("ch-bw"),
  bwOut: $("ch-bw-out"),
  ber: $("ch-ber"),
  berOut: $("ch-ber-out"),
  seed: $("ch-seed"),
  restream: $("restream"),
  resume: $("resume"),
  timeline: $("timeline"),
  packets: $("packets"),
  version: $("version"),
};

/** Everything that changes; one object so the flow is easy to follow. */
const state = {
  /** @type {object|null} GET /api/config */
  config: null,
  /** @type {import("./gl.js").WebGLAccelerator|null} */
  accelerator: null,
  acceleratorReason: null,
  /** @type {string|null} image (job) id being shown */
  imageId: null,
  /** @type {object|null} GET /api/images/{id}/header */
  header: null,
  /** @type {Stream|null} */
  stream: null,
  /** bumped for every new image/upload so stale async work drops its result */
  generation: 0,
  zoom: 1,
  sliderTimer: 0,
  objectUrl: null,
  jpegUrl: null,
};

// ---------------------------------------------------------------------------------------------
// small helpers

/** @param {string} s */
function setState(s) {
  ui.app.dataset.state = s;
}

/**
 * Show a problem in the page (never only in the console).
 * @param {string} message
 */
function showError(message) {
  ui.errorText.textContent = message;
  ui.error.hidden = false;
  setState("error");
}

function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

/** @param {string} message  empty to hide */
function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = !message;
}

/** @param {number} n */
function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 2 : 1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** @param {number|null|undefined} db */
function formatPsnr(db) {
  return typeof db === "number" && Number.isFinite(db) ? `${db.toFixed(2)} dB` : "–";
}

/**
 * Fetch JSON; a non-2xx answer throws an Error carrying the server's `detail`.
 * @param {string} url
 * @param {RequestInit} [init]
 * @returns {Promise<{data: any, response: Response}>}
 */
async function fetchJSON(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new Error(`cannot reach the server (${url}): ${reason(e)}`);
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok) throw new Error(`${url} answered something that is not JSON`);
    }
  }
  if (!response.ok) {
    const detail = data && data.detail !== undefined ? detailText(data.detail) : text.slice(0, 200) || response.statusText;
    const err = new Error(`HTTP ${response.status}: ${detail}`);
    err.status = response.status;
    err.response = response;
    throw err;
  }
  return { data, response };
}

/** FastAPI details are strings or lists of {loc, msg}. */
function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d && d.msg ? `${(d.loc || []).join(".")}: ${d.msg}` : JSON.stringify(d))).join("; ");
  }
  return JSON.stringify(detail);
}

/**
 * A user-facing reason: the message of our own errors, "Name: message" for anything unexpected.
 * @param {unknown} e
 */
function reason(e) {
  if (e instanceof SpnrError || (e instanceof Error && e.name === "Error")) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {string} tag @param {Record<string,string|number>} attrs */
function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// ---------------------------------------------------------------------------------------------
// configuration and the encode form

async function loadConfig() {
  const { data } = await fetchJSON("/api/config");
  state.config = data;
  ui.version.textContent = `spinr ${data.version}`;
  ui.preset.replaceChildren(
    ...Object.keys(data.presets).map((name) => new Option(name, name, false, name === data.default_preset)),
  );
  ui.model.replaceChildren(...data.models.map((m) => new Option(m, m)));
  for (const key of ["width", "depth", "steps", "bits"]) {
    const range = data.ranges[key];
    if (range) {
      ui[key].min = String(range[0]);
      ui[key].max = String(range[1]);
    }
  }
  ui.dropHint.textContent =
    `${data.formats.join(", ")} · up to ${formatBytes(data.limits.max_upload_bytes)}, ` +
    `${(data.limits.max_pixels / 1e6).toFixed(1)} MP`;
  applyPreset();
}

/** Fill the model fields from the chosen preset. */
function applyPreset() {
  const p = state.config && state.config.presets[ui.preset.value];
  if (!p) return;
  ui.model.value = p.model;
  ui.width.value = String(p.width);
  ui.depth.value = String(p.depth);
  ui.steps.value = String(p.steps);
}

/**
 * The form's options, checked against /api/config; throws with a message naming the field.
 * @returns {Record<string, string>}
 */
function formOptions() {
  const out = { preset: ui.preset.value, model: ui.model.value };
  for (const key of ["width", "depth", "steps", "bits"]) {
    const raw = ui[key].value.trim();
    if (raw === "") {
      if (key === "bits") continue;
      throw new Error(`${key}: enter a number`);
    }
    const v = Number(raw);
    const [lo, hi] = state.config.ranges[key];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${key}: ${raw} is not a whole number in ${lo}..${hi}`);
    out[key] = String(v);
  }
  return out;
}

/** @param {File|undefined} file */
function chooseFile(file) {
  if (!file) return;
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(file);
  ui.thumb.src = state.objectUrl;
  ui.thumb.hidden = false;
  ui.drop.querySelector(".drop-text").textContent = `${file.name} · ${formatBytes(file.size)}`;
}

async function onUpload(ev) {
  ev.preventDefault();
  clearError();
  const file = ui.file.files && ui.file.files[0];
  if (!file) {
    showError("Choose an image to encode first (drop it on the box or click it).");
    return;
  }
  if (!state.config) {
    showError("The server's configuration has not loaded; reload the page.");
    return;
  }
  if (file.size > state.config.limits.max_upload_bytes) {
    showError(`${file.name} is ${formatBytes(file.size)}; uploads are limited to ${formatBytes(state.config.limits.max_upload_bytes)}.`);
    return;
  }
  let options;
  try {
    options = formOptions();
  } catch (e) {
    showError(`Encoding options: ${reason(e)}`);
    return;
  }
  const body = new FormData();
  body.append("file", file, file.name);
  for (const [k, v] of Object.entries(options)) body.append(k, v);
  const gen = ++state.generation;
  stopStream("new upload");
  setState("uploading");
  ui.upload.disabled = true;
  try {
    const { data: job } = await fetchJSON("/api/jobs", { method: "POST", body });
    if (gen !== state.generation) return;
    location.hash = `image=${job.id}`; // hashchange is ignored for the id we are already showing
    await openImage(job.id, gen, job);
  } catch (e) {
    if (gen !== state.generation) return;
    let msg = `Upload failed: ${reason(e)}`;
    if (e.status === 429) {
      const after = e.response.headers.get("Retry-After");
      if (after) msg += ` — try again in about ${after} s.`;
    }
    showError(msg);
  } finally {
    ui.upload.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// the list of encoded images

async function loadLibrary(selectId = null) {
  try {
    const { data } = await fetchJSON("/api/jobs");
    const options = [new Option(data.jobs.length ? "choose…" : "no images yet", "")];
    for (const job of data.jobs) {
      const size = job.image ? `${job.image.width}×${job.image.height}` : "";
      const extra = job.state === "done" && job.result
        ? `${formatBytes(job.result.bytes)}, ${formatPsnr(job.result.psnr)}`
        : job.state;
      const opt = new Option(`${job.name} · ${size} · ${extra}`, job.id);
      opt.disabled = !["done", "queued", "running"].includes(job.state);
      options.push(opt);
    }
    ui.library.replaceChildren(...options);
    if (selectId) ui.library.value = selectId;
  } catch (e) {
    ui.library.replaceChildren(new Option("could not load the list", ""));
    showError(`Listing images failed: ${reason(e)}`);
  }
}

function onLibraryLoad() {
  const id = ui.library.value;
  if (!id) {
    showError("Pick an image from the list first.");
    return;
  }
  location.hash = `image=${id}`;
  loadFromHash(true);
}

// ---------------------------------------------------------------------------------------------
// one image: wait for its training, fetch its header, stream it

/** The image id in the URL (#image=ID, or a bare #ID). */
function hashId() {
  const h = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (!h) return null;
  const params = new URLSearchParams(h);
  return params.get("image") || (h.includes("=") ? null : h);
}

/** @param {boolean} [force]  reload even if it is the image already shown */
function loadFromHash(force = false) {
  const id = hashId();
  if (!id || (!force && id === state.imageId)) return;
  clearError();
  const gen = ++state.generation;
  openImage(id, gen).catch((e) => {
    if (gen === state.generation) showError(reason(e));
  });
}

/**
 * Show image `id`: wait for its job, then stream it.
 * @param {string} id
 * @param {number} gen
 * @param {object} [job]  a job object already fetched
 */
async function openImage(id, gen, job = undefined) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    throw new Error(`"${id}" is not an image id (expected letters, digits, - or _)`);
  }
  stopStream("another image");
  state.imageId = id;
  state.header = null;
  resetView();
  if (!job) {
    try {
      job = (await fetchJSON(`/api/jobs/${id}`)).data;
    } catch (e) {
      state.imageId = null;
      throw e.status === 404 ? new Error(`No image with id "${id}" on this server.`) : e;
    }
  }
  if (gen !== state.generation) return;
  job = await waitForTraining(job, gen);
  if (!job || gen !== state.generation) return;
  const { data: header } = await fetchJSON(`/api/images/${id}/header`);
  if (gen !== state.generation) return;
  state.header = header;
  const aspect = `${header.image.width} / ${header.image.height}`;
  for (const frame of document.querySelectorAll(".frame")) frame.style.aspectRatio = aspect;
  ui.viewCaption.textContent = `spinr · ${job.name} · ${header.model}, ${header.packets.length - 1} layer packets`;
  loadLibrary(id);
  startStream(false);
}

/**
 * Poll a job until it is done (with backoff), showing its progress.
 * @returns {Promise<object|null>} the finished job, or null when superseded
 */
async function waitForTraining(job, gen) {
  let wait = POLL_FIRST_MS;
  let lastProgress = -1;
  while (job.state === "queued" || job.state === "running") {
    setState("training");
    ui.training.hidden = false;
    const p = Math.max(0, Math.min(1, job.progress || 0));
    ui.trainProgress.value = p;
    ui.trainLabel.textContent = job.state === "queued" ? `Queued: ${job.name}` : `Training ${job.name}: ${Math.round(p * 100)}%`;
    const parts = [];
    if (job.stages) parts.push(`stage ${Math.min(job.stage + 1, job.stages)}/${job.stages}`);
    if (job.steps) parts.push(`step ${job.step}/${job.steps}`);
    parts.push(`PSNR ${formatPsnr(job.psnr)}`);
    ui.trainDetail.textContent = parts.join(" · ");
    wait = p !== lastProgress ? POLL_FIRST_MS : Math.min(POLL_MAX_MS, wait * POLL_GROWTH);
    lastProgress = p;
    await sleep(wait);
    if (gen !== state.generation) return null;
    job = (await fetchJSON(`/api/jobs/${job.id}`)).data;
    if (gen !== state.generation) return null;
  }
  if (job.state !== "done") {
    ui.training.hidden = true;
    throw new Error(`Image ${job.id} (${job.name}) has no bitstream: its job is ${job.state}${job.error ? ` — ${job.error}` : ""}.`);
  }
  ui.trainProgress.value = 1;
  ui.trainLabel.textContent = `Trained ${job.name}`;
  ui.trainDetail.textContent = job.result
    ? `${formatBytes(job.result.bytes)} · ${job.result.bpp.toFixed(3)} bpp · PSNR ${formatPsnr(job.result.psnr)} · ${job.result.seconds ? job.result.seconds.toFixed(1) + " s" : ""}`
    : "";
  return job;
}

// ---------------------------------------------------------------------------------------------
// streaming

/**
 * @typedef {object} Arrival
 * @property {number} t        ms since the connection opened
 * @property {number} bytes
 * @property {number|null} layer
 * @property {string} kind     header | layer | rejected | duplicate
 * @property {string|null} error
 */

/** One WebSocket connection and the decoder fed from it. */
class Stream {
  /**
   * @param {string} id
   * @param {object} channel
   * @param {ProgressiveDecoder} decoder  a fresh one, or the previous stream's (resume)
   * @param {number[]} have
   */
  constructor(id, channel, decoder, have) {
    this.id = id;
    this.channel = channel;
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
    this.t0 = performance.now();
    this._renderQueued = null;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${proto}//${location.host}/ws/stream/${encodeURIComponent(id)}`);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this._onOpen();
    this.ws.onmessage = (ev) => this._onMessage(ev);
    this.ws.onclose = (ev) => this._onClose(ev);
    this.ws.onerror = () => {}; // the close event that follows carries what we can know
  }

  _onOpen() {
    this.t0 = performance.now();
    const start = { type: "start", channel: this.channel, have: this.have };
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
        showError(`The server sent a text message that is not JSON: ${ev.data.slice(0, 120)}`);
        return;
      }
      if (msg && msg.type === "done") {
        this.summary = msg;
      } else {
        showError(`The server sent an unexpected message: ${ev.data.slice(0, 120)}`);
      }
      return;
    }
    const bytes = new Uint8Array(ev.data);
    this.bytes += bytes.length;
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
    this.arrivals.push({ t, bytes: bytes.length, layer: st.layer, kind, error: st.error });
    drawTimeline(this);
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
      if (s.dropped.length) parts.push(`dropped unit(s) ${s.dropped.join(", ")}`);
      if (s.corrupted.length) parts.push(`corrupted unit(s) ${s.corrupted.join(", ")}`);
      ui.statState.textContent = parts.join("; ");
      if (this.decoder.usableDepth() === null) {
        const note = "The stream ended without the layers every decode needs; lower the loss or bit errors, or press “Fetch missing”.";
        showNotice(this.rejectNote ? `${this.rejectNote}. ${note}` : note);
      }
      if (ui.app.dataset.state !== "error") setState("done");
      updateJpeg();
      return;
    }
    const why = CLOSE_REASONS[ev.code] || (ev.code === 1006 ? "the connection was lost" : "the connection closed");
    const detail = ev.reason ? `: ${ev.reason}` : "";
    ui.statState.textContent = `closed (${ev.code})`;
    showError(`Stream of image ${this.id} ended early — ${why} (WebSocket code ${ev.code})${detail}.`);
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

/** The channel object for the start message, from the sliders. */
function channelFromSliders() {
  return {
    loss: Number(ui.loss.value),
    burst: Number(ui.burst.value),
    ber: BERS[Number(ui.ber.value)],
    bandwidth_kbps: BANDWIDTHS[Number(ui.bw.value)],
    seed: Math.max(0, Math.floor(Number(ui.seed.value) || 0)),
  };
}

/** @param {string} why */
function stopStream(why) {
  if (state.stream) state.stream.close(why);
  state.stream = null;
}

/**
 * (Re)connect: a fresh decoder, or (resume) the current one plus the units it lacks.
 * @param {boolean} resume
 */
function startStream(resume) {
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
  }
  stopStream("reconnecting");
  setState("connecting");
  ui.statState.textContent = "connecting";
  ui.resume.disabled = true;
  if (!resume) resetView(false);
  state.stream = new Stream(state.imageId, channelFromSliders(), decoder, have);
  ui.app.dataset.streams = String(Number(ui.app.dataset.streams || 0) + 1);
  drawTimeline(state.stream);
}

// ---------------------------------------------------------------------------------------------
// drawing

/** @param {boolean} [clearJpeg=true] */
function resetView(clearJpeg = true) {
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
function render() {
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
  ui.statDepth.textContent = `${info.depth + 1} / ${dec.depths}`;
  const psnr = dec.header.stagePsnr[info.depth];
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

/** @param {import("./spnr.js").DecodeInfo|null} info */
function showBackend(info) {
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

/** Per-packet arrivals: cumulative bytes over time, plus the list. @param {Stream} s */
function drawTimeline(s) {
  const W = 600;
  const H = 140;
  const pad = { l: 64, r: 10, t: 10, b: 24 };
  const a = s.arrivals;
  const tMax = Math.max(50, ...a.map((x) => x.t)) * 1.05;
  const total = state.header ? state.header.packets.reduce((n, p) => n + p.bytes, 0) : 1;
  const bMax = Math.max(total, s.bytes, 1);
  const X = (t) => pad.l + (t / tMax) * (W - pad.l - pad.r);
  const Y = (b) => H - pad.b - (b / bMax) * (H - pad.t - pad.b);
  const nodes = [
    svg("line", { x1: pad.l, y1: Y(0), x2: W - pad.r, y2: Y(0), class: "axis" }),
    svg("line", { x1: pad.l, y1: Y(0), x2: pad.l, y2: pad.t, class: "axis" }),
    svg("line", { x1: pad.l, y1: Y(total), x2: W - pad.r, y2: Y(total), class: "total" }),
  ];
  const label = (x, y, text, anchor) => {
    const el = svg("text", { x, y, "text-anchor": anchor, class: "tick" });
    el.textContent = text;
    return el;
  };
  nodes.push(label(pad.l - 4, Y(total) + 4, formatBytes(total), "end"));
  nodes.push(label(pad.l - 4, Y(0) + 4, "0", "end"));
  nodes.push(label(W - pad.r, H - 6, `${Math.round(tMax)} ms`, "end"));
  nodes.push(label(pad.l, H - 6, "0", "start"));
  let cum = 0;
  let d = `M ${X(0)} ${Y(0)}`;
  const dots = [];
  for (const x of a) {
    d += ` H ${X(x.t).toFixed(1)}`;
    cum += x.bytes;
    d += ` V ${Y(cum).toFixed(1)}`;
    const dot = svg("circle", { cx: X(x.t).toFixed(1), cy: Y(cum).toFixed(1), r: 3.5, class: `dot ${x.kind}` });
    const title = svg("title", {});
    title.textContent = `${x.kind === "header" ? "header" : `layer ${x.layer ?? "?"}`} · ${x.bytes} B at ${x.t.toFixed(0)} ms`;
    dot.append(title);
    dots.push(dot);
  }
  nodes.push(svg("path", { d, class: "line" }), ...dots);
  ui.timeline.replaceChildren(...nodes);

  const items = a.map((x, i) => {
    const li = document.createElement("li");
    li.className = x.kind;
    const what = x.kind === "header" ? "header" : x.kind === "rejected" ? "rejected" : `layer ${x.layer}`;
    li.textContent = `#${i + 1} ${what} · ${x.bytes} B · ${x.t.toFixed(0)} ms${x.error ? ` — ${x.error}` : ""}`;
    return li;
  });
  ui.packets.replaceChildren(...items);
}

/** JPEG of the original at the same byte budget (received bytes or the whole bitstream). */
async function updateJpeg() {
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

// ---------------------------------------------------------------------------------------------
// channel sliders

function showSliderValues() {
  const loss = Number(ui.loss.value);
  // netsim needs burst >= loss / (1 - loss) for a bursty (Gilbert-Elliott) channel; 1 means independent.
  const minBurst = loss / (1 - loss);
  if (Number(ui.burst.value) > 1 && Number(ui.burst.value) < minBurst) {
    ui.burst.value = String(Math.min(Number(ui.burst.max), Math.ceil(minBurst * 2) / 2));
  }
  ui.lossOut.textContent = `${Math.round(loss * 100)}%`;
  ui.burstOut.textContent = Number(ui.burst.value) <= 1 ? "1 (independent)" : `${ui.burst.value} packets`;
  const bw = BANDWIDTHS[Number(ui.bw.value)];
  ui.bwOut.textContent = bw ? `${bw} kbit/s` : "unlimited";
  const ber = BERS[Number(ui.ber.value)];
  ui.berOut.textContent = ber ? ber.toExponential(0) : "none";
  ui.loss.setAttribute("aria-valuetext", ui.lossOut.textContent);
  ui.burst.setAttribute("aria-valuetext", ui.burstOut.textContent);
  ui.bw.setAttribute("aria-valuetext", ui.bwOut.textContent);
  ui.ber.setAttribute("aria-valuetext", ui.berOut.textContent);
}

function onSlider() {
  showSliderValues();
  clearTimeout(state.sliderTimer);
  state.sliderTimer = setTimeout(() => startStream(false), SLIDER_DEBOUNCE_MS);
}

// ---------------------------------------------------------------------------------------------
// start-up

function wire() {
  ui.errorClose.addEventListener("click", clearError);
  ui.preset.addEventListener("change", applyPreset);
  ui.form.addEventListener("submit", (ev) => {
    onUpload(ev).catch((e) => showError(`Upload failed: ${reason(e)}`));
  });
  ui.file.addEventListener("change", () => chooseFile(ui.file.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    ui.drop.addEventListener(type, (ev) => {
      ev.preventDefault();
      ui.drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) ui.drop.addEventListener(type, () => ui.drop.classList.remove("over"));
  ui.drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const files = ev.dataTransfer && ev.dataTransfer.files;
    if (!files || !files.length) return;
    const dt = new DataTransfer();
    dt.items.add(files[0]);
    ui.file.files = dt.files;
    chooseFile(files[0]);
  });
  ui.libraryRefresh.addEventListener("click", () => loadLibrary(state.imageId));
  ui.libraryLoad.addEventListener("click", onLibraryLoad);
  for (const el of [ui.loss, ui.burst, ui.bw, ui.ber]) el.addEventListener("input", onSlider);
  ui.seed.addEventListener("change", onSlider);
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
  });
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
