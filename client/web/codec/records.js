// The arch record of a v2 header: a family's arch fields in a few bytes, no field names
// (codec/arch/records.py; docs/FORMAT.md "Arch records"). The field tables below are the Python
// families' RECORD tuples, entry for entry (tests/test_browser_decoder.py compares them).
//
//   flags  varint   bit i: the i-th field that has a default. A bool field's bit is its value; any
//                   other field's bit says that its value follows.
//   values          in field order: required fields and flagged non-bool fields.
//                   uint: varint; float: float64 big-endian; choice: varint index.

import { SpnrError } from "./errors.js";
import { hex } from "./values.js";

const uint = (name, def) => ({ name, kind: "uint", def });
const real = (name, def) => ({ name, kind: "float", def });
const choice = (name, choices, def) => ({ name, kind: "choice", def, choices });
const flag = (name, def) => ({ name, kind: "bool", def });

/** The v2 header's model byte (codec/arch/base.py MODEL_IDS): fixed forever, new families append. */
export const MODEL_IDS = Object.freeze({ siren: 0, spinr: 1, fourier: 2, mfn: 3, wire: 4, diner: 5 });

const SINE_MLP = [uint("width"), uint("hidden_layers"), real("first_omega_0", 30.0), real("hidden_omega_0", 30.0)];
/** The optional positional encoding (codec/posenc.py), after the fields each family started with. */
const PE = [uint("pe_frequencies", 0), real("pe_scale", 1.4)];

/** Each family's arch fields, in the order of its arch dict. */
export const RECORDS = Object.freeze({
  siren: [...SINE_MLP, ...PE],
  spinr: [...SINE_MLP, choice("head", ["per_stage", "shared"], "per_stage"), flag("residual", true), ...PE],
  fourier: [uint("width"), uint("hidden_layers"), uint("mapping_size", 256), real("sigma", 10.0), uint("b_seed", 0)],
  mfn: [uint("width"), uint("hidden_layers"), choice("filter", ["gabor", "fourier"], "gabor")],
  wire: [uint("width"), uint("hidden_layers"), real("omega_0", 20.0), real("scale_0", 10.0)],
  diner: [
    uint("width"),
    uint("hidden_layers"),
    uint("features", 2),
    real("omega_0", 30.0),
    uint("table_width"),
    uint("table_height"),
  ],
});

/** The model of a v2 header's model byte. */
export function modelName(id) {
  for (const [name, n] of Object.entries(MODEL_IDS)) if (n === id) return name;
  const known = Object.entries(MODEL_IDS)
    .map(([name, n]) => `${n} ${name}`)
    .join(", ");
  throw new SpnrError(`model id ${id} is not known to this decoder; known: ${known}`);
}

/**
 * The arch of the record at `r`'s position: every field, defaults filled in. `boxed` is the same map
 * with floats as Number objects, so the arch classes tell ints from floats as they do for v1 headers.
 * @param {string} model
 * @param {import("./varint.js").Reader} r
 */
export function readRecord(model, r) {
  const fields = RECORDS[model];
  const nFlags = fields.filter((f) => f.def !== undefined).length;
  const flags = r.uvarint(`${model} arch flags`);
  if (Math.floor(flags / 2 ** nFlags) !== 0) {
    throw new SpnrError(`${model} arch flags ${hex(flags, 1)} set bits beyond the ${nFlags} this decoder knows`);
  }
  const arch = Object.create(null);
  const boxed = Object.create(null);
  let bit = 0;
  for (const f of fields) {
    const what = `${model} arch field '${f.name}'`;
    const flagged = f.def !== undefined;
    const on = flagged && Math.floor(flags / 2 ** bit) % 2 === 1;
    if (flagged) bit++;
    let v;
    if (f.kind === "bool") v = on;
    else if (flagged && !on) v = f.def;
    else if (f.kind === "uint") v = r.uvarint(what);
    else if (f.kind === "float") v = r.f64(what);
    else v = f.choices[r.uvarintIn(0, f.choices.length - 1, what)];
    arch[f.name] = v;
    boxed[f.name] = f.kind === "float" ? new Number(v) : v; // eslint-disable-line no-new-wrappers
  }
  return { arch, boxed };
}
