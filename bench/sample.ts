// Sampling throughput of the generation engine (src/generate/engine.ts) on the CPU backend: the dense presets
// with random weights, prompts of 16-64 tokens, temperature 0.8, top-p 0.95, stop tokens off; the fastest of 3
// runs. Two row sets:
// - batch 1 and batch 32: as many requests as rows, 128 new tokens each, so every row runs to the end;
// - queue: 128 requests through 32 rows, each with its own maxNewTokens (8-128, as stop tokens would end
//   GRPO's completions at different lengths), so rows finish at different steps and the engine must refill them.
// Occupancy is the mean over decode steps of the rows holding an unfinished request, over maxBatchSize.
// Prints a table and writes bench/results/sample.json.
//   node --import tsx bench/sample.ts           (1m, 5m, 20m)
//   node --import tsx bench/sample.ts 5m        (only the named sizes)
//   QUEUE=0 node --import tsx bench/sample.ts   (batch 1 and 32 only: the rows bench/hf_generate_cpu.py has)
//   REPEATS=2 node --import tsx bench/sample.ts (the fastest of 2 runs instead of 3)
//   PROFILE=1 node --import tsx bench/sample.ts 20m (each row set once more with every kernel call timed)
//   QUEUE=0 taskset -c 0 node --import tsx bench/sample.ts (one thread: then the CPU seconds column, the process's
//                                CPU time for the fastest run, is the steady figure on a machine others load)
// Each row records the process's peak resident memory so far (run one size per process for per-size figures).
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileKernels } from './kernel_profile.ts';
import { machine } from './machine.ts';
import { generate, type GenerationRequest, type StepEvent } from '../src/generate/engine.ts';
import { DenseModel, denseConfig, type DenseSize } from '../src/models/dense.ts';
import { cpuBackend, Rng } from '../src/tensor/index.ts';
import { nativeThreads } from '../src/tensor/backends/native.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { trainBpe } from '../src/tokenizer/train.ts';
import { syntheticCorpus } from '../src/train/corpus.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const VOCAB = 2048; // the pretraining default (src/train/pretrain.ts)
const NEW_TOKENS = 128;
const BATCHES = [1, 32];
const QUEUE = { requests: 128, maxBatchSize: 32, minNewTokens: 8 };
const REPEATS = Number(process.env.REPEATS ?? 3);
const sizes = (process.argv.slice(2).length ? process.argv.slice(2) : ['1m', '5m', '20m']) as DenseSize[];


// The tokenizer only turns sampled ids into text here; its size sets how many ids are sampled among.
const trained = trainBpe(syntheticCorpus(1, 400), { vocabSize: VOCAB });
const tokenizer = Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);

/** `count` requests of 16-64 prompt tokens; with varyLength, each with its own maxNewTokens in [8, 128]. */
function requests(count: number, seed: number, varyLength: boolean): GenerationRequest[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const prompt = Array.from({ length: 16 + rng.int(49) }, () => rng.int(tokenizer.vocabSize));
    return varyLength ? { prompt, maxNewTokens: QUEUE.minNewTokens + rng.int(NEW_TOKENS - QUEUE.minNewTokens + 1) } : { prompt };
  });
}

const backend = cpuBackend().name;
const info = machine();
// Other processes on the machine slow every row down; the load average is recorded so that a busy run shows.
const loadBefore = loadavg()[0];
console.log(`backend ${backend}, ${info.model}, ${info.cores} cores, load average ${loadBefore.toFixed(2)}; vocab ${tokenizer.vocabSize}/${VOCAB}, prompts 16-64 tokens, up to ${NEW_TOKENS} new tokens, temperature 0.8, top-p 0.95\n`);
const header = ['model', 'params', 'requests', 'batch', 'new tokens', 'seconds', 'tokens/s', 'cpu s', 'occupancy', 'peak MiB'];
const row = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(6) : c.padStart(10))).join(' ');
console.log(row(header));

const rowSets = [
  ...BATCHES.map((batch) => ({ name: `batch ${batch}`, requests: batch, maxBatchSize: batch, varyLength: false })),
  ...(process.env.QUEUE === '0' ? [] : [{ name: 'queue', requests: QUEUE.requests, maxBatchSize: QUEUE.maxBatchSize, varyLength: true }]),
];
const results = [];
for (const size of sizes) {
  const model = new DenseModel(denseConfig(size, VOCAB), 1);
  let steps: StepEvent[] = [];
  const run = (set: (typeof rowSets)[number], seed: number) => {
    steps = [];
    return generate(model, tokenizer, requests(set.requests, seed, set.varyLength), {
      maxNewTokens: NEW_TOKENS, temperature: 0.8, topP: 0.95, stopTokenIds: [], seed, maxBatchSize: set.maxBatchSize, onStep: (e) => steps.push(e),
    });
  };
  run({ name: 'warm-up', requests: 2, maxBatchSize: 2, varyLength: false }, 99); // JIT, thread pool, first allocations
  for (const set of rowSets) {
    // Fastest of REPEATS runs of the same requests: other work on the machine only ever adds time.
    let seconds = Infinity, cpuSeconds = Infinity;
    let out: ReturnType<typeof run> = [];
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const started = performance.now();
      const cpu = process.cpuUsage();
      out = run(set, set.requests);
      const used = process.cpuUsage(cpu);
      seconds = Math.min(seconds, (performance.now() - started) / 1000);
      cpuSeconds = Math.min(cpuSeconds, (used.user + used.system) / 1e6);
    }
    const tokens = out.reduce((n, r) => n + r.tokenIds.length, 0);
    const result = {
      size, rowSet: set.name, parameters: model.parameterCount(), requests: set.requests, maxBatchSize: set.maxBatchSize,
      promptTokens: out.reduce((n, r) => n + r.promptTokens, 0), newTokens: tokens, seconds, tokensPerSecond: tokens / seconds, cpuSeconds,
      steps: steps.length, occupancy: steps.reduce((n, e) => n + e.liveRows, 0) / (steps.length * set.maxBatchSize),
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
    };
    results.push(result);
    console.log(row([size, `${(result.parameters / 1e6).toFixed(2)}M`, String(set.requests), String(set.maxBatchSize), String(tokens), seconds.toFixed(2), result.tokensPerSecond.toFixed(0), cpuSeconds.toFixed(2), result.occupancy.toFixed(2), result.peakRssMiB.toFixed(0)]));
    if (process.env.PROFILE === '1') profileKernels(() => run(set, set.requests), 1, 'run');
  }
}

const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'sample.json'), JSON.stringify({
  date: new Date().toISOString(), machine: info, backend, threads: backend === 'native' ? nativeThreads() : 1, loadAverage: { before: loadBefore, after: loadavg()[0] }, vocab: tokenizer.vocabSize, modelVocab: VOCAB, newTokens: NEW_TOKENS, repeats: REPEATS,
  queue: QUEUE, sampling: { temperature: 0.8, topP: 0.95 }, results,
}, null, 2) + '\n');
console.log(`\nwrote ${join('bench', 'results', 'sample.json')}`);
