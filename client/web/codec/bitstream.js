// Layer packets checked against the header, and the `.spnr` file's record framing (the layer and
// file halves of codec/bitstream.py; docs/FORMAT.md "Layer payload", "File").

import { SpnrError } from "./errors.js";
import { HEADER_LENGTH, MAX_PAYLOAD, PTYPE_HEADER, PTYPE_LAYER, parsePacket } from "./packets.js";
import { decodePayloadBoxed } from "./payload.js";
import { parseTensor } from "./quant.js";
import { asBytes, exactMap, intIn, show, typeName } from "./values.js";

/**
 * @typedef {object} LayerUnit
 * @property {number} index
 * @property {import("./quant.js").QuantizedTensor[]} tensors
 */


/**
 * Parse a layer packet against the header: tensor names and shapes must match header.units.
 * @param {Uint8Array|import("./packets.js").Packet} packet
 * @param {import("./header.js").StreamHeader} header
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
