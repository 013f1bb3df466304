// CPU GEMM benchmark: r1_matmul (native/cpu/gemm.cpp) against OpenBLAS's cblas_sgemm on square sizes and the
// shapes a small transformer trains and decodes with. Prints a table and writes bench/results/gemm.json.
//   node --import tsx bench/gemm.ts            (all shapes)
//   node --import tsx bench/gemm.ts 1024 2048  (only rows whose name contains one of the arguments)
// Where OpenBLAS is missing (the GPU machine), bench/gemm_torch_cpu.py times PyTorch's products on the same shapes.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'koffi';
import { nativeBackend, nativeThreads } from '../src/tensor/backends/native.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const { matmul: r1Matmul } = nativeBackend().kernels;

type Sgemm = (order: number, ta: number, tb: number, m: number, n: number, k: number, alpha: number,
  a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number) => void;

function loadOpenBlas(): Sgemm | undefined {
  for (const name of ['libopenblas.so.0', 'libopenblas.so', '/usr/lib/x86_64-linux-gnu/libopenblas.so.0',
    '/usr/lib/aarch64-linux-gnu/libopenblas.so.0', 'libopenblas.dylib']) {
    try {
      return load(name).func('void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, ' +
        'const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)') as Sgemm;
    } catch {}
  }
  console.log('OpenBLAS not found, so the OpenBLAS column is skipped. To compare, install it (Debian/Ubuntu: ' +
    '`sudo apt-get install -y libopenblas0-pthread`) and run this again.\n');
  return undefined;
}
const sgemm = loadOpenBlas();
const CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112;

/**
 * Machine peak in GFLOP/s, measured: bench/fma_peak.cpp (built here with the native core's compiler flags) runs
 * independent FMAs on the widest vectors on every CPU this process may use, all at once. A clock from
 * /proc/cpuinfo says neither the turbo or AVX-512 clock nor whether a virtual machine's "cores" are hyperthreads
 * of one core. Without a compiler: cores x that clock x 2 FMA pipes x 8 lanes x 2, marked as an estimate.
 */
function machine(): { model: string; cores: number; peakGflops: number; peakSource: string } {
  const cores = availableParallelism();
  let model = cpus()[0]?.model ?? 'unknown', clockMHz = cpus()[0]?.speed ?? 0;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    clockMHz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1] ?? clockMHz);
    model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? model;
  } catch {}
  try {
    const exe = join(root, 'build', 'fma_peak');
    execFileSync(process.env.CXX ?? 'c++', ['-O2', '-march=native', '-pthread', join(root, 'bench', 'fma_peak.cpp'), '-o', exe]);
    const peak = JSON.parse(execFileSync(exe, ['0.3'], { encoding: 'utf8' })) as { lanes: number; threads: number; perThread: number[]; gflops: number };
    return { model, cores, peakGflops: peak.gflops, peakSource: `measured: ${peak.threads} threads of ${peak.lanes}-lane FMAs, ${peak.perThread.join(' + ')}` };
  } catch {
    return { model, cores, peakGflops: (cores * clockMHz * 2 * 8 * 2) / 1000, peakSource: `estimate: ${cores} cores x ${clockMHz} MHz x 2 FMA x 8 lanes x 2` };
  }
}

interface Shape {
  name: string;
  batch?: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
}

// Transformer shapes for hidden size h and T = 4096 tokens (a batch of 16 x 256): the fused QKV projection
// (h -> 3h) with the weight stored [out, in] as in a Linear layer, forward Y = X W^T and its two backward
// products, dX = dY W and dW = dY^T X. Decode: one token (m = 1) or 32 sequences (m = 32) through a
// Linear layer and through the vocabulary projection.
function transformerShapes(label: string, h: number): Shape[] {
  const T = 4096;
  return [
    { name: `${label} X W (NN)`, m: T, n: 3 * h, k: h },
    { name: `${label} X W^T (NT) fwd`, m: T, n: 3 * h, k: h, transB: true },
    { name: `${label} dY W (NN) dX`, m: T, n: h, k: 3 * h },
    { name: `${label} dY^T X (TN) dW`, m: 3 * h, n: h, k: T, transA: true },
  ];
}

// The products of one training step of a dense preset (src/models/dense.ts: hidden h, MLP width f, vocabulary
// 2048) at 16 x 128 tokens, as bench/train.ts's PROFILE=1 lists them: each Linear's forward X W^T (NT), its
// dX = dY W (NN) and dW = dY^T X (TN), for the MLP's gate/up (h -> f), its down (f -> h), the attention's q/o
// (h -> h) and the vocabulary projection.
function trainShapes(label: string, h: number, f: number): Shape[] {
  const T = 2048, V = 2048;
  const linears: Array<[string, number, number]> = [['gate/up', h, f], ['down', f, h], ['q/o', h, h], ['vocab', h, V]];
  return linears.flatMap(([what, inp, out]) => [
    { name: `train ${label} ${what} fwd X W^T (NT)`, m: T, n: out, k: inp, transB: true },
    { name: `train ${label} ${what} dX dY W (NN)`, m: T, n: inp, k: out },
    { name: `train ${label} ${what} dW dY^T X (TN)`, m: out, n: inp, k: T, transA: true },
  ]);
}

const shapes: Shape[] = [
  ...[256, 512, 1024, 2048].map((s) => ({ name: `square ${s}`, m: s, n: s, k: s })),
  ...trainShapes('5m', 256, 688),
  ...trainShapes('20m', 512, 1376),
  ...transformerShapes('5M h=256', 256),
  ...transformerShapes('20M h=512', 512),
  { name: 'attention 16 heads QK^T', batch: 16, m: 256, n: 256, k: 64, transB: true },
  ...[512, 1024].flatMap((h) => [
    { name: `decode m=1 ${h}x${h} (NT)`, m: 1, n: h, k: h, transB: true },
    { name: `decode m=1 ${h}x${h} (NN)`, m: 1, n: h, k: h },
    { name: `decode m=32 ${h}x${h} (NT)`, m: 32, n: h, k: h, transB: true },
  ]),
  ...[4096, 32768].flatMap((v) => [
    { name: `decode m=1 vocab 512x${v} (NT)`, m: 1, n: v, k: 512, transB: true },
    { name: `decode m=32 vocab 512x${v} (NT)`, m: 32, n: v, k: 512, transB: true },
  ]),
  { name: 'decode m=32 vocab 1024x32768 (NT)', m: 32, n: 32768, k: 1024, transB: true },
];

/**
 * Seconds per call of each runner: the fastest call, over rounds in which each runner in turn makes calls for
 * 50 ms (at least 2), 0.4 s in all, after one warm-up call each. Runners alternate so that a burst of other
 * load on the machine slows both alike (the machine this was written on is shared), but in blocks with a 30 ms
 * pause between them, not call by call: both libraries' threads spin after a call (r1's for 100 us, OpenBLAS's
 * for much longer), and on a few pinned cores (the GPU machine's Xeon under `taskset -c 0,1`) the other
 * library's spinning threads halved or thirded some shapes' figures when calls alternated one by one.
 */
function time(runners: Array<() => void>): number[] {
  for (const run of runners) run();
  const best = runners.map(() => Infinity);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const start = performance.now();
  while (performance.now() - start < 400) {
    runners.forEach((run, i) => {
      Atomics.wait(pause, 0, 0, 30);
      const blockStart = performance.now();
      for (let calls = 0; calls < 2 || performance.now() - blockStart < 50; ++calls) {
        const t = performance.now();
        run();
        best[i] = Math.min(best[i], (performance.now() - t) / 1000);
      }
    });
  }
  return best;
}

function randomArray(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; ++i) out[i] = Math.random() * 2 - 1;
  return out;
}

const filters = process.argv.slice(2);
const info = machine();
console.log(`${info.model}, ${info.cores} cores; r1 threads ${nativeThreads()}`);
console.log(`peak ${info.peakGflops.toFixed(1)} GFLOP/s (${info.peakSource})\n`);
const header = ['shape', 'batch', 'm', 'n', 'k', 'r1 ms', 'r1 GFLOP/s', '% peak', 'OpenBLAS GFLOP/s', 'r1 / OpenBLAS'];
const widths = [36, 5, 6, 6, 6, 9, 10, 7, 16, 13];
const row = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' ');
console.log(row(header));

const results = [];
for (const s of shapes) {
  if (filters.length && !filters.some((f) => s.name.includes(f))) continue;
  const { m, n, k, batch = 1, transA = false, transB = false } = s;
  const a = randomArray(batch * m * k), b = randomArray(batch * k * n), c = new Float32Array(batch * m * n);
  const flops = 2 * batch * m * n * k;
  const runR1 = () => r1Matmul(a, b, c, batch, m, n, k, transA, transB, m * k, k * n, m * n, 0);
  const runners = [runR1];
  if (sgemm) {
    const lda = transA ? m : k, ldb = transB ? k : n;
    // cblas has no batch: one call per item on subarray views (koffi passes views by pointer too).
    const views = Array.from({ length: batch }, (_, i) => [a.subarray(i * m * k), b.subarray(i * k * n), c.subarray(i * m * n)]);
    runners.push(() => {
      for (const [av, bv, cv] of views) {
        sgemm(CBLAS_ROW_MAJOR, transA ? CBLAS_TRANS : CBLAS_NO_TRANS, transB ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, 1,
          av, lda, bv, ldb, 0, cv, n);
      }
    });
  }
  const [r1Seconds, blasSeconds] = time(runners);
  const r1Gflops = flops / r1Seconds / 1e9;
  const blasGflops = blasSeconds ? flops / blasSeconds / 1e9 : undefined;
  const result = {
    ...s, batch, transA, transB,
    r1Ms: r1Seconds * 1000, r1Gflops, percentOfPeak: (100 * r1Gflops) / info.peakGflops,
    openblasMs: blasSeconds === undefined ? null : blasSeconds * 1000, openblasGflops: blasGflops ?? null,
    ratioToOpenblas: blasGflops ? r1Gflops / blasGflops : null,
  };
  results.push(result);
  console.log(row([s.name, String(batch), String(m), String(n), String(k), result.r1Ms.toFixed(3), r1Gflops.toFixed(1),
    result.percentOfPeak.toFixed(0), blasGflops ? blasGflops.toFixed(1) : '-', result.ratioToOpenblas ? result.ratioToOpenblas.toFixed(2) : '-']));
}

const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'gemm.json'), JSON.stringify({ date: new Date().toISOString(), machine: info, timing: 'fastest call; runners alternate in 50 ms blocks with 30 ms pauses, 0.4 s per shape', threads: nativeThreads(), openblas: !!sgemm, results }, null, 2) + '\n');
console.log(`\nwrote ${join('bench', 'results', 'gemm.json')}`);
