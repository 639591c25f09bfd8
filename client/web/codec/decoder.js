// The progressive decoder: packets in any order, some missing, a picture from whatever arrived
// (codec/decoder.py). addPacket never throws for a bad packet, it reports it, so a stream goes on.

import { archFor } from "./arch/registry.js";
import { parseRefinement, parseUnit } from "./bitstream.js";
import { DEFAULT_BUDGET, checkDecode, checkParams, makeBudget } from "./budget.js";
import { axisCoords, toRGBA } from "./coords.js";
import { SpnrError, errorText } from "./errors.js";
import { JsForward } from "./forward.js";
import { MAX_IMAGE_SIDE, MAX_TOTAL_ELEMENTS, parseHeader } from "./header.js";
import { checkLadder, ladderLevels } from "./ladder.js";
import { PTYPE_HEADER, PTYPE_REFINEMENT, PTYPE_UNIT, parsePacket } from "./packets.js";
import { applyRefinement } from "./refine.js";
import { checkInitMatches } from "./theta0.js";
import { MAX_TENSOR_ELEMENTS } from "./v1/quant.js";
import { isInt, prod, sameBytes, show } from "./values.js";

/** How a missing unit is concealed (codec/decoder.py CONCEAL_CHOICES). */
export const CONCEAL_CHOICES = Object.freeze(["prefix", "skip", "theta0"]);
/** Unit packets held while the header has not arrived yet. */
export const MAX_PENDING = 1024;
/** Largest decode size the default budget accepts (codec/budget.js). */
export const MAX_OUTPUT_PIXELS = DEFAULT_BUDGET.maxPixels;


/**
 * @typedef {object} PacketStatus
 * @property {boolean} accepted
 * @property {number|null} layer   unit index of an accepted unit packet (v1 called them layers)
 * @property {string|null} error   why the packet was rejected
 * @property {"header"|"layer"|"refinement"|null} kind
 * @property {boolean} [duplicate]
 *
 * @typedef {object} DecodeInfo
 * @property {number} width
 * @property {number} height
 * @property {number} depth       stages used, 1..depths (1 for a non-progressive model), as decode's depth counts
 * @property {number[]} steps     trunk steps run
 * @property {number[]} units     unit indices whose tensors were used
 * @property {number[]} levels    the refinement level each of `units` was decoded at
 * @property {string} backend     "js" or the accelerator's name (e.g. "webgl2")
 * @property {string|null} fallback  why the accelerator was not used, if it was asked for and failed
 * @property {number} ms          wall time of the decode
 * @property {number} computedSteps  trunk layers computed now (the rest came from the cache)
 *
 * An accelerator runs the same forward pass elsewhere (gl.js: WebGL2).
 * @typedef {object} Accelerator
 * @property {string} name
 * @property {(job: ForwardJob) => Float32Array} run   n x 4 floats, rgb first
 * @property {() => void} [dispose]
 *
 * @typedef {object} ForwardJob
 * @property {number} width
 * @property {number} height
 * @property {Float32Array} xs   per column
 * @property {Float32Array} ys   per row
 * @property {import("./arch/base.js").LayerOp[]} trunk
 * @property {string[]} steps    one key per trunk step (its id and its units' weight versions): equal
 *   prefixes mean equal activations
 * @property {import("./arch/base.js").LayerOp} readout
 * @property {object} owner      the decoder (cache namespace)
 */

/** Decodes a stream from whatever packets arrived, in any order, at any size. */
export class ProgressiveDecoder {
  /**
   * @param {object} [options]
   * @param {"prefix"|"skip"|"theta0"} [options.conceal="prefix"]  skip: leave out a missing hidden layer
   *   (a residual stream's takes θ0's instead); theta0: a residual stream's missing unit is θ0's own
   *   (without a θ0: as prefix)
   * @param {number} [options.streamId]   accept only this stream (default: the first packet's)
   * @param {Accelerator|null} [options.accelerator]  used by decode() unless backend "js" is asked for
   * @param {Partial<import("./budget.js").DecodeBudget>} [options.budget]  limits over the defaults
   *   (codec/budget.js): a header over maxParams is refused, a decode over maxWork or maxPixels
   *   throws a BudgetError before anything is computed
   */
  constructor({ conceal = "prefix", streamId = undefined, accelerator = null, budget = undefined } = {}) {
    if (!CONCEAL_CHOICES.includes(conceal)) {
      throw new SpnrError(`concealment ${show(conceal)} is not one of ${CONCEAL_CHOICES.join(", ")}`);
    }
    if (streamId !== undefined && !(isInt(streamId) && streamId >= 0 && streamId <= 0xffffffff)) {
      throw new SpnrError(`stream id ${show(streamId)} is not a u32`);
    }
    this.conceal = conceal;
    /** @type {import("./budget.js").DecodeBudget} */
    this.budget = makeBudget(budget);
    /** @type {number|null} */
    this.streamId = streamId === undefined ? null : streamId;
    /** @type {import("./header.js").StreamHeader|null} */
    this.header = null;
    this.arch = null;
    /** @type {Map<number, object>} unit index -> {tensorName: {shape, values: Float32Array}} */
    this.params = new Map();
    this._pending = [];
    /** Why layer packets held before the header were rejected once it came. @type {string[]} */
    this.pendingErrors = [];
    this._payloads = new Map();
    /** Refinement level each unit has reached (0: its unit packet alone). @type {Map<number, number>} */
    this.levels = new Map();
    /** How many times each unit's weights were set: part of the activation cache's key. */
    this._versions = new Map();
    /** Refinements waiting for their unit or their previous level: "unit:level" -> refinement. */
    this._held = new Map();
    this._js = new JsForward();
    this.accelerator = accelerator;
    this._accelError = null;
    /** @type {DecodeInfo|null} */
    this.lastInfo = null;
    /** θ0 files given to addInit, by hash. @type {Map<string, import("./theta0.js").InitFile>} */
    this._inits = new Map();
    /** The θ0 this stream's units are residuals from (header extension 0x83), once the header came. */
    this.init = null;
  }

  /**
   * Give the decoder a θ0 (parseInit's result) before the header of a stream coded from it arrives.
   * @param {import("./theta0.js").InitFile} init
   */
  addInit(init) {
    this._inits.set(init.hash, init);
  }

  /**
   * Use (or stop using, with null) an accelerator for decode().
   * @param {Accelerator|null} accelerator
   */
  setAccelerator(accelerator) {
    this.accelerator = accelerator;
    this._accelError = null;
  }

  /**
   * Take one packet. A bad packet is reported in the status, never thrown, so a stream goes on.
   * @param {Uint8Array|ArrayBuffer} bytes
   * @returns {PacketStatus}
   */
  addPacket(bytes) {
    try {
      return this._add(parsePacket(bytes));
    } catch (e) {
      return { accepted: false, layer: null, error: errorText(e), kind: null };
    }
  }

  _add(packet) {
    if (this.streamId === null) {
      this.streamId = packet.streamId;
    } else if (packet.streamId !== this.streamId) {
      throw new SpnrError(
        `packet of stream 0x${packet.streamId.toString(16)} does not belong to stream 0x${this.streamId.toString(16)}`,
      );
    }
    if (packet.ptype === PTYPE_HEADER) {
      if (this.header === null) {
        const header = parseHeader(packet);
        const arch = archFor(header); // a v1 header's units are checked against the arch here
        if (header.units === null) header.units = arch.expectedUnits(); // v2: derived, never sent
        checkSizes(header.units);
        const params = header.units.reduce((n, u) => n + u.tensors.reduce((m, t) => m + prod(t.shape), 0), 0);
        checkParams(this.budget, params, `this ${header.model} stream`);
        if (header.ladder) checkLadder(header.ladder.length / (ladderLevels(header.ladder) + 1), header.units.length);
        if (header.init) { // v2 extension 0x83 (a v1 header has no such field)
          const init = this._inits.get(header.init);
          if (!init) {
            throw new SpnrError(
              `this stream was coded from θ0 ${header.init}, which this decoder does not have (fetch /api/inits/${header.init}.spnri and pass it to addInit)`,
            );
          }
          checkInitMatches(init, header);
          this.init = init;
        }
        this.arch = arch;
        this.header = header;
        const pending = this._pending;
        this._pending = [];
        this.pendingErrors = [];
        for (const p of pending) {
          try {
            this._add(p);
          } catch (e) {
            this.pendingErrors.push(`unit ${p.unit} (packet seq ${p.seq}): ${errorText(e)}`);
          }
        }
      }
      return { accepted: true, layer: null, error: null, kind: "header" };
    }
    if (this.header === null) {
      if (this._pending.length >= MAX_PENDING) {
        throw new SpnrError(`more than ${MAX_PENDING} unit packets arrived before the header`);
      }
      this._pending.push({ ...packet, payload: packet.payload.slice() });
      return { accepted: true, layer: packet.unit, error: null, kind: "layer" };
    }
    if (packet.ptype === PTYPE_REFINEMENT) {
      const changed = this._refinement(parseRefinement(packet, this.header));
      return { accepted: true, layer: packet.unit, error: null, kind: "refinement", duplicate: changed === null };
    }
    if (packet.ptype === PTYPE_UNIT && (this.levels.get(packet.unit) || 0) > 0 && !this._payloads.has(packet.unit)) {
      parseUnit(packet, this.header); // checked, then ignored: a direct packet gave the unit a finer level
      return { accepted: true, layer: packet.unit, error: null, kind: "layer", duplicate: true };
    }
    const known = packet.ptype === PTYPE_UNIT ? this._payloads.get(packet.unit) : undefined;
    if (known !== undefined) {
      if (!sameBytes(known, packet.payload)) throw new SpnrError(`two different packets for unit ${packet.unit}`);
      return { accepted: true, layer: packet.unit, error: null, kind: "layer", duplicate: true };
    }
    const unit = parseUnit(packet, this.header);
    const tensors = Object.create(null);
    for (const t of unit.tensors) tensors[t.name] = t;
    this._setUnit(unit.index, tensors);
    this.levels.set(unit.index, 0);
    this._payloads.set(unit.index, packet.payload.slice());
    this._applyHeld(unit.index);
    return { accepted: true, layer: unit.index, error: null, kind: "layer" };
  }

  _setUnit(index, tensors) {
    if (this.init) {
      // A residual: θ0 + Δθ, one float32 rounding of the exact sum (numpy's float32 addition). The
      // values are fresh arrays (parsed or refined), so adding in place is safe.
      const base = this.init.weights.get(index);
      for (const name of Object.keys(tensors)) {
        const b = base[name].values;
        const v = tensors[name].values;
        for (let i = 0; i < b.length; i++) v[i] = b[i] + v[i];
      }
    }
    this.params.set(index, tensors);
    this._versions.set(index, (this._versions.get(index) || 0) + 1);
  }

  /** Apply a refinement now, hold it for its unit or previous level, or (null) ignore a duplicate. */
  _refinement(ref) {
    const have = this.levels.get(ref.index);
    if (have !== undefined && ref.level <= have) return null;
    if (ref.direct) {
      const tensors = Object.create(null);
      for (const t of ref.direct) tensors[t.name] = t;
      this._setUnit(ref.index, tensors);
      this.levels.set(ref.index, ref.level);
      this._applyHeld(ref.index);
      return true;
    }
    if (have === undefined || ref.level > have + 1) {
      const key = `${ref.index}:${ref.level}`;
      if (!this._held.has(key) && this._held.size >= MAX_PENDING) {
        throw new SpnrError(`more than ${MAX_PENDING} refinements wait for their unit`);
      }
      this._held.set(key, ref);
      return false;
    }
    this._refine(ref);
    this._applyHeld(ref.index);
    return true;
  }

  _refine(ref) {
    const current = this.params.get(ref.index);
    const spec = this.header.units[ref.index];
    const list = spec.tensors.map((t) => current[t.name]);
    if (list.some((t) => t.codes === undefined)) {
      throw new SpnrError(`refinement ${ref.level} of unit ${ref.index}: the unit is not a format 2 unit`);
    }
    const tensors = Object.create(null);
    for (const t of applyRefinement(list, ref)) tensors[t.name] = t;
    this._setUnit(ref.index, tensors);
    this.levels.set(ref.index, ref.level);
  }

  _applyHeld(index) {
    for (;;) {
      const key = `${index}:${this.levels.get(index) + 1}`;
      const next = this._held.get(key);
      if (next === undefined) return;
      this._held.delete(key);
      this._refine(next);
    }
  }

  /** Unit indices received and accepted, sorted. @returns {number[]} */
  available() {
    return [...this.params.keys()].sort((a, b) => a - b);
  }

  /** Number of units the header announces (0 before the header). */
  get numUnits() {
    return this.header ? this.header.units.length : 0;
  }

  /** Number of prefix depths (1 for a non-progressive model, 0 before the header). */
  get depths() {
    return this.arch ? this.arch.depths : 0;
  }

  /**
   * The deepest decodable depth and the trunk steps to run for it (at most `depth` if given),
   * or null when nothing decodes yet.
   * @param {number} [depth]
   * @returns {{depth: number, steps: number[]}|null}
   */
  plan(depth) {
    const arch = this.arch;
    if (!arch) return null;
    const avail = new Set(this._decodeParams().keys());
    if (depth !== undefined && depth !== null) {
      if (!isInt(depth) || depth < 0 || depth >= arch.depths) {
        throw new SpnrError(`depth ${show(depth)} is out of range: this stream has depths 0..${arch.depths - 1}`);
      }
      const keep = new Set(arch.readoutUnits(0));
      for (let k = depth + 1; k < arch.depths; k++) {
        for (const u of arch.trunkUnits(k)) avail.delete(u);
        for (const u of arch.readoutUnits(k)) if (!keep.has(u)) avail.delete(u);
      }
    }
    const has = (units) => units.every((u) => avail.has(u));
    if (!arch.progressive) {
      const steps = [];
      let ok = has(arch.readoutUnits(0));
      for (let k = 0; k < arch.trunkSteps(); k++) {
        ok = ok && has(arch.trunkUnits(k));
        steps.push(k);
      }
      return ok ? { depth: 0, steps } : null;
    }
    if (!has(arch.trunkUnits(0))) return null;
    const steps = [0];
    let best = has(arch.readoutUnits(0)) ? { depth: 0, steps: [0] } : null;
    for (let k = 1; k < arch.depths; k++) {
      if (has(arch.trunkUnits(k))) {
        steps.push(k);
        if (has(arch.readoutUnits(k))) best = { depth: k, steps: [...steps] };
      } else if (this.conceal !== "skip") {
        break;
      }
    }
    return best;
  }

  /** Stages the deepest usable prefix has (1..depths), or null when nothing decodes yet. @returns {number|null} */
  usableDepth() {
    const p = this.plan();
    return p ? p.depth + 1 : null;
  }

  /**
   * Unit indices a decode at `depth` (default: the deepest usable) would use.
   * @param {number} [depth]
   * @returns {number[]}
   */
  usedUnits(depth) {
    const p = this.plan(depth);
    if (!p) return [];
    const units = new Set(this.arch.readoutUnits(p.depth));
    for (const k of p.steps) for (const u of this.arch.trunkUnits(k)) units.add(u);
    return [...units].sort((a, b) => a - b);
  }

  /**
   * Decode the deepest usable prefix (or at most its first `depth` stages, 1..depths, as the Python
   * decoder and `spinr decode --layers` count) at width x height.
   * @param {number} [width]   default: the image's
   * @param {number} [height]
   * @param {object} [options]
   * @param {number} [options.depth]
   * @param {"auto"|"js"|"accelerator"} [options.backend="auto"]  auto: the accelerator if set, falling back to JS
   * @returns {Uint8ClampedArray} RGBA, row-major, width * height * 4 (see lastInfo for what was used)
   * @throws {SpnrError} no header, nothing decodable, bad size or depth
   */
  decode(width, height, { depth, backend = "auto" } = {}) {
    const t0 = now();
    if (!this.header) throw new SpnrError("cannot decode: the header packet has not arrived");
    const w = width === undefined || width === null ? this.header.width : width;
    const h = height === undefined || height === null ? this.header.height : height;
    for (const [v, what] of [[w, "width"], [h, "height"]]) {
      if (!isInt(v) || v < 1 || v > MAX_IMAGE_SIDE) throw new SpnrError(`output ${what} ${show(v)} is out of range 1..${MAX_IMAGE_SIDE}`);
    }
    if (!["auto", "js", "accelerator"].includes(backend)) {
      throw new SpnrError(`backend ${show(backend)} is not one of auto, js, accelerator`);
    }
    const limited = depth !== undefined && depth !== null;
    if (limited && !(isInt(depth) && depth >= 1 && depth <= this.depths)) {
      throw new SpnrError(`depth ${show(depth)} is out of range: this stream has 1..${this.depths} stages`);
    }
    const plan = this.plan(limited ? depth - 1 : undefined);
    if (!plan) {
      const missing = this.arch.trunkUnits(0).filter((u) => !this.params.has(u));
      throw new SpnrError(
        `cannot decode: indispensable unit(s) ${missing.length ? JSON.stringify(missing) : "for the readout"} missing`,
      );
    }
    const params = this._decodeParams();
    const trunk = plan.steps.map((k) => this.arch.trunkOp(k, params));
    // Cache keys: a step's id and the versions of its units' weights, so a refinement recomputes its
    // layer and what follows it, and reuses the activations before it.
    const keys = plan.steps.map((k) => `${k}.${this.arch.trunkUnits(k).map((u) => this._versions.get(u)).join(".")}`);
    const readout = this.arch.readoutOp(plan.depth, params);
    const work = this.arch.workPerPixel(plan.steps, plan.depth);
    checkDecode(this.budget, w, h, work, `this ${this.header.model} stream at ${trunk.length} trunk step(s)`);
    const info = {
      width: w,
      height: h,
      depth: plan.depth + 1,
      steps: plan.steps,
      units: this.usedUnits(limited ? plan.depth : undefined),
      levels: [],
      backend: "js",
      fallback: null,
      ms: 0,
      computedSteps: 0,
    };
    let rgba = null;
    if (backend !== "js" && this.accelerator) {
      if (this._accelError && backend === "auto") {
        info.fallback = this._accelError;
      } else {
        try {
          const job = { width: w, height: h, xs: axisCoords(w), ys: axisCoords(h), trunk, steps: keys, readout, owner: this };
          const y = this.accelerator.run(job);
          rgba = toRGBA(y, w * h, 4);
          info.backend = this.accelerator.name;
          info.computedSteps = job.computedSteps ?? trunk.length;
        } catch (e) {
          if (backend === "accelerator") throw e instanceof SpnrError ? e : new SpnrError(`${this.accelerator.name} failed: ${errorText(e)}`);
          this._accelError = `${this.accelerator.name} failed: ${errorText(e)}`;
          info.fallback = this._accelError;
        }
      }
    } else if (backend === "accelerator") {
      throw new SpnrError("no accelerator is set on this decoder");
    }
    if (rgba === null) {
      const [out, computed] = this._js.run(w, h, trunk, keys, readout, this.budget.maxActivationBytes);
      rgba = out;
      info.computedSteps = computed;
    }
    info.levels = info.units.map((u) => this.levels.get(u) || 0);
    info.ms = now() - t0;
    this.lastInfo = info;
    return rgba;
  }

  /** The units a decode may use: those received, and θ0's for the others when concealing with θ0. */
  _decodeParams() {
    // On a residual stream skip takes θ0's unit too (measured better than leaving it out; codec/decoder.py).
    if (this.conceal === "prefix" || !this.init) return this.params;
    const all = new Map(this.init.weights);
    for (const [u, t] of this.params) all.set(u, t);
    return all;
  }

  /** Drop cached activations (here and in the accelerator, if it keeps any). */
  clearCache() {
    this._js.clear();
    if (this.accelerator && this.accelerator.forget) this.accelerator.forget(this);
  }
}

function now() {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

/** A stream's units within the decoder's limits (codec/units.py check_sizes), before any allocation. */
function checkSizes(units) {
  let total = 0;
  for (const u of units) {
    for (const t of u.tensors) {
      const n = prod(t.shape);
      if (n > MAX_TENSOR_ELEMENTS) {
        throw new SpnrError(`tensor ${u.name}/${t.name} has ${n} elements, more than ${MAX_TENSOR_ELEMENTS}`);
      }
      total += n;
    }
  }
  if (total > MAX_TOTAL_ELEMENTS) throw new SpnrError(`the stream holds ${total} weights in all, more than ${MAX_TOTAL_ELEMENTS}`);
}
