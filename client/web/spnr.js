// spinr browser decoder: the public API (client/web/README.md, docs/FORMAT.md).
//
// The library lives in ./codec/, one module per job, named after its counterpart in the Python
// codec package; this module is its single entry point. It reads format 2 and format 1 streams.
// Every problem with the input raises a SpnrError whose message names the bad value and what was
// expected; ProgressiveDecoder.addPacket never throws for bad packets, it reports them.

export { SpnrError, errorText } from "./codec/errors.js";
export { crc32 } from "./codec/crc.js";
export { Reader } from "./codec/varint.js";
export {
  MAGIC,
  MAX_PAYLOAD,
  PTYPE_HEADER,
  PTYPE_REFINEMENT,
  PTYPE_UNIT,
  VERSION,
  parsePacket,
  peekPacket,
} from "./codec/packets.js";
export { FORMAT_VERSION, parseHeader, parseHeaderPayload } from "./codec/header.js";
export { MAX_IMAGE_SIDE, MAX_TOTAL_ELEMENTS, MAX_UNITS } from "./codec/v1/header.js";
export { MODEL_IDS, RECORDS } from "./codec/records.js";
export { STEP_BYTES, dequantizeCodes, parseStep, stepValue } from "./codec/quant.js";
export { CHECKSUM, decodeUnitPayload } from "./codec/payload.js";
export { decodeArrays } from "./codec/entropy.js";
export { parseRefinement, parseUnit, splitFile } from "./codec/bitstream.js";
export { MAX_SHIFT, applyRefinement, packetId, parseRefinementPayload } from "./codec/refine.js";
export { LADDER_VERSION, REFINED_VERSION, ladderLevels, parseLadder } from "./codec/ladder.js";
export { MAX_DECOMPRESSED, zstdDecompress } from "./codec/v1/zstd.js";
export { decodePayload } from "./codec/v1/payload.js";
export { dequantize, unpackBits } from "./codec/v1/quant.js";
export { SUPPORTED_MODELS } from "./codec/arch/registry.js";
export { axisCoords, toRGBA } from "./codec/coords.js";
export { CACHE_PIXELS, applyLayer } from "./codec/forward.js";
export { CONCEAL_CHOICES, MAX_OUTPUT_PIXELS, MAX_PENDING, ProgressiveDecoder } from "./codec/decoder.js";
export { INIT_HASH_BYTES, checkInitMatches, hashHex, parseInit } from "./codec/theta0.js";
export { sha256 } from "./codec/sha256.js";
export { ACTIVATION_COSTS, BudgetError, DEFAULT_BUDGET, makeBudget } from "./codec/budget.js";
