// Sampling throughput of the generation engine (src/generate/engine.ts) on the CPU backend: the dense presets
// with random weights, batch 1 and batch 32, prompts of 16-64 tokens, 128 new tokens each (stop tokens off, so
// every row runs to the end); the fastest of 3 runs. Prints a table and writes bench/results/sample.json.
//   node --import tsx bench/sample.ts           (1m, 5m, 20m)
//   node --import tsx bench/sample.ts 5m        (only the named sizes)
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.ts';
import { generate } from '../src/generate/engine.ts';
import { DenseModel, denseConfig, type DenseSize } from '../src/models/dense.ts';
import { cpuBackend, Rng } from '../src/tensor/index.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { trainBpe } from '../src/tokenizer/train.ts';
import { syntheticCorpus } from '../src/train/corpus.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const VOCAB = 2048; // the pretraining default (src/train/pretrain.ts)
const NEW_TOKENS = 128;
const BATCHES = [1, 32];
const REPEATS = 3;
const sizes = (process.argv.slice(2).length ? process.argv.slice(2) : ['1m', '5m', '20m']) as DenseSize[];


// The tokenizer only turns sampled ids into text here; its size sets how many ids are sampled among.
const trained = trainBpe(syntheticCorpus(1, 400), { vocabSize: VOCAB });
const tokenizer = Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);

function prompts(count: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Array.from({ length: 16 + rng.int(49) }, () => rng.int(tokenizer.vocabSize)));
}

const backend = cpuBackend().name;
const info = machine();
// Other processes on the machine slow every row down; the load average is recorded so that a busy run shows.
const loadBefore = loadavg()[0];
console.log(`backend ${backend}, ${info.model}, ${info.cores} cores, load average ${loadBefore.toFixed(2)}; vocab ${tokenizer.vocabSize}/${VOCAB}, prompts 16-64 tokens, ${NEW_TOKENS} new tokens, temperature 0.8, top-p 0.95\n`);
const header = ['model', 'params', 'batch', 'seconds', 'tokens/s', 'ms/step'];
const row = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(6) : c.padStart(10))).join(' ');
console.log(row(header));

const results = [];
for (const size of sizes) {
  const model = new DenseModel(denseConfig(size, VOCAB), 1);
  const run = (batch: number, seed: number) => generate(model, tokenizer, prompts(batch, seed).map((prompt) => ({ prompt })), {
    maxNewTokens: NEW_TOKENS, temperature: 0.8, topP: 0.95, stopTokenIds: [], seed, maxBatchSize: batch,
  });
  run(2, 99); // warm-up: JIT, thread pool, first allocations
  for (const batch of BATCHES) {
    // Fastest of REPEATS runs of the same requests: other work on the machine only ever adds time.
    let seconds = Infinity;
    let out: ReturnType<typeof run> = [];
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const started = performance.now();
      out = run(batch, batch);
      seconds = Math.min(seconds, (performance.now() - started) / 1000);
    }
    const tokens = out.reduce((n, r) => n + r.tokenIds.length, 0);
    const result = {
      size, parameters: model.parameterCount(), batch, promptTokens: out.reduce((n, r) => n + r.promptTokens, 0),
      newTokens: tokens, seconds, tokensPerSecond: tokens / seconds, msPerStep: (seconds * 1000) / NEW_TOKENS,
    };
    results.push(result);
    console.log(row([size, `${(result.parameters / 1e6).toFixed(2)}M`, String(batch), seconds.toFixed(2), result.tokensPerSecond.toFixed(0), result.msPerStep.toFixed(1)]));
  }
}

const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'sample.json'), JSON.stringify({
  date: new Date().toISOString(), machine: info, backend, loadAverage: { before: loadBefore, after: loadavg()[0] }, vocab: tokenizer.vocabSize, modelVocab: VOCAB, newTokens: NEW_TOKENS, repeats: REPEATS,
  sampling: { temperature: 0.8, topP: 0.95 }, results,
}, null, 2) + '\n');
console.log(`\nwrote ${join('bench', 'results', 'sample.json')}`);
