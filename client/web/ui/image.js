// One image: the id in the URL hash, its training, its header, then its stream.

import { ui } from "./dom.js";
import { reason } from "./format.js";
import { loadLibrary } from "./library.js";
import { fetchJSON } from "./remote.js";
import { state } from "./state.js";
import { clearError, showError } from "./status.js";
import { startStream, stopStream } from "./stream.js";
import { loadInit } from "./theta0.js";
import { waitForTraining } from "./training.js";
import { resetView } from "./view.js";

/** The image id in the URL (#image=ID, or a bare #ID). */
function hashId() {
  const h = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (!h) return null;
  const params = new URLSearchParams(h);
  return params.get("image") || (h.includes("=") ? null : h);
}

/** @param {boolean} [force]  reload even if it is the image already shown */
export function loadFromHash(force = false) {
  const id = hashId();
  if (!id || (!force && id === state.imageId)) return;
  clearError();
  const gen = ++state.generation;
  openImage(id, gen).catch((e) => {
    if (gen === state.generation) showError(reason(e));
  });
}

/**
 * Show image `id`: wait for its job, then stream it.
 * @param {string} id
 * @param {number} gen
 * @param {object} [job]  a job object already fetched
 */
export async function openImage(id, gen, job = undefined) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    throw new Error(`"${id}" is not an image id (expected letters, digits, - or _)`);
  }
  stopStream("another image");
  state.imageId = id;
  state.header = null;
  delete ui.app.dataset.viewing;
  resetView();
  if (!job) {
    try {
      job = (await fetchJSON(`/api/jobs/${id}`)).data;
    } catch (e) {
      state.imageId = null;
      throw e.status === 404 ? new Error(`No image with id "${id}" on this server.`) : e;
    }
  }
  if (gen !== state.generation) return;
  job = await waitForTraining(job, gen);
  if (!job || gen !== state.generation) return;
  const { data: header } = await fetchJSON(`/api/images/${id}/header`);
  if (gen !== state.generation) return;
  state.init = header.init ? await loadInit(header.init) : null; // a residual stream adds to θ0
  if (gen !== state.generation) return;
  state.header = header;
  ui.app.dataset.viewing = "true"; // a phone shows the picture first from now on (style.css)
  const aspect = `${header.image.width} / ${header.image.height}`;
  for (const frame of document.querySelectorAll(".frame")) frame.style.aspectRatio = aspect;
  ui.viewCaption.textContent = `spinr · ${job.name} · ${header.model}, ${header.packets.length - 1} layer packets`;
  loadLibrary(id);
  startStream(false);
}

/** Open the image picked in the library list. */
export function onLibraryLoad() {
  const id = ui.library.value;
  if (!id) {
    showError("Pick an image from the list first.");
    return;
  }
  location.hash = `image=${id}`;
  loadFromHash(true);
}
