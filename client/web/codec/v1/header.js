// The v1 header payload, a msgpack map (codec/v1/header.py; docs/FORMAT.md "Appendix: format version
// 1"), parsed into the header object both versions share (codec/header.js). Its transmitted units are
// checked against those its arch implies by the arch classes (codec/arch/base.js checkUnits).

import { SpnrError } from "../errors.js";
import { BOXED, exactMap, intIn, isInt, isMap, isNumber, prod, show, typeName, unbox } from "../values.js";
import { decodePayloadBoxed } from "./payload.js";
import { MAX_BITS, MIN_BITS, parseShape } from "./quant.js";

export const MAX_UNITS = 1024;
export const MAX_TENSORS_PER_UNIT = 64;
export const MAX_TOTAL_ELEMENTS = 2 ** 26;
export const MAX_IMAGE_SIDE = 65535;
export const MAX_NAME_LEN = 64;
export const MAX_ARCH_KEYS = 64;
const HEADER_KEYS = ["format", "model", "arch", "image", "coords", "output", "quant", "units", "stage_psnr", "meta"];
const MODEL_RE = /^[a-z0-9_]{1,32}$/;

/**
 * A v1 header packet's payload -> the header (format 1; its units as transmitted).
 * @param {Uint8Array} payload
 */
export function parseV1HeaderPayload(payload) {
  const d = exactMap(decodePayloadBoxed(payload), HEADER_KEYS, "header payload", ["stage_psnr", "meta"]);
  if (!isInt(d.format) || d.format !== 1) {
    throw new SpnrError(`unsupported header format ${show(d.format)}: expected 1`);
  }
  if (typeof d.model !== "string" || !MODEL_RE.test(d.model)) {
    throw new SpnrError(`header model ${show(d.model)} is not an identifier matching [a-z0-9_]{1,32}`);
  }
  const image = exactMap(d.image, ["width", "height"], "header image");
  const width = intIn(image.width, 1, MAX_IMAGE_SIDE, "header image width");
  const height = intIn(image.height, 1, MAX_IMAGE_SIDE, "header image height");
  if (d.coords !== "center") throw new SpnrError(`header coords ${show(d.coords)} not supported: expected 'center'`);
  if (d.output !== "pm1") throw new SpnrError(`header output ${show(d.output)} not supported: expected 'pm1'`);
  const quant = exactMap(d.quant, ["bits", "per_channel"], "header quant");
  const bits = intIn(quant.bits, MIN_BITS, MAX_BITS, "header quant bits");
  if (typeof quant.per_channel !== "boolean") {
    throw new SpnrError(`header quant per_channel must be a bool, got ${show(quant.per_channel)}`);
  }
  const stagePsnr = "stage_psnr" in d ? d.stage_psnr : [];
  if (!Array.isArray(stagePsnr) || stagePsnr.length > MAX_UNITS + 1) {
    throw new SpnrError(`header stage_psnr must be a list of at most ${MAX_UNITS + 1} numbers`);
  }
  if (!stagePsnr.every(isNumber)) throw new SpnrError(`header stage_psnr must hold numbers, got ${show(stagePsnr)}`);
  const meta = "meta" in d ? d.meta : Object.create(null);
  if (!isMap(meta)) throw new SpnrError(`header meta must be a map, got ${typeName(meta)}`);
  return {
    format: 1,
    model: d.model,
    arch: parseArch(d.arch),
    width,
    height,
    quant: { bits, perChannel: quant.per_channel },
    units: parseUnits(d.units),
    stagePsnr: stagePsnr.map(Number),
    meta: unbox(meta),
    ladder: null,
    extensions: new Map(),
  };
}

function parseArch(arch) {
  if (!isMap(arch) || Object.keys(arch).length > MAX_ARCH_KEYS) {
    throw new SpnrError(`header arch must be a map of at most ${MAX_ARCH_KEYS} entries`);
  }
  const out = Object.create(null);
  for (const [key, value] of Object.entries(arch)) {
    name(key, "header arch key");
    const items = Array.isArray(value) ? value : [value];
    if (!items.every((v) => isNumber(v) || typeof v === "string" || typeof v === "boolean")) {
      throw new SpnrError(`header arch ${show(key)} must be an int, float, str, bool or a list of them, got ${show(value)}`);
    }
    out[key] = unbox(value);
  }
  // Keep the int/float distinction for the arch parser (floats stay boxed on a hidden copy).
  Object.defineProperty(out, BOXED, { value: arch, enumerable: false });
  return out;
}

function parseUnits(units) {
  if (!Array.isArray(units) || units.length < 1 || units.length > MAX_UNITS) {
    throw new SpnrError(
      `header units must be a list of 1..${MAX_UNITS} entries, got ${Array.isArray(units) ? units.length : typeName(units)}`,
    );
  }
  let total = 0;
  return units.map((u, i) => {
    u = exactMap(u, ["name", "tensors"], `header unit ${i}`);
    const uname = name(u.name, `header unit ${i} name`);
    const tensors = u.tensors;
    if (!Array.isArray(tensors) || tensors.length < 1 || tensors.length > MAX_TENSORS_PER_UNIT) {
      throw new SpnrError(`header unit ${show(uname)} tensors must be a list of 1..${MAX_TENSORS_PER_UNIT} entries`);
    }
    const seen = new Set();
    const parsed = tensors.map((t) => {
      if (!Array.isArray(t) || t.length !== 2) {
        throw new SpnrError(`header unit ${show(uname)} tensor entry ${show(t)} is not [name, shape]`);
      }
      const tname = name(t[0], `header unit ${show(uname)} tensor name`);
      const shape = parseShape(t[1], `header unit ${show(uname)} tensor ${show(tname)}`);
      total += prod(shape);
      if (seen.has(tname)) throw new SpnrError(`header unit ${show(uname)} repeats a tensor name`);
      seen.add(tname);
      return { name: tname, shape };
    });
    if (total > MAX_TOTAL_ELEMENTS) throw new SpnrError(`header units hold more than ${MAX_TOTAL_ELEMENTS} elements in all`);
    return { name: uname, tensors: parsed };
  });
}

function name(v, what) {
  if (typeof v !== "string" || v.length < 1 || v.length > MAX_NAME_LEN) {
    throw new SpnrError(`${what} must be a string of 1..${MAX_NAME_LEN} characters, got ${show(v)}`);
  }
  return v;
}
