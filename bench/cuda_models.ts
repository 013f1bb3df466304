// Whole-model speed on a GPU: training tokens/s (and MFU) and sampling tokens/s of r1ts on CUDA, for the shapes
// of ../shared/bench/torch_baseline.py (a 42.5M dense model and Qwen2.5-0.5B's 494M shape, random weights), and
// the same figures from PyTorch when its JSON lines are given, so that the table shows ratios measured in one
// command on one machine. Prints a table and writes bench/results/cuda_models.json.
//   python3 torch_baseline.py > torch.jsonl              (on the GPU machine, first)
//   node --import tsx bench/cuda_models.ts --torch torch.jsonl [--tokenizer DIR] [--launched] [--kv-bf16 | --kv-bf16-only] [train | train-s42m | train-q05b] [build] [sample] [sample-deepseek] [train-deepseek] [grpo]
// PROFILE=1 (as in bench/train.ts): after timing each training row, one more step under profileCuda (CUDA
// events around every kernel call), printed as the device time of each kind of kernel, the bf16 rounding of
// operands, and the time the device waited between calls (host-bound stretches); after each sampling row, the
// same for one fused decode step launched eagerly, and each of its GEMM shapes timed alone (decodeProfile).
// --tokenizer is a folder with a tokenizer.json of at least 151,000 ids (e.g. Qwen's): sampling then draws from
// the whole vocabulary, as Hugging Face generate does; without it the sampling and GRPO rows are skipped.
// SKINNY_ROWS=n sets setSkinnyGemmRows (the most rows of a decode GEMM on the skinny kernel; 0: cuBLASLt always),
// and R1_CUDA_PDL=0 recorded graphs without overlapped launches (native/cuda/common.cuh), to compare; BATCHES=64
// samples with 64 rows only (default 64,256).
// `build` times building the 494M shape on the GPU and loading it back from a bf16 checkpoint (loadModel);
// `sample` also reports the largest difference between the sampler's log-probabilities and the trainer's
// (tokenLogprobs: one forward over prompt + completion) for the same tokens in the same precision.
// `sample-deepseek` samples DeepSeek shapes (MLA + DeepSeekMoE) the same way: decode steps recorded as CUDA graphs
// (MoE routed on the device, absorbed MLA over the latent cache), and with --launched also op by op;
// `train-deepseek` trains one (tokens/s). DEEPSEEK_SHAPES=v3small (a comma-separated list) picks the shapes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.ts';
import { BatchDecoder, generate } from '../src/generate/engine.ts';
import { queueSampleOnDevice, sampleOnDevice } from '../src/generate/sampler.ts';
import { buildSources } from '../src/pipeline/rl.ts';
import { defaultZeroConfig, zeroSource } from '../src/pipeline/zero.ts';
import { cloneModel, defaultGrpoConfig, grpoStep } from '../src/rl/trainer.ts';
import { DeepSeekModel, deepseekConfig, type DeepSeekConfig } from '../src/models/deepseek.ts';
import { DenseModel, type DenseConfig } from '../src/models/dense.ts';
import { loadModel, saveModel } from '../src/models/pretrained.ts';
import { packSequences, tokenLogprobs } from '../src/rl/trainer.ts';
import { captureGraph, decodeAttention, decodeLinear, decodeLinearRopeKv, decodeLinearSwiglu, dispose, mul, noGrad, packBf16, profileCuda, randn, Rng, scope, setSkinnyGemmRows, slice, synchronize, tensor, useDevice, type CacheFormat, type CudaProfileRow, type Tensor } from '../src/tensor/index.ts';
import { denseDecodeLogits, denseDecodeWeights, disposeDecodeWeights } from '../src/models/dense-decode.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { AdamW, clipGradNormQueued } from '../src/train/optimizer.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const valueFlags = ['--torch', '--tokenizer'];
const parts = args.filter((a, i) => !a.startsWith('--') && !valueFlags.includes(args[i - 1]));
const wants = (part: string) => parts.length === 0 || parts.includes(part);

/** H100 SXM dense bf16 peak, as torch_baseline.py counts MFU. */
const PEAK_FLOPS = 989e12;

// The shapes of torch_baseline.py (Qwen2 layout: QKV bias, tied embeddings, SwiGLU).
const SHAPES: Record<'s42m' | 'q05b', Partial<DenseConfig>> = {
  s42m: { hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 8, intermediateSize: 1408, vocabSize: 32768 },
  q05b: { hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, intermediateSize: 4864, vocabSize: 151936 },
};

function config(name: keyof typeof SHAPES): DenseConfig {
  const s = SHAPES[name];
  return {
    family: 'qwen2', vocabSize: s.vocabSize!, hiddenSize: s.hiddenSize!, intermediateSize: s.intermediateSize!,
    numLayers: s.numLayers!, numHeads: s.numHeads!, numKvHeads: s.numKvHeads!, headDim: s.hiddenSize! / s.numHeads!,
    maxPositionEmbeddings: 4096, ropeTheta: 1e6, ropeScaling: null, rmsNormEps: 1e-6, tieWordEmbeddings: true,
    attentionBias: true, bosTokenId: null, eosTokenId: null,
  };
}

interface TorchRow { kind: string; model: string; bs: number; seq?: number; compile?: boolean; tok_s: number; mfu?: number; new?: number }
const torch: TorchRow[] = flag('--torch') ? readFileSync(flag('--torch')!, 'utf8').split('\n').filter((l) => l.trim().startsWith('{'))
  .map((l) => JSON.parse(l) as TorchRow).filter((r) => r.tok_s !== undefined) : [];

useDevice('cuda', 'bf16');
const skinnyRows = Number(process.env.SKINNY_ROWS ?? 0);
setSkinnyGemmRows(skinnyRows);
const overlappedLaunches = process.env.R1_CUDA_PDL !== '0';
const rows: Array<Record<string, unknown>> = [];
const show = (cells: unknown[]) => console.log(cells.map((c, i) => String(c)[i === 0 ? 'padEnd' : 'padStart'](i === 0 ? 34 : 13)).join(''));
show(['work', 'r1ts tok/s', 'r1ts MFU', 'torch eager', 'torch.compile', 'r1 / compile']);

// Training: fp32 master weights and AdamW, bf16 GEMMs, loss in fp32; one update per step on random tokens. The
// batch may be split into micro-batches whose gradients add up (the same update; float32 activations of the
// 494M shape at 16 x 1024 tokens do not fit in 80 GB at once, PyTorch's bf16 ones do).
function trainRow(name: keyof typeof SHAPES, batch: number, seq: number, steps: number, microBatches = 1): void {
  const c = config(name);
  const model = new DenseModel(c, 0);
  const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0 });
  const params = model.parameters();
  const rng = new Rng(1);
  const ids = Array.from({ length: batch * (seq + 1) }, () => rng.int(c.vocabSize));
  const inputs = tensor(ids.filter((_, i) => i % (seq + 1) !== seq), [batch, seq], 'i32');
  const targets = tensor(ids.filter((_, i) => i % (seq + 1) !== 0), [batch, seq], 'i32');
  const per = batch / microBatches;
  const step = () => {
    for (let m = 0; m < microBatches; m++) {
      scope(() => mul(model.loss(slice(inputs, 0, m * per, (m + 1) * per), slice(targets, 0, m * per, (m + 1) * per)), 1 / microBatches).backward());
    }
    // The clip is queued on the device: nothing is read back during a step.
    scope(() => {
      clipGradNormQueued(params, 1);
      optimizer.update(1e-4);
      model.zeroGrad();
    });
  };
  for (let i = 0; i < 3; i++) step();
  synchronize('cuda');
  const start = performance.now();
  for (let i = 0; i < steps; i++) step();
  synchronize('cuda');
  const seconds = (performance.now() - start) / 1000 / steps;
  const profile = process.env.PROFILE === '1' ? profileCuda(step) : null;
  const n = model.parameterCount();
  const tokens = batch * seq;
  // torch_baseline.py's count: 6 N per token plus causal attention counted in full.
  const flops = 6 * n * tokens + 12 * c.numLayers * c.hiddenSize * seq * tokens;
  const eager = torch.find((r) => r.kind === 'train' && r.model === name && !r.compile);
  const compiled = torch.find((r) => r.kind === 'train' && r.model === name && r.compile);
  model.dispose();
  optimizer.dispose();
  const row = { kind: 'train', model: name, parameters: n, batch, microBatches, seq, msPerStep: seconds * 1000, tokensPerSecond: tokens / seconds,
    mfu: flops / seconds / PEAK_FLOPS, torchEager: eager?.tok_s ?? null, torchCompile: compiled?.tok_s ?? null };
  rows.push(row);
  show([`train ${name} (${(n / 1e6).toFixed(1)}M) bs${batch}x${seq}${microBatches > 1 ? ` (${microBatches} micro)` : ''}`, Math.round(row.tokensPerSecond), `${(100 * row.mfu).toFixed(1)}%`,
    row.torchEager ?? '-', row.torchCompile ?? '-', row.torchCompile ? (row.tokensPerSecond / row.torchCompile).toFixed(2) : '-']);
  if (profile) {
    rows.push({ kind: 'profile', model: name, stepMs: profile.totalMs, rows: profile.rows });
    printProfile(profile.rows, profile.totalMs);
  }
}

function printProfile(profile: CudaProfileRow[], totalMs: number): void {
  console.log(`  profile of one step (${totalMs.toFixed(1)} ms of device time with events around every call):`);
  for (const r of profile.filter((p) => p.ms >= 0.005 * totalMs)) {
    console.log(`    ${r.what.padEnd(28)}${String(r.calls).padStart(7)} calls${r.ms.toFixed(2).padStart(10)} ms${(100 * r.ms / totalMs).toFixed(1).padStart(7)}%`);
  }
}

// Sampling: prompts of 64 random ids, 256 new tokens each (no stop), temperature 1 over the whole vocabulary, with
// the engine's defaults (decode steps replayed as CUDA graphs). With --launched, also with every kernel of a
// step launched from JavaScript, and how far the two paths' tokens agree for the same seeds (they sum attention
// in different orders, so a completion follows the same tokens until rounding tips one draw); with --kv-bf16,
// also with a bf16 KV cache.
function sampleRow(name: keyof typeof SHAPES, model: DenseModel, tokenizer: Tokenizer, batch: number, promptLength: number, newTokens: number): void {
  const rng = new Rng(2);
  const prompts = Array.from({ length: batch }, () => ({ prompt: Array.from({ length: promptLength }, () => rng.int(tokenizer.vocabSize)) }));
  // When each step's tokens were taken (the engine's onStep), to split a call into its one-off start (decoder,
  // prefill, graph recording, the first draw) and its steady steps.
  let stepTimes: number[] = [];
  const run = (count: number, tokens: number, cudaGraphs: boolean, kvCache: CacheFormat) => generate(model, tokenizer, prompts.slice(0, count), {
    maxNewTokens: tokens, temperature: 1, topP: 1, stopTokenIds: [], seed: 3, maxBatchSize: batch, cudaGraphs, kvCache,
    onStep: () => stepTimes.push(performance.now()),
  });
  const outputs: ReturnType<typeof run>[] = [];
  const variants: Array<{ cudaGraphs: boolean; kvCache: CacheFormat }> = [
    ...(args.includes('--launched') ? [{ cudaGraphs: false, kvCache: 'f32' as const }] : []),
    ...(args.includes('--kv-bf16-only') ? [] : [{ cudaGraphs: true, kvCache: 'f32' as const }]),
    ...(args.includes('--kv-bf16') || args.includes('--kv-bf16-only') ? [{ cudaGraphs: true, kvCache: 'bf16' as const }] : []),
  ];
  for (const { cudaGraphs, kvCache } of variants) {
    // Warmed up as torch_baseline.py warms HF generate up: the same batch, 8 new tokens.
    run(batch, 8, cudaGraphs, kvCache);
    synchronize('cuda');
    stepTimes = [];
    const start = performance.now();
    const out = run(batch, newTokens, cudaGraphs, kvCache);
    const end = performance.now();
    const seconds = (end - start) / 1000;
    const timeline = stepTimeline(start, stepTimes, end);
    if (kvCache === 'f32') outputs.push(out);
    const generated = out.reduce((s, r) => s + r.tokenIds.length, 0);
    const hf = torch.find((r) => r.kind === 'generate_hf' && r.model === name && r.bs === batch);
    const agreement = logprobAgreement(model, prompts.slice(0, 8).map((p, i) => ({ promptIds: p.prompt, completionIds: out[i].tokenIds, logprobs: out[i].logprobs })));
    const parts = cudaGraphs ? stepParts(model, tokenizer, prompts.map((p) => p.prompt), kvCache) : null;
    if (cudaGraphs && process.env.PROFILE) decodeProfile(model, batch, kvCache);
    const row = { kind: 'sample', model: name, batch, promptLength, newTokens, cudaGraphs, kvCache, skinnyRows, overlappedLaunches, seconds, msPerStep: 1000 * seconds / newTokens, tokensPerSecond: generated / seconds,
      hfGenerate: hf?.tok_s ?? null, ...agreement, ...parts, ...timeline };
    rows.push(row);
    show([`sample ${name} bs${batch} ${promptLength}+${newTokens}${cudaGraphs ? '' : ' launched'}${kvCache === 'bf16' ? ' kv bf16' : ''}${batch <= skinnyRows ? ' skinny' : ''}${overlappedLaunches ? '' : ' no-pdl'}`, Math.round(row.tokensPerSecond), '', row.hfGenerate ?? '-', '',
      row.hfGenerate ? `${(row.tokensPerSecond / row.hfGenerate).toFixed(2)} x HF` : '-']);
    console.log(`  ${row.msPerStep.toFixed(2)} ms per token step (prefill included)${parts ? `: forward ${parts.forwardMs.toFixed(2)} ms, sampling kernel ${parts.samplingMs.toFixed(2)} ms, the rest on the host` : ''}`);
    if (parts) console.log(`  one-off parts alone: prefill ${parts.prefillMs.toFixed(1)} ms, first step with the graph's recording ${parts.recordMs.toFixed(1)} ms`);
    console.log(`  timeline: ${timeline.firstStepMs.toFixed(1)} ms to the first step's tokens (decoder, prefill, recording, first draw), then ${timeline.steps} steps of ${timeline.medianStepMs.toFixed(3)} ms (median; mean ${timeline.meanStepMs.toFixed(3)}), ${timeline.afterLastStepMs.toFixed(1)} ms after the last`);
    console.log(`  sampler vs trainer log-probabilities over ${agreement.tokensCompared} tokens: largest difference ${agreement.maxLogprobDiff.toExponential(2)}, mean ${agreement.meanLogprobDiff.toExponential(2)}`);
  }
  if (outputs.length === 2) {
    const [launched, graphs] = outputs;
    let gap = 0;
    let same = 0;
    const firstDifference = launched.map((r, i) => {
      const j = r.tokenIds.findIndex((id, k) => id !== graphs[i].tokenIds[k]);
      const end = j < 0 ? r.tokenIds.length : j;
      // Up to and including the first differing draw, both paths saw the same tokens: their log-probabilities
      // differ by rounding alone.
      for (let k = 0; k < Math.min(end + 1, r.tokenIds.length); k++) gap = Math.max(gap, Math.abs(r.logprobs[k] - graphs[i].logprobs[k]));
      if (j < 0) same++;
      return end;
    });
    const meanFirst = firstDifference.reduce((a, b) => a + b, 0) / batch;
    rows.push({ kind: 'graphs-vs-launched', model: name, batch, completions: batch, identical: same, meanFirstDifference: meanFirst, largestLogprobGap: gap });
    console.log(`  graphs vs launched, same seeds: ${same} of ${batch} completions identical; the others agree for ${meanFirst.toFixed(0)} tokens on average; log-probabilities on shared contexts within ${gap.toExponential(2)}`);
  }
}

/** A generate() call's wall time split by its steps' onStep times: the start, the steady steps, the end. */
function stepTimeline(start: number, times: number[], end: number): { firstStepMs: number; steps: number; medianStepMs: number; meanStepMs: number; afterLastStepMs: number } {
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  const sorted = [...gaps].sort((a, b) => a - b);
  return {
    firstStepMs: (times[0] ?? end) - start, steps: gaps.length, medianStepMs: sorted[sorted.length >> 1] ?? 0,
    meanStepMs: gaps.reduce((a, b) => a + b, 0) / Math.max(1, gaps.length), afterLastStepMs: end - (times.at(-1) ?? start),
  };
}

/**
 * Where a replayed decode step's time goes: the graph's forward alone (replays, synchronized) and the sampling
 * kernel alone, over a cache of these prompts; the engine's step time less these two is host time.
 */
function stepParts(model: DenseModel, tokenizer: Tokenizer, prompts: number[][], kvCache: CacheFormat): { forwardMs: number; samplingMs: number; prefillMs: number; recordMs: number } {
  const steps = 32;
  synchronize('cuda');
  let start = performance.now();
  const decoder = new BatchDecoder(model, prompts.length, prompts[0].length + 2 * steps + 2, { kvCache });
  try {
    return noGrad(() => {
      // The one-off parts of a generate() call: the prefill (with the cache), then the first step, which records
      // the graph (the concatenated weights, the capture, its instantiation) and replays it.
      scope(() => decoder.enter(prompts.map((prompt, id) => ({ id, prompt }))));
      synchronize('cuda');
      const prefillMs = performance.now() - start;
      const tokens = prompts.map((p) => p[0]);
      start = performance.now();
      scope(() => decoder.next(tokens));
      synchronize('cuda');
      const recordMs = performance.now() - start;
      start = performance.now();
      for (let i = 0; i < steps; i++) scope(() => decoder.next(tokens));
      synchronize('cuda');
      const forwardMs = (performance.now() - start) / steps;
      const settings = prompts.map((_, r) => ({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: r, step: 0 }));
      // Draws queued back to back, each read after the next is queued (as the engine pipelines them): the
      // kernel with its 32-byte-a-row upload and 12-byte-a-row download.
      const samplingMs = scope(() => {
        const logits = decoder.next(tokens);
        sampleOnDevice(logits, settings, tokenizer.vocabSize);
        synchronize('cuda');
        start = performance.now();
        let queued = queueSampleOnDevice(logits, settings, tokenizer.vocabSize);
        for (let i = 1; i < steps; i++) {
          const next = queueSampleOnDevice(logits, settings.map((p) => ({ ...p, step: i })), tokenizer.vocabSize);
          queued.finish();
          queued = next;
        }
        queued.finish();
        return (performance.now() - start) / steps;
      });
      return { forwardMs, samplingMs, prefillMs, recordMs };
    });
  } finally {
    decoder.dispose();
  }
}

/**
 * Where a fused decode step's device time goes (PROFILE=1): one step of denseDecodeLogits launched eagerly under
 * profileCuda (a cache of 400 columns, 193 of them attended), then each GEMM shape of the step alone, 50 calls
 * recorded in a graph and replayed, so that launch costs do not count.
 */
function decodeProfile(model: DenseModel, batch: number, kvCache: CacheFormat): void {
  noGrad(() => scope(() => {
    const c = model.config;
    const column = 192;
    const ints = (value: number, shape: number[]) => tensor(new Int32Array(batch).fill(value), shape, 'i32');
    const cache = model.newCache(batch, 400, kvCache);
    const [ids, positions, kvStart] = [ints(1, [batch, 1]), ints(column, [batch, 1]), ints(0, [batch])];
    const step = { column: ints(column, [batch]), kvEnd: ints(column + 1, [batch]) };
    const weights = denseDecodeWeights(model);
    try {
      denseDecodeLogits(model, weights, ids, positions, cache, kvStart, step);
      const { rows: profile, totalMs } = profileCuda(() => denseDecodeLogits(model, weights, ids, positions, cache, kvStart, step));
      rows.push({ kind: 'decode-profile', model: 'q05b', batch, kvCache, stepMs: totalMs, rows: profile });
      printProfile(profile, totalMs);
      const rng = new Rng(7);
      const operand = (k: number) => (weights.format === 'bf16' ? packBf16(randn([batch, k], rng)) : randn([batch, k], rng));
      const layer = model.layers[0];
      const [hidden, attended, act] = [operand(c.hiddenSize), operand(c.numHeads * c.headDim), operand(c.intermediateSize)];
      const query = randn([batch, 1, c.numHeads, c.headDim], rng);
      const heads = { q: c.numHeads, kv: c.numKvHeads };
      const packed = { x: weights.format, weight: weights.format };
      const shapes: [string, () => Tensor][] = [
        // As the graph runs them: q|k|v with RoPE and the cache writes (rows paired for RoPE in bf16), attention over
        // the 193 columns the eager step attended to.
        ['q|k|v', () => (weights.ropePaired
          ? decodeLinearRopeKv(hidden, weights.layers[0].qkv, weights.layers[0].qkvBias, positions, model.rope, step.column, cache[0], heads, kvCache)
          : decodeLinear(hidden, weights.layers[0].qkv, weights.layers[0].qkvBias, packed))],
        ['attention', () => decodeAttention(query, cache[0].k, cache[0].v, kvStart, step.kvEnd, kvCache, weights.format)],
        ['o', () => decodeLinear(attended, layer.selfAttn.oProj.weight, null, { x: weights.format })],
        // In bf16 the graph's gate|up GEMM has SwiGLU as its epilogue (cuBLASLt: a SwiGLU kernel after it).
        ['gate|up', () => (weights.format === 'bf16' ? decodeLinearSwiglu(hidden, weights.layers[0].gateUp) : decodeLinear(hidden, weights.layers[0].gateUp, null, packed))],
        ['down', () => decodeLinear(act, layer.mlp.downProj.weight, null, { x: weights.format })],
        ['head', () => decodeLinear(hidden, model.lmHead, null, { x: weights.format })],
      ];
      const calls = 50;
      // Each shape on the skinny GEMM (up to `skinnyRows` rows) and on cuBLASLt (0).
      const timed = (skinnyRows: number) => {
        setSkinnyGemmRows(skinnyRows);
        return shapes.map(([name, call]) => {
          const { graph } = captureGraph(() => Array.from({ length: calls }, call));
          graph.launch();
          synchronize('cuda');
          const start = performance.now();
          graph.launch();
          synchronize('cuda');
          const ms = (performance.now() - start) / calls;
          graph.dispose();
          return [name, ms] as const;
        });
      };
      const cublas = timed(0);
      const skinny = timed(Math.max(64, batch));
      setSkinnyGemmRows(skinnyRows);
      console.log(`  each shape alone (bs${batch}, ${calls} calls replayed from a graph), ms per call, cuBLASLt / skinny: ${cublas.map(([name, ms], i) => `${name} ${ms.toFixed(4)} / ${skinny[i][1].toFixed(4)}`).join(', ')}`);
      rows.push({ kind: 'decode-gemms', batch, kvCache, msPerCall: Object.fromEntries(cublas), skinnyMsPerCall: Object.fromEntries(skinny) });
    } finally {
      disposeDecodeWeights(weights);
      for (const layer of cache) layer.buffers.forEach((buffer) => dispose(buffer));
    }
  }));
}

/**
 * The trainer's log-probabilities (tokenLogprobs: one forward over prompt + completion, what GRPO's update
 * computes) of the sampled tokens against the ones the sampler reported, in the same precision.
 */
function logprobAgreement(model: DenseModel, samples: { promptIds: number[]; completionIds: number[]; logprobs: number[] }[]): { maxLogprobDiff: number; meanLogprobDiff: number; tokensCompared: number } {
  const batch = packSequences(samples.map((s) => ({ promptIds: s.promptIds, completionIds: s.completionIds, advantage: 0, counted: true })));
  const logp = noGrad(() => scope(() => tokenLogprobs(model, batch).logp.toArray()));
  let max = 0;
  let sum = 0;
  let count = 0;
  samples.forEach((s, b) => s.completionIds.forEach((_, j) => {
    const d = Math.abs(logp[b * batch.width + s.promptIds.length + j - 1] - s.logprobs[j]);
    max = Math.max(max, d);
    sum += d;
    count++;
  }));
  return { maxLogprobDiff: max, meanLogprobDiff: sum / count, tokensCompared: count };
}

// Building the 494M shape on the GPU (initialisation by the randomNormal kernel), then writing it as a bf16
// checkpoint and loading that back (loadModel: no random initialisation, each tensor decoded and uploaded once).
function buildRow(tokenizer: Tokenizer): Promise<void> {
  const started = performance.now();
  const model = new DenseModel(config('q05b'), 0);
  synchronize('cuda');
  const buildSeconds = (performance.now() - started) / 1000;
  const dir = join(root, 'bench', 'results', 'q05b-checkpoint');
  return saveModel(model, tokenizer, dir, { dtype: 'BF16' }).then(async () => {
    model.dispose();
    const loadStart = performance.now();
    const loaded = await loadModel(dir);
    synchronize('cuda');
    const loadSeconds = (performance.now() - loadStart) / 1000;
    loaded.model.dispose();
    rows.push({ kind: 'build', model: 'q05b', buildSeconds, loadSeconds, checkpoint: 'BF16 safetensors' });
    console.log(`build q05b on cuda: ${buildSeconds.toFixed(2)} s; loadModel of its bf16 checkpoint: ${loadSeconds.toFixed(2)} s`);
  });
}

if (wants('train') || wants('train-s42m')) trainRow('s42m', 32, 1024, 10);
if (wants('train') || wants('train-q05b')) trainRow('q05b', 16, 1024, 5, Number(process.env.Q05B_MICRO ?? 2));
if (wants('build')) {
  const dir = flag('--tokenizer');
  if (dir && existsSync(join(dir, 'tokenizer.json'))) await buildRow(Tokenizer.fromFile(dir));
  else console.log('build row skipped: --tokenizer DIR is needed (the checkpoint carries a tokenizer)');
}
if (wants('sample')) {
  const dir = flag('--tokenizer');
  if (!dir || !existsSync(join(dir, 'tokenizer.json'))) {
    console.log('sampling rows skipped: --tokenizer DIR with a full-size tokenizer.json is needed (see the header)');
  } else {
    const tokenizer = Tokenizer.fromFile(dir);
    const model = new DenseModel(config('q05b'), 0);
    for (const batch of (process.env.BATCHES ?? '64,256').split(',').map(Number)) sampleRow('q05b', model, tokenizer, batch, 64, 256);
    model.dispose();
  }
}

// DeepSeek shapes with the --tokenizer's vocabulary: the default deepseekConfig ('V3-mini', the shape of bench/sft.ts
// and the tests: hidden 128, 8 experts top-2) and a wider one of V3's proportions (32 routed experts top-4 in 2 of 4
// groups, one shared, latent rank 192 + 32 rope dims: 224, within the 256 that main's prefill attention took),
// random weights; the MTP modules do not decode.
const DEEPSEEK_SHAPES: Record<'v3mini' | 'v3small', Partial<DeepSeekConfig>> = {
  v3mini: { mtpDepth: 0 },
  v3small: { hiddenSize: 768, intermediateSize: 2048, numLayers: 8, numHeads: 12, qLoraRank: 384, kvLoraRank: 192, qkNopeHeadDim: 64, qkRopeHeadDim: 32,
    vHeadDim: 64, numRoutedExperts: 32, numExpertsPerToken: 4, numGroups: 4, topkGroup: 2, numSharedExperts: 1, moeIntermediateSize: 256, mtpDepth: 0 },
};

function sampleDeepSeekRow(name: keyof typeof DEEPSEEK_SHAPES, tokenizer: Tokenizer, batches: number[], promptLength: number, newTokens: number): void {
  const model = new DeepSeekModel(deepseekConfig(Math.ceil(tokenizer.vocabSize / 128) * 128, DEEPSEEK_SHAPES[name]), 0);
  const rng = new Rng(2);
  for (const batch of batches) {
    const prompts = Array.from({ length: batch }, () => ({ prompt: Array.from({ length: promptLength }, () => rng.int(tokenizer.vocabSize)) }));
    const run = (count: number, tokens: number, cudaGraphs: boolean) => generate(model, tokenizer, prompts.slice(0, count), {
      maxNewTokens: tokens, temperature: 1, topP: 1, stopTokenIds: [], seed: 3, maxBatchSize: batch, cudaGraphs,
    });
    for (const cudaGraphs of args.includes('--launched') ? [false, true] : [true]) {
      run(Math.min(batch, 8), 8, cudaGraphs);
      synchronize('cuda');
      const start = performance.now();
      const out = run(batch, newTokens, cudaGraphs);
      const seconds = (performance.now() - start) / 1000;
      const generated = out.reduce((sum, r) => sum + r.tokenIds.length, 0);
      const row = { kind: 'sample', model: `deepseek-${name}`, parameters: model.parameterCount(), batch, promptLength, newTokens, cudaGraphs, seconds,
        msPerStep: 1000 * seconds / newTokens, tokensPerSecond: generated / seconds };
      rows.push(row);
      show([`sample ds-${name} (${(row.parameters / 1e6).toFixed(1)}M) bs${batch} ${promptLength}+${newTokens}${cudaGraphs ? '' : ' launched'}`, Math.round(row.tokensPerSecond), '', '-', '', '-']);
      console.log(`  ${row.msPerStep.toFixed(2)} ms per token step (prefill included)`);
    }
    if (process.env.PROFILE) deepseekStepProfile(model, batch);
  }
  model.dispose();
}

/** PROFILE=1: one DeepSeek decode step launched eagerly under profileCuda (400 columns, 193 attended), by kernel. */
function deepseekStepProfile(model: DeepSeekModel, batch: number): void {
  noGrad(() => scope(() => {
    const column = 192;
    const ints = (value: number, shape: number[]) => tensor(new Int32Array(batch).fill(value), shape, 'i32');
    const cache = model.newCache(batch, 400);
    const options = { positions: ints(column, [batch, 1]), cache, kvStart: ints(0, [batch]), step: { column: ints(column, [batch]), kvEnd: ints(column + 1, [batch]) } };
    const ids = ints(1, [batch, 1]);
    try {
      model.lastLogits(ids, options);
      const { rows: profile, totalMs } = profileCuda(() => model.lastLogits(ids, options));
      rows.push({ kind: 'decode-profile', model: 'deepseek', batch, stepMs: totalMs, rows: profile });
      printProfile(profile, totalMs);
    } finally {
      for (const layer of cache) layer.buffers.forEach((buffer) => dispose(buffer));
    }
  }));
}

// Training a DeepSeek shape: the same step as trainRow (fp32 master weights and AdamW, bf16 GEMMs), with MTP off
// and the bias update after each step, so that the MoE layers' routing and dispatch are what changes (on the
// device, or waiting for the host once per layer). Tokens/s only: the MoE's flops per token depend on the routing.
function trainDeepSeekRow(name: keyof typeof DEEPSEEK_SHAPES, batch: number, seq: number, steps: number): void {
  const model = new DeepSeekModel(deepseekConfig(32768, DEEPSEEK_SHAPES[name]), 0);
  const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0 });
  const params = model.parameters();
  const rng = new Rng(1);
  const ids = Array.from({ length: batch * (seq + 1) }, () => rng.int(32768));
  const inputs = tensor(ids.filter((_, i) => i % (seq + 1) !== seq), [batch, seq], 'i32');
  const targets = tensor(ids.filter((_, i) => i % (seq + 1) !== 0), [batch, seq], 'i32');
  const step = () => {
    scope(() => model.loss(inputs, targets).backward());
    scope(() => {
      clipGradNormQueued(params, 1);
      optimizer.update(1e-4);
      model.zeroGrad();
    });
    model.afterStep();
  };
  for (let i = 0; i < 2; i++) step();
  synchronize('cuda');
  const start = performance.now();
  for (let i = 0; i < steps; i++) step();
  synchronize('cuda');
  const seconds = (performance.now() - start) / 1000 / steps;
  const row = { kind: 'train', model: `deepseek-${name}`, parameters: model.parameterCount(), batch, seq, msPerStep: seconds * 1000, tokensPerSecond: batch * seq / seconds };
  rows.push(row);
  show([`train ds-${name} (${(row.parameters / 1e6).toFixed(1)}M) bs${batch}x${seq}`, Math.round(row.tokensPerSecond), '-', '-', '-', '-']);
  model.dispose();
  optimizer.dispose();
}

if (wants('train-deepseek')) trainDeepSeekRow('v3small', 8, 512, 5);

if (wants('sample-deepseek')) {
  const dir = flag('--tokenizer');
  if (!dir || !existsSync(join(dir, 'tokenizer.json'))) console.log('DeepSeek sampling rows skipped: --tokenizer DIR is needed');
  else for (const name of (process.env.DEEPSEEK_SHAPES ?? 'v3mini,v3small').split(',') as Array<keyof typeof DEEPSEEK_SHAPES>) sampleDeepSeekRow(name, Tokenizer.fromFile(dir), [64, 256], 64, 256);
}

// One GRPO step of the 494M shape as the issue states it: 64 prompts x 8 samples of 256 new tokens (random
// weights never stop early), mu = 1, beta > 0 (so the frozen reference runs), split into its three parts.
async function grpoRow(tokenizer: Tokenizer): Promise<void> {
  const model = new DenseModel(config('q05b'), 0);
  const reference = cloneModel(model);
  const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0 });
  const grpo = { ...defaultGrpoConfig, promptsPerStep: 64, groupSize: 8, maxNewTokens: 256, mu: 1, beta: 0.001, microBatchSize: 16 };
  const sources = (await buildSources([zeroSource(defaultZeroConfig)], tokenizer)).map((s) => s.rollout);
  grpoStep(model, reference, optimizer, tokenizer, sources, { ...grpo, promptsPerStep: 2, maxNewTokens: 8 }, new Rng(4), 1e-6, 1);
  const { record } = grpoStep(model, reference, optimizer, tokenizer, sources, grpo, new Rng(5), 1e-6, 2);
  const total = record.samplingSeconds + record.referenceSeconds + record.trainingSeconds;
  rows.push({ kind: 'grpo', model: 'q05b', prompts: 64, groupSize: 8, newTokens: 256, mu: 1, beta: 0.001, ...record, seconds: total });
  console.log(`grpo step q05b 64x8x256: ${total.toFixed(1)} s = sampling ${record.samplingSeconds.toFixed(1)} s + reference ${record.referenceSeconds.toFixed(1)} s + policy update ${record.trainingSeconds.toFixed(1)} s`);
  for (const m of [model, reference]) m.dispose();
  optimizer.dispose();
}

if (wants('grpo')) {
  const dir = flag('--tokenizer');
  if (dir && existsSync(join(dir, 'tokenizer.json'))) await grpoRow(Tokenizer.fromFile(dir));
  else console.log('GRPO row skipped: --tokenizer DIR is needed');
}

mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'cuda_models.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), torch, rows }, null, 2)}\n`);
console.log('wrote bench/results/cuda_models.json');
