// The decode budget (codec/budget.py): what one stream and one decode may ask of this page, checked
// before anything is allocated or computed, refused with both numbers. The same defaults as Python.

import { SpnrError } from "./errors.js";
import { isInt, show } from "./values.js";

const MIB = 1 << 20;

/**
 * What one activation value costs a decode, in multiply-adds, by kind: codec/budget.py's
 * ACTIVATION_COSTS (measured on the numpy decoder, docs/DECODER.md "Activation costs"), so that this
 * page refuses the streams Python refuses, with the same numbers. An arch's stepActivations(k) says
 * how many values of each kind trunk step k computes per pixel.
 */
export const ACTIVATION_COSTS = Object.freeze({
  sine: 90,
  relu: 80,
  fourier_features: 300,
  table: 640,
  wire_gabor: 320,
  mfn_gabor: 350,
  mfn_fourier: 240,
});

/** Multiply-adds per pixel that `activations` ({kind: values per pixel}) cost (Python's activation_work). */
export function activationWork(activations) {
  let n = 0;
  for (const [kind, count] of Object.entries(activations)) n += ACTIVATION_COSTS[kind] * count;
  return n;
}

/**
 * @typedef {object} DecodeBudget
 * @property {number} maxParams   weights a stream may hold
 * @property {number} maxWork     output pixels x multiply-adds per pixel of one decode, each activation
 *   value counted at its cost in multiply-adds (ACTIVATION_COSTS)
 * @property {number} maxActivationBytes  activation memory: the JS path's frame of activations (two
 *   arrays of pixels x widest layer, float32) plus its cache; the cache is dropped, not refused, when
 *   it does not fit
 * @property {number} maxPixels   output pixels of one decode
 */

/** @type {Readonly<DecodeBudget>} */
export const DEFAULT_BUDGET = Object.freeze({
  maxParams: 2 ** 22,
  maxWork: 160_000_000_000,
  maxActivationBytes: 256 * MIB,
  maxPixels: 16_000_000,
});

/** Python's field names, for messages that match codec/budget.py's. */
const NAMES = { maxParams: "max_params", maxWork: "max_work", maxActivationBytes: "max_activation_bytes", maxPixels: "max_pixels" };

/** The error a budget refusal throws: a SpnrError whose `limit` names the field (Python's name). */
export class BudgetError extends SpnrError {
  constructor(message, limit) {
    super(message);
    this.name = "BudgetError";
    this.limit = limit;
  }
}

/**
 * The default budget with the fields given replaced, each checked to be a positive integer.
 * @param {Partial<DecodeBudget>} [limits]
 * @returns {DecodeBudget}
 */
export function makeBudget(limits = {}) {
  const out = { ...DEFAULT_BUDGET };
  for (const [key, value] of Object.entries(limits ?? {})) {
    if (!(key in NAMES)) throw new SpnrError(`decode budget has no field ${show(key)}; known: ${Object.keys(NAMES).join(", ")}`);
    if (value === undefined || value === null) continue;
    if (!isInt(value) || value < 1) throw new BudgetError(`decode budget ${key} is ${show(value)}; expected a positive integer`, NAMES[key]);
    out[key] = value;
  }
  return out;
}

const fmt = (n) => n.toLocaleString("en-US");
/** As Python's `f"{n:.3g}"` (1.68e+04, 1.6e+11, 100). */
const sci = (n) => {
  const s = n.toPrecision(3);
  if (s.includes("e")) return s.replace(/\.?0+e/, "e").replace(/e\+?(\d)$/, "e+0$1").replace(/e(\d)/, "e+$1");
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s; // 1.00 -> 1, 2.50 -> 2.5, 100 stays
};

/** @param {DecodeBudget} budget @param {number} params @param {string} what */
export function checkParams(budget, params, what) {
  if (params > budget.maxParams) {
    throw new BudgetError(`${what} holds ${fmt(params)} weights, over the decode budget of ${fmt(budget.maxParams)} (max_params)`, "max_params");
  }
}

/**
 * Output size and work of one decode (work per pixel: the arch's workPerPixel, Python's work_per_pixel).
 * @param {DecodeBudget} budget @param {number} w @param {number} h @param {number} workPerPixel @param {string} what
 */
export function checkDecode(budget, w, h, workPerPixel, what) {
  const pixels = w * h;
  if (pixels > budget.maxPixels) {
    throw new BudgetError(`output size ${w}x${h} is ${fmt(pixels)} pixels, over the decode budget of ${fmt(budget.maxPixels)} (max_pixels)`, "max_pixels");
  }
  const work = pixels * workPerPixel;
  if (work > budget.maxWork) {
    throw new BudgetError(
      `decoding ${what} at ${w}x${h} needs ${fmt(pixels)} pixels x ${fmt(workPerPixel)} multiply-adds ` +
        `(activations included) = ${sci(work)}, over the decode budget of ${sci(budget.maxWork)} (max_work)`,
      "max_work",
    );
  }
}

/** @param {DecodeBudget} budget @param {number} bytes @param {string} what */
export function checkActivations(budget, bytes, what) {
  if (bytes > budget.maxActivationBytes) {
    throw new BudgetError(
      `${what} needs ${(bytes / MIB).toFixed(1)} MiB of activations, over the decode budget of ` +
        `${(budget.maxActivationBytes / MIB).toFixed(1)} MiB (max_activation_bytes)`,
      "max_activation_bytes",
    );
  }
}
