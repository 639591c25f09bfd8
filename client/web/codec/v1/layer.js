// A v1 layer packet's payload: a msgpack map of tensors, each checked against the unit it must be
// (codec/v1/layer.py).

import { SpnrError } from "../errors.js";
import { exactMap, intIn, typeName } from "../values.js";
import { decodePayloadBoxed } from "./payload.js";
import { dequantize, parseTensor } from "./quant.js";

/**
 * The tensors of v1 unit `index`: [{name, shape, values: Float32Array}] in the unit's order.
 * @param {Uint8Array} payload
 * @param {import("../header.js").UnitSpec} spec
 * @param {number} index
 * @param {number} numUnits
 */
export function decodeV1Layer(payload, spec, index, numUnits) {
  const d = exactMap(decodePayloadBoxed(payload), ["unit", "tensors"], "layer payload");
  const unit = intIn(d.unit, 0, numUnits - 1, "layer payload unit index");
  if (unit !== index) throw new SpnrError(`layer payload is unit ${unit} but its packet says layer ${index}`);
  const tensors = d.tensors;
  if (!Array.isArray(tensors) || tensors.length !== spec.tensors.length) {
    throw new SpnrError(
      `unit ${index} (${spec.name}) must carry ${spec.tensors.length} tensors as the header says, got ${
        Array.isArray(tensors) ? tensors.length : typeName(tensors)
      }`,
    );
  }
  return tensors.map((t, i) => {
    const q = parseTensor(t, spec.tensors[i].name, spec.tensors[i].shape);
    return { name: q.name, shape: q.shape, values: dequantize(q) };
  });
}
