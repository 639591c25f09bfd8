// Where the page is (the root's data-state: loading | idle | uploading | training | connecting |
// streaming | done | error, which tests and CSS follow), the error banner and the notice line.
//
// data-state is "error" exactly while the error banner shows. Underneath it the page keeps the state
// of its latest action, which comes back when the error is dismissed or a new action starts (each
// clears the last error), and an action that completes (a stream that ends well) clears an error that
// another action left, so the page never stays "error" after something later succeeded.

import { ui } from "./dom.js";

/** The latest action's state, shown whenever no error is. */
let activity = "loading";

/** @param {string} s  the latest action's state */
export function setState(s) {
  activity = s;
  ui.app.dataset.state = ui.error.hidden ? s : "error";
}

/** An action completed: whatever error is showing belongs to something earlier. @param {string} s */
export function finish(s) {
  clearError();
  setState(s);
}

/**
 * Show a problem in the page (never only in the console).
 * @param {string} message
 */
export function showError(message) {
  ui.errorText.textContent = message;
  ui.error.hidden = false;
  ui.app.dataset.state = "error";
}

export function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
  ui.app.dataset.state = activity;
}

/** @param {string} message  empty to hide */
export function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = !message;
}
