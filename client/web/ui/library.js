// The list of encoded images on the server (GET /api/jobs), newest first.

import { ui } from "./dom.js";
import { formatBytes, formatPsnr, reason } from "./format.js";
import { fetchJSON } from "./remote.js";
import { showError } from "./status.js";

export async function loadLibrary(selectId = null) {
  try {
    const { data } = await fetchJSON("/api/jobs");
    const options = [new Option(data.jobs.length ? "choose…" : "no images yet", "")];
    for (const job of data.jobs) {
      const size = job.image ? `${job.image.width}×${job.image.height}` : "";
      const extra = job.state === "done" && job.result
        ? `${formatBytes(job.result.bytes)}, ${formatPsnr(job.result.psnr)}`
        : job.state;
      const opt = new Option(`${job.name} · ${size} · ${extra}`, job.id);
      opt.disabled = !["done", "queued", "running"].includes(job.state);
      options.push(opt);
    }
    ui.library.replaceChildren(...options);
    if (selectId) ui.library.value = selectId;
  } catch (e) {
    ui.library.replaceChildren(new Option("could not load the list", ""));
    showError(`Listing images failed: ${reason(e)}`);
  }
}
