// The channel sliders: the server-side network simulator's loss, burst, bandwidth, bit errors, seed.

import { ui } from "./dom.js";

/** Bandwidth slider positions, kbit/s (0: unlimited). */
const BANDWIDTHS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
/** Bit-error-rate slider positions. */
const BERS = [0, 1e-5, 1e-4, 3e-4, 1e-3];

/** The channel object for the start message, from the sliders. */
export function channelFromSliders() {
  return {
    loss: Number(ui.loss.value),
    burst: Number(ui.burst.value),
    ber: BERS[Number(ui.ber.value)],
    bandwidth_kbps: BANDWIDTHS[Number(ui.bw.value)],
    seed: Math.max(0, Math.floor(Number(ui.seed.value) || 0)),
  };
}

export function showSliderValues() {
  const loss = Number(ui.loss.value);
  // netsim needs burst >= loss / (1 - loss) for a bursty (Gilbert-Elliott) channel; 1 means independent.
  const minBurst = loss / (1 - loss);
  if (Number(ui.burst.value) > 1 && Number(ui.burst.value) < minBurst) {
    ui.burst.value = String(Math.min(Number(ui.burst.max), Math.ceil(minBurst * 2) / 2));
  }
  ui.lossOut.textContent = `${Math.round(loss * 100)}%`;
  ui.burstOut.textContent = Number(ui.burst.value) <= 1 ? "1 (independent)" : `${ui.burst.value} packets`;
  const bw = BANDWIDTHS[Number(ui.bw.value)];
  ui.bwOut.textContent = bw ? `${bw} kbit/s` : "unlimited";
  const ber = BERS[Number(ui.ber.value)];
  ui.berOut.textContent = ber ? ber.toExponential(0) : "none";
  ui.loss.setAttribute("aria-valuetext", ui.lossOut.textContent);
  ui.burst.setAttribute("aria-valuetext", ui.burstOut.textContent);
  ui.bw.setAttribute("aria-valuetext", ui.bwOut.textContent);
  ui.ber.setAttribute("aria-valuetext", ui.berOut.textContent);
}
