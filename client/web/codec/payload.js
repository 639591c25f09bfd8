// A v2 unit packet's payload (codec/payload.py; docs/FORMAT.md "Unit payload"):
//
//   step of tensor 0 | step of tensor 1 | ... | one entropy-coded block of every tensor's codes
//
// The tensors, their order and their sizes come from the unit as the arch derives it. The block has
// no checksum state of its own: the packet's CRC-32 covers it.

import { decodeArrays } from "./entropy.js";
import { SpnrError } from "./errors.js";
import { STEP_BYTES, parseStep } from "./quant.js";
import { prod } from "./values.js";

/** Whether unit payloads use the entropy coder's checksum state (codec/payload.py CHECKSUM). */
export const CHECKSUM = false;

/**
 * @typedef {object} UnitTensor
 * @property {string} name
 * @property {number[]} shape
 * @property {number} step
 * @property {Int32Array} codes   flat, row-major
 */

/**
 * The tensors of unit `index` from its payload, checked against `spec` (the derived unit).
 * @param {Uint8Array} payload
 * @param {import("./header.js").UnitSpec} spec
 * @param {number} index
 * @returns {UnitTensor[]}
 * @throws {SpnrError}
 */
export function decodeUnitPayload(payload, spec, index) {
  const what = `unit ${index} (${spec.name})`;
  const n = spec.tensors.length;
  if (payload.length < STEP_BYTES * n) {
    throw new SpnrError(`${what} payload has ${payload.length} bytes; its ${n} steps alone need ${STEP_BYTES * n}`);
  }
  const steps = spec.tensors.map((t, i) =>
    parseStep((payload[2 * i] << 8) | payload[2 * i + 1], `${what} tensor '${t.name}'`),
  );
  let codes;
  try {
    codes = decodeArrays(payload.subarray(STEP_BYTES * n), spec.tensors.map((t) => prod(t.shape)), { checksum: CHECKSUM });
  } catch (e) {
    if (e instanceof SpnrError) throw new SpnrError(`${what}: ${e.message}`);
    throw e;
  }
  return spec.tensors.map((t, i) => ({ name: t.name, shape: t.shape, step: steps[i], codes: codes[i] }));
}
