// v1 tensors: the tensor map of a layer payload, MSB-first bit unpacking and min/max affine float32
// dequantization (codec/v1/quant.py; docs/FORMAT.md "Appendix: format version 1").

import { SpnrError } from "../errors.js";
import { hex, isInt, isMap, prod, show, typeName } from "../values.js";

export const MIN_BITS = 2;
export const MAX_BITS = 16;
export const MAX_TENSOR_ELEMENTS = 2 ** 24;
export const MAX_NDIM = 8;
const TENSOR_KEYS = ["name", "shape", "bits", "axis", "scale", "offset", "data"];

/**
 * @typedef {object} QuantizedTensor
 * @property {string} name
 * @property {number[]} shape
 * @property {number} bits
 * @property {null|0} axis
 * @property {Float32Array} scale   1 value, or shape[0] values when axis is 0
 * @property {Float32Array} offset
 * @property {Uint32Array} codes    flat, row-major
 */

/** A tensor shape: at most MAX_NDIM positive ints, at most MAX_TENSOR_ELEMENTS elements. */
export function parseShape(v, what) {
  if (!Array.isArray(v) || v.length > MAX_NDIM) {
    throw new SpnrError(`${what} shape must be a list of at most ${MAX_NDIM} ints, got ${show(v)}`);
  }
  let numel = 1;
  for (const s of v) {
    if (!isInt(s) || s < 1) throw new SpnrError(`${what} shape ${show(v)} must hold positive ints`);
    numel *= s;
    if (numel > MAX_TENSOR_ELEMENTS) throw new SpnrError(`${what} shape ${show(v)} has more than ${MAX_TENSOR_ELEMENTS} elements`);
  }
  return [...v];
}

/**
 * One tensor map of a layer payload, checked against the name and shape the header gives it.
 * @returns {QuantizedTensor}
 */
export function parseTensor(d, expectedName, expectedShape) {
  if (!isMap(d)) throw new SpnrError(`tensor entry must be a map, got ${typeName(d)}`);
  const missing = TENSOR_KEYS.filter((k) => !(k in d));
  const extra = Object.keys(d).filter((k) => !TENSOR_KEYS.includes(k)).sort();
  if (missing.length || extra.length) {
    throw new SpnrError(`tensor map has missing keys ${show(missing)} / unexpected keys ${show(extra)}`);
  }
  const tname = d.name;
  if (typeof tname !== "string") throw new SpnrError(`tensor name must be a string, got ${typeName(tname)}`);
  if (tname !== expectedName) throw new SpnrError(`tensor name ${show(tname)} does not match the header's ${show(expectedName)}`);
  const shape = parseShape(d.shape, `tensor ${show(tname)}`);
  if (shape.length !== expectedShape.length || shape.some((s, i) => s !== expectedShape[i])) {
    throw new SpnrError(`tensor ${show(tname)} has shape ${show(shape)} but the header says ${show(expectedShape)}`);
  }
  const bits = d.bits;
  if (!isInt(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new SpnrError(`tensor ${show(tname)} bits ${show(bits)} is out of range ${MIN_BITS}..${MAX_BITS}`);
  }
  const axis = d.axis;
  if (axis !== null && (!isInt(axis) || axis !== 0 || shape.length === 0)) {
    throw new SpnrError(`tensor ${show(tname)} axis ${show(axis)} is not null or 0 (with ndim >= 1)`);
  }
  const channels = axis === null ? 1 : shape[0];
  const scale = floats(d.scale, channels, `tensor ${show(tname)} scale`);
  const offset = floats(d.offset, channels, `tensor ${show(tname)} offset`);
  if (!scale.every((s) => s > 0)) throw new SpnrError(`tensor ${show(tname)} scale must be > 0`);
  if (!(d.data instanceof Uint8Array)) throw new SpnrError(`tensor ${show(tname)} data must be bytes, got ${typeName(d.data)}`);
  let codes;
  try {
    codes = unpackBits(d.data, bits, prod(shape));
  } catch (e) {
    if (e instanceof SpnrError) throw new SpnrError(`tensor ${show(tname)}: ${e.message}`);
    throw e;
  }
  return { name: tname, shape, bits, axis, scale, offset, codes };
}

function floats(value, count, what) {
  if (!(value instanceof Uint8Array)) throw new SpnrError(`${what} must be bytes, got ${typeName(value)}`);
  if (value.length !== 4 * count) {
    throw new SpnrError(`${what} needs ${count} float32 (${4 * count} bytes), got ${value.length} bytes`);
  }
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
  if (!out.every(Number.isFinite)) throw new SpnrError(`${what} holds non-finite values`);
  return out;
}

/**
 * Inverse of the encoder's bit packing: `count` codes of `bits` bits, MSB first, zero-padded.
 * @param {Uint8Array} data
 * @param {number} bits   2..16
 * @param {number} count  0..MAX_TENSOR_ELEMENTS
 * @returns {Uint32Array}
 * @throws {SpnrError}
 */
export function unpackBits(data, bits, count) {
  if (!isInt(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new SpnrError(`bits ${show(bits)} is out of range ${MIN_BITS}..${MAX_BITS}`);
  }
  if (!isInt(count) || count < 0 || count > MAX_TENSOR_ELEMENTS) {
    throw new SpnrError(`code count ${show(count)} is out of range 0..${MAX_TENSOR_ELEMENTS}`);
  }
  if (!(data instanceof Uint8Array)) throw new SpnrError(`packed data must be a Uint8Array, got ${typeName(data)}`);
  const need = Math.ceil((count * bits) / 8);
  if (data.length !== need) {
    throw new SpnrError(`packed data for ${count} codes of ${bits} bits needs ${need} bytes, got ${data.length}`);
  }
  const pad = need * 8 - count * bits;
  if (pad && data[need - 1] & ((1 << pad) - 1)) {
    throw new SpnrError(`packed data has nonzero padding bits in its last byte (${hex(data[need - 1], 2)})`);
  }
  const out = new Uint32Array(count);
  const mask = (1 << bits) - 1;
  // Each code lies within 3 consecutive bytes (at most 7 bits of offset + 16 bits of code).
  for (let i = 0, s = 0; i < count; i++, s += bits) {
    const b = s >>> 3;
    const w = (data[b] << 16) | ((b + 1 < need ? data[b + 1] : 0) << 8) | (b + 2 < need ? data[b + 2] : 0);
    out[i] = (w >>> (24 - bits - (s & 7))) & mask;
  }
  return out;
}

/**
 * `w = offset + scale * q` in float32, per tensor or per row (axis 0).
 * @param {QuantizedTensor} t
 * @returns {Float32Array} row-major, shape t.shape
 */
export function dequantize(t) {
  const n = t.codes.length;
  const out = new Float32Array(n);
  const fr = Math.fround;
  if (t.axis === null) {
    const s = t.scale[0];
    const o = t.offset[0];
    for (let i = 0; i < n; i++) out[i] = o + fr(s * t.codes[i]);
  } else {
    const rows = t.shape[0];
    const per = n / rows;
    for (let r = 0; r < rows; r++) {
      const s = t.scale[r];
      const o = t.offset[r];
      for (let i = r * per, e = i + per; i < e; i++) out[i] = o + fr(s * t.codes[i]);
    }
  }
  return out;
}
