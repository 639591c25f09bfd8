// Pixel-centre coordinates and the network output's conversion to pixels (codec/coords.py). Each
// axis is normalised to [-1, 1] on its own, so any output size samples the same function.

/**
 * Pixel-centre coordinates of one axis, normalised to [-1, 1]: (2j + 1) / n - 1, as float32.
 * @param {number} n
 * @returns {Float32Array}
 */
export function axisCoords(n) {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = (2 * j + 1) / n - 1;
  return out;
}

/** Coordinates [x, y] of pixels start..start+count of a w x h image, row-major. */
export function coordChunk(xs, ys, w, start, count) {
  const out = new Float32Array(count * 2);
  for (let p = 0; p < count; p++) {
    const q = start + p;
    const i = (q / w) | 0;
    out[2 * p] = xs[q - i * w];
    out[2 * p + 1] = ys[i];
  }
  return out;
}

/**
 * Network output in [-1, 1] -> RGBA8: rgb = clip((y + 1) / 2, 0, 1), round half to even.
 * @param {Float32Array} y       n x stride, rgb in the first 3 of each row
 * @param {number} n
 * @param {number} stride
 * @param {Uint8ClampedArray} [out]  n x 4
 * @param {number} [at=0]            first pixel to write
 * @returns {Uint8ClampedArray}
 */
export function toRGBA(y, n, stride = 3, out = new Uint8ClampedArray(n * 4), at = 0) {
  const fr = Math.fround;
  for (let p = 0; p < n; p++) {
    const o = (at + p) * 4;
    for (let c = 0; c < 3; c++) {
      let v = fr(fr(y[p * stride + c] + 1) * 0.5);
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      // Uint8ClampedArray stores with round-half-to-even, like numpy's rint.
      out[o + c] = fr(v * 255);
    }
    out[o + 3] = 255;
  }
  return out;
}
