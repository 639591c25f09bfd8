// Positional encoding of the coordinates for SIREN/SPINR (codec/posenc.py), in float32 like numpy:
// (x, y, sin(f_0 x), sin(f_0 y), cos(f_0 x), cos(f_0 y), ..., cos(f_{L-1} y)), f_k = scale^k * pi.

/** Largest frequency count a stream may use (codec/posenc.py MAX_FREQUENCIES). */
export const MAX_PE_FREQUENCIES = 32;

/**
 * The float32 angular frequencies: powers by repeated float64 product (exact IEEE, as in Python;
 * Math.pow may differ in the last bit), times pi, rounded once.
 * @param {number} L
 * @param {number} scale
 * @returns {Float32Array}
 */
export function peFrequencies(L, scale) {
  const out = new Float32Array(L);
  let power = 1;
  for (let k = 0; k < L; k++) {
    out[k] = power * Math.PI;
    power *= scale;
  }
  return out;
}

/**
 * Encode n rows of (x, y) float32 coordinates into n x (2 + 4L) float32 features.
 * @param {Float32Array} xy  n x 2
 * @param {number} n
 * @param {Float32Array} freqs
 * @returns {Float32Array}
 */
export function encodeCoords(xy, n, freqs) {
  const L = freqs.length;
  const d = 2 + 4 * L;
  const out = new Float32Array(n * d);
  const fr = Math.fround;
  for (let p = 0; p < n; p++) {
    const x = xy[2 * p];
    const y = xy[2 * p + 1];
    const o = p * d;
    out[o] = x;
    out[o + 1] = y;
    for (let k = 0; k < L; k++) {
      const f = freqs[k];
      const ax = fr(x * f); // the float64 product of two float32 values is exact: one rounding
      const ay = fr(y * f);
      const b = o + 2 + 4 * k;
      out[b] = Math.sin(ax);
      out[b + 1] = Math.sin(ay);
      out[b + 2] = Math.cos(ax);
      out[b + 3] = Math.cos(ay);
    }
  }
  return out;
}
