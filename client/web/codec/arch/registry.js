// Model name -> the forward pass the decoder runs for it (codec/arch/__init__.py's registry): every
// family the Python codec registers. SIREN and SPINR are sine layers the WebGL2 accelerator runs; the
// study's zoo (fourier, mfn, wire, diner) has steps of its own, which JavaScript runs.

import { SpnrError } from "../errors.js";
import { show } from "../values.js";
import { DinerArch } from "./diner.js";
import { FourierArch } from "./fourier.js";
import { MfnArch } from "./mfn.js";
import { SirenArch } from "./siren.js";
import { SpinrArch } from "./spinr.js";
import { WireArch } from "./wire.js";

const ARCHS = { spinr: SpinrArch, siren: SirenArch, fourier: FourierArch, mfn: MfnArch, wire: WireArch, diner: DinerArch };

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
