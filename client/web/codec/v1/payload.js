// v1 packet payloads: one zstd frame holding one msgpack map (codec/v1/payload.py).

import { decodeMsgpack, MsgpackError } from "../../vendor/msgpack.js";
import { SpnrError } from "../errors.js";
import { isMap, typeName, unbox } from "../values.js";
import { MAX_DECOMPRESSED, zstdDecompress } from "./zstd.js";

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
export function decodePayloadBoxed(bytes) {
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

