// CUDA kernel benchmark (native/cuda through src/tensor/backends/cuda-library.ts): GEMM TFLOP/s in f32, tf32
// and bf16 at the shapes of the Qwen2.5-0.5B configuration (hidden 896, MLP 4864, vocab 151936), fused attention
// forward and backward TFLOP/s at a training shape, decode attention bandwidth over a long KV cache,
// cross-entropy over the 151936-token vocabulary, and device-to-device copy bandwidth (the memory roof).
// Prints a table and writes bench/results/cuda_kernels.json. bench/cuda_kernels_torch.py times the PyTorch
// equivalents of the same rows, to run beside it. Sections named on the command line run alone (copy, gemm,
// attention, decode, cross-entropy, fused); none named runs them all.
//   node --import tsx bench/cuda_kernels.ts [section...]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCudaLibrary, type DevicePtr, type MatmulPrecision } from '../src/tensor/backends/cuda-library.ts';
import { Rng } from '../src/tensor/random.ts';

const cuda = openCudaLibrary();
cuda.init(0);
const k = cuda.kernels;
const rng = new Rng(1);
const sectionNames = ['copy', 'gemm', 'attention', 'decode', 'cross-entropy', 'fused'];
const chosen = process.argv.slice(2);
for (const name of chosen) {
  if (!sectionNames.includes(name)) throw new Error(`unknown section '${name}' (known: ${sectionNames.join(', ')})`);
}
const runs = (section: string): boolean => chosen.length === 0 || chosen.includes(section);

function deviceRandom(n: number, scale = 1): DevicePtr {
  const ptr = cuda.alloc(4 * n);
  const chunk = 1 << 20, host = new Float32Array(Math.min(n, chunk));
  for (let i = 0; i < host.length; i++) host[i] = scale * rng.normal();
  for (let off = 0; off < n; off += chunk) cuda.upload(ptr + 4 * off, host.subarray(0, Math.min(chunk, n - off)));
  return ptr;
}

/** Median seconds per call of fn over `repeats` timed batches after warm-up (each batch synchronised). */
function time(fn: () => void, minSeconds = 0.2): number {
  fn();
  cuda.synchronize();
  let calls = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    cuda.synchronize();
    const seconds = (performance.now() - t0) / 1000;
    if (seconds > minSeconds / 5 || calls > 1 << 16) break;
    calls *= 4;
  }
  const samples: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    cuda.synchronize();
    samples.push((performance.now() - t0) / 1000 / calls);
  }
  return samples.sort((a, b) => a - b)[2];
}

interface Row { name: string; ms: number; tflops?: number; gbps?: number }
const rows: Row[] = [];
function report(row: Row): void {
  rows.push(row);
  const rate = row.tflops !== undefined ? `${row.tflops.toFixed(1)} TFLOP/s` : `${row.gbps!.toFixed(0)} GB/s`;
  console.log(`${row.name.padEnd(58)} ${row.ms.toFixed(3).padStart(9)} ms  ${rate.padStart(14)}`);
}

console.log(`device: ${cuda.deviceName()}\n`);

// ---- copy bandwidth: the roof of every memory-bound kernel ----
if (runs('copy')) {
  const n = 256 << 20;  // 1 GiB
  const a = cuda.alloc(4 * n), b = cuda.alloc(4 * n);
  const s = time(() => cuda.copy(b, a, 4 * n));
  report({ name: 'copy 1 GiB device to device (read + write)', ms: s * 1e3, gbps: (8 * n) / s / 1e9 });
  cuda.free(a);
  cuda.free(b);
}

// ---- GEMM ----
const tokens = 8192;
const gemmShapes: [string, number, number, number, boolean][] = [
  ['x @ W_up^T   [8192x896] x [4864x896]^T', tokens, 4864, 896, true],
  ['x @ W_down^T [8192x4864] x [896x4864]^T', tokens, 896, 4864, true],
  ['LM head      [8192x896] x [151936x896]^T', tokens, 151936, 896, true],
  ['square 4096', 4096, 4096, 4096, false],
];
// 'bf16w': bf16 with the weight (the right operand) registered, so that only the activation is rounded per call.
for (const precision of ['f32', 'tf32', 'bf16', 'bf16w'] as const) {
  if (!runs('gemm')) break;
  cuda.setMatmulPrecision(precision === 'bf16w' ? 'bf16' : precision as MatmulPrecision);
  for (const [name, m, n, kk, transB] of gemmShapes) {
    const a = deviceRandom(m * kk), b = deviceRandom(n * kk), c = cuda.alloc(4 * m * n);
    if (precision === 'bf16w') cuda.registerWeight(b, n * kk);
    const s = time(() => k.matmul(a, b, c, 1, m, n, kk, false, transB, 0, 0, 0, 0));
    report({ name: `gemm ${precision.padEnd(5)} ${name}`, ms: s * 1e3, tflops: (2 * m * n * kk) / s / 1e12 });
    for (const p of [a, b, c]) cuda.free(p);
  }
}
cuda.setMatmulPrecision('f32');

// ---- attention: training shape, Qwen2.5-0.5B heads (14 query, 2 kv, head size 64), causal; in f32 (CUDA cores)
// and bf16 precision (tensor cores), and the bf16 kernel at head size 128 ----
for (const [precision, B, T, Hq, Hkv, D] of [['f32', 8, 1024, 14, 2, 64], ['bf16', 8, 1024, 14, 2, 64], ['bf16', 4, 2048, 16, 2, 128]] as const) {
  if (!runs('attention')) break;
  cuda.setMatmulPrecision(precision);
  const q = deviceRandom(B * T * Hq * D), kk = deviceRandom(B * T * Hkv * D), v = deviceRandom(B * T * Hkv * D);
  const out = cuda.alloc(4 * B * T * Hq * D), lse = cuda.alloc(4 * B * Hq * T), dout = deviceRandom(B * T * Hq * D);
  const dq = cuda.alloc(4 * B * T * Hq * D), dk = cuda.alloc(4 * B * T * Hkv * D), dv = cuda.alloc(4 * B * T * Hkv * D);
  const scale = 1 / Math.sqrt(D);
  const causalFlops = 4 * B * Hq * D * (T * (T + 1)) / 2;  // QK^T and PV over the visible half
  const fwd = time(() => k.attention(q, kk, v, out, lse, null, B, T, T, Hq, Hkv, D, D, T * Hkv * D, T * Hkv * D, scale, true));
  report({ name: `attention fwd ${precision} B=${B} T=${T} H=${Hq}/${Hkv} D=${D} causal`, ms: fwd * 1e3, tflops: causalFlops / fwd / 1e12 });
  const bwd = time(() => k.attentionBackward(q, kk, v, out, lse, dout, dq, dk, dv, null, B, T, T, Hq, Hkv, D, D, scale, true));
  report({ name: `attention bwd ${precision} B=${B} T=${T} H=${Hq}/${Hkv} D=${D} causal`, ms: bwd * 1e3, tflops: (2.5 * causalFlops) / bwd / 1e12 });
  for (const p of [q, kk, v, out, lse, dout, dq, dk, dv]) cuda.free(p);
  cuda.setMatmulPrecision('f32');
}

// ---- decode attention: one new token per sequence against a KV cache ----
for (const [B, Tk] of [[64, 320], [256, 320], [8, 4096], [1, 32768]]) {
  if (!runs('decode')) break;
  const Hq = 14, Hkv = 2, D = 64, capacity = Tk;
  const q = deviceRandom(B * Hq * D), kk = deviceRandom(B * capacity * Hkv * D), v = deviceRandom(B * capacity * Hkv * D);
  const out = cuda.alloc(4 * B * Hq * D);
  const s = time(() => k.attention(q, kk, v, out, null, null, B, 1, Tk, Hq, Hkv, D, D, capacity * Hkv * D, capacity * Hkv * D, 1 / Math.sqrt(D), true));
  const bytes = 2 * 4 * B * Tk * Hkv * D;  // K and V read once
  report({ name: `decode attention B=${B} Tk=${Tk} H=${Hq}/${Hkv} D=${D} (KV bytes)`, ms: s * 1e3, gbps: bytes / s / 1e9 });
  for (const p of [q, kk, v, out]) cuda.free(p);
}

// ---- cross-entropy over the Qwen2.5 vocabulary ----
if (runs('cross-entropy')) {
  const R = 4096, V = 151936;
  const logits = deviceRandom(R * V, 3), targets = cuda.alloc(4 * R), loss = cuda.alloc(4 * R), lse = cuda.alloc(4 * R);
  const dloss = deviceRandom(R), dlogits = cuda.alloc(4 * R * V);
  cuda.upload(targets, Int32Array.from({ length: R }, () => rng.int(V)));
  const fwd = time(() => k.crossEntropy(logits, targets, loss, lse, R, V, -100));
  report({ name: `cross-entropy fwd ${R} x ${V} (logit bytes read)`, ms: fwd * 1e3, gbps: (4 * R * V) / fwd / 1e9 });
  const bwd = time(() => k.crossEntropyBackward(logits, targets, lse, dloss, dlogits, R, V, -100));
  report({ name: `cross-entropy bwd ${R} x ${V} (read + write)`, ms: bwd * 1e3, gbps: (8 * R * V) / bwd / 1e9 });
  for (const p of [logits, targets, loss, lse, dloss, dlogits]) cuda.free(p);
}

// ---- memory-bound fused kernels at the training shape ----
if (runs('fused')) {
  const R = 8192, dim = 896, hidden = 4864;
  const x = deviceRandom(R * dim), w = deviceRandom(dim), y = cuda.alloc(4 * R * dim), rstd = cuda.alloc(4 * R);
  const s = time(() => k.rmsnorm(x, w, y, rstd, R, dim, 1e-6));
  report({ name: `rmsnorm ${R} x ${dim} (read + write)`, ms: s * 1e3, gbps: (8 * R * dim) / s / 1e9 });
  const g = deviceRandom(R * hidden), u = deviceRandom(R * hidden), o = cuda.alloc(4 * R * hidden);
  const s2 = time(() => k.swiglu(g, u, o, R * hidden));
  report({ name: `swiglu ${R} x ${hidden} (read 2 + write 1)`, ms: s2 * 1e3, gbps: (12 * R * hidden) / s2 / 1e9 });
  const n = 494e6 | 0, p = deviceRandom(n, 0.02), gr = deviceRandom(n, 0.01), m = cuda.alloc(4 * n), vv = cuda.alloc(4 * n);
  cuda.fill(m, 0, n);
  cuda.fill(vv, 0, n);
  const s3 = time(() => k.adamw(p, gr, m, vv, n, 1e-4, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05));
  report({ name: `adamw 494M parameters (read 4 + write 3)`, ms: s3 * 1e3, gbps: (28 * n) / s3 / 1e9 });
  for (const ptr of [x, w, y, rstd, g, u, o, p, gr, m, vv]) cuda.free(ptr);
}

const out = join(fileURLToPath(new URL('./results/', import.meta.url)), 'cuda_kernels.json');
mkdirSync(join(out, '..'), { recursive: true });
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), device: cuda.deviceName(), rows }, null, 2));
console.log(`\nwrote ${out}`);
