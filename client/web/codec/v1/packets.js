// The v1 packet header: 24 fixed big-endian bytes (codec/v1/packets.py; docs/FORMAT.md "Appendix:
// format version 1"). parsePacket (codec/packets.js) reads both versions; this is v1's layout.
//
// | magic "SPNR" 4 | version 1 1 | ptype 1 | flags 2 | stream_id 4 | seq 2 | layer 2 | length 4 | crc32 4 |

import { SpnrError } from "../errors.js";
import { bytesRepr, hex } from "../values.js";

export const MAGIC = Object.freeze([0x53, 0x50, 0x4e, 0x52]); // "SPNR"
export const VERSION = 1;
export const HEADER_LENGTH = 24;
export const HEADER_LAYER = 0xffff;
export const FLAG_ZSTD = 1;

/**
 * The v1 header at `offset`, unchecked but for the buffer's length and the magic.
 * @param {Uint8Array} data
 */
export function peekV1(data, offset = 0) {
  const have = data.length - offset;
  if (have < HEADER_LENGTH) {
    throw new SpnrError(`packet truncated: header needs ${HEADER_LENGTH} bytes, got ${Math.max(0, have)}`);
  }
  if (MAGIC.some((b, i) => data[offset + i] !== b)) {
    throw new SpnrError(`bad magic ${bytesRepr(data.subarray(offset, offset + 4))}: expected b'SPNR'`);
  }
  const dv = new DataView(data.buffer, data.byteOffset + offset, HEADER_LENGTH);
  const ptype = data[offset + 5];
  const layer = dv.getUint16(14);
  return {
    version: 1,
    ptype,
    streamId: dv.getUint32(8),
    seq: dv.getUint16(12),
    unit: ptype === 0 ? null : layer,
    level: null,
    length: dv.getUint32(16),
    crc: dv.getUint32(20),
    headLength: HEADER_LENGTH,
    crcOffset: 20,
    v1: { version: data[offset + 4], flags: dv.getUint16(6), layer },
  };
}

/** The fields a v1 reader refuses before the length and the CRC. */
export function checkV1(head) {
  const { version, flags } = head.v1;
  if (version !== VERSION) throw new SpnrError(`unsupported packet version ${version}: expected ${VERSION}`);
  if (head.ptype !== 0 && head.ptype !== 1) {
    throw new SpnrError(`unknown packet type ${head.ptype}: expected 0 (header) or 1 (layer)`);
  }
  if (flags !== FLAG_ZSTD) {
    throw new SpnrError(
      `packet flags ${hex(flags, 4)} not supported: v1 requires ${hex(FLAG_ZSTD, 4)} (zstd, reserved bits 0)`,
    );
  }
}

/** What v1 checks once the CRC is right: the layer field against the type. */
export function checkV1Layer(head) {
  const { layer } = head.v1;
  if (head.ptype === 0 && layer !== HEADER_LAYER) {
    throw new SpnrError(`header packet must have layer ${hex(HEADER_LAYER, 4)}, got ${layer}`);
  }
  if (head.ptype === 1 && layer === HEADER_LAYER) {
    throw new SpnrError(`layer packet cannot use layer ${hex(HEADER_LAYER, 4)} (reserved for the header)`);
  }
}
