// What every model family's forward pass provides to the decoder (codec/arch.py's ArchDecoder): a
// decode is trunk step 0 on the coordinates, further trunk steps, then the readout for a depth.
// Splitting it that way lets the decoder cache trunk activations and pay one layer per new packet.
//
// An arch, built from a parsed header. A v1 header lists its units and the arch refuses them unless
// they are exactly those it implies (checkUnits); a v2 header sends none (units null) and the decoder
// takes expectedUnits() as the stream's units:
//   expectedUnits(): UnitSpec[] the units this arch implies, in packet order
//   progressive: boolean        every prefix of stages decodes (else every unit is needed)
//   depths: number              prefix depths (1 when not progressive)
//   trunkSteps(): number
//   trunkUnits(k): number[]     units trunk step k needs
//   readoutUnits(depth): number[]
//   trunkOp(k, params), readoutOp(depth, params): LayerOp

import { activationWork } from "../budget.js";
import { SpnrError } from "../errors.js";
import { BOXED, isInt, isNumber, show, unbox } from "../values.js";

/**
 * One linear layer of the forward pass, `y = x W^T + b`, optionally `sin(omega * y)` (plus x).
 * @typedef {object} LayerOp
 * @property {number} unit      unit index the tensors come from
 * @property {number} inF
 * @property {number} outF
 * @property {Float32Array} weight  (outF, inF) row-major
 * @property {Float32Array} bias    (outF)
 * @property {number} omega     float32 frequency; ignored for the readout
 * @property {boolean} sine
 * @property {boolean} residual h + sin(...)
 * @property {Float32Array} [pe]  the first layer's positional-encoding frequencies (its input is (x, y))
 */

/**
 * A step only JavaScript runs (the WebGL2 accelerator has shaders for LayerOps alone, so a stream
 * with one of these decodes in JS): `apply` maps n rows of inF float32 values to n rows of outF.
 * @typedef {object} CustomOp
 * @property {number} unit      unit index the tensors come from
 * @property {number} inF
 * @property {number} outF
 * @property {string} kind      what it computes, in words (said when the accelerator declines it)
 * @property {(x: Float32Array, n: number) => Float32Array} apply
 */

/** A numeric header arch field of the given kind ("int" or "float") in lo..hi. */
export function archNum(arch, key, kind, lo, hi) {
  const boxed = arch[BOXED] || arch;
  let v = boxed[key];
  const ok = kind === "int" ? isInt(v) : isNumber(v);
  v = unbox(v);
  if (!ok || !(v >= lo && v <= hi)) {
    throw new SpnrError(`header arch field '${key}' is ${show(v)}; expected ${kind} in ${lo}..${hi}`);
  }
  return v;
}

const fmtShape = (t) => `${t.name}${JSON.stringify(t.shape)}`;

/** Helpers for archs built of linear layers; subclasses give expectedUnits() and the interface above. */
export class LinearArch {
  /** A v1 header's units must be exactly the layout this arch implies (names, tensors, shapes,
   * order); a v2 header's are null (derived, never sent). */
  checkUnits(units, describe) {
    if (units === null) return;
    const want = this.expectedUnits();
    if (units.length !== want.length) {
      throw new SpnrError(`header has ${units.length} units but ${describe} needs ${want.length}`);
    }
    want.forEach((w, i) => {
      const u = units[i];
      const same =
        u.name === w.name &&
        u.tensors.length === w.tensors.length &&
        u.tensors.every((t, j) => t.name === w.tensors[j].name && fmtShape(t) === fmtShape(w.tensors[j]));
      if (!same) {
        throw new SpnrError(
          `header unit ${i} is ${show(u.name)} with ${u.tensors.map(fmtShape).join(", ")}; ${describe} expects ` +
            `${show(w.name)} with ${w.tensors.map(fmtShape).join(", ")}`,
        );
      }
    });
  }

  /** Real multiply-adds per weight element (WIRE's complex weights: 2). */
  get workFactor() { return 1; }

  /** Multiply-adds per pixel that no transmitted tensor accounts for (Fourier's projection). */
  extraWork() { return 0; }

  /** Multiply-adds per pixel of trunk `steps` and readout `depth`: each used unit's 2-D tensors
   * (a lookup table costs none), as Python's ArchDecoder.macs_per_pixel counts them. */
  macsPerPixel(steps, depth) {
    const units = this.expectedUnits();
    const used = new Set([...steps.flatMap((k) => this.trunkUnits(k)), ...this.readoutUnits(depth)]);
    let n = this.extraWork();
    for (const u of used) {
      for (const t of units[u].tensors) {
        if (t.shape.length === 2 && t.name !== "table") n += this.workFactor * t.shape[0] * t.shape[1];
      }
    }
    return n;
  }

  /** What the decode budget's maxWork counts per pixel (Python's work_per_pixel): the multiply-adds
   * plus each step's activations (stepActivations(k): {kind: values per pixel}) at their cost. */
  workPerPixel(steps, depth) {
    return this.macsPerPixel(steps, depth) + steps.reduce((n, k) => n + activationWork(this.stepActivations(k)), 0);
  }

  /** The tensor specs of one linear layer: `${prefix}weight` (out, inp) and `${prefix}bias` (out). */
  lin(prefix, out, inp) {
    return [
      { name: `${prefix}weight`, shape: [out, inp] },
      { name: `${prefix}bias`, shape: [out] },
    ];
  }

  /** @returns {LayerOp} */
  op(params, unit, prefix, omega, sine, residual = false) {
    const t = params.get(unit);
    const w = t[`${prefix}weight`];
    return {
      unit,
      inF: w.shape[1],
      outF: w.shape[0],
      weight: w.values,
      bias: t[`${prefix}bias`].values,
      omega,
      sine,
      residual,
    };
  }
}
