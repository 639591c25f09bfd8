// The error type of the browser decoder (codec/errors.py's BitstreamError, for the browser).

/** Every error this library raises on purpose; the message is meant for a user. */
export class SpnrError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "SpnrError";
  }
}

/**
 * A user-facing message: our own errors as they are, anything unexpected as "Name: message".
 * @param {unknown} e
 */
export function errorText(e) {
  if (e instanceof SpnrError) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
