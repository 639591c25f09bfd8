// Bounded zstd decompression of one packet payload. The frame structure (magic, header, every block
// header) is walked here before fzstd sees it, so a packet cannot claim a huge window or size, use a
// dictionary, or hide bytes after its frame (vendor/README.md says why fzstd alone is not enough).

import { Decompress as ZstdStream } from "../../vendor/fzstd.js";
import { SpnrError } from "../errors.js";
import { asBytes, bytesRepr, hex } from "../values.js";

/** Largest decompressed payload accepted (codec/v1/payload.py's MAX_DECOMPRESSED). */
export const MAX_DECOMPRESSED = 64 * 2 ** 20;
const MAX_ZSTD_BLOCK = 128 * 1024;

/**
 * Check a zstd frame's structure without decompressing it.
 * @param {Uint8Array} data
 * @param {number} maxSize
 * @returns {{contentSize: number, windowSize: number}}
 */
function checkZstdFrame(data, maxSize) {
  const n = data.length;
  if (n < 4 || data[0] !== 0x28 || data[1] !== 0xb5 || data[2] !== 0x2f || data[3] !== 0xfd) {
    throw new SpnrError(`payload is not a zstd frame: bad magic ${bytesRepr(data.subarray(0, 4))}`);
  }
  if (n < 5) throw new SpnrError("payload zstd frame is truncated: no frame header descriptor");
  const fhd = data[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 8) throw new SpnrError(`payload zstd frame header descriptor ${hex(fhd, 2)} sets the reserved bit`);
  let pos = 5;
  let windowSize = 0;
  if (!single) {
    if (pos >= n) throw new SpnrError("payload zstd frame is truncated in its window descriptor");
    const wd = data[pos++];
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][dictFlag];
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
  if (pos + dictBytes + fcsBytes > n) throw new SpnrError("payload zstd frame header is truncated");
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += data[pos + i] * 2 ** (8 * i);
  pos += dictBytes;
  if (dictId !== 0) throw new SpnrError(`payload zstd frame needs dictionary ${dictId}; dictionaries are not supported`);
  if (fcsBytes === 0) throw new SpnrError("payload zstd frame does not declare its content size");
  let size = 0;
  for (let i = 0; i < fcsBytes; i++) size += data[pos + i] * 2 ** (8 * i);
  if (fcsBytes === 2) size += 256;
  pos += fcsBytes;
  if (size > maxSize) {
    throw new SpnrError(`payload declares ${size} decompressed bytes, more than MAX_DECOMPRESSED ${maxSize}`);
  }
  if (single) windowSize = size;
  if (windowSize > MAX_DECOMPRESSED) {
    throw new SpnrError(`payload zstd frame window of ${windowSize} bytes exceeds the limit ${MAX_DECOMPRESSED}`);
  }
  const blockMax = Math.min(windowSize, MAX_ZSTD_BLOCK);
  for (let b = 0; ; b++) {
    if (n - pos < 3) throw new SpnrError(`payload zstd frame is truncated: block ${b} header at offset ${pos}`);
    const h = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16);
    pos += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const bsize = h >>> 3;
    if (type === 3) throw new SpnrError(`payload zstd frame block ${b} has the reserved block type 3`);
    if (bsize > blockMax) {
      throw new SpnrError(`payload zstd frame block ${b} of ${bsize} bytes exceeds the block maximum ${blockMax}`);
    }
    const body = type === 1 ? 1 : bsize;
    if (n - pos < body) throw new SpnrError(`payload zstd frame is truncated: block ${b} needs ${body} bytes, got ${n - pos}`);
    pos += body;
    if (last) break;
  }
  if (checksum) {
    if (n - pos < 4) throw new SpnrError("payload zstd frame is truncated: content checksum missing");
    pos += 4;
  }
  if (pos !== n) throw new SpnrError(`payload has ${n - pos} bytes after its zstd frame`);
  return { contentSize: size, windowSize };
}

/**
 * Decompress one zstd frame that declares its content size, bounded by `maxSize` bytes.
 * The frame structure is checked before decoding, and decoding stops as soon as the output
 * passes the declared size.
 * @param {Uint8Array} frame
 * @param {number} [maxSize=MAX_DECOMPRESSED]
 * @returns {Uint8Array}
 * @throws {SpnrError}
 */
export function zstdDecompress(frame, maxSize = MAX_DECOMPRESSED) {
  const data = asBytes(frame, "payload");
  const { contentSize } = checkZstdFrame(data, maxSize);
  const out = new Uint8Array(contentSize);
  let produced = 0;
  const stream = new ZstdStream((chunk) => {
    if (produced + chunk.length > contentSize) {
      throw new SpnrError(`payload decompresses to more than the ${contentSize} bytes it declares`);
    }
    out.set(chunk, produced);
    produced += chunk.length;
  });
  try {
    stream.push(data, true);
  } catch (e) {
    if (e instanceof SpnrError) throw e;
    throw new SpnrError(`payload zstd frame is corrupt: ${e && e.message ? e.message : e}`);
  }
  if (produced !== contentSize) {
    throw new SpnrError(`payload decompressed to ${produced} bytes but declares ${contentSize}`);
  }
  return out;
}

