// The rate-quality ladder: header extension 0x02 (codec/ladder.py; docs/FORMAT.md "Rate-quality ladder").
//
//   version u8 (1) | count varint (= the header's units) | per packet: varint (bytes * 2 + picture) [PSNR u16]
//
// Packet i carries unit i; its PSNR (present when the low bit is set) is the picture's once it and
// every packet before it arrived (1/100 dB; 0xffff: exact); without it the packets so far make no picture.
// Version 2 (a stream with precision refinements) also lists them, in packet-number order:
//
//   version u8 (2) | levels varint (1..15) | count varint (= units) | (levels + 1) * count entries
//
// where unit u at level l is entry l * count + u and its PSNR is that of units 0..u all at level l.

import { SpnrError } from "./errors.js";
import { Reader } from "./varint.js";

export const LADDER_VERSION = 1;
export const REFINED_VERSION = 2;
export const MAX_LEVELS = 15;
export const MAX_PACKET_BYTES = 2 ** 30;
const WHAT = "header extension 0x02 (rate-quality ladder)";

/**
 * @typedef {object} Rung
 * @property {number} unit
 * @property {number} level           refinement level (0: the unit packet)
 * @property {number} bytes           the packet's size on the wire
 * @property {number|null} psnr       dB once packets 0..i arrived; null: no picture yet; Infinity: exact
 * @property {number} cumulativeBytes bytes of packets 0..i
 */

/**
 * Parse the extension's bytes; `units` (when known) must equal the packet count.
 * @param {Uint8Array} data
 * @param {number|null} [units]
 * @returns {Rung[]}
 */
export function parseLadder(data, units = null) {
  const r = new Reader(data, WHAT);
  const version = r.byte("ladder version");
  if (version !== LADDER_VERSION && version !== REFINED_VERSION) {
    throw new SpnrError(
      `${WHAT} has version ${version}; this decoder reads versions ${LADDER_VERSION} and ${REFINED_VERSION}`,
    );
  }
  const levels = version === REFINED_VERSION ? r.uvarintIn(1, MAX_LEVELS, "ladder refinement levels") : 0;
  const count = r.uvarintIn(0, 2 ** 20, "ladder packet count");
  const all = count * (levels + 1);
  if (all > r.left) throw new SpnrError(`${WHAT} lists ${all} packets but holds only ${r.left} more bytes`);
  const rungs = [];
  let total = 0;
  for (let i = 0; i < all; i++) {
    const field = r.uvarintIn(2, 2 * MAX_PACKET_BYTES + 1, `ladder packet ${i} bytes`);
    const bytes = Math.floor(field / 2);
    let psnr = null;
    if (field % 2) {
      const u = r.u16(`ladder packet ${i} PSNR`);
      psnr = u === 0xffff ? Infinity : u / 100;
    }
    total += bytes;
    rungs.push({ unit: i % count, level: Math.floor(i / count), bytes, psnr, cumulativeBytes: total });
  }
  if (r.left) throw new SpnrError(`${WHAT} has ${r.left} bytes after its ${all} packets`);
  if (units !== null) checkLadder(count, units); // last, as codec/ladder.py does
  return rungs;
}

/** Refinement levels a parsed ladder lists (0: unit packets only). @param {Rung[]} rungs */
export function ladderLevels(rungs) {
  return rungs.reduce((m, r) => Math.max(m, r.level), 0);
}

/** The ladder must list exactly the header's units (checked once the arch has derived them). */
export function checkLadder(count, units) {
  if (count !== units) throw new SpnrError(`${WHAT} lists ${count} packets, the header has ${units} units`);
}
