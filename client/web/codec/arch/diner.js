// DINER (codec/arch/diner.py): a learned per-pixel table looked up by the nearest table cell, then a
// sine MLP. Units: table, input, hidden.1..H, output. Other output sizes look the table up by the
// nearest cell, as numpy does: float32 index arithmetic and round half to even.

import { SpnrError } from "../errors.js";
import { applyLayer } from "../forward.js";
import { archNum } from "./base.js";
import { ChainArch } from "./chain.js";

const fr = Math.fround;

/** numpy's np.round for one value: to the nearest integer, ties to even. */
function roundHalfEven(v) {
  const f = Math.floor(v);
  const d = v - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The table cell of one coordinate: clip(round(((c + 1) * n - 1) / 2), 0, n - 1) in float32. */
function cell(c, n) {
  const i = roundHalfEven(fr(fr(fr(fr(c + 1) * n) - 1) * 0.5));
  return Math.min(Math.max(i, 0), n - 1);
}

export class DinerArch extends ChainArch {
  constructor(header) {
    super(header, 1);
    const a = header.arch;
    this.features = archNum(a, "features", "int", 1, 64);
    this.omega = fr(archNum(a, "omega_0", "float", 0, 1e4));
    this.tw = archNum(a, "table_width", "int", 1, 65535);
    this.th = archNum(a, "table_height", "int", 1, 65535);
    this.checkUnits(header.units, `diner (table ${this.tw}x${this.th}x${this.features}, width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const table = { name: "table", tensors: [{ name: "table", shape: [this.tw * this.th, this.features] }] };
    return [table, ...this.chainUnits(this.features, (_, out, inp) => this.lin("", out, inp))];
  }
  /** A sine layer of unit `unit`: sin(omega (x W^T + b)). */
  sineOp(params, unit) {
    return this.op(params, unit, "", this.omega, true);
  }
  trunkOp(k, params) {
    if (k > 0) return this.sineOp(params, k + 1);
    const table = params.get(0).table;
    if (table.shape[0] !== this.tw * this.th || table.shape[1] !== this.features) {
      throw new SpnrError(`DINER table has shape [${table.shape}]; arch needs [${this.tw * this.th},${this.features}]`);
    }
    const first = this.sineOp(params, 1);
    const { tw, th, features: F } = this;
    return {
      unit: 0,
      inF: 2,
      outF: first.outF,
      kind: "a per-pixel table",
      apply(x, n) {
        const h = new Float32Array(n * F);
        for (let p = 0; p < n; p++) {
          const row = cell(x[2 * p + 1], th) * tw + cell(x[2 * p], tw);
          h.set(table.values.subarray(row * F, (row + 1) * F), p * F);
        }
        return applyLayer(first, h, n);
      },
    };
  }
  readoutOp(depth, params) {
    return this.op(params, this.hidden + 2, "", 0, false);
  }
  /** A sine per unit; step 0 also the pixel's table lookup. */
  stepActivations(k) { return k === 0 ? { sine: this.width, table: 1 } : { sine: this.width }; }
}
