// CPU training throughput: one full update (forward, backward, gradient clipping, AdamW) of dense models of
// about 1M, 5M and 20M parameters on random token windows, on the active CPU backend (native when built).
// Prints a table and writes bench/results/train.json.
//   node --import tsx bench/train.ts                 (all sizes, batch 16 x seq 128, vocab 2048)
//   node --import tsx bench/train.ts 5m              (only these sizes)
//   BATCH=8 SEQ=256 node --import tsx bench/train.ts
//   MIN_SECONDS=4 node --import tsx bench/train.ts 20m  (time at least 4 s per size instead of 10)
//   PROFILE=1 node --import tsx bench/train.ts 5m   (then 5 more steps with each kernel call timed: a table of
//                                                    where a step's time goes, beside bench/torch_cpu_train.py's)
//   RELEASE_GRAPH=0 node --import tsx bench/train.ts (leave each step's activations and gradients to V8's
//                                                    collector: the A/B of backward's releaseGraph, clipGradNorm's
//                                                    release and releaseGradients, which the training loop uses)
// Peak memory is the process's peak resident set so far: run one size per process for a per-size figure.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileKernels } from './kernel_profile.ts';
import { machine } from './machine.ts';
import { DenseModel, denseConfig, denseSizes, type DenseSize } from '../src/models/dense.ts';
import { cpuBackend, Rng, tensor } from '../src/tensor/index.ts';
import { nativeThreads } from '../src/tensor/backends/native.ts';
import { AdamW, clipGradNorm, releaseGradients } from '../src/train/optimizer.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const batch = Number(process.env.BATCH ?? 16);
const seqLen = Number(process.env.SEQ ?? 128);
const vocab = Number(process.env.VOCAB ?? 2048);
const warmupSteps = 2;
const minSeconds = Number(process.env.MIN_SECONDS ?? 10);
const releaseGraph = process.env.RELEASE_GRAPH !== '0';
const sizes = (Object.keys(denseSizes) as DenseSize[]).filter((s) => process.argv.length <= 2 || process.argv.slice(2).includes(s));


function randomBatch(rng: Rng) {
  const ids = new Int32Array(batch * (seqLen + 1));
  for (let i = 0; i < ids.length; i++) ids[i] = rng.int(vocab);
  const inputs = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    inputs.set(ids.subarray(b * (seqLen + 1), b * (seqLen + 1) + seqLen), b * seqLen);
    targets.set(ids.subarray(b * (seqLen + 1) + 1, (b + 1) * (seqLen + 1)), b * seqLen);
  }
  return { inputs: tensor(inputs, [batch, seqLen], 'i32'), targets: tensor(targets, [batch, seqLen], 'i32') };
}

interface Row {
  size: DenseSize;
  parameters: number;
  steps: number;
  /** Median step time; the fastest step is also kept, since other processes on the machine only add time. */
  msPerStep: number;
  bestMsPerStep: number;
  tokensPerSecond: number;
  bestTokensPerSecond: number;
  /** 6 N flops per token (Kaplan et al. 2020, sec. 2.1), attention's T-dependent part not counted. */
  gflops: number;
  /** Peak resident memory of the process so far (MiB). */
  peakRssMiB: number;
}

const rows: Row[] = [];
for (const size of sizes) {
  const model = new DenseModel(denseConfig(size, vocab, { maxPositionEmbeddings: Math.max(1024, seqLen) }), 0);
  const optimizer = new AdamW(model.namedParameters());
  const params = model.parameters();
  const rng = new Rng(1);
  const step = () => {
    const { inputs, targets } = randomBatch(rng);
    // As the training loop's optimizerUpdate and finishUpdate do (RELEASE_GRAPH=0: leave it all to the collector).
    model.loss(inputs, targets).backward(undefined, { releaseGraph });
    clipGradNorm(params, 1, { release: releaseGraph });
    optimizer.update(1e-4);
    if (releaseGraph) releaseGradients(params);
    else model.zeroGrad();
  };
  for (let i = 0; i < warmupSteps; i++) step();
  // Time at least 5 steps and minSeconds, so that a step of any size is measured a few times.
  const start = performance.now();
  const times: number[] = [];
  while (times.length < 5 || performance.now() - start < minSeconds * 1000) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const msPerStep = times[Math.floor(times.length / 2)];
  const bestMsPerStep = times[0];
  const parameters = model.parameterCount();
  const tokensPerSecond = (batch * seqLen) / (msPerStep / 1000);
  const bestTokensPerSecond = (batch * seqLen) / (bestMsPerStep / 1000);
  rows.push({ size, parameters, steps: times.length, msPerStep, bestMsPerStep, tokensPerSecond, bestTokensPerSecond, gflops: (6 * parameters * tokensPerSecond) / 1e9, peakRssMiB: process.resourceUsage().maxRSS / 1024 });
  const r = rows.at(-1)!;
  console.log(`${size.padEnd(4)} ${(parameters / 1e6).toFixed(2).padStart(6)}M params  ${r.msPerStep.toFixed(0).padStart(6)} ms/step (best ${r.bestMsPerStep.toFixed(0)})  ${Math.round(r.tokensPerSecond).toString().padStart(6)} tokens/s (best ${Math.round(r.bestTokensPerSecond)})  ${r.gflops.toFixed(1).padStart(5)} GFLOP/s (6N, median)  peak RSS ${r.peakRssMiB.toFixed(0)} MiB`);
  if (process.env.PROFILE === '1') profileKernels(step, 5, 'step');
}

const result = {
  date: new Date().toISOString(),
  machine: machine(),
  /** 1-minute load average at the end: above the core count, other processes shared the CPU. */
  loadAverage: loadavg()[0],
  backend: cpuBackend().name,
  threads: cpuBackend().name === 'native' ? nativeThreads() : 1,
  releaseGraph,
  batch,
  seqLen,
  vocab,
  rows,
};
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'train.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(`backend ${result.backend}, batch ${batch} x seq ${seqLen}, vocab ${vocab}; wrote bench/results/train.json`);
