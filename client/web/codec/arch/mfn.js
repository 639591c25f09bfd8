// Multiplicative filter networks (codec/arch/mfn.py): z0 = g0(x), z_k = g_k(x) * (z_{k-1} W_k^T + b_k),
// y = z_H W^T + b, with Fourier filters sin(x F^T + c) or Gabor ones that multiply them by
// exp(-gamma |x - mu|^2 / 2). The filters need the coordinates at every step, so an activation row
// carries them: [x, y, z...], as in the numpy decoder.

import { SpnrError } from "../errors.js";
import { show } from "../values.js";
import { ChainArch, linearRows } from "./chain.js";

const fr = Math.fround;

export class MfnArch extends ChainArch {
  constructor(header) {
    super(header);
    const filter = header.arch.filter;
    if (filter !== "gabor" && filter !== "fourier") {
      throw new SpnrError(`header arch field 'filter' is ${show(filter)}; expected 'gabor' or 'fourier'`);
    }
    this.gabor = filter === "gabor";
    this.checkUnits(header.units, `mfn (${filter} filters, width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const W = this.width;
    const filter = () => [
      ...this.lin("filter_", W, 2),
      ...(this.gabor ? [{ name: "filter_mu", shape: [W, 2] }, { name: "filter_gamma", shape: [W] }] : []),
    ];
    const u = [{ name: "filter.0", tensors: filter() }];
    for (let k = 1; k <= this.hidden; k++) u.push({ name: `layer.${k}`, tensors: [...this.lin("", W, W), ...filter()] });
    u.push({ name: "output", tensors: this.lin("", 3, W) });
    return u;
  }
  /** A filter per unit (and, from step 1, its product with the linear layer). */
  stepActivations() { return { [this.gabor ? "mfn_gabor" : "mfn_fourier"]: this.width }; }
  /** The filter bank's output for n rows of activations (coordinates in columns 0, 1). */
  filter(t, x, n, stride) {
    const g = linearRows(x, n, t.filter_weight, t.filter_bias, stride);
    const W = t.filter_weight.shape[0];
    for (let i = 0; i < g.length; i++) g[i] = Math.sin(g[i]);
    if (!this.gabor) return g;
    const mu = t.filter_mu.values;
    const gamma = t.filter_gamma.values;
    const mu2 = new Float32Array(W);
    for (let o = 0; o < W; o++) mu2[o] = fr(mu[2 * o] * mu[2 * o]) + fr(mu[2 * o + 1] * mu[2 * o + 1]);
    for (let p = 0; p < n; p++) {
      const x0 = x[p * stride];
      const x1 = x[p * stride + 1];
      const xx = fr(fr(x0 * x0) + fr(x1 * x1));
      const a0 = 2 * x0; // exact in float32
      const a1 = 2 * x1;
      for (let o = 0; o < W; o++) {
        const d = fr(fr(xx + mu2[o]) - fr(a0 * mu[2 * o] + a1 * mu[2 * o + 1]));
        const e = fr(Math.exp(fr(fr(-0.5 * d) * gamma[o])));
        g[p * W + o] = g[p * W + o] * e;
      }
    }
    return g;
  }
  trunkOp(k, params) {
    const t = params.get(k);
    const W = this.width;
    const stride = W + 2;
    const arch = this;
    return {
      unit: k,
      inF: k === 0 ? 2 : stride,
      outF: stride,
      kind: "multiplicative filters",
      apply(x, n) {
        const inStride = k === 0 ? 2 : stride;
        const g = arch.filter(t, x, n, inStride);
        const lin = k === 0 ? null : linearRows(x, n, t.weight, t.bias, stride, 2);
        const out = new Float32Array(n * stride);
        for (let p = 0; p < n; p++) {
          out[p * stride] = x[p * inStride];
          out[p * stride + 1] = x[p * inStride + 1];
          for (let o = 0; o < W; o++) out[p * stride + 2 + o] = lin ? g[p * W + o] * lin[p * W + o] : g[p * W + o];
        }
        return out;
      },
    };
  }
  readoutOp(depth, params) {
    const t = params.get(this.hidden + 1);
    const stride = this.width + 2;
    return {
      unit: this.hidden + 1,
      inF: stride,
      outF: 3,
      kind: "multiplicative filters",
      apply: (x, n) => linearRows(x, n, t.weight, t.bias, stride, 2),
    };
  }
}
