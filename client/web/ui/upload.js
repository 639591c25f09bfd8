// Uploading an image to encode (client/upload.py for the browser): the file box, drag and drop, the
// POST /api/jobs request with the form's options, then the image is opened.

import { ui } from "./dom.js";
import { formatBytes, reason } from "./format.js";
import { openImage } from "./image.js";
import { OptionError, formOptions } from "./options.js";
import { fetchJSON } from "./remote.js";
import { state } from "./state.js";
import { clearError, setState, showError } from "./status.js";
import { stopStream } from "./stream.js";

/** @param {File|undefined} file */
function chooseFile(file) {
  if (!file) return;
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(file);
  ui.thumb.src = state.objectUrl;
  ui.thumb.hidden = false;
  ui.drop.querySelector(".drop-text").textContent = `${file.name} · ${formatBytes(file.size)}`;
}

async function onUpload(ev) {
  ev.preventDefault();
  clearError();
  const file = ui.file.files && ui.file.files[0];
  if (!file) {
    showError("Choose an image to encode first (drop it on the box or click it).");
    return;
  }
  if (!state.config) {
    showError("The server's configuration has not loaded; reload the page.");
    return;
  }
  if (file.size > state.config.limits.max_upload_bytes) {
    showError(`${file.name} is ${formatBytes(file.size)}; uploads are limited to ${formatBytes(state.config.limits.max_upload_bytes)}.`);
    return;
  }
  let options;
  try {
    options = formOptions();
  } catch (e) {
    showError(`Encoding options: ${reason(e)}`);
    if (e instanceof OptionError) {
      e.control.setAttribute("aria-invalid", "true");
      e.control.focus();
    }
    return;
  }
  const body = new FormData();
  body.append("file", file, file.name);
  for (const [k, v] of Object.entries(options)) body.append(k, v);
  const gen = ++state.generation;
  stopStream("new upload");
  setState("uploading");
  ui.upload.disabled = true;
  try {
    const { data: job } = await fetchJSON("/api/jobs", { method: "POST", body });
    if (gen !== state.generation) return;
    location.hash = `image=${job.id}`; // hashchange is ignored for the id we are already showing
    await openImage(job.id, gen, job);
  } catch (e) {
    if (gen !== state.generation) return;
    let msg = `Upload failed: ${reason(e)}`;
    if (e.status === 429) {
      const after = e.response.headers.get("Retry-After");
      if (after) msg += ` — try again in about ${after} s.`;
    }
    showError(msg);
  } finally {
    ui.upload.disabled = false;
  }
}

/** Wire the file box (click or drop) and the form's submit button. */
export function wireUpload() {
  ui.form.addEventListener("submit", (ev) => {
    onUpload(ev).catch((e) => showError(`Upload failed: ${reason(e)}`));
  });
  ui.file.addEventListener("change", () => chooseFile(ui.file.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    ui.drop.addEventListener(type, (ev) => {
      ev.preventDefault();
      ui.drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) ui.drop.addEventListener(type, () => ui.drop.classList.remove("over"));
  ui.drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const files = ev.dataTransfer && ev.dataTransfer.files;
    if (!files || !files.length) return;
    const dt = new DataTransfer();
    dt.items.add(files[0]);
    ui.file.files = dt.files;
    chooseFile(files[0]);
  });
}
