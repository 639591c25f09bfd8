// Varints (LEB128, minimal, at most 5 bytes), zigzag and a bounds-checked byte reader: the small
// binary vocabulary of format v2 (codec/varint.py; the messages are the same word for word).

import { SpnrError } from "./errors.js";

export const MAX_VARINT_BYTES = 5;

/** Reads fields of `data` from `pos`; `name` says what the bytes are in errors. */
export class Reader {
  /** @param {Uint8Array} data @param {string} name @param {number} [pos=0] */
  constructor(data, name, pos = 0) {
    this.data = data;
    this.name = name;
    this.pos = pos;
  }

  get left() {
    return this.data.length - this.pos;
  }

  _truncated(what) {
    return new SpnrError(`${this.name} is truncated: ${what} missing at byte ${this.pos}`);
  }

  byte(what) {
    if (this.pos >= this.data.length) throw this._truncated(what);
    return this.data[this.pos++];
  }

  /** @returns {Uint8Array} a view of the next n bytes */
  take(n, what) {
    if (this.left < n) throw this._truncated(what);
    this.pos += n;
    return this.data.subarray(this.pos - n, this.pos);
  }

  u16(what) {
    const b = this.take(2, what);
    return (b[0] << 8) | b[1];
  }

  u32(what) {
    const b = this.take(4, what);
    return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  }

  f64(what) {
    const b = this.take(8, what);
    return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false);
  }

  uvarint(what) {
    let value = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.byte(what);
      value += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) {
        if (b === 0 && i > 0) throw new SpnrError(`${what} at byte ${this.pos - 1} is an overlong varint`);
        return value;
      }
    }
    throw new SpnrError(`${what} at byte ${this.pos - 1} is a varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  svarint(what) {
    const u = this.uvarint(what);
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** A varint that must lie in lo..hi. */
  uvarintIn(lo, hi, what) {
    const at = this.pos;
    const v = this.uvarint(what);
    if (v < lo || v > hi) throw new SpnrError(`${what} ${v} (byte ${at}) is out of range ${lo}..${hi}`);
    return v;
  }
}
