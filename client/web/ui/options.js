// The encoding options of the upload form.

import { ui } from "./dom.js";
import { state } from "./state.js";

/** Fill the preset and model lists and the fields' ranges from GET /api/config. */
export function buildOptions(config) {
  ui.preset.replaceChildren(
    ...Object.keys(config.presets).map((name) => new Option(name, name, false, name === config.default_preset)),
  );
  ui.model.replaceChildren(...config.models.map((m) => new Option(m, m)));
  for (const key of ["width", "depth", "steps", "bits"]) {
    const range = config.ranges[key];
    if (range) {
      ui[key].min = String(range[0]);
      ui[key].max = String(range[1]);
    }
  }
  applyPreset();
}

/** Fill the model fields from the chosen preset. */
export function applyPreset() {
  const p = state.config && state.config.presets[ui.preset.value];
  if (!p) return;
  ui.model.value = p.model;
  ui.width.value = String(p.width);
  ui.depth.value = String(p.depth);
  ui.steps.value = String(p.steps);
}

/**
 * The form's options, checked against /api/config; throws with a message naming the field.
 * @returns {Record<string, string>}
 */
export function formOptions() {
  const out = { preset: ui.preset.value, model: ui.model.value };
  for (const key of ["width", "depth", "steps", "bits"]) {
    const raw = ui[key].value.trim();
    if (raw === "") {
      if (key === "bits") continue;
      throw new Error(`${key}: enter a number`);
    }
    const v = Number(raw);
    const [lo, hi] = state.config.ranges[key];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${key}: ${raw} is not a whole number in ${lo}..${hi}`);
    out[key] = String(v);
  }
  return out;
}
