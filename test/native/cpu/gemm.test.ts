// r1_matmul (native/cpu/gemm.cpp) against a float64 triple loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeBackend, nativeThreads, setNativeThreads } from '../../../src/tensor/backends/native.ts';

// The C function itself, through the native backend's binding (flags as the C ints, beta 0 or 1).
const { matmul } = nativeBackend().kernels;
const r1Matmul = (a: Float32Array, b: Float32Array, c: Float32Array, batch: number, m: number, n: number, k: number,
  transA: number, transB: number, strideA: number, strideB: number, strideC: number, beta: number): void =>
  matmul(a, b, c, batch, m, n, k, transA !== 0, transB !== 0, strideA, strideB, strideC, beta as 0 | 1);

// Deterministic inputs (xorshift32), uniform in [-1, 1).
function randomArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

interface Case {
  batch?: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  strideA?: number; // defaults: packed matrices back to back; 0 broadcasts
  strideB?: number;
  strideC?: number;
  beta?: 0 | 1;
}

/**
 * Runs one case and checks every element of C against the float64 product. C starts NaN-filled for beta 0
 * (r1.h: C may hold garbage then) and random for beta 1; elements between batch items (strideC > m n) must
 * keep their value.
 *
 * Tolerance: a float32 sum of k products, in any order and with or without FMA, is within
 * gamma_k |a|^T |b| of the exact dot product, gamma_k = k u / (1 - k u), u = 2^-24 (Higham, Accuracy and
 * Stability of Numerical Algorithms, 2nd ed., eq. 3.5); beta 1 adds one more rounded term, so the bound
 * per element is gamma_{k+1} (sum_p |a_ip b_pj| + |c_ij|). It is rigorous, so a correct kernel never fails,
 * and far below the size of any single product, so a dropped, doubled or misplaced term always fails.
 */
function check(name: string, cs: Case, seed: number): void {
  const { m, n, k, batch = 1, transA = false, transB = false, beta = 0 } = cs;
  const strideA = cs.strideA ?? m * k, strideB = cs.strideB ?? k * n, strideC = cs.strideC ?? m * n;
  const a = randomArray(Math.max(1, (batch - 1) * strideA + m * k), seed);
  const b = randomArray(Math.max(1, (batch - 1) * strideB + k * n), seed * 7 + 1);
  const c = beta === 0 ? new Float32Array((batch - 1) * strideC + m * n).fill(NaN) : randomArray((batch - 1) * strideC + m * n, seed * 13 + 5);
  const cBefore = c.slice();
  r1Matmul(a, b, c, batch, m, n, k, transA ? 1 : 0, transB ? 1 : 0, strideA, strideB, strideC, beta);

  const u = 2 ** -24;
  const gamma = ((k + 1) * u) / (1 - (k + 1) * u);
  const written = new Uint8Array(c.length);
  for (let bi = 0; bi < batch; ++bi) {
    const ao = bi * strideA, bo = bi * strideB, co = bi * strideC;
    for (let i = 0; i < m; ++i) {
      for (let j = 0; j < n; ++j) {
        let exact = 0, magnitude = 0;
        for (let p = 0; p < k; ++p) {
          const av = a[ao + (transA ? p * m + i : i * k + p)];
          const bv = b[bo + (transB ? j * k + p : p * n + j)];
          exact += av * bv;
          magnitude += Math.abs(av * bv);
        }
        const ci = co + i * n + j;
        if (beta === 1) exact += cBefore[ci], magnitude += Math.abs(cBefore[ci]);
        const got = c[ci];
        if (!(Math.abs(got - exact) <= gamma * magnitude)) {
          assert.fail(`${name}: C[${bi}][${i}][${j}] = ${got}, expected ${exact} (tolerance ${gamma * magnitude})`);
        }
        written[ci] = 1;
      }
    }
  }
  for (let i = 0; i < c.length; ++i) {
    if (!written[i]) assert.ok(Object.is(c[i], cBefore[i]), `${name}: element ${i} outside every C_b was changed`);
  }
}

const transposes = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

function label(cs: Case): string {
  const t = `${cs.transA ? 'T' : 'N'}${cs.transB ? 'T' : 'N'}`;
  return `${t} batch=${cs.batch ?? 1} m=${cs.m} n=${cs.n} k=${cs.k} beta=${cs.beta ?? 0}`;
}

test('r1_matmul matches float64 for all transposes, odd edges and block boundaries', () => {
  // Odd sizes around the micro-tile (6 x 16 on AVX2, 8 x 12 NEON, 4 x 8 portable), the blocks (KC 256,
  // MC 144, NC 384 / 4096) and the matrix-vector shapes (m = 1, n = 1).
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1], [3, 17, 65], [17, 3, 127], [65, 127, 3], [127, 65, 17], [6, 16, 256], [7, 33, 300],
    [150, 40, 20], [20, 500, 10], [1, 300, 257], [300, 1, 257], [1, 1, 300], [1, 5, 3], [5, 1, 3],
    [2, 2, 1], [13, 29, 513], [1, 130, 33], [130, 1, 34],
  ];
  let seed = 1;
  for (const [transA, transB] of transposes) {
    for (const [m, n, k] of shapes) {
      for (const beta of [0, 1] as const) {
        const cs = { m, n, k, transA, transB, beta };
        check(label(cs), cs, seed++);
      }
    }
  }
});

test('r1_matmul splits large problems over threads correctly (GEMM and matrix-vector)', () => {
  let seed = 100;
  for (const [transA, transB] of transposes) {
    for (const cs of [
      { m: 200, n: 190, k: 70 }, // taller than wide: split by rows
      { m: 70, n: 230, k: 90 }, // wider than tall: split by columns
      { m: 150, n: 4100, k: 2 }, // crosses the 4096-column NC block
      { m: 1, n: 3001, k: 600 }, // decode matvec, parallel over columns
      { m: 2999, n: 1, k: 500 },
    ]) {
      for (const beta of [0, 1] as const) check(label({ ...cs, transA, transB, beta }), { ...cs, transA, transB, beta }, seed++);
    }
  }
});

test('r1_matmul splits over many threads as a grid of parts, and crosses the 12 x 32 tile\'s blocks', () => {
  // 16 threads (more than this machine may have: the pool runs them anyway) make the grid split parts both
  // ways; the sizes cross the AVX-512 build's blocks (MR 12, NR 32, KC 256, MC 240, NC 384) as well.
  const previous = nativeThreads();
  setNativeThreads(16);
  try {
    let seed = 300;
    for (const [transA, transB] of transposes) {
      for (const cs of [
        { m: 300, n: 130, k: 70 }, // a dW-like shape: 16 parts as a grid
        { m: 241, n: 65, k: 257 }, // one past MC and KC
        { m: 36, n: 400, k: 385 }, // NC of the 12 x 32 tile, two KC blocks
        { m: 12, n: 32, k: 256 },
      ]) {
        for (const beta of [0, 1] as const) check(label({ ...cs, transA, transB, beta }), { ...cs, transA, transB, beta }, seed++);
      }
    }
  } finally {
    setNativeThreads(previous);
  }
});

test('r1_matmul on an odd thread count (3) and on 16, with many KC blocks', () => {
  // 3 threads make uneven grids of parts; k = 4100 crosses 16 KC blocks (on 3 threads only, to keep the float64
  // reference quick; m = 66 keeps X W^T off the few-rows path).
  const previous = nativeThreads();
  let seed = 500;
  try {
    for (const threads of [3, 16]) {
      setNativeThreads(threads);
      for (const [transA, transB] of transposes) {
        const long: Case[] = threads === 3 ? [{ m: !transA && transB ? 66 : 20, n: 250, k: 4100, beta: transB ? 1 : 0 }] : [];
        for (const cs of [{ m: 97, n: 53, k: 300 }, { m: 30, n: 700, k: 100 }, ...long]) {
          const full = { ...cs, transA, transB };
          check(`${label(full)} threads=${threads}`, full, seed++);
        }
      }
    }
  } finally {
    setNativeThreads(previous);
  }
});

test('r1_matmul of a few rows against a Linear weight (X W^T, m <= 64: the decode path) on 1, 2 and 16 threads', () => {
  // m around the token tiles (16 on AVX2, 32 with the 12 x 32 tile) and n around the feature blocks (6 / 12),
  // including n below one block and k = 1; every thread count splits the features differently.
  const previous = nativeThreads();
  let seed = 400;
  try {
    for (const threads of [1, 2, 16]) {
      setNativeThreads(threads);
      for (const [m, n, k] of [[2, 5, 7], [2, 1, 3], [3, 13, 1], [16, 12, 64], [17, 25, 33], [31, 100, 70], [32, 6, 300],
        [32, 700, 96], [33, 50, 40], [48, 37, 129], [64, 130, 20], [65, 20, 10]] as Array<[number, number, number]>) {
        for (const beta of [0, 1] as const) {
          const cs = { m, n, k, transB: true, beta };
          check(`${label(cs)} threads=${threads}`, cs, seed++);
        }
      }
    }
  } finally {
    setNativeThreads(previous);
  }
});

test('r1_matmul batches with strides, broadcasting (stride 0) and gaps between outputs', () => {
  let seed = 200;
  for (const [transA, transB] of transposes) {
    const m = 19, n = 35, k = 41;
    const cases: Case[] = [
      { batch: 3, m, n, k }, // three items: not a multiple of the thread count, so each is also split
      { batch: 4, m, n, k, strideB: 0 }, // one weight for all items (folded into one tall GEMM when A is N)
      { batch: 3, m, n, k, strideA: 0 }, // one left operand for all items
      { batch: 2, m, n, k, strideA: 0, strideB: 0 },
      { batch: 3, m, n, k, strideA: m * k + 5, strideB: k * n + 3, strideC: m * n + 7 }, // gaps stay untouched
      { batch: 5, m: 1, n: 77, k: 50, strideB: 0 }, // batched decode rows against one weight
      { batch: 3, m: 1, n: 300, k: 600 }, // batched matvec large enough to go parallel
      { batch: 3, m: 64, n: 1, k: 33, strideA: 0, strideC: 70 },
      { batch: 3, m: 120, n: 130, k: 64 }, // attention-like: parallel over batch and parts
      { batch: 6, m: 70, n: 50, k: 40, strideB: 0, strideC: 70 * 50 + 1 }, // not foldable: C has gaps
    ];
    for (const cs of cases) {
      for (const beta of [0, 1] as const) check(label({ ...cs, transA, transB, beta }), { ...cs, transA, transB, beta }, seed++);
    }
  }
});

test('r1_matmul with k = 0 writes zeros for beta 0 and leaves C alone for beta 1', () => {
  const a = new Float32Array(1), b = new Float32Array(1);
  const c = new Float32Array(2 * 3 * 4).fill(NaN);
  r1Matmul(a, b, c, 2, 3, 4, 0, 0, 0, 0, 0, 12, 0);
  assert.deepEqual([...c], new Array(24).fill(0));
  const kept = randomArray(24, 9);
  const c1 = kept.slice();
  r1Matmul(a, b, c1, 2, 3, 4, 0, 1, 1, 0, 0, 12, 1);
  assert.deepEqual(c1, kept);
  // Empty outputs touch nothing.
  const untouched = new Float32Array(4).fill(NaN);
  r1Matmul(a, b, untouched, 1, 0, 4, 3, 0, 0, 0, 0, 0, 0);
  r1Matmul(a, b, untouched, 0, 2, 2, 3, 0, 0, 0, 0, 0, 0);
  assert.ok(untouched.every(Number.isNaN));
});
