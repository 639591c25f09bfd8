// Format v2's quantized tensors (codec/quant.py; docs/FORMAT.md "Quantization"): one step per
// tensor, travelling as a bfloat16 (the upper 16 bits of a float32), and signed integer codes.
// w = float32(q * step): the product of an int32 and a bfloat16 is exact in a double, so
// Math.fround(q * step) rounds it once, exactly as numpy's (q as float64 * step).astype(float32).

import { SpnrError } from "./errors.js";
import { hex } from "./values.js";

export const STEP_BYTES = 2;
export const MIN_STEP_BITS = 0x0080;
export const MAX_STEP_BITS = 0x7f7f;

const F32 = new DataView(new ArrayBuffer(4));

/** The step a bfloat16 bit pattern stands for. @param {number} bits */
export function stepValue(bits) {
  F32.setUint32(0, bits * 0x10000);
  return F32.getFloat32(0);
}

/** A step from a packet: a positive normal bfloat16. */
export function parseStep(bits, what) {
  if (bits < MIN_STEP_BITS || bits > MAX_STEP_BITS) {
    throw new SpnrError(
      `${what} has step bits ${hex(bits, 4)}: a step is a positive normal bfloat16 (${hex(MIN_STEP_BITS, 4)}..${hex(MAX_STEP_BITS, 4)})`,
    );
  }
  return stepValue(bits);
}

/**
 * float32 weights of `codes` at `step`, one rounding each.
 * @param {Int32Array} codes
 * @param {number} step
 * @returns {Float32Array}
 */
export function dequantizeCodes(codes, step) {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] * step; // Float32Array stores fround(exact)
  return out;
}
