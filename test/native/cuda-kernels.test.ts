// Every CUDA kernel (native/cuda, through src/tensor/backends/cuda-library.ts) against the reference backend
// (STYLE.md 4, 13), on fresh random inputs: the seed comes from the clock and is printed, so that a failure can
// be replayed with R1_TEST_SEED=<seed>. The case table is shared with the native backend's test
// (test/tensor/backends/kernel-cases.ts, which covers the CUDA kernels' own paths too: tile edges, head-size
// templates, split-K decoding, cuBLASLt shapes). Then the runtime: the caching allocator, CUDA graphs, the GEMM
// precisions, tensor-core attention, bf16 weight copies, and errors.
//
// Inputs travel through a host adapter: each typed array argument is uploaded to a device buffer (the same
// array twice gives the same buffer, so in-place calls stay in place), the kernel runs on the device, and every
// buffer is downloaded back, so that one comparison body serves both backends.
// The kernels are built without --use_fast_math, so expf/tanhf keep their ~2 ulp and the case table's float32
// tolerances hold as they do for the CPU core.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CudaLibrary } from '../../src/tensor/backends/cuda-library.ts';
import { referenceBackend } from '../../src/tensor/backends/reference.ts';
import { kernelCases, type AttentionCase, type K, type Tol } from '../tensor/backends/kernel-cases.ts';
import type { Kernels } from '../../src/tensor/kernels.ts';

const ref = referenceBackend.kernels;
let lib: CudaLibrary | undefined;
let skipReason: string | false = false;
try {
  const { openCudaLibrary } = await import('../../src/tensor/backends/cuda-library.ts');
  lib = openCudaLibrary();
  lib.init(0);
} catch (err) {
  skipReason = `CUDA backend unavailable: ${(err as Error).message}`;
}

/** The device kernels behind the host signature: upload the typed arrays, run, download them all back. */
function hostAdapter(cuda: CudaLibrary): K {
  const device = cuda.kernels as unknown as Record<string, (...args: unknown[]) => unknown>;
  return new Proxy({} as K, {
    get: (_target, name: string) => (...args: unknown[]) => {
      const buffers = new Map<Float32Array | Int32Array, number>();
      const deviceArgs = args.map((arg) => {
        if (!(arg instanceof Float32Array || arg instanceof Int32Array)) return arg;
        let ptr = buffers.get(arg);
        if (ptr === undefined) {
          ptr = cuda.alloc(Math.max(4, arg.byteLength));
          cuda.upload(ptr, arg);
          buffers.set(arg, ptr);
        }
        return ptr;
      });
      try {
        const result = device[name](...deviceArgs);
        for (const [host, ptr] of buffers) cuda.download(host, ptr);
        return result;
      } finally {
        for (const ptr of buffers.values()) cuda.free(ptr);
      }
    },
  });
}
const cudaKernels: K | undefined = lib ? hostAdapter(lib) : undefined;

// ---- the shared case table -----------------------------------------------------------------------------------

const seed = Number(process.env.R1_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`cuda-kernels: seed ${seed} (replay with R1_TEST_SEED=${seed})`);

// Sums by atomicAdd (embeddingBackward, scatterAdd) meet repeated indices in any order: each output is a sum of
// a few float32 terms of size ~1, rounded in a different order than the reference's once-rounded double.
const ATOMIC: Tol = { rel: 1e-6, abs: 1e-6 };

/**
 * Per kernel, for the report printed at the end: the largest |cuda - reference| relative to the buffer's largest
 * |reference| (buffers of all-but-zero values, such as a gradient that cancels to ~1e-7, are left out of this
 * one), and the largest fraction of its tolerance that any element used (a pass is <= 1).
 */
const worstErrors = new Map<string, number>();
const toleranceUsed = new Map<string, number>();
function noteError(kernel: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): void {
  let scale = 0, diff = 0, used = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(expected[i]) || !Number.isFinite(actual[i])) continue;
    const d = Math.abs(actual[i] - expected[i]);
    scale = Math.max(scale, Math.abs(expected[i]));
    diff = Math.max(diff, d);
    const allowed = tol.abs + tol.rel * Math.abs(expected[i]);
    used = Math.max(used, allowed > 0 ? d / allowed : d > 0 ? Infinity : 0);
  }
  if (scale > 1e-3) worstErrors.set(kernel, Math.max(worstErrors.get(kernel) ?? 0, diff / scale));
  toleranceUsed.set(kernel, Math.max(toleranceUsed.get(kernel) ?? 0, used));
}

const { cases, compare, ATTENTION_CASES, normal } = kernelCases({ name: 'cuda', kernels: () => cudaKernels!, seed, unorderedSums: ATOMIC, onCompared: noteError });

/** A random matrix product at every precision, compared relative to the norm of the exact result. */
function matmulError(cuda: CudaLibrary, m: number, n: number, k: number, transA: boolean, transB: boolean, batch: number): number {
  const a = normal(batch * m * k), b = normal(k * n), c = new Float32Array(batch * m * n), expected = new Float32Array(batch * m * n);
  // The weight b is shared over the batch (stride 0), as a linear layer's weight is.
  ref.matmul(a, b, expected, batch, m, n, k, transA, transB, m * k, 0, m * n, 0);
  cudaKernels!.matmul(a, b, c, batch, m, n, k, transA, transB, m * k, 0, m * n, 0);
  let diff = 0, norm = 0;
  for (let i = 0; i < c.length; i++) {
    diff += (c[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return Math.sqrt(diff / norm);
}

describe('CUDA kernels match the reference backend', { skip: skipReason }, () => {
  it('has a comparison for every kernel', () => {
    assert.deepEqual(Object.keys(ref).sort(), Object.keys(cases).sort());
  });

  for (const [name, body] of Object.entries(cases)) it(name, body);

  it('runs matmul in tf32 and bf16 within their precision', () => {
    // bf16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per operand); a sum of k products of such
    // operands has a relative error ~2^-9 * sqrt(2) in norm: under 1e-2. TF32 keeps 11 bits: under 2e-3.
    try {
      for (const [precision, bound] of [['tf32', 2e-3], ['bf16', 1e-2]] as const) {
        lib!.setMatmulPrecision(precision);
        for (const [m, n, k, transA, transB, batch] of [[515, 257, 129, false, true, 1], [64, 896, 4864, false, true, 3], [300, 77, 45, true, false, 1]] as const) {
          const error = matmulError(lib!, m, n, k, transA, transB, batch);
          worstErrors.set(`matmul ${precision}`, Math.max(worstErrors.get(`matmul ${precision}`) ?? 0, error));
          assert.ok(error < bound, `matmul ${precision} [${m}, ${n}, ${k}] relative error ${error} >= ${bound} (seed ${seed})`);
        }
      }
    } finally {
      lib!.setMatmulPrecision('f32');
    }
    assert.ok(matmulError(lib!, 100, 100, 100, false, false, 1) < 1e-6, 'f32 restored after setMatmulPrecision(f32)');
  });

  after(() => {
    const lines = [...worstErrors].sort(([a], [b]) => a.localeCompare(b))
      .map(([k, e]) => `  ${k.padEnd(22)} ${e.toExponential(2)}   ${toleranceUsed.has(k) ? `${(100 * toleranceUsed.get(k)!).toFixed(0)}%` : '-'}`);
    console.log(`cuda-kernels (seed ${seed}): kernel, largest |cuda - reference| / max |reference|, largest share of the tolerance used:\n${lines.join('\n')}`);
  });
});

describe('CUDA runtime', { skip: skipReason }, () => {
  it('names its device', () => {
    assert.ok(lib!.deviceCount() >= 1);
    assert.match(lib!.deviceName(), /\S/);
  });

  it('reuses freed blocks and counts them in its statistics', () => {
    lib!.emptyCache();  // only this test's blocks are cached below
    const before = lib!.memoryStats();
    const a = lib!.alloc(1000), b = lib!.alloc(3 << 20);
    const during = lib!.memoryStats();
    assert.equal(during.blocks, before.blocks + 2);
    assert.ok(during.inUse >= before.inUse + 1000 + (3 << 20), 'in-use bytes count both blocks');
    assert.ok(during.reserved >= during.inUse && during.peak >= during.inUse);
    lib!.free(a);
    lib!.free(b);
    assert.equal(lib!.memoryStats().inUse, before.inUse);
    // A request of the same size class gets the cached block back, without a new cudaMalloc.
    const reserved = lib!.memoryStats().reserved;
    const c = lib!.alloc(900), d = lib!.alloc((3 << 20) - 5);
    assert.equal(c, a);
    assert.equal(d, b);
    assert.equal(lib!.memoryStats().reserved, reserved);
    lib!.free(c);
    lib!.free(d);
    lib!.emptyCache();
    assert.equal(lib!.memoryStats().reserved, lib!.memoryStats().inUse, 'emptyCache returns every unused block');
  });

  it('copies, fills and casts', () => {
    const n = 1001, x = lib!.alloc(4 * n), y = lib!.alloc(4 * n), z = lib!.alloc(4 * n);
    try {
      const host = normal(n, 100);
      lib!.upload(x, host);
      lib!.copy(y, x, 4 * n);
      const back = new Float32Array(n);
      lib!.download(back, y);
      assert.deepEqual(back, host);
      lib!.f32ToI32(x, z, n);
      const ints32 = new Int32Array(n);
      lib!.download(ints32, z);
      assert.deepEqual(ints32, Int32Array.from(host, (v) => Math.trunc(v)));
      lib!.i32ToF32(z, y, n);
      lib!.download(back, y);
      assert.deepEqual(back, Float32Array.from(ints32));
      lib!.fill(y, 2.5, n);
      lib!.download(back, y);
      assert.ok(back.every((v) => v === 2.5));
      lib!.fillI32(z, -7, n);
      lib!.download(ints32, z);
      assert.ok(ints32.every((v) => v === -7));
    } finally {
      for (const p of [x, y, z]) lib!.free(p);
    }
  });

  it('records a few kernels in a CUDA graph and replays them with the same result', () => {
    const rows = 37, dim = 300, n = rows * dim;
    const x = lib!.alloc(4 * n), w = lib!.alloc(4 * dim), y = lib!.alloc(4 * n), rstd = lib!.alloc(4 * rows), z = lib!.alloc(4 * n);
    try {
      const k = lib!.kernels;
      const run = (): void => {
        k.rmsnorm(x, w, y, rstd, rows, dim, 1e-6);
        k.unary('silu', y, z, n);
        k.softmax(z, y, rows, dim);
        k.matmul(y, y, z, 1, rows, rows, dim, false, true, 0, 0, 0, 0);
      };
      lib!.upload(x, normal(n));
      lib!.upload(w, normal(dim));
      run();
      const eager = new Float32Array(rows * rows);
      lib!.download(eager, z);
      lib!.fill(z, NaN, n);
      lib!.graphBegin();
      run();
      const graph = lib!.graphEnd();
      const replayed = new Float32Array(rows * rows);
      lib!.download(replayed, z);
      assert.ok(replayed.every(Number.isNaN), 'recording runs nothing');
      lib!.graphLaunch(graph);
      lib!.download(replayed, z);
      assert.deepEqual(replayed, eager);
      lib!.fill(z, 0, n);
      lib!.graphLaunch(graph);
      lib!.synchronize();
      lib!.download(replayed, z);
      assert.deepEqual(replayed, eager, 'a second replay gives the same result');
      lib!.graphDestroy(graph);
    } finally {
      for (const p of [x, w, y, rstd, z]) lib!.free(p);
    }
  });

  it('reports an absurd allocation as out of memory, naming the sizes', () => {
    assert.throws(() => lib!.alloc(2 ** 50), /CUDA out of memory: asked for 1125899906842624 bytes, \d+ in use, \d+ reserved/);
    // The failure is consumed: the next call works.
    const p = lib!.alloc(64);
    lib!.free(p);
  });

  it('reports a failed kernel launch as an error naming the kernel', () => {
    // Head size 300 is beyond the attention kernels' templates (256).
    const p = lib!.alloc(4 * 300);
    try {
      assert.throws(() => lib!.kernels.attention(p, p, p, p, 0, 0, 1, 1, 1, 1, 1, 300, 300, 300, 300, 1, false), /CUDA attention failed: r1_attention: head sizes above 256/);
      lib!.synchronize();
    } finally {
      lib!.free(p);
    }
  });
});

// ---- bf16 precision: tensor-core attention and the bf16 copies of weights -----------------------------------

/** sqrt(sum (a - e)^2 / sum e^2) over the finite elements; the non-finite ones (lse = -inf) must match exactly. */
function normError(what: string, actual: Float32Array, expected: Float32Array): number {
  let diff = 0, norm = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(expected[i])) {
      assert.ok(Object.is(actual[i], expected[i]), `${what}[${i}]: cuda ${actual[i]}, reference ${expected[i]} (seed ${seed})`);
      continue;
    }
    diff += (actual[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

// Tensor-core shapes (D = Dv = 64 or 128) and the edges of their tiles (64 queries, 64 keys): GQA, causal with
// Tq < Tk, left padding, a batch row whose padding hides every key, a KV cache read through its batch stride.
const BF16_ATTENTION_CASES: AttentionCase[] = [
  { name: 'causal GQA 14/2, T=203, D=64', B: 1, Tq: 203, Tk: 203, Hq: 14, Hkv: 2, D: 64, Dv: 64, causal: true },
  { name: 'causal MHA, T=97, D=128, left padding', B: 2, Tq: 97, Tk: 97, Hq: 2, Hkv: 2, D: 128, Dv: 128, causal: true, kvStart: [0, 30] },
  { name: 'non-causal GQA 4/2, T=130, D=64, padding hides every key of one row', B: 2, Tq: 130, Tk: 130, Hq: 4, Hkv: 2, D: 64, Dv: 64, causal: false, kvStart: [130, 7] },
  { name: 'chunked prefill Tq=70 < Tk=200, causal, D=128', B: 2, Tq: 70, Tk: 200, Hq: 4, Hkv: 1, D: 128, Dv: 128, causal: true, kvStart: [0, 65] },
  { name: 'causal Tq=80 > Tk=50 (the first queries see no key), D=64', B: 1, Tq: 80, Tk: 50, Hq: 2, Hkv: 1, D: 64, Dv: 64, causal: true },
  { name: 'prefill into a KV cache of capacity 300 holding 150, D=64', B: 2, Tq: 150, Tk: 150, Hq: 8, Hkv: 2, D: 64, Dv: 64, causal: true, capacity: 300 },
];

describe('CUDA attention in bf16 precision (tensor cores)', { skip: skipReason }, () => {
  // Q, K, V (and dO) are rounded to bf16 (2^-9 relative) and so is P (and dS) before its product with V (dO, Q,
  // K); sums are float32. Each output is a sum of many such terms, so its error in norm relative to the exact
  // result is ~2^-9 times a small factor: 1e-2 (the issue's bound for bf16 modes) leaves ~3x room, while a
  // wrong mask, scale or head is off by O(1).
  const BOUND = 1e-2;
  const run = (body: () => void): void => {
    lib!.setMatmulPrecision('bf16');
    try {
      body();
    } finally {
      lib!.setMatmulPrecision('f32');
    }
  };

  it('forward matches the reference within bf16 precision', () => run(() => {
    for (const c of BF16_ATTENTION_CASES) {
      const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = c;
      const capacity = c.capacity ?? Tk;
      const kvStart = c.kvStart ? Int32Array.from(c.kvStart) : null;
      const q = normal(B * Tq * Hq * D), k = normal(B * capacity * Hkv * D), v = normal(B * capacity * Hkv * Dv);
      const outs = [new Float32Array(B * Tq * Hq * Dv), new Float32Array(B * Tq * Hq * Dv)];
      const lses = [new Float32Array(B * Hq * Tq), new Float32Array(B * Hq * Tq)];
      [cudaKernels!, ref].forEach((kk, i) => kk.attention(q, k, v, outs[i], lses[i], kvStart, B, Tq, Tk, Hq, Hkv, D, Dv,
        capacity * Hkv * D, capacity * Hkv * Dv, 1 / Math.sqrt(D), causal));
      for (const [what, i] of [['out', 0], ['lse', 1]] as const) {
        const [actual, expected] = i === 0 ? outs : lses;
        const error = normError(`attention bf16 ${c.name} ${what}`, actual, expected);
        worstErrors.set(`attention bf16 ${what}`, Math.max(worstErrors.get(`attention bf16 ${what}`) ?? 0, error));
        assert.ok(error < BOUND, `attention bf16 ${c.name}: ${what} relative error ${error} >= ${BOUND} (seed ${seed})`);
      }
    }
  }));

  it('backward matches the reference within bf16 precision', () => run(() => {
    for (const c of BF16_ATTENTION_CASES) {
      if (c.capacity !== undefined) continue;  // the backward takes contiguous k and v
      const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = c;
      const kvStart = c.kvStart ? Int32Array.from(c.kvStart) : null;
      const scale = 1 / Math.sqrt(D);
      const q = normal(B * Tq * Hq * D), k = normal(B * Tk * Hkv * D), v = normal(B * Tk * Hkv * Dv), dout = normal(B * Tq * Hq * Dv);
      const out = new Float32Array(B * Tq * Hq * Dv), lse = new Float32Array(B * Hq * Tq);
      ref.attention(q, k, v, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, Tk * Hkv * D, Tk * Hkv * Dv, scale, causal);
      const grads = [0, 1].map(() => ({ dq: normal(B * Tq * Hq * D), dk: normal(B * Tk * Hkv * D), dv: normal(B * Tk * Hkv * Dv) }));
      [cudaKernels!, ref].forEach((kk, i) => kk.attentionBackward(q, k, v, out, lse, dout, grads[i].dq, grads[i].dk, grads[i].dv,
        kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal));
      for (const what of ['dq', 'dk', 'dv'] as const) {
        const error = normError(`attentionBackward bf16 ${c.name} ${what}`, grads[0][what], grads[1][what]);
        worstErrors.set(`attentionBackward bf16 ${what}`, Math.max(worstErrors.get(`attentionBackward bf16 ${what}`) ?? 0, error));
        assert.ok(error < BOUND, `attentionBackward bf16 ${c.name}: ${what} relative error ${error} >= ${BOUND} (seed ${seed})`);
      }
    }
  }));

  after(() => {
    const lines = [...worstErrors].filter(([k]) => k.includes('bf16 ')).map(([k, e]) => `  ${k.padEnd(28)} ${e.toExponential(2)}`);
    console.log(`cuda-kernels (seed ${seed}): largest error in norm relative to the reference, bound ${BOUND}:\n${lines.join('\n')}`);
  });

  it('keeps the float32 kernels (and their tolerance) for head sizes without a tensor-core kernel', () => run(() => {
    // D = 32 and D != Dv are not on tensor cores: bf16 precision must not change their float32 results.
    for (const c of ATTENTION_CASES.filter((x) => x.D === 32 || x.D !== x.Dv).slice(0, 3)) {
      const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = c;
      const capacity = c.capacity ?? Tk;
      const kvStart = c.kvStart ? Int32Array.from(c.kvStart) : null;
      compare(`attention ${c.name} (bf16 precision, float32 kernel)`,
        { q: normal(B * Tq * Hq * D), k: normal(B * capacity * Hkv * D), v: normal(B * capacity * Hkv * Dv),
          out: new Float32Array(B * Tq * Hq * Dv), lse: new Float32Array(B * Hq * Tq), kvStart },
        (kk, b) => kk.attention(b.q!, b.k!, b.v!, b.out!, b.lse!, b.kvStart as Int32Array | null,
          B, Tq, Tk, Hq, Hkv, D, Dv, capacity * Hkv * D, capacity * Hkv * Dv, 1 / Math.sqrt(D), causal),
        { rel: 1e-5, abs: 5e-6 });
    }
  }));
});

describe('CUDA bf16 copies of registered weights', { skip: skipReason }, () => {
  // x [m, k] @ W^T with W [n, k] registered, in bf16 precision, against the same product with W's current values
  // in an unregistered buffer (rounded per call): the same bf16 operands, so the results agree to float32
  // rounding (1e-6 relative in norm), while a stale copy differs by O(1).
  const m = 96, n = 80, k = 64;
  const K = (): Kernels<number, number> => lib!.kernels;
  const product = (x: number, w: number): Float32Array => {
    const c = lib!.alloc(4 * m * n), out = new Float32Array(m * n);
    K().matmul(x, w, c, 1, m, n, k, false, true, 0, 0, 0, 0);
    lib!.download(out, c);
    lib!.free(c);
    return out;
  };
  /** The product with W's present float32 values, copied into a fresh unregistered buffer. */
  const fresh = (x: number, w: number): Float32Array => {
    const host = new Float32Array(n * k);
    lib!.download(host, w);
    const plain = lib!.alloc(4 * n * k);
    lib!.upload(plain, host);
    const out = product(x, plain);
    lib!.free(plain);
    return out;
  };
  const agree = (what: string, actual: Float32Array, expected: Float32Array): void => {
    const error = normError(what, actual, expected);
    assert.ok(error < 1e-6, `${what}: relative difference ${error} (seed ${seed})`);
  };
  const differ = (what: string, actual: Float32Array, expected: Float32Array): void => {
    assert.ok(normError(what, actual, expected) > 1e-2, `${what}: expected the stale copy's result (seed ${seed})`);
  };
  const withWeight = (body: (x: number, w: number) => void): void => {
    lib!.setMatmulPrecision('bf16');
    const x = lib!.alloc(4 * m * k), w = lib!.alloc(4 * n * k);
    try {
      lib!.upload(x, normal(m * k));
      lib!.upload(w, normal(n * k));
      lib!.registerWeight(w, n * k);
      body(x, w);
    } finally {
      lib!.free(x);
      lib!.free(w);
      lib!.setMatmulPrecision('f32');
    }
  };

  it('reads the copy, not the float32 buffer, until the copy is marked stale', () => withWeight((x, w) => {
    const before = product(x, w);
    agree('first product', before, fresh(x, w));
    // A kernel the library does not watch negates W: the copy (by design) still holds the old weight...
    K().unary('neg', w, w, n * k);
    differ('after an unwatched write', product(x, w), fresh(x, w));
    agree('after an unwatched write, the copy is the old weight', product(x, w), before);
    // ...until the weight is registered again.
    lib!.registerWeight(w, n * k);
    agree('after registering again', product(x, w), fresh(x, w));
  }));

  it('refreshes the copy after upload, copy and fill into the weight', () => withWeight((x, w) => {
    product(x, w);
    lib!.upload(w, normal(n * k));
    agree('after upload', product(x, w), fresh(x, w));
    const src = lib!.alloc(4 * 100);
    lib!.upload(src, normal(100, 5));
    lib!.copy(w + 4 * 1000, src, 4 * 100);  // part of the weight
    lib!.free(src);
    agree('after copy into part', product(x, w), fresh(x, w));
    lib!.fill(w + 4 * 7, 3, 50);
    agree('after fill of part', product(x, w), fresh(x, w));
  }));

  it('writes the copy in the AdamW pass, over the whole weight or part of it', () => withWeight((x, w) => {
    product(x, w);
    const g = lib!.alloc(4 * n * k), mom = lib!.alloc(4 * n * k), vel = lib!.alloc(4 * n * k);
    try {
      lib!.upload(g, normal(n * k));
      lib!.fill(mom, 0, n * k);
      lib!.fill(vel, 0, n * k);
      // lr 0.5 moves every weight by ~0.5: far more than bf16 rounding.
      K().adamw(w, g, mom, vel, n * k, 0.5, 0.9, 0.95, 1e-8, 0, 0.1, 0.05);
      agree('after adamw over the whole weight', product(x, w), fresh(x, w));
      K().adamw(w + 4 * 64, g, mom, vel, 640, 0.5, 0.9, 0.95, 1e-8, 0, 0.1, 0.05);
      agree('after adamw over a part', product(x, w), fresh(x, w));
    } finally {
      for (const p of [g, mom, vel]) lib!.free(p);
    }
  }));

  it('forgets the weight when its block is freed, also when the allocator hands the address out again', () => {
    lib!.setMatmulPrecision('bf16');
    lib!.emptyCache();  // only this test's blocks are cached below, so the freed weight's block is the one reused
    const x = lib!.alloc(4 * m * k);
    try {
      lib!.upload(x, normal(m * k));
      const inUse = lib!.memoryStats().inUse;
      const w = lib!.alloc(4 * n * k);
      lib!.upload(w, normal(n * k));
      lib!.registerWeight(w, n * k);
      product(x, w);
      lib!.free(w);
      assert.equal(lib!.memoryStats().inUse, inUse, 'the bf16 copy is freed with its weight');
      const again = lib!.alloc(4 * n * k);
      assert.equal(again, w, 'the caching allocator reuses the block');
      try {
        lib!.upload(again, normal(n * k));
        K().unary('neg', again, again, n * k);  // unwatched, but this buffer is no longer registered
        agree('a new buffer at a freed weight\'s address', product(x, again), fresh(x, again));
      } finally {
        lib!.free(again);
      }
    } finally {
      lib!.free(x);
      lib!.setMatmulPrecision('f32');
    }
  });

  it('refuses a range that overlaps another registered weight', () => withWeight((_x, w) => {
    assert.throws(() => lib!.registerWeight(w + 4 * 10, 100), /overlaps another registered weight/);
  }));
});
