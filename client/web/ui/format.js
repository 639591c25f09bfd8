// Numbers and errors as the page shows them.

import { SpnrError } from "../spnr.js";

/** @param {number} n */
export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 2 : 1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** @param {number|null|undefined} db */
export function formatPsnr(db) {
  return typeof db === "number" && Number.isFinite(db) ? `${db.toFixed(2)} dB` : "–";
}

/**
 * A user-facing reason: the message of our own errors, "Name: message" for anything unexpected.
 * @param {unknown} e
 */
export function reason(e) {
  if (e instanceof SpnrError || (e instanceof Error && e.name === "Error")) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
