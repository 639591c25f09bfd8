// Waiting for a training job: polling with backoff, the progress bar, stage, step and PSNR.

import { ui } from "./dom.js";
import { formatBytes, formatPsnr } from "./format.js";
import { fetchJSON } from "./remote.js";
import { state } from "./state.js";
import { setState } from "./status.js";

/** Polling of a training job: first wait, growth per poll, longest wait (ms). */
const POLL_FIRST_MS = 150;
const POLL_GROWTH = 1.4;
const POLL_MAX_MS = 2000;

/**
 * The job's plan as the server decided it (docs/API.md, "Plan"): the network, the target, the
 * training-time estimate the worker measured on its device (once it starts) and what was changed.
 * @param {object} job
 */
export function planText(job) {
  const plan = job.plan;
  if (!plan) return "";
  const parts = [plan.network];
  if (plan.target_bytes) parts.push(`target ${formatBytes(plan.target_bytes)} (${plan.target_bpp} bpp)`);
  if (plan.batch_pixels) parts.push(`${plan.batch_pixels} pixels per step`);
  parts.push(
    typeof plan.estimated_seconds === "number" ? `estimated ${plan.estimated_seconds.toFixed(1)} s` : "estimate when it starts",
  );
  return [parts.join(" · "), ...(plan.notes || [])].join(". ");
}

/**
 * The label above the bar: queued, training (with its share done), or quantizing (training is done;
 * the encoder is meeting the rate target, which the bar cannot measure).
 * @param {object} job
 * @param {number} p progress 0..1
 */
export function trainLabel(job, p) {
  if (job.state === "queued") return `Queued: ${job.name}`;
  if (job.phase === "quantizing") return `Quantizing ${job.name} to its target size…`;
  return `Training ${job.name}: ${Math.round(p * 100)}%`;
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Poll a job until it is done (with backoff), showing its progress.
 * @returns {Promise<object|null>} the finished job, or null when superseded
 */
export async function waitForTraining(job, gen) {
  let wait = POLL_FIRST_MS;
  let lastProgress = -1;
  while (job.state === "queued" || job.state === "running") {
    setState("training");
    ui.training.hidden = false;
    const p = Math.max(0, Math.min(1, job.progress || 0));
    ui.trainProgress.value = p;
    ui.trainLabel.textContent = trainLabel(job, p);
    const parts = [];
    if (job.stages) parts.push(`stage ${Math.min(job.stage + 1, job.stages)}/${job.stages}`);
    if (job.steps) parts.push(`step ${job.step}/${job.steps}`);
    parts.push(`PSNR ${formatPsnr(job.psnr)}`);
    ui.trainDetail.textContent = parts.join(" · ");
    ui.trainPlan.textContent = planText(job);
    wait = p !== lastProgress ? POLL_FIRST_MS : Math.min(POLL_MAX_MS, wait * POLL_GROWTH);
    lastProgress = p;
    await sleep(wait);
    if (gen !== state.generation) return null;
    job = (await fetchJSON(`/api/jobs/${job.id}`)).data;
    if (gen !== state.generation) return null;
  }
  if (job.state !== "done") {
    ui.training.hidden = true;
    throw new Error(`Image ${job.id} (${job.name}) has no bitstream: its job is ${job.state}${job.error ? ` — ${job.error}` : ""}.`);
  }
  ui.trainProgress.value = 1;
  ui.trainPlan.textContent = planText(job);
  ui.trainLabel.textContent = `Trained ${job.name}`;
  ui.trainDetail.textContent = job.result
    ? `${formatBytes(job.result.bytes)} · ${job.result.bpp.toFixed(3)} bpp · PSNR ${formatPsnr(job.result.psnr)} · ${job.result.seconds ? job.result.seconds.toFixed(1) + " s" : ""}`
    : "";
  return job;
}
