// Strict msgpack decoder for spinr payloads (written for spinr; no third-party code).
//
// Supports exactly what spinr payloads use: nil, bool, positive/negative fixint, uint 8..64,
// int 8..64, float 32/64, fixstr/str 8..32, bin 8..32, fixarray/array 16/32, fixmap/map 16/32.
// Everything else is rejected with a MsgpackError naming the offset and the offending value:
// ext types, the never-used byte 0xc1, truncated input, trailing bytes, lengths over the limits,
// non-string or duplicate map keys, invalid UTF-8, nesting deeper than the limit.

/** Raised for any malformed or over-limit msgpack input. */
export class MsgpackError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "MsgpackError";
  }
}

/**
 * Limits applied while decoding; the defaults mirror the Python reader (codec/payload.py).
 * @typedef {object} MsgpackLimits
 * @property {number} [maxStrLen]   longest str in bytes (default 1 MiB)
 * @property {number} [maxBinLen]   longest bin in bytes (default 64 MiB)
 * @property {number} [maxArrayLen] most elements in one array (default 65536)
 * @property {number} [maxMapLen]   most entries in one map (default 4096)
 * @property {number} [maxItems]    array elements plus map entries in the whole document (default 262144)
 * @property {number} [maxDepth]    deepest container nesting (default 64)
 * @property {boolean} [boxFloats]  return float 32/64 as Number objects, so that a caller can tell
 *                                  1.0 (float) from 1 (int); plain numbers otherwise (default false)
 */
export const DEFAULT_LIMITS = Object.freeze({
  maxStrLen: 2 ** 20,
  maxBinLen: 64 * 2 ** 20,
  maxArrayLen: 2 ** 16,
  maxMapLen: 2 ** 12,
  maxItems: 2 ** 18,
  maxDepth: 64,
  boxFloats: false,
});

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const hex = (b) => "0x" + b.toString(16).padStart(2, "0");

/**
 * Decode exactly one msgpack object filling all of `bytes`.
 *
 * Maps become null-prototype objects with string keys; bin becomes a Uint8Array view into `bytes`
 * (copy it if the buffer is reused); integers outside the safe range become BigInt; floats are
 * numbers (or Number objects with `boxFloats`).
 *
 * @param {Uint8Array} bytes
 * @param {MsgpackLimits} [limits]
 * @returns {any}
 * @throws {MsgpackError}
 */
export function decodeMsgpack(bytes, limits = {}) {
  if (!(bytes instanceof Uint8Array)) {
    throw new MsgpackError(`msgpack input must be a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  }
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let pos = 0;
  let items = 0;

  const need = (n, what) => {
    if (end - pos < n) {
      throw new MsgpackError(`msgpack truncated: ${what} at offset ${pos} needs ${n} bytes, ${end - pos} left`);
    }
  };
  const u8 = () => bytes[pos++];
  const u16 = () => { const v = view.getUint16(pos); pos += 2; return v; };
  const u32 = () => { const v = view.getUint32(pos); pos += 4; return v; };
  const spend = (n, what) => {
    items += n;
    if (items > lim.maxItems) {
      throw new MsgpackError(`msgpack has more than ${lim.maxItems} array elements and map entries (at ${what})`);
    }
  };
  const int64 = (signed) => {
    const v = signed ? view.getBigInt64(pos) : view.getBigUint64(pos);
    pos += 8;
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  // eslint-disable-next-line no-new-wrappers
  const float = lim.boxFloats ? (v) => new Number(v) : (v) => v;
  const str = (n, at) => {
    if (n > lim.maxStrLen) throw new MsgpackError(`msgpack str at offset ${at} has length ${n}, over the limit ${lim.maxStrLen}`);
    need(n, "str data");
    let s;
    try {
      s = utf8.decode(bytes.subarray(pos, pos + n));
    } catch {
      throw new MsgpackError(`msgpack str at offset ${at} is not valid UTF-8`);
    }
    pos += n;
    return s;
  };
  const bin = (n, at) => {
    if (n > lim.maxBinLen) throw new MsgpackError(`msgpack bin at offset ${at} has length ${n}, over the limit ${lim.maxBinLen}`);
    need(n, "bin data");
    const b = bytes.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const array = (n, at, depth) => {
    if (n > lim.maxArrayLen) throw new MsgpackError(`msgpack array at offset ${at} has ${n} elements, over the limit ${lim.maxArrayLen}`);
    spend(n, `array at offset ${at}`);
    // Each element takes at least one byte: refuse before allocating for a lying length.
    need(n, `array of ${n} elements`);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = value(depth + 1);
    return out;
  };
  const map = (n, at, depth) => {
    if (n > lim.maxMapLen) throw new MsgpackError(`msgpack map at offset ${at} has ${n} entries, over the limit ${lim.maxMapLen}`);
    spend(n, `map at offset ${at}`);
    need(2 * n, `map of ${n} entries`);
    const out = Object.create(null);
    for (let i = 0; i < n; i++) {
      const keyAt = pos;
      const key = value(depth + 1);
      if (typeof key !== "string") {
        throw new MsgpackError(`msgpack map key at offset ${keyAt} must be a str, got ${describe(key)}`);
      }
      if (Object.prototype.hasOwnProperty.call(out, key)) {
        throw new MsgpackError(`msgpack map at offset ${at} repeats the key ${JSON.stringify(key.slice(0, 80))}`);
      }
      out[key] = value(depth + 1);
    }
    return out;
  };

  function value(depth) {
    if (depth > lim.maxDepth) throw new MsgpackError(`msgpack nesting deeper than ${lim.maxDepth} at offset ${pos}`);
    need(1, "type byte");
    const at = pos;
    const t = u8();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t >= 0xa0 && t <= 0xbf) return str(t & 0x1f, at);
    if (t >= 0x90 && t <= 0x9f) return array(t & 0x0f, at, depth);
    if (t >= 0x80 && t <= 0x8f) return map(t & 0x0f, at, depth);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: need(1, "bin 8 length"); return bin(u8(), at);
      case 0xc5: need(2, "bin 16 length"); return bin(u16(), at);
      case 0xc6: need(4, "bin 32 length"); return bin(u32(), at);
      case 0xca: { need(4, "float 32"); const v = view.getFloat32(pos); pos += 4; return float(v); }
      case 0xcb: { need(8, "float 64"); const v = view.getFloat64(pos); pos += 8; return float(v); }
      case 0xcc: need(1, "uint 8"); return u8();
      case 0xcd: need(2, "uint 16"); return u16();
      case 0xce: need(4, "uint 32"); return u32();
      case 0xcf: need(8, "uint 64"); return int64(false);
      case 0xd0: { need(1, "int 8"); const v = view.getInt8(pos); pos += 1; return v; }
      case 0xd1: { need(2, "int 16"); const v = view.getInt16(pos); pos += 2; return v; }
      case 0xd2: { need(4, "int 32"); const v = view.getInt32(pos); pos += 4; return v; }
      case 0xd3: need(8, "int 64"); return int64(true);
      case 0xd9: need(1, "str 8 length"); return str(u8(), at);
      case 0xda: need(2, "str 16 length"); return str(u16(), at);
      case 0xdb: need(4, "str 32 length"); return str(u32(), at);
      case 0xdc: need(2, "array 16 length"); return array(u16(), at, depth);
      case 0xdd: need(4, "array 32 length"); return array(u32(), at, depth);
      case 0xde: need(2, "map 16 length"); return map(u16(), at, depth);
      case 0xdf: need(4, "map 32 length"); return map(u32(), at, depth);
      default:
        if ((t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8)) {
          throw new MsgpackError(`msgpack ext type byte ${hex(t)} at offset ${at} is not supported`);
        }
        throw new MsgpackError(`msgpack unknown type byte ${hex(t)} at offset ${at}`);
    }
  }

  const result = value(0);
  if (pos !== end) {
    throw new MsgpackError(`msgpack has ${end - pos} trailing bytes after its object (at offset ${pos})`);
  }
  return result;
}

/** @param {any} v */
function describe(v) {
  if (v === null) return "nil";
  if (v instanceof Uint8Array) return "bin";
  if (v instanceof Number) return "float";
  if (Array.isArray(v)) return "array";
  return typeof v === "object" ? "map" : typeof v;
}
