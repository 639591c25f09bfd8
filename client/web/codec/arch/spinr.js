// SPINR (codec/models/spinr.py): a sine MLP trained in stages, every prefix of stages decodes;
// readout by one shared head or one head per stage, optionally residual hidden layers.

import { SpnrError } from "../errors.js";
import { show } from "../values.js";
import { SineArch } from "./siren.js";

export class SpinrArch extends SineArch {
  constructor(header) {
    super(header);
    const head = header.arch.head;
    if (head !== "shared" && head !== "per_stage") {
      throw new SpnrError(`header arch field 'head' is ${show(head)}; expected 'shared' or 'per_stage'`);
    }
    this.shared = head === "shared";
    const residual = "residual" in header.arch ? header.arch.residual : false;
    if (typeof residual !== "boolean") {
      throw new SpnrError(`header arch field 'residual' is ${show(residual)}; expected a boolean`);
    }
    this.residual = residual;
    this.progressive = true;
    this.depths = this.hidden + 1;
    this.checkUnits(header.units, `spinr (head ${head}, width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const W = this.width;
    if (this.shared) {
      const u = [
        { name: "input", tensors: this.lin("", W, this.inF) },
        { name: "output", tensors: this.lin("", 3, W) },
      ];
      for (let k = 1; k <= this.hidden; k++) u.push({ name: `hidden.${k}`, tensors: this.lin("", W, W) });
      return u;
    }
    const u = [{ name: "stage.0", tensors: [...this.lin("in_", W, this.inF), ...this.lin("head_", 3, W)] }];
    for (let k = 1; k <= this.hidden; k++) {
      u.push({ name: `stage.${k}`, tensors: [...this.lin("", W, W), ...this.lin("head_", 3, W)] });
    }
    return u;
  }
  /** A stage's unit also holds its head: only the readout's head runs (Python's macs_per_pixel). */
  macsPerPixel(steps) {
    const W = this.width;
    return steps.reduce((n, k) => n + (k === 0 ? this.inF * W : W * W), 0) + 3 * W;
  }
  trunkSteps() { return this.depths; }
  trunkUnits(k) { return [k === 0 ? 0 : this.shared ? k + 1 : k]; }
  readoutUnits(depth) { return [this.shared ? 1 : depth]; }
  trunkOp(k, params) {
    if (k === 0) return this.inputOp(params, 0, this.shared ? "" : "in_");
    return this.op(params, this.trunkUnits(k)[0], "", this.w0, true, this.residual);
  }
  readoutOp(depth, params) {
    return this.shared ? this.op(params, 1, "", 0, false) : this.op(params, depth, "head_", 0, false);
  }
}
