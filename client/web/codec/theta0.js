// θ0 files (.spnri; codec/meta/initfile.py, docs/FORMAT.md "θ0 files"): the shared initialisation a
// residual stream's units are added to (header extension 0x83 names it by its 8-byte content hash).
//
//   magic "SPNRI" | version u8 | info length varint | info (msgpack map) | float32 LE weights | sha256
//
// The browser fetches one from the server by hash (GET /api/inits/{hash}); the trailing sha256 must
// match the bytes, the info's hash must be the one the stream names, and its units those the
// stream's arch derives, before a weight is used.

import { decodeMsgpack, MsgpackError } from "../vendor/msgpack.js";
import { SpnrError } from "./errors.js";
import { sha256 } from "./sha256.js";
import { Reader } from "./varint.js";
import { isMap, prod, sameBytes, show, unbox } from "./values.js";

export const INIT_MAGIC = new Uint8Array([0x53, 0x50, 0x4e, 0x52, 0x49]); // "SPNRI"
export const INIT_VERSION = 1;
export const INIT_HASH_BYTES = 8;
const DIGEST = 32;
const MAX_INFO = 1 << 20;

/** @param {Uint8Array} bytes */
export const hashHex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

/**
 * @typedef {object} InitFile
 * @property {string} model
 * @property {object} arch
 * @property {string} hash     16 hex digits
 * @property {Map<number, object>} weights   unit index -> {tensorName: {shape, values: Float32Array}}
 */

/**
 * Parse and check a θ0 file that should be the one named `expectHash` (hex).
 * @param {Uint8Array|ArrayBuffer} data
 * @param {string} expectHash
 * @returns {InitFile}
 */
export function parseInit(data, expectHash) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const what = `θ0 file ${expectHash}`;
  if (!sameBytes(bytes.subarray(0, 5), INIT_MAGIC)) throw new SpnrError(`${what} is not a θ0 file`);
  if (bytes.length < 6 + DIGEST) throw new SpnrError(`${what} is truncated: ${bytes.length} bytes`);
  const body = bytes.subarray(0, bytes.length - DIGEST);
  if (!sameBytes(sha256(body), bytes.subarray(bytes.length - DIGEST))) {
    throw new SpnrError(`${what} is damaged: its sha256 does not match its contents`);
  }
  if (body[5] !== INIT_VERSION) throw new SpnrError(`${what} has version ${body[5]}; this reader knows version ${INIT_VERSION}`);
  const r = new Reader(body, what, 6);
  const size = r.uvarintIn(0, MAX_INFO, "info length");
  let info;
  try {
    info = decodeMsgpack(r.take(size, "info"));
  } catch (e) {
    if (e instanceof MsgpackError) throw new SpnrError(`${what} info is not valid msgpack: ${e.message}`);
    throw e;
  }
  if (!isMap(info) || typeof info.model !== "string" || !isMap(info.arch) || !Array.isArray(info.units)) {
    throw new SpnrError(`${what} info must name a model, its arch and its units`);
  }
  if (info.hash !== expectHash) throw new SpnrError(`${what} holds θ0 ${show(info.hash)}, not the one asked for`);
  const weights = new Map();
  const need = info.units.reduce((n, [, ts]) => n + ts.reduce((m, [, shape]) => m + prod(shape), 0), 0);
  if (r.left !== 4 * need) throw new SpnrError(`${what} holds ${r.left} bytes of weights; its units need ${4 * need}`);
  const view = new DataView(body.buffer, body.byteOffset + r.pos, r.left);
  let at = 0;
  info.units.forEach(([, tensors], u) => {
    const unit = Object.create(null);
    for (const [name, shape] of tensors) {
      const values = new Float32Array(prod(shape));
      for (let i = 0; i < values.length; i++, at += 4) {
        values[i] = view.getFloat32(at, true);
        if (!Number.isFinite(values[i])) throw new SpnrError(`${what} holds non-finite weights`);
      }
      unit[name] = { shape, values };
    }
    weights.set(u, unit);
  });
  return { model: info.model, arch: info.arch, hash: info.hash, units: info.units, weights };
}

/**
 * Throws unless `init` is for the stream's model, arch and units (codec/meta/initfile.py
 * check_matches with prefix=True, the same messages): a trimmed stream may have fewer hidden layers
 * than θ0 when its units are θ0's first units.
 */
export function checkInitMatches(init, header) {
  if (init.model !== header.model) {
    throw new SpnrError(`θ0 ${init.hash} is for ${init.model}, the stream is ${header.model}`);
  }
  const isDepth = (v) => Number.isInteger(v) && v >= 0;
  const keys = [...new Set([...Object.keys(header.arch), ...Object.keys(init.arch)])].sort();
  for (const k of keys) {
    const a = unbox(init.arch[k]);
    const b = unbox(header.arch[k]);
    if (k === "hidden_layers" && isDepth(a) && isDepth(b) && b < a) continue;
    if (a !== b) throw new SpnrError(`θ0 ${init.hash} has ${k}=${show(a)}, the stream ${k}=${show(b)}`);
  }
  const derived = header.units.map((u) => [u.name, u.tensors.map((t) => [t.name, [...t.shape]])]);
  if (JSON.stringify(derived) !== JSON.stringify(init.units.slice(0, derived.length))) {
    const a = unbox(init.arch.hidden_layers);
    const b = unbox(header.arch.hidden_layers);
    if (a !== b) {
      throw new SpnrError(
        `θ0 ${init.hash} has hidden_layers=${show(a)}, the stream hidden_layers=${show(b)}, and the stream's units are not θ0's first units`,
      );
    }
    throw new SpnrError(`θ0 ${init.hash} has other units than the stream's ${header.model} arch implies`);
  }
}
