// What changes while the page runs, in one object so the flow is easy to follow.

/** The page's mutable state; modules read and write its fields. */
export const state = {
  /** @type {object|null} GET /api/config */
  config: null,
  /** @type {import("../gl.js").WebGLAccelerator|null} */
  accelerator: null,
  acceleratorReason: null,
  /** @type {string|null} image (job) id being shown */
  imageId: null,
  /** @type {object|null} GET /api/images/{id}/header */
  header: null,
  /** @type {import("../codec/theta0.js").InitFile|null} the θ0 of a residual stream (ui/theta0.js) */
  init: null,
  /** @type {import("./stream.js").Stream|null} */
  stream: null,
  /** bumped for every new image/upload so stale async work drops its result */
  generation: 0,
  zoom: 1,
  sliderTimer: 0,
  objectUrl: null,
  jpegUrl: null,
};
