// The rate-quality ladder: header extension 0x02 (codec/ladder.py; docs/FORMAT.md "Rate-quality ladder").
//
//   version u8 (1) | count varint (= the header's units) | per packet: varint (bytes * 2 + picture) [PSNR u16]
//
// Packet i carries unit i; its PSNR (present when the low bit is set) is the picture's once it and
// every packet before it arrived (1/100 dB; 0xffff: exact); without it the packets so far make no picture.

import { SpnrError } from "./errors.js";
import { Reader } from "./varint.js";

export const LADDER_VERSION = 1;
export const MAX_PACKET_BYTES = 2 ** 30;
const WHAT = "header extension 0x02 (rate-quality ladder)";

/**
 * @typedef {object} Rung
 * @property {number} unit
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
  if (version !== LADDER_VERSION) {
    throw new SpnrError(`${WHAT} has version ${version}; this decoder reads version ${LADDER_VERSION}`);
  }
  const count = r.uvarintIn(0, 2 ** 20, "ladder packet count");
  if (count > r.left) throw new SpnrError(`${WHAT} lists ${count} packets but holds only ${r.left} more bytes`);
  const rungs = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const field = r.uvarintIn(2, 2 * MAX_PACKET_BYTES + 1, `ladder packet ${i} bytes`);
    const bytes = Math.floor(field / 2);
    let psnr = null;
    if (field % 2) {
      const u = r.u16(`ladder packet ${i} PSNR`);
      psnr = u === 0xffff ? Infinity : u / 100;
    }
    total += bytes;
    rungs.push({ unit: i, bytes, psnr, cumulativeBytes: total });
  }
  if (r.left) throw new SpnrError(`${WHAT} has ${r.left} bytes after its ${count} packets`);
  if (units !== null) checkLadder(count, units); // last, as codec/ladder.py does
  return rungs;
}

/** The ladder must list exactly the header's units (checked once the arch has derived them). */
export function checkLadder(count, units) {
  if (count !== units) throw new SpnrError(`${WHAT} lists ${count} packets, the header has ${units} units`);
}
