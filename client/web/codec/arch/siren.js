// SIREN (codec/models/siren.py): a sine MLP, every unit needed; SineArch holds what SPINR shares.

import { LinearArch, archNum } from "./base.js";
import { peFrequencies, MAX_PE_FREQUENCIES } from "../posenc.js";
import { SpnrError } from "../errors.js";
import { show } from "../values.js";

/** Width, hidden layers, the two frequencies and the optional positional encoding of a sine MLP,
 * from the header's arch map (a v1 header has no encoding fields: off). */
export class SineArch extends LinearArch {
  /** @param {import("../header.js").StreamHeader} header */
  constructor(header) {
    super();
    const a = header.arch;
    this.width = archNum(a, "width", "int", 1, 4096);
    this.hidden = archNum(a, "hidden_layers", "int", 0, 256);
    this.w0First = Math.fround(archNum(a, "first_omega_0", "float", 0, 1e4));
    this.w0 = Math.fround(archNum(a, "hidden_omega_0", "float", 0, 1e4));
    const L = "pe_frequencies" in a ? archNum(a, "pe_frequencies", "int", 0, MAX_PE_FREQUENCIES) : 0;
    const scale = "pe_scale" in a ? archNum(a, "pe_scale", "float", 0, 4) : 1.4;
    if (!(scale > 1)) throw new SpnrError(`pe_scale ${show(scale)} is out of range: allowed 1 < pe_scale <= 4`);
    /** float32 angular frequencies of the positional encoding (empty: off) */
    this.pe = peFrequencies(L, scale);
    this.inF = 2 + 4 * L;
  }
  /** A sine per unit; step 0 also the positional encoding's sines and cosines. */
  stepActivations(k) { return { sine: this.width + (k === 0 ? this.inF - 2 : 0) }; }
  /** Trunk step 0's layer, with the encoding of the coordinates in front when it is on. */
  inputOp(params, unit, prefix) {
    const op = this.op(params, unit, prefix, this.w0First, true);
    return this.pe.length ? { ...op, pe: this.pe } : op;
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
    const u = [{ name: "input", tensors: this.lin("", W, this.inF) }];
    for (let k = 1; k <= this.hidden; k++) u.push({ name: `hidden.${k}`, tensors: this.lin("", W, W) });
    u.push({ name: "output", tensors: this.lin("", 3, W) });
    return u;
  }
  trunkSteps() { return this.hidden + 1; }
  trunkUnits(k) { return [k]; }
  readoutUnits() { return [this.hidden + 1]; }
  trunkOp(k, params) { return k === 0 ? this.inputOp(params, 0, "") : this.op(params, k, "", this.w0, true); }
  readoutOp(depth, params) { return this.op(params, this.hidden + 1, "", 0, false); }
}

