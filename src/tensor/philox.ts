// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a counter-based
// generator, a pure function of a 128-bit counter and a 64-bit key. Element i of a draw depends on (key, i)
// only, so a draw of n numbers can be cut into any number of pieces and computed in any order (threads of the
// native core, CUDA blocks) with the same result, and a sampling request's k-th uniform depends on its seed
// and k only, never on its batch neighbours. native/cpu/random.cpp and native/cuda/philox.cuh compute the same
// function; this file is the definition the reference backend and the CPU sampler use.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** The high 32 bits of the 64-bit product of two uint32 (split in 16-bit halves so every product is exact). */
function mulHi(a: number, b: number): number {
  const ah = a >>> 16, al = a & 0xffff, bh = b >>> 16, bl = b & 0xffff;
  const lh = al * bh, hl = ah * bl;
  const mid = ((al * bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(mid / 65536)) >>> 0;
}

/** The four uint32 words of Philox4x32-10 at counter (c0, c1, c2, c3) under key (k0, k1), written into out. */
export function philox(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): Uint32Array {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, x2 = c2 >>> 0, x3 = c3 >>> 0;
  let key0 = k0 >>> 0, key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0, x0), lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulHi(M1, x2), lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0; out[1] = x1; out[2] = x2; out[3] = x3;
  return out;
}

const TWO_POW_26 = 67108864;
const TWO_POW_MINUS_53 = 1 / 9007199254740992;

/** A uniform double in [0, 1) from two words (53 bits: 27 of the first, 26 of the second). */
export function uniform53(hi: number, lo: number): number {
  return ((hi >>> 5) * TWO_POW_26 + (lo >>> 6)) * TWO_POW_MINUS_53;
}

/** A 64-bit key from a seed: a non-negative integer below 2^53 (a request's seed, or two words of an Rng). */
export function philoxKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`a Philox seed must be a non-negative safe integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

const scratch = new Uint32Array(4);

/**
 * The uniform in [0, 1) that a sampling stream draws at `step` (its step-th token): Philox at counter
 * (step, 0, 0, 0) under the seed's key. The CUDA sampling kernel draws the same number.
 */
export function streamUniform(seed: number, step: number): number {
  const [k0, k1] = philoxKey(seed);
  const x = philox(step, 0, 0, 0, k0, k1, scratch);
  return uniform53(x[0], x[1]);
}

/**
 * Fills x[0, n) with normal draws of standard deviation `std`: element 2p and 2p + 1 are the Box-Muller pair of
 * Philox at counter (p, p / 2^32, 0, 0) under key (k0, k1), computed in double and rounded once.
 */
export function fillNormal(x: { length: number; [i: number]: number }, n: number, k0: number, k1: number, std: number): void {
  const words = new Uint32Array(4);
  for (let p = 0; 2 * p < n; p++) {
    philox(p, Math.floor(p / 4294967296), 0, 0, k0, k1, words);
    const u1 = uniform53(words[0], words[1]) + TWO_POW_MINUS_53; // (0, 1]: log(0) never happens
    const u2 = uniform53(words[2], words[3]);
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    x[2 * p] = r * Math.cos(theta) * std;
    if (2 * p + 1 < n) x[2 * p + 1] = r * Math.sin(theta) * std;
  }
}
