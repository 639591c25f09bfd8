// SIREN (codec/models/siren.py): a sine MLP, every unit needed; SineArch holds what SPINR shares.

import { LinearArch, archNum } from "./base.js";

/** Width, hidden layers and the two frequencies of a sine MLP, from the header's arch map. */
export class SineArch extends LinearArch {
  /** @param {import("../header.js").StreamHeader} header */
  constructor(header) {
    super();
    const a = header.arch;
    this.width = archNum(a, "width", "int", 1, 4096);
    this.hidden = archNum(a, "hidden_layers", "int", 0, 256);
    this.w0First = Math.fround(archNum(a, "first_omega_0", "float", 0, 1e4));
    this.w0 = Math.fround(archNum(a, "hidden_omega_0", "float", 0, 1e4));
  }
}

/** SIREN: input, hidden.1..N, output; one trunk step per layer. */
export class SirenArch extends SineArch {
  constructor(header) {
    super(header);
    this.progressive = false;
    this.depths = 1;
    this.checkUnits(header.units, `siren (width ${this.width}, ${this.hidden} hidden layers)`);
  }
  expectedUnits() {
    const W = this.width;
    const u = [{ name: "input", tensors: this.lin("", W, 2) }];
    for (let k = 1; k <= this.hidden; k++) u.push({ name: `hidden.${k}`, tensors: this.lin("", W, W) });
    u.push({ name: "output", tensors: this.lin("", 3, W) });
    return u;
  }
  trunkSteps() { return this.hidden + 1; }
  trunkUnits(k) { return [k]; }
  readoutUnits() { return [this.hidden + 1]; }
  trunkOp(k, params) { return this.op(params, k, "", k === 0 ? this.w0First : this.w0, true); }
  readoutOp(depth, params) { return this.op(params, this.hidden + 1, "", 0, false); }
}

