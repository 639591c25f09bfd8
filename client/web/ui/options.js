// The upload form's encoding options, generated from GET /api/config's "options" table (docs/API.md):
// one labelled field per option in display order, grouped by config section, with its type, range,
// choices and help. Options that apply to some models only are shown (and sent) only while one of
// those models is chosen; choosing a preset fills every field with that preset's values.

import { ui } from "./dom.js";
import { state } from "./state.js";

/**
 * One entry of /api/config's "options".
 * @typedef {object} OptionSpec
 * @property {string} name
 * @property {"int"|"float"|"bool"|"choice"|"str"} type
 * @property {number|null} min
 * @property {number|null} max
 * @property {boolean} [min_exclusive]
 * @property {boolean} [max_exclusive]
 * @property {string[]|null} choices
 * @property {unknown} default   its value in the server's default preset
 * @property {string} help
 * @property {string[]|null} models  null: every model
 * @property {string} group
 */

/** Headings of the config sections; an unknown section is shown under its own name. */
const GROUP_TITLES = { rate: "Rate", model: "Model", train: "Training", quant: "Quantization" };

/** The generated fields: option name -> {spec, control, field}. */
const fields = new Map();

/** "batch_pixels" -> "Batch pixels"; short names are abbreviations ("lr" -> "LR"). */
function labelText(name) {
  if (name.length <= 3) return name.toUpperCase();
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** What is allowed, in words, as the server says it: "1..4096", "0 < lr < 1", "lr >= 0". */
export function allowedText(spec) {
  if (spec.type === "choice") return `one of ${(spec.choices || []).join(", ")}`;
  if (spec.type === "bool") return "on or off";
  const { min, max, name } = spec;
  const lo = spec.min_exclusive ? "<" : "<=";
  const hi = spec.max_exclusive ? "<" : "<=";
  const closed = !spec.min_exclusive && !spec.max_exclusive;
  if (min !== null && max !== null) {
    return spec.type === "int" && closed ? `${min}..${max}` : `${min} ${lo} ${name} ${hi} ${max}`;
  }
  if (min !== null) return `${name} ${spec.min_exclusive ? ">" : ">="} ${min}`;
  if (max !== null) return `${name} ${hi} ${max}`;
  return "";
}

/** @param {OptionSpec} spec @returns {HTMLInputElement|HTMLSelectElement} */
function makeControl(spec) {
  if (spec.type === "choice") {
    const select = document.createElement("select");
    select.replaceChildren(...(spec.choices || []).map((c) => new Option(c, c)));
    return select;
  }
  const input = document.createElement("input");
  if (spec.type === "bool") {
    input.type = "checkbox";
  } else if (spec.type === "int" || spec.type === "float") {
    input.type = "number";
    input.step = spec.type === "int" ? "1" : "any";
    input.inputMode = spec.type === "int" ? "numeric" : "decimal";
    if (spec.min !== null) input.min = String(spec.min);
    if (spec.max !== null) input.max = String(spec.max);
  } else {
    input.type = "text";
  }
  return input;
}

/** @param {OptionSpec} spec */
function makeField(spec) {
  const id = `opt-${spec.name}`;
  const control = makeControl(spec);
  control.id = id;
  control.name = spec.name;
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.id = `${id}-hint`;
  const scope = spec.models ? ` (${spec.models.join(", ")} only)` : "";
  const allowed = spec.type === "choice" || spec.type === "bool" ? "" : allowedText(spec);
  hint.textContent = `${spec.help}${scope}${allowed ? ` · ${allowed}` : ""}`;
  control.setAttribute("aria-describedby", hint.id);
  control.addEventListener("input", () => control.removeAttribute("aria-invalid"));
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = labelText(spec.name);
  const field = document.createElement("div");
  field.className = spec.type === "bool" ? "field check" : "field";
  field.dataset.option = spec.name;
  field.append(...(spec.type === "bool" ? [control, label, hint] : [label, control, hint]));
  return { spec, control, field };
}

/**
 * Build the option fields and the preset list from GET /api/config, then fill in its default preset.
 * @param {{options: OptionSpec[], presets: Record<string, object>, default_preset: string}} config
 */
export function buildOptions(config) {
  if (!Array.isArray(config.options) || !config.presets) {
    throw new Error('/api/config has no "options" table: this page needs a server of its own version');
  }
  ui.preset.replaceChildren(
    ...Object.keys(config.presets).map((name) => new Option(name, name, false, name === config.default_preset)),
  );
  fields.clear();
  const groups = new Map();
  for (const spec of config.options) {
    const f = makeField(spec);
    fields.set(spec.name, f);
    if (!groups.has(spec.group)) {
      const set = document.createElement("fieldset");
      set.className = "options-group";
      set.dataset.group = spec.group;
      const legend = document.createElement("legend");
      legend.textContent = GROUP_TITLES[spec.group] || labelText(spec.group);
      const grid = document.createElement("div");
      grid.className = "grid-fields";
      set.append(legend, grid);
      groups.set(spec.group, set);
    }
    groups.get(spec.group).lastChild.append(f.field);
  }
  ui.optionFields.replaceChildren(...groups.values());
  const model = fields.get("model");
  if (model) model.control.addEventListener("change", showModelOptions);
  applyPreset();
}

/** The chosen model, or null when the table has no model option (then every option applies). */
function chosenModel() {
  const model = fields.get("model");
  return model ? model.control.value : null;
}

/** Show and enable the options of the chosen model only (disabled fields are not sent). */
export function showModelOptions() {
  const model = chosenModel();
  for (const { spec, control, field } of fields.values()) {
    const applies = !spec.models || model === null || spec.models.includes(model);
    field.hidden = !applies;
    control.disabled = !applies;
  }
}

/** Fill every field with the chosen preset's value (an option the preset lacks: its default). */
export function applyPreset() {
  const preset = state.config && state.config.presets[ui.preset.value];
  if (!preset) return;
  for (const { spec, control } of fields.values()) {
    const value = spec.name in preset ? preset[spec.name] : spec.default;
    if (spec.type === "bool") control.checked = value === true;
    else control.value = value === null || value === undefined ? "" : String(value);
    // An unset value (null) is left to the server, which picks the model's own default.
    if (control instanceof HTMLInputElement) control.placeholder = value === null ? "default" : "";
  }
  showModelOptions();
}

/** A value the table does not allow; `control` is the field to show it in. */
export class OptionError extends Error {
  /** @param {string} message @param {HTMLElement} control */
  constructor(message, control) {
    super(message);
    this.control = control;
  }
}

/**
 * The form's options as form fields, checked against the table; throws an OptionError naming the
 * option and what it allows. Empty numbers are left out (the server uses the preset's value).
 * @returns {Record<string, string>}
 */
export function formOptions() {
  const out = { preset: ui.preset.value };
  for (const { spec, control } of fields.values()) {
    if (control.disabled) continue;
    if (spec.type === "bool") {
      out[spec.name] = control.checked ? "true" : "false";
      continue;
    }
    const raw = control.value.trim();
    if (raw === "") continue;
    if (spec.type === "choice" && !(spec.choices || []).includes(raw)) {
      throw new OptionError(`${spec.name}: unknown value ${raw}; choose ${allowedText(spec)}`, control);
    }
    if (spec.type === "int" || spec.type === "float") {
      const v = Number(raw);
      if (!Number.isFinite(v) || (spec.type === "int" && !Number.isInteger(v))) {
        const what = spec.type === "int" ? "a whole number" : "a number";
        throw new OptionError(`${spec.name}: ${raw} is not ${what}`, control);
      }
      if (!inRange(spec, v)) {
        throw new OptionError(`${spec.name}: ${raw} is out of range: allowed ${allowedText(spec)}`, control);
      }
      out[spec.name] = String(v);
      continue;
    }
    out[spec.name] = raw;
  }
  return out;
}

/** @param {OptionSpec} spec @param {number} v */
function inRange(spec, v) {
  const lo = spec.min === null || (spec.min_exclusive ? v > spec.min : v >= spec.min);
  const hi = spec.max === null || (spec.max_exclusive ? v < spec.max : v <= spec.max);
  return lo && hi;
}
