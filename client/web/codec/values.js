// Checks and descriptions of decoded values (msgpack maps, lists, ints, boxed floats, bytes), shared
// by the payload, header and layer parsers so their error messages read alike.

import { SpnrError } from "./errors.js";

/** Hidden key of a parsed arch map holding the boxed original, so arch parsers can tell ints from floats. */
export const BOXED = Symbol("boxed arch");

/** @param {number} v @param {number} digits */
export const hex = (v, digits) => "0x" + (v >>> 0).toString(16).padStart(digits, "0");

/** A short printable form of any decoded value, for error messages. @param {unknown} v */
export const show = (v) => {
  let s;
  try {
    s = typeof v === "bigint" ? `${v}` : v instanceof Uint8Array ? `<${v.length} bytes>` : JSON.stringify(unbox(v));
  } catch {
    s = String(v);
  }
  s = s === undefined ? String(v) : s;
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
};

/** A byte view of `b`, or a SpnrError naming `what` it should have been. */
export function asBytes(b, what) {
  if (b instanceof Uint8Array) return b;
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  throw new SpnrError(`${what} must be a Uint8Array or ArrayBuffer, got ${typeName(b)}`);
}

/** Python's repr of a bytes object, so messages match the Python reader's. @param {Uint8Array} b */
export function bytesRepr(b) {
  let s = "b'";
  for (const c of b) s += c >= 0x20 && c < 0x7f && c !== 0x27 && c !== 0x5c ? String.fromCharCode(c) : "\\x" + c.toString(16).padStart(2, "0");
  return s + "'";
}

/** @param {Uint8Array} a @param {Uint8Array} b */
export function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isMap(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Number);
}

export function isInt(v) {
  return typeof v === "number" && Number.isInteger(v);
}

/** int or float (floats may be boxed Number objects from decodePayloadBoxed) */
export function isNumber(v) {
  return (typeof v === "number" || v instanceof Number) && Number.isFinite(Number(v));
}

/** The msgpack type name of a decoded value. */
export function typeName(v) {
  if (v === null) return "nil";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "list";
  if (v instanceof Uint8Array) return "bytes";
  if (v instanceof Number || typeof v === "number") return Number.isInteger(Number(v)) && typeof v === "number" ? "int" : "float";
  if (typeof v === "bigint") return "int";
  if (typeof v === "object") return "map";
  return typeof v === "string" ? "str" : typeof v;
}

/** Deep copy with boxed floats turned back into plain numbers. */
export function unbox(v) {
  if (v instanceof Number) return Number(v);
  if (Array.isArray(v)) return v.map(unbox);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !ArrayBuffer.isView(v)) {
    const out = Object.create(null);
    for (const [k, x] of Object.entries(v)) out[k] = unbox(x);
    return out;
  }
  return v;
}

/** `v` must be a map with exactly `keys` (those in `optional` may be absent). */
export function exactMap(v, keys, what, optional = []) {
  if (!isMap(v)) throw new SpnrError(`${what} must be a map, got ${typeName(v)}`);
  const missing = keys.filter((k) => !optional.includes(k) && !(k in v)).sort();
  const extra = Object.keys(v).filter((k) => !keys.includes(k)).sort();
  if (missing.length || extra.length) {
    throw new SpnrError(`${what} has missing keys ${show(missing)} / unexpected keys ${show(extra)}`);
  }
  return v;
}

export function intIn(v, lo, hi, what) {
  if (!isInt(v) || v < lo || v > hi) throw new SpnrError(`${what} ${show(v)} is out of range ${lo}..${hi}`);
  return v;
}

/** @param {number[]} shape */
export function prod(shape) {
  return shape.reduce((a, b) => a * b, 1);
}
