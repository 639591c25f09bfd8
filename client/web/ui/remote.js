// Talking to the server's HTTP API (docs/API.md): JSON answers, errors carrying the server's detail.

import { reason } from "./format.js";

/**
 * Fetch JSON; a non-2xx answer throws an Error carrying the server's `detail`.
 * @param {string} url
 * @param {RequestInit} [init]
 * @returns {Promise<{data: any, response: Response}>}
 */
export async function fetchJSON(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new Error(`cannot reach the server (${url}): ${reason(e)}`);
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok) throw new Error(`${url} answered something that is not JSON`);
    }
  }
  if (!response.ok) {
    const detail = data && data.detail !== undefined ? detailText(data.detail) : text.slice(0, 200) || response.statusText;
    const err = new Error(`HTTP ${response.status}: ${detail}`);
    err.status = response.status;
    err.response = response;
    throw err;
  }
  return { data, response };
}

/** FastAPI details are strings or lists of {loc, msg}. */
export function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d && d.msg ? `${(d.loc || []).join(".")}: ${d.msg}` : JSON.stringify(d))).join("; ");
  }
  return JSON.stringify(detail);
}
