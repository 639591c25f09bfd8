// Unit packets checked against the header, and the `.spnr` file's framing (codec/bitstream.py,
// codec/files.py; docs/FORMAT.md "Unit payload", "File").

import { SpnrError } from "./errors.js";
import { MAX_PAYLOAD, PTYPE_HEADER, PTYPE_REFINEMENT, PTYPE_UNIT, parsePacket, peekPacket } from "./packets.js";
import { decodeUnitPayload } from "./payload.js";
import { dequantizeCodes } from "./quant.js";
import { parseRefinementPayload } from "./refine.js";
import { decodeV1Layer } from "./v1/layer.js";
import { HEADER_LENGTH as V1_HEADER_LENGTH } from "./v1/packets.js";
import { asBytes, show } from "./values.js";

/**
 * @typedef {object} DecodedTensor
 * @property {string} name
 * @property {number[]} shape
 * @property {Float32Array} values   dequantized, row-major
 * @property {Int32Array} [codes]    v2: the integer codes
 * @property {number} [step]         v2: the quantization step
 *
 * @typedef {object} DecodedUnit
 * @property {number} index
 * @property {DecodedTensor[]} tensors
 */

/**
 * Parse a unit packet against its header (whose `units` the arch has derived or checked).
 * @param {Uint8Array|import("./packets.js").Packet} packet
 * @param {import("./header.js").StreamHeader} header
 * @returns {DecodedUnit}
 * @throws {SpnrError}
 */
export function parseUnit(packet, header) {
  const p = packet instanceof Uint8Array || packet instanceof ArrayBuffer ? parsePacket(packet) : packet;
  if (!p || p.ptype !== PTYPE_UNIT) {
    throw new SpnrError(`expected a unit packet, got ${p && p.ptype === PTYPE_HEADER ? "a header packet" : show(p)}`);
  }
  if (p.version !== header.format) {
    throw new SpnrError(`unit packet seq ${p.seq} is version ${p.version}, its header version ${header.format}`);
  }
  const n = header.units.length;
  if (p.unit >= n) throw new SpnrError(`unit packet for unit ${p.unit}, but the header has ${n} units`);
  const spec = header.units[p.unit];
  if (p.version === 1) return { index: p.unit, tensors: decodeV1Layer(p.payload, spec, p.unit, n) };
  const tensors = decodeUnitPayload(p.payload, spec, p.unit).map((t) => ({ ...t, values: dequantizeCodes(t.codes, t.step) }));
  return { index: p.unit, tensors };
}

/**
 * Parse a refinement packet against its header (format 2, a unit it has).
 * @param {Uint8Array|import("./packets.js").Packet} packet
 * @param {import("./header.js").StreamHeader} header
 * @returns {import("./refine.js").Refinement}
 * @throws {SpnrError}
 */
export function parseRefinement(packet, header) {
  const p = packet instanceof Uint8Array || packet instanceof ArrayBuffer ? parsePacket(packet) : packet;
  if (!p || p.ptype !== PTYPE_REFINEMENT) throw new SpnrError(`expected a refinement packet, got ${show(p && p.ptype)}`);
  if (header.format !== 2) throw new SpnrError(`refinement packet seq ${p.seq} in a version ${header.format} stream`);
  const n = header.units.length;
  if (p.unit >= n) throw new SpnrError(`refinement packet for unit ${p.unit}, but the header has ${n} units`);
  return parseRefinementPayload(p.payload, header.units[p.unit], p.unit, p.level);
}

/**
 * Split a `.spnr` file of either version into its packets' bytes: v2 packets back to back (each
 * carries its length), v1 packets each after a u32 record length. Framing is checked strictly; the
 * packets themselves are not parsed (use parsePacket or a decoder).
 * @param {ArrayBuffer|Uint8Array} buffer
 * @returns {Uint8Array[]} views into `buffer`
 * @throws {SpnrError}
 */
export function splitFile(buffer) {
  const data = asBytes(buffer, "file");
  if (data.length === 0) throw new SpnrError("file is empty: expected a header packet");
  if (data[0] === 0x53) return splitV2(data);
  if (data[0] === 0 || data[0] === 1) return splitV1(data);
  throw new SpnrError(
    `not a spinr file: first byte 0x${data[0].toString(16).padStart(2, "0")} (a v2 file starts with 0x53, a v1 file with 0x00)`,
  );
}

function splitV2(data) {
  const out = [];
  for (let pos = 0, n = 0; pos < data.length; n++) {
    let head;
    try {
      head = peekPacket(data, pos);
      if (head.version !== 2) throw new SpnrError(`a version ${head.version} packet in a version 2 file`);
      if (head.length > MAX_PAYLOAD) throw new SpnrError(`packet payload length ${head.length} exceeds MAX_PAYLOAD ${MAX_PAYLOAD}`);
      const size = head.headLength + head.length;
      if (pos + size > data.length) {
        throw new SpnrError(`packet truncated: it needs ${size} bytes, the file has ${data.length - pos} left`);
      }
    } catch (e) {
      if (e instanceof SpnrError) throw new SpnrError(`${n === 0 ? "header packet (at offset 0) is damaged" : `packet ${n} at offset ${pos}`}: ${e.message}`);
      throw e;
    }
    const size = head.headLength + head.length;
    out.push(data.subarray(pos, pos + size));
    pos += size;
  }
  return out;
}

function splitV1(data) {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = [];
  let offset = 0;
  for (let n = 0; offset < data.length; n++) {
    if (data.length - offset < 4) {
      throw new SpnrError(`file truncated: record ${n} at offset ${offset} needs a 4-byte length, got ${data.length - offset}`);
    }
    const length = dv.getUint32(offset);
    const start = offset + 4;
    if (length < V1_HEADER_LENGTH || length > V1_HEADER_LENGTH + MAX_PAYLOAD) {
      throw new SpnrError(
        `record ${n} at offset ${offset} has length ${length}, outside ${V1_HEADER_LENGTH}..${V1_HEADER_LENGTH + MAX_PAYLOAD}`,
      );
    }
    if (data.length - start >= V1_HEADER_LENGTH) {
      const declared = dv.getUint32(start + 16);
      if (declared + V1_HEADER_LENGTH !== length) {
        throw new SpnrError(`record ${n} at offset ${offset} has length ${length} but its packet says ${declared + V1_HEADER_LENGTH}`);
      }
    }
    if (start + length > data.length) {
      throw new SpnrError(`file truncated: record ${n} at offset ${offset} needs ${length} bytes, got ${data.length - start}`);
    }
    out.push(data.subarray(start, start + length));
    offset = start + length;
  }
  return out;
}
