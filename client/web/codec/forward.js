// The forward pass in plain JS: float32 storage with numpy's operation order (fround after the
// matmul, the bias, omega * z and the sine), so the output equals codec.decoder's to within one code
// value. The trunk activations of every step of the deepest prefix are kept per output size (while they
// fit), so a new stage costs one layer and a refined unit recomputes from its own step on.

import { checkActivations } from "./budget.js";
import { axisCoords, coordChunk, toRGBA } from "./coords.js";
import { encodeCoords } from "./posenc.js";

/** Activations are cached only for outputs up to this many pixels (and while two frames of them fit
 * the activation budget); larger decodes run in chunks. */
export const CACHE_PIXELS = 4_000_000;
const CHUNK = 262_144;
const MIN_CHUNK = 256;
/** Output sizes whose activations are kept (the least recently used goes first). */
const CACHED_SIZES = 2;

/**
 * Apply one layer to `n` rows of `x` (n x op.inF, float32), giving n x op.outF. A family's own
 * step (an op with `apply`, e.g. Fourier features or a complex Gabor layer) runs its function.
 * @param {import("./arch/base.js").LayerOp|import("./arch/base.js").CustomOp} op
 * @param {Float32Array} x
 * @param {number} n
 * @returns {Float32Array}
 */
export function applyLayer(op, x, n) {
  if (op.apply) return op.apply(x, n);
  if (op.pe) x = encodeCoords(x, n, op.pe); // the first layer of a positionally encoded sine net
  const { inF, outF, weight: W, bias: b, omega, sine, residual } = op;
  const out = new Float32Array(n * outF);
  const fr = Math.fround;
  for (let p = 0; p < n; p++) {
    const xb = p * inF;
    const ob = p * outF;
    for (let o = 0; o < outF; o++) {
      const wb = o * inF;
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += x[xb + i] * W[wb + i];
      const z = fr(fr(acc) + b[o]);
      if (!sine) {
        out[ob + o] = z;
      } else {
        const s = fr(Math.sin(fr(omega * z)));
        out[ob + o] = residual ? x[xb + o] + s : s;
      }
    }
  }
  return out;
}

/** The plain-JS decode of one ProgressiveDecoder, with its activation cache. */
export class JsForward {
  constructor() {
    /** @type {Map<string, {steps: (number|string)[], acts: (Float32Array|null)[]}>} "WxH" -> trunk activations per step */
    this._cache = new Map();
  }

  /**
   * RGBA for a w x h output, and how many trunk layers were computed (the rest came from the cache).
   * @param {number} w
   * @param {number} h
   * @param {import("./arch/base.js").LayerOp[]} trunk
   * @param {(number|string)[]} steps   one key per trunk step (the decoder's: id and weight versions)
   * @param {import("./arch/base.js").LayerOp} readout
   * @param {number} [maxBytes]  activation budget: two frames of the widest layer (a layer's input and
   *   output) when cached, else two chunks
   * @returns {[Uint8ClampedArray, number]}
   */
  run(w, h, trunk, steps, readout, maxBytes = Infinity) {
    const n = w * h;
    const xs = axisCoords(w);
    const ys = axisCoords(h);
    const perPixel = 8 * Math.max(2, ...trunk.map((op) => op.outF), readout.inF); // two float32 arrays
    if (n <= CACHE_PIXELS && n * perPixel <= maxBytes) {
      const [act, computed] = this._trunkCached(w, h, xs, ys, trunk, steps, maxBytes);
      return [toRGBA(applyLayer(readout, act, n), n), computed];
    }
    this._cache.delete(`${w}x${h}`);
    const chunk = Math.min(CHUNK, Math.max(MIN_CHUNK, Math.floor(maxBytes / perPixel)));
    checkActivations({ maxActivationBytes: maxBytes }, chunk * perPixel, `a chunk of ${chunk} pixels`);
    const out = new Uint8ClampedArray(n * 4);
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      let a = coordChunk(xs, ys, w, s, m);
      for (const op of trunk) a = applyLayer(op, a, m);
      toRGBA(applyLayer(readout, a, m), m, 3, out, s);
    }
    return [out, trunk.length];
  }

  /** Trunk activations for this size, reusing the longest cached prefix: every step's activations
   * are kept while they fit `maxBytes` (so a refined unit recomputes from its own step on), else the
   * deepest step's only. */
  _trunkCached(w, h, xs, ys, trunk, steps, maxBytes) {
    const sizeKey = `${w}x${h}`;
    const n = w * h;
    const hit = this._cache.get(sizeKey);
    const same = (a, b, len) => { for (let j = 0; j < len; j++) if (a[j] !== b[j]) return false; return true; };
    let done = 0;
    if (hit) {
      for (let i = Math.min(steps.length, hit.steps.length); i > 0; i--) {
        if (hit.acts[i - 1] && same(steps, hit.steps, i)) {
          done = i;
          break;
        }
      }
    }
    let act = done ? hit.acts[done - 1] : coordChunk(xs, ys, w, 0, n);
    const acts = done ? hit.acts.slice(0, done) : [];
    for (let i = done; i < trunk.length; i++) {
      act = applyLayer(trunk[i], act, n); // a new array: the cached input stays as it was
      acts.push(act);
    }
    // A shallower request must not evict deeper activations.
    const deeper = hit && hit.steps.length > steps.length && same(steps, hit.steps, steps.length);
    this._cache.delete(sizeKey);
    if (trunk.length > done && !deeper) {
      const total = acts.reduce((s, a) => s + (a ? a.byteLength : 0), 0);
      const kept = total <= maxBytes ? acts : acts.map((a, i) => (i === acts.length - 1 ? a : null));
      this._cache.set(sizeKey, { steps: [...steps], acts: kept });
    } else if (hit) {
      this._cache.set(sizeKey, hit);
    }
    while (this._cache.size > CACHED_SIZES) this._cache.delete(this._cache.keys().next().value);
    return [act, trunk.length - done];
  }

  /** Drop the cached activations. */
  clear() {
    this._cache.clear();
  }
}
