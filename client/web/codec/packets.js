// One spinr packet (codec/packets.py; docs/FORMAT.md "Packet"): a compact header, a CRC-32, then the
// payload. Version 2, big-endian, varints LEB128:
//
// | magic 0x53 1 | version << 4 | type 1 | stream_id 2 | seq varint | unit varint | level varint | length varint | crc32 4 |
//
// `unit` in unit and refinement packets, `level` in refinement packets only; the CRC covers every
// byte before it and the payload. Version 1 packets (24 fixed bytes, "SPNR", v1/packets.js) parse
// too: their second byte is "P" (0x50), a version nibble v2 never uses.

import { crc32 } from "./crc.js";
import { SpnrError } from "./errors.js";
import { checkV1, checkV1Layer, peekV1 } from "./v1/packets.js";
import { asBytes, hex } from "./values.js";
import { Reader } from "./varint.js";

export const MAGIC = 0x53;
export const VERSION = 2;
export const PTYPE_HEADER = 0;
export const PTYPE_UNIT = 1;
export const PTYPE_REFINEMENT = 2;
export const MAX_PAYLOAD = 16 * 2 ** 20;
export const MAX_SEQ = 0xffff;
export const MAX_UNIT = 0xffff;
export const MAX_LEVEL = 255;
export const MAX_STREAM_ID = 0xffff;
export const MAX_HEAD_LENGTH = 20;
const TYPE_NAMES = "0 (header), 1 (unit) or 2 (refinement)";

/**
 * @typedef {object} Packet
 * @property {number} version    1 or 2
 * @property {number} ptype      0 header, 1 unit, 2 refinement
 * @property {number} streamId   v2: u16 (nonzero), v1: u32
 * @property {number} seq
 * @property {number|null} unit  unit index (null for the header packet)
 * @property {number|null} level refinement level (refinement packets only)
 * @property {number} crc
 * @property {Uint8Array} payload  view into the packet bytes
 */

/**
 * The header at `offset` without the CRC: for framing. Throws only when it cannot be read.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @param {number} [offset=0]
 */
export function peekPacket(bytes, offset = 0) {
  const data = asBytes(bytes, "packet");
  const have = data.length - offset;
  if (have < 2) throw new SpnrError(`packet truncated: header needs at least 2 bytes, got ${Math.max(0, have)}`);
  if (data[offset] !== MAGIC) throw new SpnrError(`bad magic ${hex(data[offset], 2)}: expected 0x53 ('S')`);
  if (data[offset + 1] === 0x50) return peekV1(data, offset);
  const version = data[offset + 1] >> 4;
  const ptype = data[offset + 1] & 0x0f;
  if (version !== VERSION) throw new SpnrError(`unsupported packet version ${version}: expected ${VERSION} (or a v1 packet)`);
  if (ptype > PTYPE_REFINEMENT) throw new SpnrError(`unknown packet type ${ptype}: expected ${TYPE_NAMES}`);
  const r = new Reader(data.subarray(offset, offset + MAX_HEAD_LENGTH), "packet", 2);
  const streamId = r.u16("stream id");
  const seq = r.uvarint("seq");
  const unit = ptype !== PTYPE_HEADER ? r.uvarint("unit") : null;
  const level = ptype === PTYPE_REFINEMENT ? r.uvarint("level") : null;
  const length = r.uvarint("payload length");
  const crc = r.u32("crc");
  return { version, ptype, streamId, seq, unit, level, length, crc, headLength: r.pos, crcOffset: r.pos - 4 };
}

function range(name, v, lo, hi) {
  if (v < lo || v > hi) throw new SpnrError(`packet ${name} ${v} is out of range ${lo}..${hi}`);
}

/**
 * Parse exactly one packet of either version: `bytes` must end where its payload ends.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @returns {Packet}
 * @throws {SpnrError}
 */
export function parsePacket(bytes) {
  const data = asBytes(bytes, "packet");
  const head = peekPacket(data);
  if (head.version === 1) checkV1(head);
  if (head.length > MAX_PAYLOAD) throw new SpnrError(`packet payload length ${head.length} exceeds MAX_PAYLOAD ${MAX_PAYLOAD}`);
  const have = data.length - head.headLength;
  if (have < head.length) throw new SpnrError(`packet truncated: payload needs ${head.length} bytes, got ${have}`);
  if (have > head.length) throw new SpnrError(`packet has ${have - head.length} trailing bytes after its ${head.length}-byte payload`);
  const payload = data.subarray(head.headLength);
  const actual = crc32(payload, crc32(data.subarray(0, head.crcOffset)));
  if (actual !== head.crc) {
    throw new SpnrError(`bad CRC in packet seq ${head.seq}: expected ${hex(head.crc, 8)}, got ${hex(actual, 8)}`);
  }
  if (head.version === 1) {
    checkV1Layer(head);
  } else {
    // What a CRC-valid packet may still hold wrong (codec/packets.py's constructor, same order).
    range("stream_id", head.streamId, 1, MAX_STREAM_ID);
    range("seq", head.seq, 0, MAX_SEQ);
    if (head.ptype === PTYPE_HEADER) {
      if (head.seq !== 0) throw new SpnrError(`a header packet has seq 0, got ${head.seq}`);
    } else {
      range("unit", head.unit, 0, MAX_UNIT);
      if (head.seq === 0) throw new SpnrError("seq 0 is the header packet's; a unit or refinement packet has seq >= 1");
    }
    if (head.ptype === PTYPE_REFINEMENT) range("level", head.level, 1, MAX_LEVEL);
  }
  const { version, ptype, streamId, seq, unit, level, crc } = head;
  return { version, ptype, streamId, seq, unit, level, crc, payload };
}
