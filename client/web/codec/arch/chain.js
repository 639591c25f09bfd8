// The study's zoo shares one layout (codec/arch/base.py's ChainDecoder): units input, hidden.1..H,
// output, after `first` leading units (DINER's table); not progressive, every unit is needed. Its
// families compute more than sine layers, so their steps are CustomOps (base.js) that JS runs with
// numpy's float32 operation order: each matmul summed, then rounded to float32, then the bias, each
// elementwise function on float32 values rounded back to float32.

import { LinearArch, archNum } from "./base.js";

const fr = Math.fround;

/**
 * `x @ W.T + b` for n rows (numpy's `linear`): n x outF float32.
 * @param {Float32Array} x  n x inF (row stride `stride`, starting at column `col`)
 * @param {number} n
 * @param {{values: Float32Array, shape: number[]}} W  (outF, inF)
 * @param {{values: Float32Array}} b
 */
export function linearRows(x, n, W, b, stride = W.shape[1], col = 0) {
  const [outF, inF] = W.shape;
  const w = W.values;
  const bias = b.values;
  const out = new Float32Array(n * outF);
  for (let p = 0; p < n; p++) {
    const xb = p * stride + col;
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += x[xb + i] * w[o * inF + i];
      out[p * outF + o] = fr(fr(acc) + bias[o]);
    }
  }
  return out;
}

/** Width and hidden layers from the header, the chain's unit plan and its (single) depth. */
export class ChainArch extends LinearArch {
  /**
   * @param {import("../header.js").StreamHeader} header
   * @param {number} [first=0]  leading units before the input layer
   */
  constructor(header, first = 0) {
    super();
    const a = header.arch;
    this.width = archNum(a, "width", "int", 1, 4096);
    this.hidden = archNum(a, "hidden_layers", "int", 0, 256);
    this.first = first;
    this.progressive = false;
    this.depths = 1;
    /** Whether the WebGL2 accelerator has shaders for every step (no: JS decodes these). */
    this.accelerated = false;
  }
  trunkSteps() { return this.hidden + 1; }
  trunkUnits(k) {
    if (k > 0) return [k + this.first];
    return Array.from({ length: this.first + 1 }, (_, i) => i);
  }
  readoutUnits() { return [this.hidden + 1 + this.first]; }
  /** Unit names input, hidden.1..H, output with the tensors `layer(name, out, inp)` gives each. */
  chainUnits(inputs, layer) {
    const W = this.width;
    const u = [{ name: "input", tensors: layer("input", W, inputs) }];
    for (let k = 1; k <= this.hidden; k++) u.push({ name: `hidden.${k}`, tensors: layer(`hidden.${k}`, W, W) });
    u.push({ name: "output", tensors: layer("output", 3, W) });
    return u;
  }
}
