// spinr browser decoder: the public API (client/web/README.md, docs/FORMAT.md).
//
// The library lives in ./codec/, one module per job, named after its counterpart in the Python
// codec package; this module is its single entry point. Every problem with the input raises a
// SpnrError whose message names the bad value and what was expected; ProgressiveDecoder.addPacket
// never throws for bad packets, it reports them.

export { SpnrError, errorText } from "./codec/errors.js";
export { crc32 } from "./codec/crc.js";
export {
  FLAG_ZSTD,
  HEADER_LAYER,
  HEADER_LENGTH,
  MAGIC,
  MAX_PAYLOAD,
  PTYPE_HEADER,
  PTYPE_LAYER,
  VERSION,
  parsePacket,
} from "./codec/packets.js";
export { MAX_DECOMPRESSED, zstdDecompress } from "./codec/zstd.js";
export { decodePayload } from "./codec/payload.js";
export {
  FORMAT_VERSION,
  MAX_ARCH_KEYS,
  MAX_IMAGE_SIDE,
  MAX_NAME_LEN,
  MAX_TENSORS_PER_UNIT,
  MAX_TOTAL_ELEMENTS,
  MAX_UNITS,
  parseHeader,
} from "./codec/header.js";
export { MAX_BITS, MAX_NDIM, MAX_TENSOR_ELEMENTS, MIN_BITS, dequantize, unpackBits } from "./codec/quant.js";
export { parseLayer, splitFile } from "./codec/bitstream.js";
export { SUPPORTED_MODELS } from "./codec/arch/registry.js";
export { axisCoords, toRGBA } from "./codec/coords.js";
export { CACHE_PIXELS, applyLayer } from "./codec/forward.js";
export { MAX_OUTPUT_PIXELS, MAX_PENDING, ProgressiveDecoder } from "./codec/decoder.js";
