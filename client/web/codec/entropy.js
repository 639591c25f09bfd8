// spinr entropy decoder: the bytes of codec/entropy.py's encode_arrays -> Int32Arrays (docs/ENTROPY.md).
//
// It mirrors codec/entropy.py and codec/entropy_tables.py: the same descriptor checks, the same
// integer frequency tables (only float64 + - * / and sqrt, in the same order, then integer
// arithmetic), and constriction's ANS decoder (u32 words, u64 state, 24-bit precision) with the 64-bit
// state kept as two uint32 halves in plain Numbers (every intermediate stays below 2**53, so it is
// exact). Every problem with the input raises a SpnrError, with the Python reader's message.

import { SpnrError } from "./errors.js";
import { Reader } from "./varint.js";

export const PRECISION = 24;
export const TOTAL = 2 ** PRECISION;
export const MAX_SPAN = 2 ** 20;
export const MAX_COUNT = 2 ** 24;
export const CUTOFF = 2 ** -30;
export const CONST = 0;
export const UNIFORM = 1;
export const LAPLACE = 2;
export const GAUSS = 3;
export const FLAG_CENTER = 0x04;
export const FLAG_PLATEAU = 0x08;
const VALUE_MIN = -(2 ** 31);
const VALUE_MAX = 2 ** 31 - 1;
const TWO32 = 2 ** 32;
const MASK24 = TOTAL - 1;
const BUCKET_SHIFT = 12;
const BUCKETS = TOTAL >> BUCKET_SHIFT;

/** The initial ANS state without a checksum (codec/entropy.py PLAIN_STATE). */
export const PLAIN_STATE = 1;

// ---------------------------------------------------------------------------------------------
// frequency tables (codec/entropy_tables.py)

const ROOTS = (() => {
  const c = 1 / Math.sqrt(Math.sqrt(Math.sqrt(2)));
  const r = [1];
  for (let j = 1; j < 8; j++) r.push(r[j - 1] * c);
  return r;
})();

/** d = 2**(-k/8): a fixed root times an exact power of two. @param {number} k */
export function decay(k) {
  let d = ROOTS[k & 7];
  for (let i = 0; i < k >> 3; i++) d *= 0.5;
  return d;
}

/** a[0] = 1, then r**j (Laplace) or t**(j*j) (Gaussian); values below CUTOFF are 0. */
export function kernel(kind, length, k) {
  const a = new Float64Array(length);
  a[0] = 1;
  const base = 1 - decay(k);
  const sq = base * base;
  let step = base;
  for (let j = 1; j < length; j++) {
    const v = a[j - 1] * step;
    if (v < CUTOFF) break; // non-increasing: every later value would be cut too
    a[j] = v;
    if (kind === GAUSS) step *= sq;
  }
  return a;
}

/** f[i] = 1 + floor(w[i] * (2**24 - n) / sum(w)); the remainder to the first largest. */
export function normalize(w) {
  const n = w.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += w[i]; // < 2**45: exact
  const free = TOTAL - n;
  const f = new Float64Array(n);
  let used = 0;
  let top = 0;
  for (let i = 0; i < n; i++) {
    const num = w[i] * free; // < 2**48: exact
    let q = Math.floor(num / sum); // the division rounds: correct it to the exact floor
    if (q * sum > num) q -= 1;
    else if ((q + 1) * sum <= num) q += 1;
    f[i] = q + 1;
    used += q + 1;
    if (f[i] > f[top]) top = i;
  }
  f[top] += TOTAL - used;
  return f;
}

/** The table of a parsed model (kind UNIFORM, LAPLACE or GAUSS). */
export function frequencies(m) {
  const size = m.span + 1;
  const w = new Float64Array(size);
  if (m.kind === UNIFORM) {
    w.fill(TOTAL);
  } else {
    const m0 = m.center - m.lo;
    const reach = Math.max(m0, size - 1 - m0);
    const a = kernel(m.kind, Math.max(reach - m.plateau, 0) + 1, m.k);
    for (let i = 0; i < size; i++) w[i] = Math.floor(a[Math.max(Math.abs(i - m0) - m.plateau, 0)] * TOTAL);
  }
  return normalize(w);
}

// ---------------------------------------------------------------------------------------------
// descriptors

const hex2 = (v) => "0x" + v.toString(16).padStart(2, "0");

function parseModel(r, index) {
  const where = `array ${index}`;
  const at = r.pos;
  const tag = r.byte(`model tag of ${where}`);
  const kind = tag & 3;
  const flags = tag & ~3;
  const lo = r.svarint(`lowest code of ${where}`);
  if (lo < VALUE_MIN || lo > VALUE_MAX) throw new SpnrError(`lowest code ${lo} of ${where} is outside int32`);
  if (kind === CONST) {
    if (flags) throw new SpnrError(`model tag ${hex2(tag)} of ${where} (byte ${at}) has flags on a constant`);
    return { kind, lo, span: 0 };
  }
  const span = r.uvarint(`code span of ${where}`);
  if (span < 1 || span > MAX_SPAN || lo + span > VALUE_MAX) {
    throw new SpnrError(`code span ${span} of ${where} is out of range: allowed 1..${MAX_SPAN} within int32`);
  }
  if (kind === UNIFORM) {
    if (flags) throw new SpnrError(`model tag ${hex2(tag)} of ${where} (byte ${at}) has flags on a uniform model`);
    return { kind, lo, span };
  }
  if (flags & ~(FLAG_CENTER | FLAG_PLATEAU)) {
    throw new SpnrError(`model tag ${hex2(tag)} of ${where} (byte ${at}) has unknown flag bits`);
  }
  let center = Math.floor((lo + lo + span) / 2);
  if (flags & FLAG_CENTER) {
    center += r.svarint(`centre of ${where}`);
    if (center < lo || center > lo + span) {
      throw new SpnrError(`centre ${center} of ${where} is outside its codes ${lo}..${lo + span}`);
    }
  }
  const k = r.byte(`scale index of ${where}`);
  let plateau = 0;
  if (flags & FLAG_PLATEAU) {
    plateau = r.uvarint(`plateau of ${where}`);
    if (plateau < 1 || plateau >= span) {
      throw new SpnrError(`plateau ${plateau} of ${where} is out of range: allowed 1..${span - 1}`);
    }
  }
  return { kind, lo, span, center, k, plateau };
}

function checkCounts(counts) {
  if (!Array.isArray(counts)) throw new SpnrError("counts must be an array of code counts");
  counts.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 0 || n > MAX_COUNT) {
      throw new SpnrError(`code count ${n} of array ${i} is out of range 0..${MAX_COUNT}`);
    }
  });
}

/** The descriptors at the start of `bytes` (null for an empty array) and where the ANS words start. */
export function parseModels(bytes, counts) {
  checkCounts(counts);
  const r = new Reader(bytes, "entropy-coded data");
  const models = counts.map((n, i) => (n === 0 ? null : parseModel(r, i)));
  return { models, start: r.pos };
}

// ---------------------------------------------------------------------------------------------
// the checksum state (codec/entropy.py checksum_state): 2**24 + low 24 bits of a CRC-32 (zlib's)

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 of the descriptor bytes, then of each coded array's int32 little-endian codes. */
export function checksumState(descriptors, coded) {
  let c = -1;
  for (let i = 0; i < descriptors.length; i++) c = CRC_TABLE[(c ^ descriptors[i]) & 0xff] ^ (c >>> 8);
  for (const arr of coded) {
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      c = CRC_TABLE[(c ^ v) & 0xff] ^ (c >>> 8);
      c = CRC_TABLE[(c ^ (v >>> 8)) & 0xff] ^ (c >>> 8);
      c = CRC_TABLE[(c ^ (v >>> 16)) & 0xff] ^ (c >>> 8);
      c = CRC_TABLE[(c ^ (v >>> 24)) & 0xff] ^ (c >>> 8);
    }
  }
  return TOTAL + ((c ^ -1) & MASK24);
}

// ---------------------------------------------------------------------------------------------
// constriction's AnsCoder (stack.rs): words are read from the end; the state is hi * 2**32 + lo.

class AnsDecoder {
  constructor(bytes) {
    const n = Math.ceil(bytes.length / 4);
    this.words = new Float64Array(n);
    for (let i = 0; i < bytes.length; i++) this.words[i >> 2] += bytes[i] * 2 ** (8 * (i & 3));
    this.pos = n;
    this.hi = 0;
    this.lo = 0;
    if (n > 0) {
      this.lo = this.words[--this.pos];
      if (this.pos > 0) {
        this.hi = this.lo;
        this.lo = this.words[--this.pos];
      }
    }
  }

  /** `count` symbols of one table, each written to out[i] as symbol + offset. */
  decode(freqs, count, out, offset) {
    const size = freqs.length;
    const cdf = new Float64Array(size + 1);
    for (let i = 0; i < size; i++) cdf[i + 1] = cdf[i] + freqs[i];
    // bucket[j]: the symbol of quantile j * 2**12, so a lookup searches one bucket (~1 symbol)
    const bucket = new Int32Array(BUCKETS + 1);
    for (let s = 0, j = 0; j < BUCKETS; j++) {
      while (cdf[s + 1] <= j * 2 ** BUCKET_SHIFT) s++;
      bucket[j] = s;
    }
    bucket[BUCKETS] = size - 1;
    let { hi, lo, pos } = this;
    const words = this.words;
    for (let i = 0; i < count; i++) {
      const quantile = lo & MASK24;
      const j = quantile >>> BUCKET_SHIFT;
      let a = bucket[j];
      let b = bucket[j + 1] + 1; // the symbol (largest s with cdf[s] <= quantile) lies in [a, b)
      while (b - a > 1) {
        const mid = (a + b) >>> 1;
        if (cdf[mid] <= quantile) a = mid;
        else b = mid;
      }
      const f = freqs[a];
      // state = (state >> 24) * f + (quantile - cdf[a]), with state >> 24 = xh * 2**20 + xl
      const xh = hi >>> 12;
      const xl = (hi & 0xfff) * 256 + (lo >>> 24);
      const big = xh * f; // < 2**44
      const bigHi = Math.floor(big / 4096);
      const low = (big - bigHi * 4096) * 2 ** 20 + xl * f + (quantile - cdf[a]); // < 2**46
      const carry = Math.floor(low / TWO32);
      hi = bigHi + carry;
      lo = low - carry * TWO32;
      if (hi === 0 && pos > 0) {
        hi = lo;
        lo = words[--pos];
      }
      out[i] = a + offset;
    }
    this.hi = hi;
    this.lo = lo;
    this.pos = pos;
  }

  /** Whether every word was read and the state is `state` (< 2**32). */
  endsIn(state) {
    return this.pos === 0 && this.hi === 0 && this.lo === state;
  }
}

/**
 * Inverse of codec.entropy.encode_arrays: Int32Arrays of counts[i] codes each.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @param {number[]} counts
 * @param {{checksum?: boolean}} [options] as the encoder was called (default true)
 * @returns {Int32Array[]}
 */
export function decodeArrays(bytes, counts, { checksum = true } = {}) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const { models, start } = parseModels(data, counts);
  const tail = data.subarray(start);
  const out = counts.map((n) => new Int32Array(n));
  const coded = [];
  models.forEach((m, i) => {
    if (m !== null && m.kind === CONST) out[i].fill(m.lo);
    else if (m !== null) coded.push(i);
  });
  if (!coded.length) {
    if (tail.length) throw new SpnrError(`${tail.length} bytes follow the last model descriptor, none expected`);
    return out;
  }
  if (!tail.length || tail[tail.length - 1] === 0) {
    throw new SpnrError(`entropy-coded data ${tail.length ? "ends in a zero byte" : "is missing after the descriptors"}`);
  }
  const ans = new AnsDecoder(tail);
  for (const i of coded) ans.decode(frequencies(models[i]), counts[i], out[i], models[i].lo);
  const want = checksum ? checksumState(data.subarray(0, start), coded.map((i) => out[i])) : PLAIN_STATE;
  if (!ans.endsIn(want)) {
    throw new SpnrError(
      "entropy-coded data does not end in the coder state it started from" +
        (checksum ? " or fails its checksum" : "") +
        " (truncated, extended or corrupted)",
    );
  }
  return out;
}
