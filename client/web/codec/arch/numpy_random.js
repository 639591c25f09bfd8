// numpy's Generator(PCG64(seed)).standard_normal, bit for bit where it matters (codec/fourier_features.py).
//
// FourierNet's projection B never travels: the header holds mapping_size, sigma and b_seed, and every
// decoder regenerates B = float32(standard_normal((m, 2)) * sigma) with numpy's generator. This is
// that generator, written from its published algorithms:
//   - SeedSequence (O'Neill's hash mixing of the seed's 32-bit words into a 4-word pool, then 8 words
//     drawn from it) gives PCG64 its 128-bit state and increment;
//   - PCG64 is the 128-bit LCG (multiplier 0x2360ed051fc65da44385df649fccf645) with the XSL-RR output;
//   - standard_normal is Marsaglia and Tsang's ziggurat with 256 boxes (r = 3.6541528853610088),
//     52 bits of each 64-bit draw for the magnitude, one for the sign, eight for the box.
// The ziggurat tables are built here in double precision; numpy's were generated elsewhere and may
// differ in the last bits, which can move a double draw by a few ulps but not the float32 B: tests
// compare B with numpy's for many seeds, sigmas and sizes, bit for bit (tests/test_browser_archs.py).

const MASK32 = 0xffffffffn;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const PCG_MULT = (2549297995355413924n << 64n) + 4865540595714422341n;

// SeedSequence's hash constants (numpy/random/bit_generator.pyx).
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

const u32 = (x) => x >>> 0;

/** The seed's 32-bit words, least significant first (0 is one word). */
function seedWords(seed) {
  let s = BigInt(seed);
  const words = [];
  do {
    words.push(Number(s & MASK32));
    s >>= 32n;
  } while (s > 0n);
  return words;
}

/** SeedSequence(seed).generate_state(4, uint64) as four BigInts. */
export function seedState(seed) {
  const entropy = seedWords(seed);
  let hashConst = INIT_A;
  const hashmix = (value) => {
    let v = u32(value ^ hashConst);
    hashConst = u32(Math.imul(hashConst, MULT_A));
    v = u32(Math.imul(v, hashConst));
    return u32(v ^ (v >>> 16));
  };
  const mix = (x, y) => {
    const r = u32(Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y));
    return u32(r ^ (r >>> 16));
  };
  const pool = [];
  for (let i = 0; i < POOL_SIZE; i++) pool.push(hashmix(i < entropy.length ? entropy[i] : 0));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
  }
  let hb = INIT_B;
  const words = [];
  for (let i = 0; i < 8; i++) {
    let v = u32(pool[i % POOL_SIZE] ^ hb);
    hb = u32(Math.imul(hb, MULT_B));
    v = u32(Math.imul(v, hb));
    words.push(u32(v ^ (v >>> 16)));
  }
  const out = [];
  for (let i = 0; i < 4; i++) out.push(BigInt(words[2 * i]) | (BigInt(words[2 * i + 1]) << 32n));
  return out;
}

/** numpy's PCG64 (pcg_setseq_128_xsl_rr_64) seeded through SeedSequence. */
export class Pcg64 {
  /** @param {number|bigint} seed  a non-negative integer */
  constructor(seed) {
    const [s0, s1, i0, i1] = seedState(seed);
    this.inc = (((i0 << 64n) | i1) << 1n | 1n) & MASK128;
    this.state = 0n;
    this._step();
    this.state = (this.state + ((s0 << 64n) | s1)) & MASK128;
    this._step();
  }

  _step() {
    this.state = (this.state * PCG_MULT + this.inc) & MASK128;
  }

  /** @returns {bigint} the next 64-bit output */
  next64() {
    this._step();
    const s = this.state;
    const x = ((s >> 64n) ^ s) & MASK64;
    const rot = s >> 122n;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & MASK64;
  }

  /** @returns {number} uniform in [0, 1) with 53 random bits */
  nextDouble() {
    return Number(this.next64() >> 11n) * (1.0 / 9007199254740992.0);
  }
}

const ZIGGURAT_R = 3.6541528853610088;
/** Area of each box: r f(r) + the tail beyond r, f(x) = exp(-x^2 / 2). */
const ZIGGURAT_V = 0.0049286732339746545;
const M52 = 2 ** 52;

/** The 256-box ziggurat tables (ki: 52-bit acceptance bounds, wi: scales, fi: f at the box edges). */
function zigguratTables() {
  const ki = new Float64Array(256);
  const wi = new Float64Array(256);
  const fi = new Float64Array(256);
  let dn = ZIGGURAT_R;
  let tn = dn;
  const q = ZIGGURAT_V / Math.exp(-0.5 * dn * dn);
  ki[0] = Math.floor((dn / q) * M52);
  ki[1] = 0;
  wi[0] = q / M52;
  wi[255] = dn / M52;
  fi[0] = 1;
  fi[255] = Math.exp(-0.5 * dn * dn);
  for (let i = 254; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(ZIGGURAT_V / dn + Math.exp(-0.5 * dn * dn)));
    ki[i + 1] = Math.floor((dn / tn) * M52);
    tn = dn;
    fi[i] = Math.exp(-0.5 * dn * dn);
    wi[i] = dn / M52;
  }
  return { ki, wi, fi };
}

let tables = null;

/** One standard normal draw (numpy's random_standard_normal). @param {Pcg64} gen */
export function standardNormal(gen) {
  tables = tables || zigguratTables();
  const { ki, wi, fi } = tables;
  for (;;) {
    let r = gen.next64();
    const idx = Number(r & 0xffn);
    r >>= 8n;
    const negative = (r & 1n) === 1n;
    const rabs = Number((r >> 1n) & 0x000fffffffffffffn);
    let x = rabs * wi[idx];
    if (negative) x = -x;
    if (rabs < ki[idx]) return x; // 99.3% of the draws
    if (idx === 0) {
      for (;;) {
        const xx = (-1 / ZIGGURAT_R) * Math.log1p(-gen.nextDouble());
        const yy = -Math.log1p(-gen.nextDouble());
        if (yy + yy > xx * xx) return Math.floor(rabs / 256) % 2 === 1 ? -(ZIGGURAT_R + xx) : ZIGGURAT_R + xx;
      }
    }
    if ((fi[idx - 1] - fi[idx]) * gen.nextDouble() + fi[idx] < Math.exp(-0.5 * x * x)) return x;
  }
}

/**
 * FourierNet's B: float32(Generator(PCG64(seed)).standard_normal((m, 2)) * sigma), row-major (m, 2).
 * @param {number} mappingSize
 * @param {number} sigma
 * @param {number} seed
 * @returns {Float32Array}
 */
export function bMatrix(mappingSize, sigma, seed) {
  const gen = new Pcg64(seed);
  const out = new Float32Array(mappingSize * 2);
  for (let i = 0; i < out.length; i++) out[i] = standardNormal(gen) * sigma;
  return out;
}
