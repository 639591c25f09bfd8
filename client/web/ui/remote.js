// Talking to the server's HTTP API (docs/API.md): JSON answers, errors carrying the server's detail.

import { reason } from "./format.js";

const TOKEN_KEY = "spinr-token";

/**
 * The server's token (spinr serve --token), if it needs one: taken from the page address's
 * `#token=...` (then removed from the address bar and history) or from this tab's storage.
 * @returns {string}
 */
export function token() {
  const params = new URLSearchParams(location.hash.slice(1));
  const given = params.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** Subprotocols for a stream's WebSocket: the token travels as one (a browser cannot set headers). */
export function streamProtocols() {
  const t = token();
  return t ? [`spinr-token.${t}`] : [];
}

/**
 * Fetch JSON; a non-2xx answer throws an Error carrying the server's `detail`. The token goes along
 * when there is one; a 401 asks for it once and tries again.
 * @param {string} url
 * @param {RequestInit} [init]
 * @param {boolean} [asked] the token was just asked for
 * @returns {Promise<{data: any, response: Response}>}
 */
export async function fetchJSON(url, init, asked = false) {
  let response;
  const t = token();
  const headers = t ? { ...((init && init.headers) || {}), Authorization: `Bearer ${t}` } : init && init.headers;
  try {
    response = await fetch(url, { ...(init || {}), headers });
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
  if (response.status === 401 && !asked) {
    const given = window.prompt("This server needs its token (spinr serve --token):");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given.trim());
      return fetchJSON(url, init, true);
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
