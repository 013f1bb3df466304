// Load test of `r1 serve` (src/serve/openai.ts): N concurrent clients, each sending streaming chat completions
// one after another for a fixed time, against a server in its own process on 127.0.0.1. A dense preset with
// random weights (so every completion runs to its max_tokens: ignore_eos), prompts of a few words, max_tokens
// drawn in [16, 64]. Reports requests answered, errors (a status other than 200, a stream without its usage
// chunk or `data: [DONE]`, a dropped connection), output tokens/s, time to first token and request latency
// (p50/p99), and the server's memory (its /health) idle, after the first minute and at the end, so that growth
// beyond the batch's shows. Prints a table and writes bench/results/serve.json.
//   node --import tsx bench/serve.ts                                   (64 clients, 5 minutes, 1m model, cpu)
//   node --import tsx bench/serve.ts --clients 64 --seconds 300 --size 5m --device cuda
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine } from './machine.ts';
import { DenseModel, denseConfig, type DenseSize } from '../src/models/dense.ts';
import { saveModel } from '../src/models/pretrained.ts';
import { Rng } from '../src/tensor/index.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe, trainBpe } from '../src/tokenizer/train.ts';
import { syntheticCorpus } from '../src/train/corpus.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '300' },
    size: { type: 'string', default: '1m' },
    device: { type: 'string', default: 'cpu' },
    'max-batch-size': { type: 'string', default: '64' },
  },
});
const CLIENTS = Number(args.clients);
const SECONDS = Number(args.seconds);
const VOCAB = 2048;
const WORDS = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'what', 'is', 'seven', 'plus', 'five', 'think', 'step', 'by'];

const dir = mkdtempSync(join(tmpdir(), 'r1ts-bench-serve-'));
const trained = trainBpe(syntheticCorpus(1, 400), { vocabSize: VOCAB });
await saveTrainedBpe(join(dir, 'tok'), trained);
const tokenizer = Tokenizer.fromFile(join(dir, 'tok'));
const modelDir = join(dir, 'model');
await saveModel(new DenseModel(denseConfig(args.size as DenseSize, VOCAB), 1), tokenizer, modelDir);

const mainModule = join(root, 'src/cli/main.ts');
const server = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', 'serve',
  '--model', modelDir, '--port', '0', '--device', args.device!, '--max-batch-size', args['max-batch-size']!, '--max-waiting', String(4 * CLIENTS)], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (data: Buffer) => {
    out += data.toString();
    const found = out.match(/at (http:\/\/127\.0\.0\.1:\d+)\/v1/);
    if (found) resolve(found[1]);
  });
  server.once('exit', (code) => reject(new Error(`r1 serve exited with ${code}: ${out}`)));
});

interface Health { running: number; waiting: number; batchRows: number; finished: number; cancelled: number; completionTokens: number; memory: NodeJS.MemoryUsage }
const health = async (): Promise<Health> => (await fetch(`${url}/health`)).json() as Promise<Health>;
const mib = (bytes: number) => bytes / 2 ** 20;

interface Outcome { ok: boolean; error?: string; ttftMs: number; latencyMs: number; tokens: number }

/** One streaming chat completion, read to its end. */
async function oneRequest(rng: Rng): Promise<Outcome> {
  const words = Array.from({ length: 3 + rng.int(10) }, () => WORDS[rng.int(WORDS.length)]).join(' ');
  const body = { model: 'model', messages: [{ role: 'user', content: words }], max_tokens: 16 + rng.int(49), stream: true, stream_options: { include_usage: true }, ignore_eos: true, temperature: 0.8, seed: rng.int(1 << 30) };
  const start = performance.now();
  let ttftMs = NaN;
  try {
    const response = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (response.status !== 200) return { ok: false, error: `status ${response.status}: ${await response.text()}`, ttftMs, latencyMs: performance.now() - start, tokens: 0 };
    const decoder = new TextDecoder();
    let buffer = '';
    let tokens = -1;
    let done = false;
    for await (const piece of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(piece, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end).replace(/^data: /, '');
        buffer = buffer.slice(end + 2);
        if (event === '[DONE]') {
          done = true;
          continue;
        }
        const chunk = JSON.parse(event) as { choices: Array<{ delta: { content?: string } }>; usage?: { completion_tokens: number } | null };
        if (Number.isNaN(ttftMs) && chunk.choices[0]?.delta.content) ttftMs = performance.now() - start;
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
    }
    const latencyMs = performance.now() - start;
    if (!done || tokens < 0) return { ok: false, error: `stream ended without ${done ? 'usage' : '[DONE]'}`, ttftMs, latencyMs, tokens: 0 };
    return { ok: true, ttftMs, latencyMs, tokens };
  } catch (error) {
    return { ok: false, error: (error as Error).message, ttftMs, latencyMs: performance.now() - start, tokens: 0 };
  }
}

const idle = await health();
console.log(`${machine().model}, ${machine().cores} cores; ${args.size} model (random weights), ${CLIENTS} streaming clients for ${SECONDS} s, max_tokens 16-64, device ${args.device}`);
const outcomes: Outcome[] = [];
const memory: Array<{ seconds: number; rssMiB: number; heapMiB: number; running: number; waiting: number }> = [];
const started = performance.now();
const deadline = started + SECONDS * 1000;
let healthFailures = 0;
const sampler = setInterval(() => {
  health().then((h) => memory.push({ seconds: (performance.now() - started) / 1000, rssMiB: mib(h.memory.rss), heapMiB: mib(h.memory.heapUsed), running: h.running, waiting: h.waiting }))
    .catch(() => healthFailures++);
}, 5000);
// The server is a child process: it goes when this process does, however that ends.
process.on('exit', () => server.kill('SIGTERM'));
await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
  const rng = new Rng(1000 + client);
  while (performance.now() < deadline) outcomes.push(await oneRequest(rng));
}));
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
const end = await health();
server.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });

const ok = outcomes.filter((o) => o.ok);
const errors = outcomes.filter((o) => !o.ok);
const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const afterMinute = memory.find((m) => m.seconds >= 60) ?? memory[0];
const loaded = memory.filter((m) => m.seconds >= 60);
const result = {
  date: new Date().toISOString(), machine: machine(), size: args.size, device: args.device, clients: CLIENTS, seconds,
  requests: outcomes.length, answered: ok.length, errors: errors.length, errorKinds: [...new Set(errors.map((e) => e.error))].slice(0, 5),
  outputTokens: ok.reduce((s, o) => s + o.tokens, 0),
  tokensPerSecond: ok.reduce((s, o) => s + o.tokens, 0) / seconds,
  ttftMs: { p50: quantile(ok.map((o) => o.ttftMs), 0.5), p99: quantile(ok.map((o) => o.ttftMs), 0.99) },
  latencyMs: { p50: quantile(ok.map((o) => o.latencyMs), 0.5), p99: quantile(ok.map((o) => o.latencyMs), 0.99) },
  memoryMiB: {
    idleRss: mib(idle.memory.rss), afterFirstMinuteRss: afterMinute?.rssMiB, endRss: mib(end.memory.rss),
    maxRssAfterFirstMinute: Math.max(...loaded.map((m) => m.rssMiB)), idleHeap: mib(idle.memory.heapUsed), endHeap: mib(end.memory.heapUsed),
  },
  server: { finished: end.finished, cancelled: end.cancelled, running: end.running, waiting: end.waiting },
  healthFailures,
  memorySamples: memory,
};
const f = (x: number | undefined, digits = 0) => (x === undefined ? '-' : x.toFixed(digits));
console.log(`requests ${result.requests}, answered ${result.answered}, errors ${result.errors}${result.errors ? ` (${result.errorKinds.join('; ')})` : ''}; /health failures ${healthFailures}`);
console.log(`output ${result.outputTokens} tokens, ${f(result.tokensPerSecond, 1)} tokens/s; time to first token p50 ${f(result.ttftMs.p50)} ms, p99 ${f(result.ttftMs.p99)} ms; latency p50 ${f(result.latencyMs.p50)} ms, p99 ${f(result.latencyMs.p99)} ms`);
console.log(`server RSS: idle ${f(result.memoryMiB.idleRss)} MiB, after 1 min ${f(result.memoryMiB.afterFirstMinuteRss)} MiB, max after 1 min ${f(result.memoryMiB.maxRssAfterFirstMinute)} MiB, end ${f(result.memoryMiB.endRss)} MiB; heap idle ${f(result.memoryMiB.idleHeap)} MiB, end ${f(result.memoryMiB.endHeap)} MiB`);
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, `bench/results/serve-${args.device}.json`), `${JSON.stringify(result, null, 2)}\n`);
