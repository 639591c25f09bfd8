// FourierNet (codec/arch/fourier.py): gamma(v) = [cos(2 pi B v), sin(2 pi B v)] with v = (x + 1) / 2,
// then a ReLU MLP and a linear readout. B is regenerated from the header (numpy_random.js).

import { SpnrError } from "../errors.js";
import { archNum } from "./base.js";
import { ChainArch, linearRows } from "./chain.js";
import { bMatrix } from "./numpy_random.js";

const fr = Math.fround;
const TWO_PI = fr(2 * Math.PI);

export class FourierArch extends ChainArch {
  constructor(header) {
    super(header);
    const a = header.arch;
    this.m = archNum(a, "mapping_size", "int", 1, 4096);
    this.sigma = archNum(a, "sigma", "float", 1e-9, 1e4);
    this.seed = archNum(a, "b_seed", "int", 0, 2 ** 32 - 1);
    this.checkUnits(header.units, `fourier (width ${this.width}, ${this.hidden} hidden layers, mapping ${this.m})`);
    this.B = null; // made on first use: up to 8192 draws
  }
  expectedUnits() {
    return this.chainUnits(2 * this.m, (_, out, inp) => this.lin("", out, inp));
  }
  trunkOp(k, params) {
    const t = params.get(k);
    if (k > 0) return reluOp(k, t);
    if (!this.B) this.B = bMatrix(this.m, this.sigma, this.seed);
    const { B, m } = this;
    const W = t.weight;
    const [outF, inF] = W.shape;
    if (inF !== 2 * m) throw new SpnrError(`fourier input layer takes ${inF} features; the arch gives ${2 * m}`);
    return {
      unit: 0,
      inF: 2,
      outF,
      kind: "Fourier features",
      apply(x, n) {
        // One pixel's 2m features at a time: n x 2m floats would not fit at a 4x zoom.
        const feat = new Float32Array(2 * m);
        const out = new Float32Array(n * outF);
        for (let p = 0; p < n; p++) {
          const u = fr(fr(x[2 * p] + 1) * 0.5);
          const v = fr(fr(x[2 * p + 1] + 1) * 0.5);
          for (let j = 0; j < m; j++) {
            const proj = fr(TWO_PI * fr(u * B[2 * j] + v * B[2 * j + 1]));
            feat[j] = Math.cos(proj);
            feat[m + j] = Math.sin(proj);
          }
          const row = linearRows(feat, 1, W, t.bias);
          for (let o = 0; o < outF; o++) out[p * outF + o] = row[o] > 0 ? row[o] : 0;
        }
        return out;
      },
    };
  }
  readoutOp(depth, params) {
    return this.op(params, this.hidden + 1, "", 0, false);
  }
  /** The projection by B (its cosines and sines are activations). */
  extraWork() { return 2 * this.m; }
  /** A ReLU per unit; step 0 also the cosine and sine of each projected feature. */
  stepActivations(k) { return k === 0 ? { relu: this.width, fourier_features: 2 * this.m } : { relu: this.width }; }
}

/** A hidden layer: max(x W^T + b, 0). */
function reluOp(unit, t) {
  const [outF, inF] = t.weight.shape;
  return {
    unit,
    inF,
    outF,
    kind: "ReLU layers",
    apply(x, n) {
      const y = linearRows(x, n, t.weight, t.bias);
      for (let i = 0; i < y.length; i++) if (y[i] < 0) y[i] = 0;
      return y;
    },
  };
}
