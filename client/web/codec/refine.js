// Precision refinements (codec/refine.py; docs/FORMAT.md "Refinement packets"): a refinement packet
// (type 2, level l) of a unit holds
//
//   shift u8 (b, 1..8) | one entropy-coded block of every tensor's deltas
//
// and moves the unit from level l - 1 (codes Q, step s) to level l: Q' = Q * 2^b + delta, s' = s / 2^b
// (the bfloat16 exponent b lower, exact). The weights follow the format's one rule, fround(Q' * s'),
// so they are bit for bit those numpy computes. A shift byte of 0 makes a direct packet: a whole unit
// payload at level l follows, which replaces whatever the receiver holds of the unit below that level.

import { decodeArrays } from "./entropy.js";
import { SpnrError } from "./errors.js";
import { CHECKSUM, decodeUnitPayload } from "./payload.js";
import { MIN_STEP_BITS, dequantizeCodes, stepValue } from "./quant.js";
import { prod } from "./values.js";

export const MAX_SHIFT = 8;
/** The shift byte of a direct refinement packet. */
export const DIRECT = 0;
export const MAX_REFINED_CODE = 2 ** 31 - 1;
const F32 = new DataView(new ArrayBuffer(4));

/** The canonical packet number of `unit` at `level` in a stream of `units` units (seq is one more). */
export function packetId(unit, level, units) {
  return level * units + unit;
}

/**
 * @typedef {object} Refinement
 * @property {number} index   the unit
 * @property {number} level
 * @property {number} shift   bits it adds
 * @property {Int32Array[]} deltas   per tensor, in the unit's tensor order (empty when direct)
 * @property {object[]|null} direct  a direct packet's tensors (the unit itself at this level)
 */

/**
 * Parse a refinement payload against the unit's spec.
 * @param {Uint8Array} payload
 * @param {import("./header.js").UnitSpec} spec
 * @param {number} index
 * @param {number} level
 * @returns {Refinement}
 */
export function parseRefinementPayload(payload, spec, index, level) {
  const what = `refinement ${level} of unit ${index} (${spec.name})`;
  if (payload.length === 0) throw new SpnrError(`${what} has an empty payload: it needs a shift byte`);
  const shift = payload[0];
  if (shift === DIRECT) {
    const direct = decodeUnitPayload(payload.subarray(1), spec, index).map((t) => ({ ...t, values: dequantizeCodes(t.codes, t.step) }));
    return { index, level, shift, deltas: [], direct };
  }
  if (shift < 1 || shift > MAX_SHIFT) {
    throw new SpnrError(`${what} has shift ${shift}: allowed 0 (direct) or 1..${MAX_SHIFT} bits`);
  }
  let deltas;
  try {
    deltas = decodeArrays(payload.subarray(1), spec.tensors.map((t) => prod(t.shape)), { checksum: CHECKSUM });
  } catch (e) {
    if (e instanceof SpnrError) throw new SpnrError(`${what}: ${e.message}`);
    throw e;
  }
  return { index, level, shift, deltas, direct: null };
}

/** The bfloat16 bits of a step (a bfloat16 value). */
function stepBits(step) {
  F32.setFloat32(0, step);
  return F32.getUint32(0) >>> 16;
}

/**
 * The unit's tensors one level finer (codes, step and values).
 * @param {{name: string, shape: number[], step: number, codes: Int32Array}[]} tensors
 * @param {Refinement} ref
 * @returns {{name: string, shape: number[], step: number, codes: Int32Array, values: Float32Array}[]}
 */
export function applyRefinement(tensors, ref) {
  if (ref.direct) return ref.direct;
  const what = `refinement ${ref.level} of unit ${ref.index}`;
  const scale = 2 ** ref.shift;
  return tensors.map((t, i) => {
    const bits = stepBits(t.step);
    if ((bits >> 7) - ref.shift < MIN_STEP_BITS >> 7) {
      throw new SpnrError(
        `${what}: tensor '${t.name}' step ${t.step.toPrecision(3)} divided by 2^${ref.shift} is below the smallest normal bfloat16`,
      );
    }
    const d = ref.deltas[i];
    const codes = new Int32Array(t.codes.length);
    for (let k = 0; k < codes.length; k++) {
      const q = t.codes[k] * scale + d[k]; // exact in a double: |q| < 2^40
      if (Math.abs(q) > MAX_REFINED_CODE) throw new SpnrError(`${what}: tensor '${t.name}' codes leave the int32 range`);
      codes[k] = q;
    }
    const step = stepValue(bits - (ref.shift << 7));
    return { name: t.name, shape: t.shape, step, codes, values: dequantizeCodes(codes, step) };
  });
}
