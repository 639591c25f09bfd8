// spinr browser decoder: packets, payloads, layers and the progressive forward pass (docs/FORMAT.md).
//
// Plain ES module, no dependencies beyond ./vendor. Every problem with the input raises a SpnrError
// whose message names the bad value and what was expected; ProgressiveDecoder.addPacket never throws
// for bad packets, it reports them.

import { Decompress as ZstdStream } from "./vendor/fzstd.js";
import { decodeMsgpack, MsgpackError } from "./vendor/msgpack.js";

export const MAGIC = Object.freeze([0x53, 0x50, 0x4e, 0x52]); // "SPNR"
export const VERSION = 1;
export const HEADER_LENGTH = 24;
export const HEADER_LAYER = 0xffff;
export const FLAG_ZSTD = 1;
export const PTYPE_HEADER = 0;
export const PTYPE_LAYER = 1;
export const MAX_PAYLOAD = 16 * 2 ** 20;
export const MAX_DECOMPRESSED = 64 * 2 ** 20;
export const FORMAT_VERSION = 1;
export const MIN_BITS = 2;
export const MAX_BITS = 16;
export const MAX_TENSOR_ELEMENTS = 2 ** 24;
export const MAX_NDIM = 8;
export const MAX_UNITS = 1024;
export const MAX_TENSORS_PER_UNIT = 64;
export const MAX_TOTAL_ELEMENTS = 2 ** 26;
export const MAX_IMAGE_SIDE = 65535;
export const MAX_NAME_LEN = 64;
export const MAX_ARCH_KEYS = 64;
/** Layer packets held while the header has not arrived yet. */
export const MAX_PENDING = 1024;
/** Largest decode size accepted. */
export const MAX_OUTPUT_PIXELS = 64_000_000;
/** Activations are cached only for outputs up to this many pixels; larger decodes run in chunks. */
export const CACHE_PIXELS = 4_000_000;
const CHUNK = 262_144;
const MAX_ZSTD_BLOCK = 128 * 1024;

/** Every error this library raises on purpose; the message is meant for a user. */
export class SpnrError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "SpnrError";
  }
}

const hex = (v, digits) => "0x" + (v >>> 0).toString(16).padStart(digits, "0");
const show = (v) => {
  let s;
  try {
    s = typeof v === "bigint" ? `${v}` : v instanceof Uint8Array ? `<${v.length} bytes>` : JSON.stringify(unbox(v));
  } catch {
    s = String(v);
  }
  s = s === undefined ? String(v) : s;
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
};

// ---------------------------------------------------------------------------------------------
// CRC-32 (zlib's: reflected polynomial 0xEDB88320, initial and final xor 0xFFFFFFFF)

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * zlib.crc32(bytes, crc): pass a previous result as `crc` to continue a running CRC.
 * @param {Uint8Array} bytes
 * @param {number} [crc=0]
 * @returns {number} unsigned 32-bit CRC
 */
export function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Packets

/**
 * @typedef {object} Packet
 * @property {number} ptype     0 header, 1 layer
 * @property {number} streamId  u32
 * @property {number} seq       u16
 * @property {number} layer     unit index, or 0xFFFF for the header packet
 * @property {number} flags
 * @property {number} crc
 * @property {Uint8Array} payload  view into the packet bytes (a zstd frame)
 */

/**
 * Parse exactly one packet: `bytes` must be HEADER_LENGTH + length long, CRC included.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @returns {Packet}
 * @throws {SpnrError}
 */
export function parsePacket(bytes) {
  const data = asBytes(bytes, "packet");
  if (data.length < HEADER_LENGTH) {
    throw new SpnrError(`packet truncated: header needs ${HEADER_LENGTH} bytes, got ${data.length}`);
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (MAGIC.some((b, i) => data[i] !== b)) {
    throw new SpnrError(`bad magic ${bytesRepr(data.subarray(0, 4))}: expected b'SPNR'`);
  }
  const version = data[4];
  if (version !== VERSION) throw new SpnrError(`unsupported packet version ${version}: expected ${VERSION}`);
  const ptype = data[5];
  if (ptype !== PTYPE_HEADER && ptype !== PTYPE_LAYER) {
    throw new SpnrError(`unknown packet type ${ptype}: expected 0 (header) or 1 (layer)`);
  }
  const flags = dv.getUint16(6);
  if (flags !== FLAG_ZSTD) {
    throw new SpnrError(
      `packet flags ${hex(flags, 4)} not supported: v1 requires ${hex(FLAG_ZSTD, 4)} (zstd, reserved bits 0)`,
    );
  }
  const streamId = dv.getUint32(8);
  const seq = dv.getUint16(12);
  const layer = dv.getUint16(14);
  const length = dv.getUint32(16);
  const crc = dv.getUint32(20);
  if (length > MAX_PAYLOAD) throw new SpnrError(`packet payload length ${length} exceeds MAX_PAYLOAD ${MAX_PAYLOAD}`);
  const have = data.length - HEADER_LENGTH;
  if (have < length) throw new SpnrError(`packet truncated: payload needs ${length} bytes, got ${have}`);
  if (have > length) throw new SpnrError(`packet has ${have - length} trailing bytes after its ${length}-byte payload`);
  const payload = data.subarray(HEADER_LENGTH);
  const actual = crc32(payload, crc32(data.subarray(0, 20)));
  if (actual !== crc) throw new SpnrError(`bad CRC in packet seq ${seq}: expected ${hex(crc, 8)}, got ${hex(actual, 8)}`);
  if (ptype === PTYPE_HEADER && layer !== HEADER_LAYER) {
    throw new SpnrError(`header packet must have layer ${hex(HEADER_LAYER, 4)}, got ${layer}`);
  }
  if (ptype === PTYPE_LAYER && layer === HEADER_LAYER) {
    throw new SpnrError(`layer packet cannot use layer ${hex(HEADER_LAYER, 4)} (reserved for the header)`);
  }
  return { ptype, streamId, seq, layer, flags, crc, payload };
}

/**
 * Split a `.spnr` file into its packets' bytes (u32 big-endian record length, then the packet).
 * Framing is checked strictly; the packets themselves are not parsed (use parsePacket or a decoder).
 * @param {ArrayBuffer|Uint8Array} buffer
 * @returns {Uint8Array[]} views into `buffer`
 * @throws {SpnrError}
 */
export function splitFile(buffer) {
  const data = asBytes(buffer, "file");
  if (data.length === 0) throw new SpnrError("file is empty: expected a header packet record");
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = [];
  let offset = 0;
  for (let n = 0; offset < data.length; n++) {
    if (data.length - offset < 4) {
      throw new SpnrError(
        `file truncated: record ${n} at offset ${offset} needs a 4-byte length, got ${data.length - offset}`,
      );
    }
    const length = dv.getUint32(offset);
    const start = offset + 4;
    if (length < HEADER_LENGTH || length > HEADER_LENGTH + MAX_PAYLOAD) {
      throw new SpnrError(
        `record ${n} at offset ${offset} has length ${length}, outside ${HEADER_LENGTH}..${HEADER_LENGTH + MAX_PAYLOAD}`,
      );
    }
    if (data.length - start >= HEADER_LENGTH) {
      const declared = dv.getUint32(start + 16);
      if (declared + HEADER_LENGTH !== length) {
        throw new SpnrError(
          `record ${n} at offset ${offset} has length ${length} but its packet says ${declared + HEADER_LENGTH}`,
        );
      }
    }
    if (start + length > data.length) {
      throw new SpnrError(
        `file truncated: record ${n} at offset ${offset} needs ${length} bytes, got ${data.length - start}`,
      );
    }
    out.push(data.subarray(start, start + length));
    offset = start + length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Payloads: one zstd frame (declared content size, bounded) holding one msgpack map

/**
 * Check a zstd frame's structure without decompressing it.
 * @param {Uint8Array} data
 * @param {number} maxSize
 * @returns {{contentSize: number, windowSize: number}}
 */
function checkZstdFrame(data, maxSize) {
  const n = data.length;
  if (n < 4 || data[0] !== 0x28 || data[1] !== 0xb5 || data[2] !== 0x2f || data[3] !== 0xfd) {
    throw new SpnrError(`payload is not a zstd frame: bad magic ${bytesRepr(data.subarray(0, 4))}`);
  }
  if (n < 5) throw new SpnrError("payload zstd frame is truncated: no frame header descriptor");
  const fhd = data[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 8) throw new SpnrError(`payload zstd frame header descriptor ${hex(fhd, 2)} sets the reserved bit`);
  let pos = 5;
  let windowSize = 0;
  if (!single) {
    if (pos >= n) throw new SpnrError("payload zstd frame is truncated in its window descriptor");
    const wd = data[pos++];
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][dictFlag];
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
  if (pos + dictBytes + fcsBytes > n) throw new SpnrError("payload zstd frame header is truncated");
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += data[pos + i] * 2 ** (8 * i);
  pos += dictBytes;
  if (dictId !== 0) throw new SpnrError(`payload zstd frame needs dictionary ${dictId}; dictionaries are not supported`);
  if (fcsBytes === 0) throw new SpnrError("payload zstd frame does not declare its content size");
  let size = 0;
  for (let i = 0; i < fcsBytes; i++) size += data[pos + i] * 2 ** (8 * i);
  if (fcsBytes === 2) size += 256;
  pos += fcsBytes;
  if (size > maxSize) {
    throw new SpnrError(`payload declares ${size} decompressed bytes, more than MAX_DECOMPRESSED ${maxSize}`);
  }
  if (single) windowSize = size;
  if (windowSize > MAX_DECOMPRESSED) {
    throw new SpnrError(`payload zstd frame window of ${windowSize} bytes exceeds the limit ${MAX_DECOMPRESSED}`);
  }
  const blockMax = Math.min(windowSize, MAX_ZSTD_BLOCK);
  for (let b = 0; ; b++) {
    if (n - pos < 3) throw new SpnrError(`payload zstd frame is truncated: block ${b} header at offset ${pos}`);
    const h = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16);
    pos += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const bsize = h >>> 3;
    if (type === 3) throw new SpnrError(`payload zstd frame block ${b} has the reserved block type 3`);
    if (bsize > blockMax) {
      throw new SpnrError(`payload zstd frame block ${b} of ${bsize} bytes exceeds the block maximum ${blockMax}`);
    }
    const body = type === 1 ? 1 : bsize;
    if (n - pos < body) throw new SpnrError(`payload zstd frame is truncated: block ${b} needs ${body} bytes, got ${n - pos}`);
    pos += body;
    if (last) break;
  }
  if (checksum) {
    if (n - pos < 4) throw new SpnrError("payload zstd frame is truncated: content checksum missing");
    pos += 4;
  }
  if (pos !== n) throw new SpnrError(`payload has ${n - pos} bytes after its zstd frame`);
  return { contentSize: size, windowSize };
}

/**
 * Decompress one zstd frame that declares its content size, bounded by `maxSize` bytes.
 * The frame structure is checked before decoding, and decoding stops as soon as the output
 * passes the declared size.
 * @param {Uint8Array} frame
 * @param {number} [maxSize=MAX_DECOMPRESSED]
 * @returns {Uint8Array}
 * @throws {SpnrError}
 */
export function zstdDecompress(frame, maxSize = MAX_DECOMPRESSED) {
  const data = asBytes(frame, "payload");
  const { contentSize } = checkZstdFrame(data, maxSize);
  const out = new Uint8Array(contentSize);
  let produced = 0;
  const stream = new ZstdStream((chunk) => {
    if (produced + chunk.length > contentSize) {
      throw new SpnrError(`payload decompresses to more than the ${contentSize} bytes it declares`);
    }
    out.set(chunk, produced);
    produced += chunk.length;
  });
  try {
    stream.push(data, true);
  } catch (e) {
    if (e instanceof SpnrError) throw e;
    throw new SpnrError(`payload zstd frame is corrupt: ${e && e.message ? e.message : e}`);
  }
  if (produced !== contentSize) {
    throw new SpnrError(`payload decompressed to ${produced} bytes but declares ${contentSize}`);
  }
  return out;
}

/**
 * A packet payload (zstd frame of a msgpack map) -> the map, as a null-prototype object.
 * bin values are Uint8Array; integers beyond 2^53 are BigInt.
 * @param {Uint8Array} bytes
 * @returns {object}
 * @throws {SpnrError}
 */
export function decodePayload(bytes) {
  return unbox(decodePayloadBoxed(bytes));
}

/** Like decodePayload, but msgpack floats come back boxed (Number objects), so ints and floats differ. */
function decodePayloadBoxed(bytes) {
  const raw = zstdDecompress(bytes, MAX_DECOMPRESSED);
  let obj;
  try {
    obj = decodeMsgpack(raw, { boxFloats: true });
  } catch (e) {
    if (e instanceof MsgpackError) throw new SpnrError(`payload is not valid msgpack: ${e.message}`);
    throw e;
  }
  if (!isMap(obj)) throw new SpnrError(`payload must be a msgpack map, got ${typeName(obj)}`);
  return obj;
}

// ---------------------------------------------------------------------------------------------
// Header and layer payloads

const HEADER_KEYS = ["format", "model", "arch", "image", "coords", "output", "quant", "units", "stage_psnr", "meta"];
const TENSOR_KEYS = ["name", "shape", "bits", "axis", "scale", "offset", "data"];
const MODEL_RE = /^[a-z0-9_]{1,32}$/;

/**
 * @typedef {object} TensorSpec
 * @property {string} name
 * @property {number[]} shape
 *
 * @typedef {object} UnitSpec
 * @property {string} name
 * @property {TensorSpec[]} tensors  in packet order
 *
 * @typedef {object} StreamHeader
 * @property {number} format
 * @property {string} model
 * @property {object} arch
 * @property {number} width
 * @property {number} height
 * @property {number} bits
 * @property {boolean} perChannel
 * @property {string} coords
 * @property {string} output
 * @property {UnitSpec[]} units
 * @property {number[]} stagePsnr
 * @property {object} meta
 */

/**
 * Parse and validate a header packet (bytes or a parsed Packet).
 * @param {Uint8Array|Packet} packet
 * @returns {StreamHeader}
 * @throws {SpnrError}
 */
export function parseHeader(packet) {
  const p = packet instanceof Uint8Array || packet instanceof ArrayBuffer ? parsePacket(packet) : packet;
  if (!p || p.ptype !== PTYPE_HEADER) {
    throw new SpnrError(`expected a header packet, got ${p && p.ptype === PTYPE_LAYER ? "a layer packet" : show(p)}`);
  }
  const d = exactMap(decodePayloadBoxed(p.payload), HEADER_KEYS, "header payload", ["stage_psnr", "meta"]);
  if (!isInt(d.format) || d.format !== FORMAT_VERSION) {
    throw new SpnrError(`unsupported header format ${show(d.format)}: expected ${FORMAT_VERSION}`);
  }
  if (typeof d.model !== "string" || !MODEL_RE.test(d.model)) {
    throw new SpnrError(`header model ${show(d.model)} is not an identifier matching [a-z0-9_]{1,32}`);
  }
  const image = exactMap(d.image, ["width", "height"], "header image");
  const width = intIn(image.width, 1, MAX_IMAGE_SIDE, "header image width");
  const height = intIn(image.height, 1, MAX_IMAGE_SIDE, "header image height");
  if (d.coords !== "center") throw new SpnrError(`header coords ${show(d.coords)} not supported: expected 'center'`);
  if (d.output !== "pm1") throw new SpnrError(`header output ${show(d.output)} not supported: expected 'pm1'`);
  const quant = exactMap(d.quant, ["bits", "per_channel"], "header quant");
  const bits = intIn(quant.bits, MIN_BITS, MAX_BITS, "header quant bits");
  if (typeof quant.per_channel !== "boolean") {
    throw new SpnrError(`header quant per_channel must be a bool, got ${show(quant.per_channel)}`);
  }
  const stagePsnr = "stage_psnr" in d ? d.stage_psnr : [];
  if (!Array.isArray(stagePsnr) || stagePsnr.length > MAX_UNITS + 1) {
    throw new SpnrError(`header stage_psnr must be a list of at most ${MAX_UNITS + 1} numbers`);
  }
  if (!stagePsnr.every(isNumber)) throw new SpnrError(`header stage_psnr must hold numbers, got ${show(stagePsnr)}`);
  const meta = "meta" in d ? d.meta : Object.create(null);
  if (!isMap(meta)) throw new SpnrError(`header meta must be a map, got ${typeName(meta)}`);
  return {
    format: FORMAT_VERSION,
    model: d.model,
    arch: parseArch(d.arch),
    width,
    height,
    bits,
    perChannel: quant.per_channel,
    coords: d.coords,
    output: d.output,
    units: parseUnits(d.units),
    stagePsnr: stagePsnr.map(Number),
    meta: unbox(meta),
  };
}

function parseArch(arch) {
  if (!isMap(arch) || Object.keys(arch).length > MAX_ARCH_KEYS) {
    throw new SpnrError(`header arch must be a map of at most ${MAX_ARCH_KEYS} entries`);
  }
  const out = Object.create(null);
  for (const [key, value] of Object.entries(arch)) {
    name(key, "header arch key");
    const items = Array.isArray(value) ? value : [value];
    if (!items.every((v) => isNumber(v) || typeof v === "string" || typeof v === "boolean")) {
      throw new SpnrError(`header arch ${show(key)} must be an int, float, str, bool or a list of them, got ${show(value)}`);
    }
    out[key] = unbox(value);
  }
  // Keep the int/float distinction for the arch parser (floats stay boxed on a hidden copy).
  Object.defineProperty(out, BOXED, { value: arch, enumerable: false });
  return out;
}

function parseUnits(units) {
  if (!Array.isArray(units) || units.length < 1 || units.length > MAX_UNITS) {
    throw new SpnrError(
      `header units must be a list of 1..${MAX_UNITS} entries, got ${Array.isArray(units) ? units.length : typeName(units)}`,
    );
  }
  let total = 0;
  return units.map((u, i) => {
    u = exactMap(u, ["name", "tensors"], `header unit ${i}`);
    const uname = name(u.name, `header unit ${i} name`);
    const tensors = u.tensors;
    if (!Array.isArray(tensors) || tensors.length < 1 || tensors.length > MAX_TENSORS_PER_UNIT) {
      throw new SpnrError(`header unit ${show(uname)} tensors must be a list of 1..${MAX_TENSORS_PER_UNIT} entries`);
    }
    const seen = new Set();
    const parsed = tensors.map((t) => {
      if (!Array.isArray(t) || t.length !== 2) {
        throw new SpnrError(`header unit ${show(uname)} tensor entry ${show(t)} is not [name, shape]`);
      }
      const tname = name(t[0], `header unit ${show(uname)} tensor name`);
      const shape = parseShape(t[1], `header unit ${show(uname)} tensor ${show(tname)}`);
      total += prod(shape);
      if (seen.has(tname)) throw new SpnrError(`header unit ${show(uname)} repeats a tensor name`);
      seen.add(tname);
      return { name: tname, shape };
    });
    if (total > MAX_TOTAL_ELEMENTS) throw new SpnrError(`header units hold more than ${MAX_TOTAL_ELEMENTS} elements in all`);
    return { name: uname, tensors: parsed };
  });
}

/**
 * @typedef {object} QuantizedTensor
 * @property {string} name
 * @property {number[]} shape
 * @property {number} bits
 * @property {null|0} axis
 * @property {Float32Array} scale   1 value, or shape[0] values when axis is 0
 * @property {Float32Array} offset
 * @property {Uint32Array} codes    flat, row-major
 *
 * @typedef {object} LayerUnit
 * @property {number} index
 * @property {QuantizedTensor[]} tensors
 */

/**
 * Parse a layer packet against the header: tensor names and shapes must match header.units.
 * @param {Uint8Array|Packet} packet
 * @param {StreamHeader} header
 * @returns {LayerUnit}
 * @throws {SpnrError}
 */
export function parseLayer(packet, header) {
  const p = packet instanceof Uint8Array || packet instanceof ArrayBuffer ? parsePacket(packet) : packet;
  if (!p || p.ptype !== PTYPE_LAYER) {
    throw new SpnrError(`expected a layer packet, got ${p && p.ptype === PTYPE_HEADER ? "a header packet" : show(p)}`);
  }
  const n = header.units.length;
  if (p.layer >= n) throw new SpnrError(`layer packet for unit ${p.layer}, but the header has ${n} units`);
  const d = exactMap(decodePayloadBoxed(p.payload), ["unit", "tensors"], "layer payload");
  const index = intIn(d.unit, 0, n - 1, "layer payload unit index");
  const spec = header.units[index];
  const tensors = d.tensors;
  if (!Array.isArray(tensors) || tensors.length !== spec.tensors.length) {
    throw new SpnrError(
      `unit ${index} (${spec.name}) must carry ${spec.tensors.length} tensors as the header says, got ${
        Array.isArray(tensors) ? tensors.length : typeName(tensors)
      }`,
    );
  }
  const parsed = tensors.map((t, i) => parseTensor(t, spec.tensors[i].name, spec.tensors[i].shape));
  if (index !== p.layer) throw new SpnrError(`layer payload is unit ${index} but its packet says layer ${p.layer}`);
  return { index, tensors: parsed };
}

function parseTensor(d, expectedName, expectedShape) {
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

// ---------------------------------------------------------------------------------------------
// Architectures: which units each trunk step and readout needs, and their layers

/**
 * One linear layer of the forward pass, `y = x W^T + b`, optionally `sin(omega * y)` (plus x).
 * @typedef {object} LayerOp
 * @property {number} unit      unit index the tensors come from
 * @property {number} inF
 * @property {number} outF
 * @property {Float32Array} weight  (outF, inF) row-major
 * @property {Float32Array} bias    (outF)
 * @property {number} omega     float32 frequency; ignored for the readout
 * @property {boolean} sine
 * @property {boolean} residual h + sin(...)
 */

const BOXED = Symbol("boxed arch");

function archNum(arch, key, kind, lo, hi) {
  const boxed = arch[BOXED] || arch;
  let v = boxed[key];
  const ok = kind === "int" ? isInt(v) : isNumber(v);
  v = unbox(v);
  if (!ok || !(v >= lo && v <= hi)) {
    throw new SpnrError(`header arch field '${key}' is ${show(v)}; expected ${kind} in ${lo}..${hi}`);
  }
  return v;
}

const fmtShape = (t) => `${t.name}${JSON.stringify(t.shape)}`;

class SineArch {
  /** @param {StreamHeader} header */
  constructor(header) {
    const a = header.arch;
    this.width = archNum(a, "width", "int", 1, 4096);
    this.hidden = archNum(a, "hidden_layers", "int", 0, 256);
    this.w0First = Math.fround(archNum(a, "first_omega_0", "float", 0, 1e4));
    this.w0 = Math.fround(archNum(a, "hidden_omega_0", "float", 0, 1e4));
  }

  /** Header units must be exactly the layout this arch implies (names, tensors, shapes, order). */
  checkUnits(units, describe) {
    const want = this.expectedUnits();
    if (units.length !== want.length) {
      throw new SpnrError(`header has ${units.length} units but ${describe} needs ${want.length}`);
    }
    want.forEach((w, i) => {
      const u = units[i];
      const same =
        u.name === w.name &&
        u.tensors.length === w.tensors.length &&
        u.tensors.every((t, j) => t.name === w.tensors[j].name && fmtShape(t) === fmtShape(w.tensors[j]));
      if (!same) {
        throw new SpnrError(
          `header unit ${i} is ${show(u.name)} with ${u.tensors.map(fmtShape).join(", ")}; ${describe} expects ` +
            `${show(w.name)} with ${w.tensors.map(fmtShape).join(", ")}`,
        );
      }
    });
  }

  lin(prefix, out, inp) {
    return [
      { name: `${prefix}weight`, shape: [out, inp] },
      { name: `${prefix}bias`, shape: [out] },
    ];
  }

  /** @returns {LayerOp} */
  op(params, unit, prefix, omega, sine, residual = false) {
    const t = params.get(unit);
    const w = t[`${prefix}weight`];
    return {
      unit,
      inF: w.shape[1],
      outF: w.shape[0],
      weight: w.values,
      bias: t[`${prefix}bias`].values,
      omega,
      sine,
      residual,
    };
  }
}

class SirenArch extends SineArch {
  constructor(header) {
    super(header);
    this.progressive = false;
    this.depths = 1;
    this.checkUnits(header.units, `siren (width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const W = this.width;
    const u = [{ name: "input", tensors: this.lin("", W, 2) }];
    for (let k = 1; k <= this.hidden; k++) u.push({ name: `hidden.${k}`, tensors: this.lin("", W, W) });
    u.push({ name: "output", tensors: this.lin("", 3, W) });
    return u;
  }
  trunkSteps() { return this.hidden + 1; }
  trunkUnits(k) { return [k]; }
  readoutUnits() { return [this.hidden + 1]; }
  trunkOp(k, params) { return this.op(params, k, "", k === 0 ? this.w0First : this.w0, true); }
  readoutOp(depth, params) { return this.op(params, this.hidden + 1, "", 0, false); }
}

class SpinrArch extends SineArch {
  constructor(header) {
    super(header);
    const head = header.arch.head;
    if (head !== "shared" && head !== "per_stage") {
      throw new SpnrError(`header arch field 'head' is ${show(head)}; expected 'shared' or 'per_stage'`);
    }
    this.shared = head === "shared";
    const residual = "residual" in header.arch ? header.arch.residual : false;
    if (typeof residual !== "boolean") {
      throw new SpnrError(`header arch field 'residual' is ${show(residual)}; expected a boolean`);
    }
    this.residual = residual;
    this.progressive = true;
    this.depths = this.hidden + 1;
    this.checkUnits(header.units, `spinr (head ${head}, width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const W = this.width;
    if (this.shared) {
      const u = [
        { name: "input", tensors: this.lin("", W, 2) },
        { name: "output", tensors: this.lin("", 3, W) },
      ];
      for (let k = 1; k <= this.hidden; k++) u.push({ name: `hidden.${k}`, tensors: this.lin("", W, W) });
      return u;
    }
    const u = [{ name: "stage.0", tensors: [...this.lin("in_", W, 2), ...this.lin("head_", 3, W)] }];
    for (let k = 1; k <= this.hidden; k++) {
      u.push({ name: `stage.${k}`, tensors: [...this.lin("", W, W), ...this.lin("head_", 3, W)] });
    }
    return u;
  }
  trunkSteps() { return this.depths; }
  trunkUnits(k) { return [k === 0 ? 0 : this.shared ? k + 1 : k]; }
  readoutUnits(depth) { return [this.shared ? 1 : depth]; }
  trunkOp(k, params) {
    if (k === 0) return this.op(params, 0, this.shared ? "" : "in_", this.w0First, true);
    return this.op(params, this.trunkUnits(k)[0], "", this.w0, true, this.residual);
  }
  readoutOp(depth, params) {
    return this.shared ? this.op(params, 1, "", 0, false) : this.op(params, depth, "head_", 0, false);
  }
}

const ARCHS = { siren: SirenArch, spinr: SpinrArch };

/** Model names this decoder can run. */
export const SUPPORTED_MODELS = Object.freeze(Object.keys(ARCHS));

// ---------------------------------------------------------------------------------------------
// The forward pass in plain JS (float32 storage, same operation order as the numpy decoder)

/**
 * Pixel-centre coordinates of one axis, normalised to [-1, 1]: (2j + 1) / n - 1, as float32.
 * @param {number} n
 * @returns {Float32Array}
 */
export function axisCoords(n) {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = (2 * j + 1) / n - 1;
  return out;
}

/** Coordinates [x, y] of pixels start..start+count of a w x h image, row-major. */
function coordChunk(xs, ys, w, start, count) {
  const out = new Float32Array(count * 2);
  for (let p = 0; p < count; p++) {
    const q = start + p;
    const i = (q / w) | 0;
    out[2 * p] = xs[q - i * w];
    out[2 * p + 1] = ys[i];
  }
  return out;
}

/**
 * Apply one layer to `n` rows of `x` (n x op.inF, float32), giving n x op.outF.
 * @param {LayerOp} op
 * @param {Float32Array} x
 * @param {number} n
 * @returns {Float32Array}
 */
export function applyLayer(op, x, n) {
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

/**
 * Network output in [-1, 1] -> RGBA8: rgb = clip((y + 1) / 2, 0, 1), round half to even.
 * @param {Float32Array} y       n x stride, rgb in the first 3 of each row
 * @param {number} n
 * @param {number} stride
 * @param {Uint8ClampedArray} [out]  n x 4
 * @param {number} [at=0]            first pixel to write
 * @returns {Uint8ClampedArray}
 */
export function toRGBA(y, n, stride = 3, out = new Uint8ClampedArray(n * 4), at = 0) {
  const fr = Math.fround;
  for (let p = 0; p < n; p++) {
    const o = (at + p) * 4;
    for (let c = 0; c < 3; c++) {
      let v = fr(fr(y[p * stride + c] + 1) * 0.5);
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      // Uint8ClampedArray stores with round-half-to-even, like numpy's rint.
      out[o + c] = fr(v * 255);
    }
    out[o + 3] = 255;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Progressive decoder

/**
 * @typedef {object} PacketStatus
 * @property {boolean} accepted
 * @property {number|null} layer   unit index of an accepted layer packet
 * @property {string|null} error   why the packet was rejected
 * @property {"header"|"layer"|null} kind
 * @property {boolean} [duplicate]
 *
 * @typedef {object} DecodeInfo
 * @property {number} width
 * @property {number} height
 * @property {number} depth       prefix depth used (0 for a non-progressive model)
 * @property {number[]} steps     trunk steps run
 * @property {number[]} units     unit indices whose tensors were used
 * @property {string} backend     "js" or the accelerator's name (e.g. "webgl2")
 * @property {string|null} fallback  why the accelerator was not used, if it was asked for and failed
 * @property {number} ms          wall time of the decode
 * @property {number} computedSteps  trunk layers computed now (the rest came from the cache)
 *
 * An accelerator runs the same forward pass elsewhere (gl.js: WebGL2).
 * @typedef {object} Accelerator
 * @property {string} name
 * @property {(job: ForwardJob) => Float32Array} run   n x 4 floats, rgb first
 * @property {() => void} [dispose]
 *
 * @typedef {object} ForwardJob
 * @property {number} width
 * @property {number} height
 * @property {Float32Array} xs   per column
 * @property {Float32Array} ys   per row
 * @property {LayerOp[]} trunk
 * @property {number[]} steps    trunk step ids, a cache key: equal prefixes mean equal activations
 * @property {LayerOp} readout
 * @property {object} owner      the decoder (cache namespace)
 */

/** Decodes a stream from whatever packets arrived, in any order, at any size. */
export class ProgressiveDecoder {
  /**
   * @param {object} [options]
   * @param {"prefix"|"skip"} [options.conceal="prefix"]  skip: leave out a missing hidden layer
   * @param {number} [options.streamId]   accept only this stream (default: the first packet's)
   * @param {Accelerator|null} [options.accelerator]  used by decode() unless backend "js" is asked for
   */
  constructor({ conceal = "prefix", streamId = undefined, accelerator = null } = {}) {
    if (conceal !== "prefix" && conceal !== "skip") {
      throw new SpnrError(`concealment ${show(conceal)} is not one of prefix, skip`);
    }
    if (streamId !== undefined && !(isInt(streamId) && streamId >= 0 && streamId <= 0xffffffff)) {
      throw new SpnrError(`stream id ${show(streamId)} is not a u32`);
    }
    this.conceal = conceal;
    /** @type {number|null} */
    this.streamId = streamId === undefined ? null : streamId;
    /** @type {StreamHeader|null} */
    this.header = null;
    this.arch = null;
    /** @type {Map<number, object>} unit index -> {tensorName: {shape, values: Float32Array}} */
    this.params = new Map();
    this._pending = [];
    /** Why layer packets held before the header were rejected once it came. @type {string[]} */
    this.pendingErrors = [];
    this._payloads = new Map();
    this._cache = new Map();
    this.accelerator = accelerator;
    this._accelError = null;
    /** @type {DecodeInfo|null} */
    this.lastInfo = null;
  }

  /**
   * Use (or stop using, with null) an accelerator for decode().
   * @param {Accelerator|null} accelerator
   */
  setAccelerator(accelerator) {
    this.accelerator = accelerator;
    this._accelError = null;
  }

  /**
   * Take one packet. A bad packet is reported in the status, never thrown, so a stream goes on.
   * @param {Uint8Array|ArrayBuffer} bytes
   * @returns {PacketStatus}
   */
  addPacket(bytes) {
    try {
      return this._add(parsePacket(bytes));
    } catch (e) {
      return { accepted: false, layer: null, error: errorText(e), kind: null };
    }
  }

  _add(packet) {
    if (this.streamId === null) {
      this.streamId = packet.streamId;
    } else if (packet.streamId !== this.streamId) {
      throw new SpnrError(
        `packet of stream ${hex(packet.streamId, 8)} does not belong to stream ${hex(this.streamId, 8)}`,
      );
    }
    if (packet.ptype === PTYPE_HEADER) {
      if (this.header === null) {
        const header = parseHeader(packet);
        const Arch = ARCHS[header.model];
        if (!Arch) {
          throw new SpnrError(`model ${show(header.model)} is not supported by this decoder; supported: ${SUPPORTED_MODELS.join(", ")}`);
        }
        this.arch = new Arch(header);
        this.header = header;
        const pending = this._pending;
        this._pending = [];
        this.pendingErrors = [];
        for (const p of pending) {
          try {
            this._add(p);
          } catch (e) {
            this.pendingErrors.push(`layer ${p.layer} (packet seq ${p.seq}): ${errorText(e)}`);
          }
        }
      }
      return { accepted: true, layer: null, error: null, kind: "header" };
    }
    if (this.header === null) {
      if (this._pending.length >= MAX_PENDING) {
        throw new SpnrError(`more than ${MAX_PENDING} layer packets arrived before the header`);
      }
      this._pending.push({ ...packet, payload: packet.payload.slice() });
      return { accepted: true, layer: packet.layer, error: null, kind: "layer" };
    }
    const known = this._payloads.get(packet.layer);
    if (known !== undefined) {
      if (!sameBytes(known, packet.payload)) throw new SpnrError(`two different packets for unit ${packet.layer}`);
      return { accepted: true, layer: packet.layer, error: null, kind: "layer", duplicate: true };
    }
    const unit = parseLayer(packet, this.header);
    const tensors = Object.create(null);
    for (const t of unit.tensors) tensors[t.name] = { shape: t.shape, values: dequantize(t) };
    this.params.set(unit.index, tensors);
    this._payloads.set(unit.index, packet.payload.slice());
    return { accepted: true, layer: unit.index, error: null, kind: "layer" };
  }

  /** Unit indices received and accepted, sorted. @returns {number[]} */
  available() {
    return [...this.params.keys()].sort((a, b) => a - b);
  }

  /** Number of units the header announces (0 before the header). */
  get numUnits() {
    return this.header ? this.header.units.length : 0;
  }

  /** Number of prefix depths (1 for a non-progressive model, 0 before the header). */
  get depths() {
    return this.arch ? this.arch.depths : 0;
  }

  /**
   * The deepest decodable depth and the trunk steps to run for it (at most `depth` if given),
   * or null when nothing decodes yet.
   * @param {number} [depth]
   * @returns {{depth: number, steps: number[]}|null}
   */
  plan(depth) {
    const arch = this.arch;
    if (!arch) return null;
    const avail = new Set(this.params.keys());
    if (depth !== undefined && depth !== null) {
      if (!isInt(depth) || depth < 0 || depth >= arch.depths) {
        throw new SpnrError(`depth ${show(depth)} is out of range: this stream has depths 0..${arch.depths - 1}`);
      }
      const keep = new Set(arch.readoutUnits(0));
      for (let k = depth + 1; k < arch.depths; k++) {
        for (const u of arch.trunkUnits(k)) avail.delete(u);
        for (const u of arch.readoutUnits(k)) if (!keep.has(u)) avail.delete(u);
      }
    }
    const has = (units) => units.every((u) => avail.has(u));
    if (!arch.progressive) {
      const steps = [];
      let ok = has(arch.readoutUnits(0));
      for (let k = 0; k < arch.trunkSteps(); k++) {
        ok = ok && has(arch.trunkUnits(k));
        steps.push(k);
      }
      return ok ? { depth: 0, steps } : null;
    }
    if (!has(arch.trunkUnits(0))) return null;
    const steps = [0];
    let best = has(arch.readoutUnits(0)) ? { depth: 0, steps: [0] } : null;
    for (let k = 1; k < arch.depths; k++) {
      if (has(arch.trunkUnits(k))) {
        steps.push(k);
        if (has(arch.readoutUnits(k))) best = { depth: k, steps: [...steps] };
      } else if (this.conceal !== "skip") {
        break;
      }
    }
    return best;
  }

  /** Deepest usable prefix depth, or null when nothing decodes yet. @returns {number|null} */
  usableDepth() {
    const p = this.plan();
    return p ? p.depth : null;
  }

  /**
   * Unit indices a decode at `depth` (default: the deepest usable) would use.
   * @param {number} [depth]
   * @returns {number[]}
   */
  usedUnits(depth) {
    const p = this.plan(depth);
    if (!p) return [];
    const units = new Set(this.arch.readoutUnits(p.depth));
    for (const k of p.steps) for (const u of this.arch.trunkUnits(k)) units.add(u);
    return [...units].sort((a, b) => a - b);
  }

  /**
   * Decode the deepest usable prefix (or at most `depth`) at width x height.
   * @param {number} [width]   default: the image's
   * @param {number} [height]
   * @param {object} [options]
   * @param {number} [options.depth]
   * @param {"auto"|"js"|"accelerator"} [options.backend="auto"]  auto: the accelerator if set, falling back to JS
   * @returns {Uint8ClampedArray} RGBA, row-major, width * height * 4 (see lastInfo for what was used)
   * @throws {SpnrError} no header, nothing decodable, bad size or depth
   */
  decode(width, height, { depth, backend = "auto" } = {}) {
    const t0 = now();
    if (!this.header) throw new SpnrError("cannot decode: the header packet has not arrived");
    const w = width === undefined || width === null ? this.header.width : width;
    const h = height === undefined || height === null ? this.header.height : height;
    for (const [v, what] of [[w, "width"], [h, "height"]]) {
      if (!isInt(v) || v < 1 || v > MAX_IMAGE_SIDE) throw new SpnrError(`output ${what} ${show(v)} is out of range 1..${MAX_IMAGE_SIDE}`);
    }
    if (w * h > MAX_OUTPUT_PIXELS) throw new SpnrError(`output size ${w}x${h} is over the limit of ${MAX_OUTPUT_PIXELS} pixels`);
    if (!["auto", "js", "accelerator"].includes(backend)) {
      throw new SpnrError(`backend ${show(backend)} is not one of auto, js, accelerator`);
    }
    const plan = this.plan(depth);
    if (!plan) {
      const missing = this.arch.trunkUnits(0).filter((u) => !this.params.has(u));
      throw new SpnrError(
        `cannot decode: indispensable unit(s) ${missing.length ? JSON.stringify(missing) : "for the readout"} missing`,
      );
    }
    const trunk = plan.steps.map((k) => this.arch.trunkOp(k, this.params));
    const readout = this.arch.readoutOp(plan.depth, this.params);
    const info = {
      width: w,
      height: h,
      depth: plan.depth,
      steps: plan.steps,
      units: this.usedUnits(depth === undefined || depth === null ? undefined : plan.depth),
      backend: "js",
      fallback: null,
      ms: 0,
      computedSteps: 0,
    };
    let rgba = null;
    if (backend !== "js" && this.accelerator) {
      if (this._accelError && backend === "auto") {
        info.fallback = this._accelError;
      } else {
        try {
          const job = { width: w, height: h, xs: axisCoords(w), ys: axisCoords(h), trunk, steps: plan.steps, readout, owner: this };
          const y = this.accelerator.run(job);
          rgba = toRGBA(y, w * h, 4);
          info.backend = this.accelerator.name;
          info.computedSteps = job.computedSteps ?? trunk.length;
        } catch (e) {
          if (backend === "accelerator") throw e instanceof SpnrError ? e : new SpnrError(`${this.accelerator.name} failed: ${errorText(e)}`);
          this._accelError = `${this.accelerator.name} failed: ${errorText(e)}`;
          info.fallback = this._accelError;
        }
      }
    } else if (backend === "accelerator") {
      throw new SpnrError("no accelerator is set on this decoder");
    }
    if (rgba === null) {
      const [out, computed] = this._decodeJS(w, h, trunk, plan.steps, readout);
      rgba = out;
      info.computedSteps = computed;
    }
    info.ms = now() - t0;
    this.lastInfo = info;
    return rgba;
  }

  _decodeJS(w, h, trunk, steps, readout) {
    const n = w * h;
    const xs = axisCoords(w);
    const ys = axisCoords(h);
    if (n <= CACHE_PIXELS) {
      const [act, computed] = this._trunkCached(w, h, xs, ys, trunk, steps);
      return [toRGBA(applyLayer(readout, act, n), n), computed];
    }
    const out = new Uint8ClampedArray(n * 4);
    for (let s = 0; s < n; s += CHUNK) {
      const m = Math.min(CHUNK, n - s);
      let a = coordChunk(xs, ys, w, s, m);
      for (const op of trunk) a = applyLayer(op, a, m);
      toRGBA(applyLayer(readout, a, m), m, 3, out, s);
    }
    return [out, trunk.length];
  }

  /** Trunk activations for this size, reusing the cached deepest prefix. */
  _trunkCached(w, h, xs, ys, trunk, steps) {
    const sizeKey = `${w}x${h}`;
    const hit = this._cache.get(sizeKey);
    let done = 0;
    let act = null;
    if (hit && hit.steps.length <= steps.length && hit.steps.every((k, i) => k === steps[i])) {
      done = hit.steps.length;
      act = hit.act;
    }
    if (act === null) act = coordChunk(xs, ys, w, 0, w * h);
    for (let i = done; i < trunk.length; i++) act = applyLayer(trunk[i], act, w * h);
    // Keep the deepest activations for this size; a shallower request must not evict them.
    const shallower = hit && steps.length < hit.steps.length && steps.every((k, i) => k === hit.steps[i]);
    if (!shallower) {
      this._cache.delete(sizeKey);
      this._cache.set(sizeKey, { steps: [...steps], act });
    } else {
      this._cache.delete(sizeKey);
      this._cache.set(sizeKey, hit);
    }
    while (this._cache.size > 2) this._cache.delete(this._cache.keys().next().value);
    return [act, trunk.length - done];
  }

  /** Drop cached activations (here and in the accelerator, if it keeps any). */
  clearCache() {
    this._cache.clear();
    if (this.accelerator && this.accelerator.forget) this.accelerator.forget(this);
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

function now() {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

/** @param {unknown} e */
export function errorText(e) {
  if (e instanceof SpnrError) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function asBytes(b, what) {
  if (b instanceof Uint8Array) return b;
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  throw new SpnrError(`${what} must be a Uint8Array or ArrayBuffer, got ${typeName(b)}`);
}

function bytesRepr(b) {
  let s = "b'";
  for (const c of b) s += c >= 0x20 && c < 0x7f && c !== 0x27 && c !== 0x5c ? String.fromCharCode(c) : "\\x" + c.toString(16).padStart(2, "0");
  return s + "'";
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isMap(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Number);
}

function isInt(v) {
  return typeof v === "number" && Number.isInteger(v);
}

/** int or float (floats may be boxed Number objects from decodePayloadBoxed) */
function isNumber(v) {
  return (typeof v === "number" || v instanceof Number) && Number.isFinite(Number(v));
}

function typeName(v) {
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
function unbox(v) {
  if (v instanceof Number) return Number(v);
  if (Array.isArray(v)) return v.map(unbox);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !ArrayBuffer.isView(v)) {
    const out = Object.create(null);
    for (const [k, x] of Object.entries(v)) out[k] = unbox(x);
    return out;
  }
  return v;
}

function exactMap(v, keys, what, optional = []) {
  if (!isMap(v)) throw new SpnrError(`${what} must be a map, got ${typeName(v)}`);
  const missing = keys.filter((k) => !optional.includes(k) && !(k in v)).sort();
  const extra = Object.keys(v).filter((k) => !keys.includes(k)).sort();
  if (missing.length || extra.length) {
    throw new SpnrError(`${what} has missing keys ${show(missing)} / unexpected keys ${show(extra)}`);
  }
  return v;
}

function name(v, what) {
  if (typeof v !== "string" || v.length < 1 || v.length > MAX_NAME_LEN) {
    throw new SpnrError(`${what} must be a string of 1..${MAX_NAME_LEN} characters, got ${show(v)}`);
  }
  return v;
}

function intIn(v, lo, hi, what) {
  if (!isInt(v) || v < lo || v > hi) throw new SpnrError(`${what} ${show(v)} is out of range ${lo}..${hi}`);
  return v;
}

function parseShape(v, what) {
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

function prod(shape) {
  return shape.reduce((a, b) => a * b, 1);
}
