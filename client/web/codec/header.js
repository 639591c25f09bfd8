// The header packet: everything a decoder needs to rebuild the network (codec/header.py;
// docs/FORMAT.md "Header"). Version 2 is binary, with no field names:
//
//   model id u8 | width varint | height varint | arch record | PSNR count varint | PSNR u16 ... | extensions
//
// Its units are derived from the arch by the arch classes (codec/arch/), never sent: parseHeader
// leaves `units` null for a v2 header and the decoder fills it in. A v1 header (msgpack, v1/header.js)
// gives the same object with its transmitted units, which the arch classes check.

import { decodeMsgpack, MsgpackError } from "../vendor/msgpack.js";
import { SpnrError } from "./errors.js";
import { parseLadder } from "./ladder.js";
import { PTYPE_HEADER, parsePacket } from "./packets.js";
import { INIT_HASH_BYTES, hashHex } from "./theta0.js";
import { modelName, readRecord } from "./records.js";
import { MAX_IMAGE_SIDE, parseV1HeaderPayload } from "./v1/header.js";
import { BOXED, hex, isMap, typeName } from "./values.js";
import { Reader } from "./varint.js";

export { BOXED } from "./values.js";
export { MAX_ARCH_KEYS, MAX_IMAGE_SIDE, MAX_NAME_LEN, MAX_TENSORS_PER_UNIT, MAX_TOTAL_ELEMENTS, MAX_UNITS } from "./v1/header.js";

export const FORMAT_VERSION = 2;
export const MAX_STAGES = 1025;
export const PSNR_SCALE = 100;
/** The u16 of an exact picture (infinite PSNR). */
export const PSNR_INF = 0xffff;
export const CRITICAL = 0x80;
export const EXT_META = 0x01;
export const EXT_LADDER = 0x02;
export const EXT_INIT = CRITICAL | 0x03;
export const EXTENSION_NAMES = Object.freeze({
  [EXT_META]: "encoder meta",
  [EXT_LADDER]: "rate-quality ladder",
  [EXT_INIT]: "shared initialisation θ0",
});

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
 * @property {number} format            1 or 2
 * @property {string} model
 * @property {object} arch              the family's arch fields, the same map for both versions
 * @property {number} width
 * @property {number} height
 * @property {UnitSpec[]|null} units    v2: null until an arch derives them (ProgressiveDecoder does)
 * @property {number[]} stagePsnr       dB per prefix depth (Infinity for an exact picture)
 * @property {object} meta
 * @property {import("./ladder.js").Rung[]|null} ladder  the rate-quality ladder (extension 0x02), if sent
 * @property {Map<number, Uint8Array>} extensions  optional extensions this decoder does not read
 * @property {{bits: number, perChannel: boolean}} [quant]  v1 only
 */

/**
 * Parse and validate a header packet of either version (bytes or a parsed Packet).
 * @param {Uint8Array|import("./packets.js").Packet} packet
 * @returns {StreamHeader}
 * @throws {SpnrError}
 */
export function parseHeader(packet) {
  const p = packet instanceof Uint8Array || packet instanceof ArrayBuffer ? parsePacket(packet) : packet;
  if (!p || p.ptype !== PTYPE_HEADER) {
    throw new SpnrError(`expected a header packet, got a ${p ? ["header", "unit", "refinement"][p.ptype] : "missing"} packet`);
  }
  return p.version === 1 ? parseV1HeaderPayload(p.payload) : parseHeaderPayload(p.payload);
}

/**
 * A v2 header packet's payload -> the header (its arch read, its units not yet derived).
 * @param {Uint8Array} payload
 * @returns {StreamHeader}
 */
export function parseHeaderPayload(payload) {
  const r = new Reader(payload, "header payload");
  const model = modelName(r.byte("model id"));
  const width = r.uvarintIn(1, MAX_IMAGE_SIDE, "image width");
  const height = r.uvarintIn(1, MAX_IMAGE_SIDE, "image height");
  const { arch, boxed } = readRecord(model, r);
  Object.defineProperty(arch, BOXED, { value: boxed, enumerable: false });
  const count = r.uvarintIn(0, MAX_STAGES, "stage PSNR count");
  const stagePsnr = [];
  for (let i = 0; i < count; i++) {
    const v = r.u16(`stage PSNR ${i}`);
    stagePsnr.push(v === PSNR_INF ? Infinity : v / PSNR_SCALE);
  }
  const header = { format: 2, model, arch, width, height, units: null, stagePsnr, meta: Object.create(null), ladder: null, extensions: new Map(), init: null };
  parseExtensions(r, header);
  return header;
}

function parseExtensions(r, header) {
  const seen = new Set();
  let ladder = null;
  while (r.left) {
    const at = r.pos;
    const tag = r.byte("extension tag");
    const name = EXTENSION_NAMES[tag] ?? "unknown";
    const length = r.uvarint(`length of header extension ${hex(tag, 2)}`);
    if (length > r.left) {
      throw new SpnrError(`header extension ${hex(tag, 2)} (${name}) declares ${length} bytes, the payload has ${r.left} left`);
    }
    const data = r.take(length, `header extension ${hex(tag, 2)}`);
    if (seen.has(tag)) throw new SpnrError(`header extension ${hex(tag, 2)} (${name}) appears twice (byte ${at})`);
    seen.add(tag);
    if (tag === EXT_META) header.meta = parseMeta(data);
    else if (tag === EXT_LADDER) ladder = data;
    else if (tag === EXT_INIT) {
      if (length !== INIT_HASH_BYTES) {
        throw new SpnrError(`header extension 0x83 (shared initialisation θ0) has ${length} bytes; a θ0 hash has ${INIT_HASH_BYTES}`);
      }
      header.init = hashHex(data); // the θ0 the units are residuals from (theta0.js)
    }
    else if (tag & CRITICAL) {
      throw new SpnrError(`header extension ${hex(tag, 2)} (${name}) is critical and this decoder does not support it`);
    } else header.extensions.set(tag, data.slice());
  }
  // Read after every extension (as codec/header.py does), so a repeated tag is named first;
  // its packet count is checked against the units once the arch derives them.
  if (ladder !== null) header.ladder = parseLadder(ladder);
}

function parseMeta(data) {
  const what = "header extension 0x01 (encoder meta)";
  let meta;
  try {
    meta = decodeMsgpack(data);
  } catch (e) {
    if (e instanceof MsgpackError) throw new SpnrError(`${what} is not valid msgpack: ${e.message}`);
    throw e;
  }
  if (!isMap(meta)) throw new SpnrError(`${what} must be a msgpack map, got ${typeName(meta)}`);
  const stack = [["header meta", meta]];
  while (stack.length) {
    const [path, v] = stack.pop();
    if (Array.isArray(v)) v.forEach((x, i) => stack.push([`${path}[${i}]`, x]));
    else if (isMap(v)) for (const [k, x] of Object.entries(v)) stack.push([`${path}.${k.slice(0, 64)}`, x]);
    else if (typeof v === "number" && !Number.isFinite(v)) {
      throw new SpnrError(`${path} is ${v}: numbers in a header must be finite`);
    } else if (v instanceof Uint8Array) {
      throw new SpnrError(`${path} is bytes; meta holds maps, lists, strings, numbers, booleans, null`);
    }
  }
  return meta;
}
