// Where the page is (the root's data-state: loading | idle | uploading | training | connecting |
// streaming | done | error, which tests and CSS follow), the error banner and the notice line.

import { ui } from "./dom.js";

/** @param {string} s */
export function setState(s) {
  ui.app.dataset.state = s;
}

/**
 * Show a problem in the page (never only in the console).
 * @param {string} message
 */
export function showError(message) {
  ui.errorText.textContent = message;
  ui.error.hidden = false;
  setState("error");
}

export function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

/** @param {string} message  empty to hide */
export function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = !message;
}
