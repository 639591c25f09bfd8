// Model name -> the forward pass the decoder runs for it (codec/arch.py's registry).

import { SpnrError } from "../errors.js";
import { show } from "../values.js";
import { SirenArch } from "./siren.js";
import { SpinrArch } from "./spinr.js";

const ARCHS = { siren: SirenArch, spinr: SpinrArch };

/** Model names this decoder can run. */
export const SUPPORTED_MODELS = Object.freeze(Object.keys(ARCHS));

/**
 * The arch for a parsed header; throws when this decoder does not know the model.
 * @param {import("../header.js").StreamHeader} header
 */
export function archFor(header) {
  const Arch = ARCHS[header.model];
  if (!Arch) {
    throw new SpnrError(`model ${show(header.model)} is not supported by this decoder; supported: ${SUPPORTED_MODELS.join(", ")}`);
  }
  return new Arch(header);
}
