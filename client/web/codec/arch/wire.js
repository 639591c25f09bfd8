// WIRE (codec/arch/wire.py): complex Gabor wavelets exp(i omega z - |scale z|^2) after a real input
// layer, complex hidden layers, the real part of a complex readout. An activation row holds the width's
// real parts, then its imaginary parts; complex64 maths as numpy does it (products and sums rounded
// to float32 per component, exp of a complex as exp(re) (cos im + i sin im), |scale z|^2 as
// (scale re)^2 + (scale im)^2, in codec/arch/wire.py's order).

import { archNum } from "./base.js";
import { ChainArch, linearRows } from "./chain.js";

const fr = Math.fround;

export class WireArch extends ChainArch {
  constructor(header) {
    super(header);
    const a = header.arch;
    this.omega = fr(archNum(a, "omega_0", "float", 0, 1e4));
    this.scale = fr(archNum(a, "scale_0", "float", 0, 1e4));
    this.checkUnits(header.units, `wire (width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const complex = (out, inp) => [
      { name: "weight_re", shape: [out, inp] },
      { name: "weight_im", shape: [out, inp] },
      { name: "bias_re", shape: [out] },
      { name: "bias_im", shape: [out] },
    ];
    return this.chainUnits(2, (name, out, inp) => (name === "input" ? this.lin("", out, inp) : complex(out, inp)));
  }
  /** Complex weights: a multiply-add of each of re and im takes 2. */
  get workFactor() { return 2; }
  stepActivations() { return { wire_gabor: this.width }; }
  /** exp(1j omega z - |scale z|^2) of n x width complex values (re block then im block per row), in place. */
  gabor(re, im) {
    const { omega, scale } = this;
    for (let i = 0; i < re.length; i++) {
      const a = re[i];
      const b = im[i];
      const sa = fr(scale * a);
      const sb = fr(scale * b);
      const x = fr(fr(fr(-fr(omega * b)) - fr(sa * sa)) - fr(sb * sb));
      const y = fr(omega * a);
      const e = fr(Math.exp(x));
      re[i] = fr(e * fr(Math.cos(y)));
      im[i] = fr(e * fr(Math.sin(y)));
    }
  }
  trunkOp(k, params) {
    const t = params.get(k);
    const W = this.width;
    const arch = this;
    return {
      unit: k,
      inF: k === 0 ? 2 : 2 * W,
      outF: 2 * W,
      kind: "complex Gabor wavelets",
      apply(x, n) {
        const [re, im] = k === 0 ? [linearRows(x, n, t.weight, t.bias), new Float32Array(n * W)] : complexLinear(x, n, t);
        arch.gabor(re, im);
        const out = new Float32Array(n * 2 * W);
        for (let p = 0; p < n; p++) {
          out.set(re.subarray(p * W, (p + 1) * W), p * 2 * W);
          out.set(im.subarray(p * W, (p + 1) * W), p * 2 * W + W);
        }
        return out;
      },
    };
  }
  readoutOp(depth, params) {
    const t = params.get(this.hidden + 1);
    return {
      unit: this.hidden + 1,
      inF: 2 * this.width,
      outF: 3,
      kind: "complex Gabor wavelets",
      apply: (x, n) => complexLinear(x, n, t)[0],
    };
  }
}

/**
 * z W^T + b for complex z (rows: re block, im block) and complex W, b: [re, im], each n x outF.
 * @returns {[Float32Array, Float32Array]}
 */
function complexLinear(x, n, t) {
  const [outF, inF] = t.weight_re.shape;
  const wr = t.weight_re.values;
  const wi = t.weight_im.values;
  const br = t.bias_re.values;
  const bi = t.bias_im.values;
  const re = new Float32Array(n * outF);
  const im = new Float32Array(n * outF);
  for (let p = 0; p < n; p++) {
    const xb = p * 2 * inF;
    for (let o = 0; o < outF; o++) {
      let sr = 0;
      let si = 0;
      for (let i = 0; i < inF; i++) {
        const a = x[xb + i];
        const b = x[xb + inF + i];
        const c = wr[o * inF + i];
        const d = wi[o * inF + i];
        sr += a * c - b * d;
        si += a * d + b * c;
      }
      re[p * outF + o] = fr(fr(sr) + br[o]);
      im[p * outF + o] = fr(fr(si) + bi[o]);
    }
  }
  return [re, im];
}
