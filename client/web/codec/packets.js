// One spinr packet: a fixed 24-byte big-endian header, then a zstd payload (codec/packets.py,
// docs/FORMAT.md "Packet"). A packet travels alone, so it carries its own stream id, position and CRC.

import { crc32 } from "./crc.js";
import { SpnrError } from "./errors.js";
import { asBytes, bytesRepr, hex } from "./values.js";

export const MAGIC = Object.freeze([0x53, 0x50, 0x4e, 0x52]); // "SPNR"
export const VERSION = 1;
export const HEADER_LENGTH = 24;
export const HEADER_LAYER = 0xffff;
export const FLAG_ZSTD = 1;
export const PTYPE_HEADER = 0;
export const PTYPE_LAYER = 1;
export const MAX_PAYLOAD = 16 * 2 ** 20;


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
