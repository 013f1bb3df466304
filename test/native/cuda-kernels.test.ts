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

describe('bf16 copies written by their producers', { skip: skipReason }, () => {
  // In bf16 precision RMSNorm, SwiGLU and its backward, RoPE, cross-entropy's backward and the tensor-core
  // attention write the bf16 copy of each float32 output in the same pass (r1_cuda.h), which the GEMMs and the
  // attention then read instead of rounding the output again. Each float32 output must stay the reference's
  // (relative 1e-5 plus 1e-6 of the buffer's largest value: the case table's float32 bound; the attention
  // within its bf16 bound), and its copy must be exactly that output rounded to nearest even. The copy is read
  // back as a GEMM reads it, y [n / k, k] @ I_k (exact with float32 accumulation), after the float32 y was
  // negated by a kernel the library does not watch: so a GEMM that rounded y itself would give -y, not y.
  const K = (): Kernels<number, number> => lib!.kernels;
  const live: number[] = [];
  const device = (host: Float32Array | Int32Array): number => {
    const ptr = lib!.alloc(Math.max(4, host.byteLength));
    lib!.upload(ptr, host);
    live.push(ptr);
    return ptr;
  };
  const read = (ptr: number, n: number): Float32Array => {
    const host = new Float32Array(n);
    lib!.download(host, ptr);
    return host;
  };
  const run = (body: () => void): void => {
    lib!.setMatmulPrecision('bf16');
    try {
      body();
    } finally {
      for (const ptr of live.splice(0)) lib!.free(ptr);
      lib!.setMatmulPrecision('f32');
    }
  };
  const bits = new Uint32Array(1), word = new Float32Array(bits.buffer);
  /** x rounded to bf16, nearest even (finite x). */
  const bf16 = (x: number): number => {
    word[0] = x;
    bits[0] = (bits[0] + 0x7fff + ((bits[0] >>> 16) & 1)) & 0xffff0000;
    return word[0];
  };
  /** The bf16 copy of [y, y + n) as a GEMM reads it; negates the float32 y first (unwatched). */
  const copyAsRead = (y: number, n: number): Float32Array => {
    const k = [16, 8, 4, 2, 1].find((d) => n % d === 0)!;
    K().unary('neg', y, y, n);
    const eye = new Float32Array(k * k);
    for (let i = 0; i < k; i++) eye[i * k + i] = 1;
    const c = device(new Float32Array(n));
    K().matmul(y, device(eye), c, 1, n / k, k, k, false, false, 0, 0, 0, 0);
    return read(c, n);
  };
  /** The bf16 copy of a bf16-only [y, y + n) as a GEMM reads it (its floats hold the copy: nothing is negated). */
  const bf16OnlyCopy = (y: number, n: number): Float32Array => {
    const k = [16, 8, 4, 2, 1].find((d) => n % d === 0)!;
    const c = device(new Float32Array(n));
    K().matmul(y, identity(k), c, 1, n / k, k, k, false, false, 0, 0, 0, 0);
    return read(c, n);
  };
  /** A bf16-only output keeps its copy in its first n * 2 bytes; the floats past them were never written (7s). */
  const untouchedTail = (what: string, y: number, n: number): void => {
    assert.ok(read(y, n).subarray(Math.ceil(n / 2)).every((x) => x === 7), `${what}: the floats of a bf16-only output are not written`);
  };
  /** Checks y's float32 values against the reference and its bf16 copy against y rounded. */
  const checkOutput = (what: string, y: number, expected: Float32Array, bound?: number): void => {
    const actual = read(y, expected.length);
    if (bound === undefined) {
      const top = expected.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
      for (let i = 0; i < expected.length; i++) {
        assert.ok(Math.abs(actual[i] - expected[i]) <= 1e-5 * Math.abs(expected[i]) + 1e-6 * top,
          `${what}[${i}]: cuda ${actual[i]}, reference ${expected[i]} (seed ${seed})`);
      }
    } else {
      const error = normError(what, actual, expected);
      assert.ok(error < bound, `${what}: relative error ${error} >= ${bound} (seed ${seed})`);
    }
    const copy = copyAsRead(y, expected.length);
    for (let i = 0; i < actual.length; i++) {
      assert.equal(copy[i], bf16(actual[i]), `${what}[${i}]: bf16 copy ${copy[i]}, output ${actual[i]} rounded is ${bf16(actual[i])} (seed ${seed})`);
    }
  };

  it('RMSNorm (and no copy for a view into part of a buffer)', () => run(() => {
    const rows = 40, dim = 96, x = normal(rows * dim), w = normal(dim);
    const y = new Float32Array(rows * dim), rstd = new Float32Array(rows);
    ref.rmsnorm(x, w, y, rstd, rows, dim, 1e-6);
    const yDevice = device(new Float32Array(rows * dim));
    K().rmsnorm(device(x), device(w), yDevice, device(new Float32Array(rows)), rows, dim, 1e-6);
    checkOutput('rmsnorm y', yDevice, y);
    // Rows 1.. written into a larger buffer at an offset: not a block's start, so no copy, and a GEMM rounds y.
    const big = device(new Float32Array(rows * dim + dim));
    K().rmsnorm(device(x), device(w), big + 4 * dim, device(new Float32Array(rows)), rows, dim, 1e-6);
    const rounded = copyAsRead(big + 4 * dim, rows * dim), negated = read(big + 4 * dim, rows * dim);
    for (let i = 0; i < y.length; i++) assert.equal(rounded[i], bf16(negated[i]), `view y[${i}]: a GEMM must round the float32 view (seed ${seed})`);
  }));

  it('SwiGLU and its backward, four at a time and one at a time', () => run(() => {
    for (const n of [4096, 998]) {
      const gate = normal(n, 3), up = normal(n), dy = normal(n);
      const y = new Float32Array(n), dgate = new Float32Array(n), dup = new Float32Array(n);
      ref.swiglu(gate, up, y, n);
      ref.swigluBackward(gate, up, dy, dgate, dup, n);
      const [g, u] = [device(gate), device(up)];
      const yDevice = device(new Float32Array(n)), dgDevice = device(new Float32Array(n)), duDevice = device(new Float32Array(n));
      K().swiglu(g, u, yDevice, n);
      K().swigluBackward(g, u, device(dy), dgDevice, duDevice, n);
      checkOutput(`swiglu y (n ${n})`, yDevice, y);
      checkOutput(`swiglu dgate (n ${n})`, dgDevice, dgate);
      checkOutput(`swiglu dup (n ${n})`, duDevice, dup);
    }
  }));

  it('RoPE forward and inverse, split halves and interleaved pairs, with dims past rot_dim', () => run(() => {
    const tokens = 12, heads = 3, headDim = 16, rotDim = 12, maxPos = 32, n = tokens * heads * headDim;
    const positions = Int32Array.from({ length: tokens }, (_, i) => (i * 5) % maxPos);
    const angles = Array.from({ length: maxPos * rotDim / 2 }, (_, i) => Math.floor(i / (rotDim / 2)) * 10000 ** (-(2 * (i % (rotDim / 2))) / rotDim));
    const cos = Float32Array.from(angles, Math.cos), sin = Float32Array.from(angles, Math.sin);
    for (const interleaved of [false, true]) {
      for (const inverse of [false, true]) {
        const x = normal(n), y = new Float32Array(n);
        ref.rope(x, y, positions, cos, sin, tokens, heads, headDim, rotDim, interleaved, inverse);
        const yDevice = device(new Float32Array(n));
        K().rope(device(x), yDevice, device(positions), device(cos), device(sin), tokens, heads, headDim, rotDim, interleaved, inverse);
        checkOutput(`rope y (interleaved ${interleaved}, inverse ${inverse})`, yDevice, y);
      }
    }
  }));

  it('cross-entropy backward, with an ignored row, four at a time and one at a time', () => run(() => {
    for (const vocab of [1000, 999]) {
      const rows = 6, logits = normal(rows * vocab, 3), dloss = normal(rows);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r === 2 ? -100 : (r * 389) % vocab));
      const loss = new Float32Array(rows), lse = new Float32Array(rows), dlogits = new Float32Array(rows * vocab);
      ref.crossEntropy(logits, targets, loss, lse, rows, vocab, -100);
      ref.crossEntropyBackward(logits, targets, lse, dloss, dlogits, rows, vocab, -100);
      const out = device(new Float32Array(rows * vocab));
      K().crossEntropyBackward(device(logits), device(targets), device(lse), device(dloss), out, rows, vocab, -100);
      checkOutput(`crossEntropyBackward (vocab ${vocab})`, out, dlogits);
    }
  }));

  it('bf16-only gradients: swigluBackward and crossEntropyBackward write the copy and not the floats', () => run(() => {
    // r1_cuda_bf16_only_output before the producer: the copy lies in the first half of the float32 buffer, whose
    // second half keeps what it held (here 7); the copy holds the gradient within bf16 rounding of the reference
    // (2^-8 relative, as above, plus 1e-6 of the largest), a float32 GEMM (which reads floats) writes the floats
    // back from the copy first, and so does r1_cuda_widen_bf16_only: then the floats are the copy's values exactly.
    const n = 4096, gate = normal(n, 3), up = normal(n), dy = normal(n);
    const dgate = new Float32Array(n), dup = new Float32Array(n);
    ref.swigluBackward(gate, up, dy, dgate, dup, n);
    const rows = 6, vocab = 1000, logits = normal(rows * vocab, 3), dloss = normal(rows);
    const targets = Int32Array.from({ length: rows }, (_, r) => (r === 2 ? -100 : (r * 389) % vocab));
    const lse = new Float32Array(rows), dlogits = new Float32Array(rows * vocab);
    ref.crossEntropy(logits, targets, new Float32Array(rows), lse, rows, vocab, -100);
    ref.crossEntropyBackward(logits, targets, lse, dloss, dlogits, rows, vocab, -100);
    const sevens = (count: number) => device(new Float32Array(count).fill(7));
    const [dg, du, dl] = [sevens(n), sevens(n), sevens(rows * vocab)];
    for (const [ptr, count] of [[dg, n], [du, n], [dl, rows * vocab]]) assert.equal(lib!.bf16OnlyOutput(ptr, count), true);
    assert.equal(lib!.bf16OnlyOutput(dg + 16, 8), false, 'only a whole block can be bf16-only');
    K().swigluBackward(device(gate), device(up), device(dy), dg, du, n);
    K().crossEntropyBackward(device(logits), device(targets), device(lse), device(dloss), dl, rows, vocab, -100);
    const top = (xs: Float32Array) => xs.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
    for (const [what, ptr, expected, widen] of [['dgate', dg, dgate, 'gemm'], ['dup', du, dup, 'call'], ['dlogits', dl, dlogits, 'call']] as const) {
      untouchedTail(what, ptr, expected.length);
      const copy = bf16OnlyCopy(ptr, expected.length);
      const limit = 1e-6 * top(expected);
      for (let i = 0; i < expected.length; i++) {
        assert.ok(Math.abs(copy[i] - expected[i]) <= 2 ** -8 * Math.abs(expected[i]) + limit,
          `${what}[${i}]: bf16 copy ${copy[i]}, reference ${expected[i]} (seed ${seed})`);
      }
      if (widen === 'gemm') {
        // y [n / 16, 16] @ I in float32 precision reads floats: they are written back from the copy first.
        lib!.setMatmulPrecision('f32');
        const eye = new Float32Array(256);
        for (let i = 0; i < 16; i++) eye[i * 17] = 1;
        const c = device(new Float32Array(expected.length));
        K().matmul(ptr, device(eye), c, 1, expected.length / 16, 16, 16, false, false, 0, 0, 0, 0);
        lib!.setMatmulPrecision('bf16');
        assert.deepEqual(read(c, expected.length), copy, `${what}: a float32 GEMM reads the copy's values`);
      } else {
        lib!.widenBf16Only(ptr, expected.length);
      }
      assert.deepEqual(read(ptr, expected.length), copy, `${what}: the floats written back are the copy's values`);
    }
  }));

  // bf16 activations (issue 12): a GEMM with a weight writes a bf16-only output as bf16, and the kernels that
  // read GEMM outputs (binary, SwiGLU, cross-entropy, RoPE, the attention's v, out and dO) read such an input
  // from its copy. Each input below is made bf16-only by a bf16 GEMM x [n / k, k] @ I_k into a buffer of 7s
  // (exact: the copy is x rounded, in the buffer's first half), so a kernel that read the floats would see bf16
  // pairs and 7s; each result must be the
  // reference's on the rounded x within the kernel's float32 bound of the case table (relative 1e-5 plus 1e-6 of
  // the largest value; exp-based ones 2e-5) or the attention's bf16 bound.
  const sevens = (count: number): number => device(new Float32Array(count).fill(7));
  const identity = (k: number): number => {
    const eye = new Float32Array(k * k);
    for (let i = 0; i < k; i++) eye[i * k + i] = 1;
    return device(eye);
  };
  /** A bf16-only device buffer holding x rounded to bf16 (its floats are 7s), and x rounded on the host. */
  const bf16OnlyInput = (x: Float32Array): [number, Float32Array] => {
    const n = x.length, k = [16, 8, 4, 2, 1].find((d) => n % d === 0)!, ptr = sevens(n);
    assert.equal(lib!.bf16OnlyOutput(ptr, n), true);
    K().matmul(device(x), identity(k), ptr, 1, n / k, k, k, false, false, 0, 0, 0, 0);
    untouchedTail('a GEMM into a bf16-only output', ptr, n);
    return [ptr, x.map(bf16)];
  };
  const near = (what: string, actual: Float32Array, expected: Float32Array, rel = 1e-5): void => {
    const top = expected.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
    for (let i = 0; i < expected.length; i++) {
      assert.ok(Math.abs(actual[i] - expected[i]) <= rel * Math.abs(expected[i]) + 1e-6 * top,
        `${what}[${i}]: cuda ${actual[i]}, reference ${expected[i]} (seed ${seed})`);
    }
  };

  it('bf16-only GEMM outputs: written as bf16, then read from the copy by binary, SwiGLU, cross-entropy and RoPE', () => run(() => {
    // The GEMM itself: [48, 40] @ [40, 24] into a bf16-only output is the bf16 product rounded once more.
    const [m, kk, n] = [48, 40, 24], a = normal(m * kk), b = normal(kk * n);
    const product = new Float32Array(m * n), c = sevens(m * n);
    ref.matmul(a.map(bf16), b.map(bf16), product, 1, m, n, kk, false, false, 0, 0, 0, 0);
    assert.equal(lib!.bf16OnlyOutput(c, m * n), true);
    K().matmul(device(a), device(b), c, 1, m, n, kk, false, false, 0, 0, 0, 0);
    untouchedTail('a GEMM into a bf16-only output', c, m * n);
    lib!.widenBf16Only(c, m * n);
    near('gemm into a bf16-only output', read(c, m * n), product, 2 ** -8);
    // r1_cuda_linear with the bias in the epilogue, into a bf16-only y: y = x w^T + bias, rounded once. The bias
    // is registered, as a model's is: cuBLASLt adds it as float32, or its bf16 copy where it has no algorithm for
    // a float32 bias beside a bf16 D (then each element is off by up to 2^-9 of the bias besides the rounding).
    const w = normal(n * kk), bias0 = normal(n), withBias = new Float32Array(m * n), y0 = sevens(m * n), biasDevice = device(bias0);
    ref.matmul(a.map(bf16), w.map(bf16), withBias, 1, m, n, kk, false, true, 0, 0, 0, 0);
    for (let i = 0; i < m * n; i++) withBias[i] += bias0[i % n];
    lib!.registerWeight(biasDevice, n);
    assert.equal(lib!.bf16OnlyOutput(y0, m * n), true);
    lib!.linear(device(a), false, device(w), false, biasDevice, y0, m, n, kk);
    untouchedTail('a linear layer into a bf16-only output', y0, m * n);
    lib!.widenBf16Only(y0, m * n);
    const linearOut = read(y0, m * n), linearTop = withBias.reduce((t, e) => Math.max(t, Math.abs(e)), 0);
    for (let i = 0; i < m * n; i++) {
      const allowed = 2 ** -8 * (Math.abs(withBias[i]) + Math.abs(bias0[i % n])) + 1e-6 * linearTop;
      assert.ok(Math.abs(linearOut[i] - withBias[i]) <= allowed, `linear with a bias into a bf16-only output[${i}]: ${linearOut[i]}, reference ${withBias[i]} (seed ${seed})`);
    }

    // binary: whole operands (four at a time and strided), a row (bias) and a scalar broadcast, either side.
    const rows = 12, cols = 20, x = normal(rows * cols), y = normal(rows * cols), bias = normal(cols);
    const [xb, xr] = bf16OnlyInput(x);
    // [what, the other operand on the device and on the host, its strides, x's strides, the shape]
    const cases: [string, number, Float32Array, number[], number[], number[]][] = [
      ['whole', device(y), y, [cols, 1], [cols, 1], [rows, cols]],
      ['row', device(bias), bias, [0, 1], [cols, 1], [rows, cols]],
      ['scalar', device(bias), bias, [0, 0], [cols, 1], [rows, cols]],
      ['transposed', device(y), y, [1, cols], [1, cols], [cols, rows]],
    ];
    for (const [what, other, otherHost, otherStrides, xStrides, shape] of cases) {
      for (const xFirst of [true, false]) {
        const expected = new Float32Array(rows * cols), out = device(new Float32Array(rows * cols));
        if (xFirst) {
          ref.binary('sub', xr, xStrides, otherHost, otherStrides, expected, shape);
          K().binary('sub', xb, xStrides, other, otherStrides, out, shape);
        } else {
          ref.binary('sub', otherHost, otherStrides, xr, xStrides, expected, shape);
          K().binary('sub', other, otherStrides, xb, xStrides, out, shape);
        }
        near(`binary sub, ${what}, bf16-only ${xFirst ? 'a' : 'b'}`, read(out, rows * cols), expected);
      }
    }
    // In place into a bf16-only target (backward() adding gradients): its floats become the sum, and a GEMM
    // reading it afterwards rounds the sum, not the stale copy.
    const [target, targetHost] = bf16OnlyInput(normal(rows * cols));
    const sum = new Float32Array(rows * cols);
    ref.binary('add', targetHost, [cols, 1], y, [cols, 1], sum, [rows, cols]);
    K().binary('add', target, [cols, 1], device(y), [cols, 1], target, [rows, cols]);
    near('binary add in place into a bf16-only target', read(target, rows * cols), sum);
    const product2 = device(new Float32Array(rows * cols));
    K().matmul(target, identity(cols), product2, 1, rows, cols, cols, false, false, 0, 0, 0, 0);
    assert.deepEqual(read(product2, rows * cols), sum.map(bf16), 'a GEMM after an in-place add reads the new values');

    // SwiGLU forward and backward from bf16-only gate, up and dy, four at a time and one at a time.
    for (const count of [4096, 998]) {
      const [g, gr] = bf16OnlyInput(normal(count, 3)), [u, ur] = bf16OnlyInput(normal(count)), [d, dr] = bf16OnlyInput(normal(count));
      const yRef = new Float32Array(count), dgRef = new Float32Array(count), duRef = new Float32Array(count);
      ref.swiglu(gr, ur, yRef, count);
      ref.swigluBackward(gr, ur, dr, dgRef, duRef, count);
      const yDevice = device(new Float32Array(count)), dg = device(new Float32Array(count)), du = device(new Float32Array(count));
      K().swiglu(g, u, yDevice, count);
      K().swigluBackward(g, u, d, dg, du, count);
      checkOutput(`swiglu y from bf16-only inputs (n ${count})`, yDevice, yRef);
      checkOutput(`swiglu dgate from bf16-only inputs (n ${count})`, dg, dgRef);
      checkOutput(`swiglu dup from bf16-only inputs (n ${count})`, du, duRef);
    }

    // Cross-entropy forward and backward from bf16-only logits (the LM head's), four at a time and one at a time.
    for (const vocab of [1000, 999]) {
      const lrows = 6, dloss = normal(lrows);
      const targets = Int32Array.from({ length: lrows }, (_, r) => (r === 2 ? -100 : (r * 389) % vocab));
      const [logits, logitsHost] = bf16OnlyInput(normal(lrows * vocab, 3));
      const loss = new Float32Array(lrows), lse = new Float32Array(lrows), dlogits = new Float32Array(lrows * vocab);
      ref.crossEntropy(logitsHost, targets, loss, lse, lrows, vocab, -100);
      ref.crossEntropyBackward(logitsHost, targets, lse, dloss, dlogits, lrows, vocab, -100);
      const lossDevice = device(new Float32Array(lrows)), lseDevice = device(new Float32Array(lrows)), out = device(new Float32Array(lrows * vocab));
      K().crossEntropy(logits, device(targets), lossDevice, lseDevice, lrows, vocab, -100);
      near(`crossEntropy from bf16-only logits (vocab ${vocab})`, read(lossDevice, lrows), loss, 2e-5);
      K().crossEntropyBackward(logits, device(targets), lseDevice, device(dloss), out, lrows, vocab, -100);
      checkOutput(`crossEntropyBackward from bf16-only logits (vocab ${vocab})`, out, dlogits);
    }

    // RoPE from a bf16-only x, and its inverse into a bf16-only output (the backward's dq when only GEMMs read it).
    const tokens = 12, heads = 3, headDim = 16, rotDim = 12, maxPos = 32, count = tokens * heads * headDim;
    const positions = Int32Array.from({ length: tokens }, (_, i) => (i * 5) % maxPos);
    const angles = Array.from({ length: maxPos * rotDim / 2 }, (_, i) => Math.floor(i / (rotDim / 2)) * 10000 ** (-(2 * (i % (rotDim / 2))) / rotDim));
    const cos = Float32Array.from(angles, Math.cos), sin = Float32Array.from(angles, Math.sin);
    for (const inverse of [false, true]) {
      const [xs, xsr] = bf16OnlyInput(normal(count));
      const yRef = new Float32Array(count);
      ref.rope(xsr, yRef, positions, cos, sin, tokens, heads, headDim, rotDim, false, inverse);
      const yDevice = inverse ? sevens(count) : device(new Float32Array(count));
      if (inverse) assert.equal(lib!.bf16OnlyOutput(yDevice, count), true);
      K().rope(xs, yDevice, device(positions), device(cos), device(sin), tokens, heads, headDim, rotDim, false, inverse);
      if (inverse) {
        untouchedTail('rope into a bf16-only output', yDevice, count);
        near('rope inverse into a bf16-only output (its copy)', bf16OnlyCopy(yDevice, count), yRef, 2 ** -8);
      } else {
        checkOutput('rope from a bf16-only x', yDevice, yRef);
      }
    }
  }));

  it('bf16-only activations: RMSNorm, SwiGLU and the tensor-core attention write their copies alone', () => run(() => {
    const rows = 40, dim = 96, x = normal(rows * dim), w = normal(dim);
    const yRef = new Float32Array(rows * dim);
    ref.rmsnorm(x, w, yRef, new Float32Array(rows), rows, dim, 1e-6);
    const y = sevens(rows * dim);
    assert.equal(lib!.bf16OnlyOutput(y, rows * dim), true);
    K().rmsnorm(device(x), device(w), y, device(new Float32Array(rows)), rows, dim, 1e-6);
    const n = 4096, gate = normal(n, 3), up = normal(n), sRef = new Float32Array(n), s = sevens(n);
    ref.swiglu(gate, up, sRef, n);
    assert.equal(lib!.bf16OnlyOutput(s, n), true);
    K().swiglu(device(gate), device(up), s, n);
    for (const [what, ptr, expected] of [['rmsnorm y', y, yRef], ['swiglu y', s, sRef]] as const) {
      untouchedTail(what, ptr, expected.length);
      near(`${what} (bf16-only copy)`, bf16OnlyCopy(ptr, expected.length), expected, 2 ** -8);
    }

    // The attention: out bf16-only, v and dO bf16-only inputs (GEMM outputs), forward and backward within the
    // tensor-core bound of the reference from the rounded v and dO.
    const B = 2, T = 70, Hq = 4, Hkv = 2, D = 64, scale = 1 / Math.sqrt(D), BOUND = 1e-2;
    const q = normal(B * T * Hq * D), k = normal(B * T * Hkv * D);
    const [v, vr] = bf16OnlyInput(normal(B * T * Hkv * D)), [dout, doutr] = bf16OnlyInput(normal(B * T * Hq * D));
    const out = new Float32Array(q.length), lse = new Float32Array(B * Hq * T);
    ref.attention(q, k, vr, out, lse, null, B, T, T, Hq, Hkv, D, D, T * Hkv * D, T * Hkv * D, scale, true);
    const outDevice = sevens(q.length), lseDevice = device(new Float32Array(lse.length)), [qd, kd] = [device(q), device(k)];
    assert.equal(lib!.bf16OnlyOutput(outDevice, q.length), true);
    K().attention(qd, kd, v, outDevice, lseDevice, null, B, T, T, Hq, Hkv, D, D, T * Hkv * D, T * Hkv * D, scale, true);
    untouchedTail('attention out', outDevice, q.length);
    const outCopy = bf16OnlyCopy(outDevice, q.length);
    const error = normError('attention out (bf16-only)', outCopy, out);
    assert.ok(error < BOUND, `attention out from a bf16-only v: relative error ${error} >= ${BOUND} (seed ${seed})`);
    const grads = { dq: new Float32Array(q.length), dk: new Float32Array(k.length), dv: new Float32Array(vr.length) };
    ref.attentionBackward(q, k, vr, out, lse, doutr, grads.dq, grads.dk, grads.dv, null, B, T, T, Hq, Hkv, D, D, scale, true);
    const dq = device(new Float32Array(q.length)), dk = device(new Float32Array(k.length)), dv = device(new Float32Array(vr.length));
    K().attentionBackward(qd, kd, v, outDevice, lseDevice, dout, dq, dk, dv, null, B, T, T, Hq, Hkv, D, D, scale, true);
    for (const [what, ptr] of [['dq', dq], ['dk', dk], ['dv', dv]] as const) {
      const e = normError(`attentionBackward from bf16-only v, out and dO: ${what}`, read(ptr, grads[what].length), grads[what]);
      assert.ok(e < BOUND, `attentionBackward from bf16-only inputs: ${what} relative error ${e} >= ${BOUND} (seed ${seed})`);
    }
  }));

  it('the tensor-core attention writes out\'s copy and reads the copies of q and k that RoPE wrote', () => run(() => {
    const B = 2, T = 70, Hq = 4, Hkv = 2, D = 64, scale = 1 / Math.sqrt(D), maxPos = T;
    const positions = Int32Array.from({ length: B * T }, (_, i) => i % T);
    const angles = Array.from({ length: maxPos * D / 2 }, (_, i) => Math.floor(i / (D / 2)) * 10000 ** (-(2 * (i % (D / 2))) / D));
    const cos = device(Float32Array.from(angles, Math.cos)), sin = device(Float32Array.from(angles, Math.sin));
    const hostCos = Float32Array.from(angles, Math.cos), hostSin = Float32Array.from(angles, Math.sin);
    // q and k rotated by RoPE on both backends; on the device k's float32 buffer is then negated (unwatched)
    // before the forward, and q's before the backward (the forward reads q as float32, the backward its bf16
    // copy), so only an attention that reads RoPE's copies gets the reference's result.
    const rotated = (x: Float32Array, heads: number): [number, Float32Array] => {
      const y = new Float32Array(x.length), yDevice = device(new Float32Array(x.length));
      ref.rope(x, y, positions, hostCos, hostSin, B * T, heads, D, D, false, false);
      K().rope(device(x), yDevice, device(positions), cos, sin, B * T, heads, D, D, false, false);
      return [yDevice, y];
    };
    const [q, qRef] = rotated(normal(B * T * Hq * D), Hq), [k, kRef] = rotated(normal(B * T * Hkv * D), Hkv);
    const v = normal(B * T * Hkv * D), dout = normal(B * T * Hq * D);
    const out = new Float32Array(B * T * Hq * D), lse = new Float32Array(B * Hq * T);
    ref.attention(qRef, kRef, v, out, lse, null, B, T, T, Hq, Hkv, D, D, T * Hkv * D, T * Hkv * D, scale, true);
    K().unary('neg', k, k, kRef.length);
    const outDevice = device(new Float32Array(out.length)), lseDevice = device(new Float32Array(lse.length)), vDevice = device(v);
    K().attention(q, k, vDevice, outDevice, lseDevice, null, B, T, T, Hq, Hkv, D, D, T * Hkv * D, T * Hkv * D, scale, true);
    const BOUND = 1e-2;  // the tensor-core attention's bound above
    const grads = { dq: new Float32Array(qRef.length), dk: new Float32Array(kRef.length), dv: new Float32Array(v.length) };
    ref.attentionBackward(qRef, kRef, v, out, lse, dout, grads.dq, grads.dk, grads.dv, null, B, T, T, Hq, Hkv, D, D, scale, true);
    K().unary('neg', q, q, qRef.length);
    const dq = device(new Float32Array(qRef.length)), dk = device(new Float32Array(kRef.length)), dv = device(new Float32Array(v.length));
    K().attentionBackward(q, k, vDevice, outDevice, lseDevice, device(dout), dq, dk, dv, null, B, T, T, Hq, Hkv, D, D, scale, true);
    for (const [what, ptr] of [['dq', dq], ['dk', dk], ['dv', dv]] as const) {
      const error = normError(`attentionBackward from copies ${what}`, read(ptr, grads[what].length), grads[what]);
      assert.ok(error < BOUND, `attentionBackward from RoPE's copies: ${what} relative error ${error} >= ${BOUND} (seed ${seed})`);
    }
    checkOutput('attention out (bf16 tensor cores)', outDevice, out, BOUND);
  }));
});
