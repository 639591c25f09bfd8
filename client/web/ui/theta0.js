// A residual stream's θ0 (header extension 0x83): fetched once by hash from the server
// (GET /api/inits/{hash}.spnri), checked (theta0.js), then given to every decoder of the stream.

import { parseInit } from "../spnr.js";
import { token } from "./remote.js";

/** @type {Map<string, import("../codec/theta0.js").InitFile>} */
const loaded = new Map();

/**
 * The θ0 named `hash` (16 hex digits), from this page's cache or the server.
 * @param {string} hash
 */
export async function loadInit(hash) {
  if (loaded.has(hash)) return loaded.get(hash);
  const url = `/api/inits/${hash}.spnri`;
  const t = token();
  let response;
  try {
    response = await fetch(url, t ? { headers: { Authorization: `Bearer ${t}` } } : undefined);
  } catch (e) {
    throw new Error(`cannot fetch θ0 ${hash} from the server (${url}): ${e}`);
  }
  if (!response.ok) throw new Error(`this stream needs θ0 ${hash}, and the server answered ${response.status} for ${url}`);
  const init = parseInit(new Uint8Array(await response.arrayBuffer()), hash);
  loaded.set(hash, init);
  return init;
}
