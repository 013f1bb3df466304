// The fused CUDA sampling kernel (native/cuda/sample.cu, through sampleOnDevice) against the CPU sampler
// (src/generate/sampler.ts, the definition): with the same seed and step both draw the same uniform, so they
// must pick the same token wherever rounding cannot move the uniform across a boundary between tokens (the
// comparisons below use continuous random logits, where no ties and no near-boundary uniforms occur but with
// probability ~1e-6 per draw); and the frequencies of many draws must fit the CPU's distribution (chi-square).
// Then the engine on CUDA against the engine on the CPU. Skipped, with the reason, where CUDA is unavailable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generate } from '../../src/generate/engine.ts';
import { argmax, sampleFromWeights, sampleOnDevice, samplingDistribution, temperatureWeights, tokenLogprob, type DeviceSamplingRow, type SamplingParams } from '../../src/generate/sampler.ts';
import { cudaAvailable } from '../../src/tensor/backends/cuda.ts';
import { streamUniform } from '../../src/tensor/philox.ts';
import { Rng, scope, tensor, withDevice } from '../../src/tensor/index.ts';
import { SAMPLING_SETTINGS, tinyModel, tinyTokenizer } from './fixtures.ts';

const available = cudaAvailable();
const skip = available.ok ? false : available.reason;
const seed = Number(process.env.R1_TEST_SEED ?? Date.now() % 1_000_000_007);
if (available.ok) console.log(`# cuda-sampler.test.ts seed ${seed} (replay with R1_TEST_SEED=${seed})`);

const SETTINGS = SAMPLING_SETTINGS;

/** The CPU sampler's token for one row (float64 weights), drawn with the same uniform as the kernel's. */
function cpuToken(row: Float32Array, sampleVocab: number, p: DeviceSamplingRow): number {
  const logits = row.subarray(0, sampleVocab);
  if (p.temperature === 0) return argmax(logits);
  return sampleFromWeights(temperatureWeights(logits, p.temperature), p, streamUniform(p.seed, p.step));
}

// Rows without top-k or top-p (greedy, temperature, min-p): the kernel splits each row into chunks of 4,096 ids.
const SPLIT_SETTINGS = SETTINGS.filter((p) => p.topK === 0 && p.topP === 1);

function compareWithCpu(rows: number, vocab: number, sampleVocab: number, scale: number, settingsCycle = SETTINGS): void {
  const rng = new Rng(seed);
  const logits = Float32Array.from({ length: rows * vocab }, () => rng.normal() * scale);
  const settings: DeviceSamplingRow[] = Array.from({ length: rows }, (_, r) => ({ ...settingsCycle[r % settingsCycle.length], seed: rng.int(2 ** 40), step: rng.int(5000) }));
  const drawn = scope(() => sampleOnDevice(tensor(logits, [rows, vocab], 'f32', 'cuda'), settings, sampleVocab));
  const mismatches: string[] = [];
  let worstLogprob = 0;
  let worstSampleLogprob = 0;
  settings.forEach((p, r) => {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const expected = cpuToken(row, sampleVocab, p);
    if (drawn.ids[r] !== expected) mismatches.push(`row ${r} ${JSON.stringify(p)}: cuda ${drawn.ids[r]}, cpu ${expected}`);
    const id = drawn.ids[r];
    assert.ok(id >= 0 && id < sampleVocab, `row ${r}: id ${id} outside [0, ${sampleVocab})`);
    worstLogprob = Math.max(worstLogprob, Math.abs(drawn.logprobs[r] - tokenLogprob(row, id)));
    const q = p.temperature === 0 ? 1 : samplingDistribution(row.subarray(0, sampleVocab), p)[id];
    worstSampleLogprob = Math.max(worstSampleLogprob, Math.abs(drawn.sampleLogprobs[r] - Math.log(q)));
  });
  assert.deepEqual(mismatches, [], 'the same seed and step draw the same token');
  // Float32 log-softmax over the vocabulary: the log-sum-exp of ~1e5 terms of size ~e^(3 scale) rounds to ~1e-6.
  assert.ok(worstLogprob < 2e-5, `log-probability off by ${worstLogprob}`);
  // exp((l - max) / T) in float32 and the kept mass in double: ~1e-6 relative.
  assert.ok(worstSampleLogprob < 1e-4, `sampling log-probability off by ${worstSampleLogprob}`);
  console.log(`#   ${rows} x ${vocab}: log-prob error ${worstLogprob.toExponential(2)}, sampling log-prob error ${worstSampleLogprob.toExponential(2)}`);
}

/** The upper 1e-4 tail of chi-square with df degrees of freedom (Wilson-Hilferty, accurate to ~1% here). */
function chiSquareCritical(df: number): number {
  const z = 3.719;
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('CUDA sampling kernel', { skip }, () => {
  it('draws the CPU sampler\'s token for the same seed and step, with its log-probabilities', () => {
    compareWithCpu(64, 3001, 2990, 2);
  });

  it('does so over a Qwen-sized vocabulary (151,936 logits, 151,665 drawable ids)', () => {
    compareWithCpu(16, 151936, 151665, 3);
  });

  it('splits rows without top-k or top-p over chunks of the vocabulary, drawing the CPU sampler\'s tokens', () => {
    compareWithCpu(64, 3001, 2990, 2, SPLIT_SETTINGS); // one chunk
    compareWithCpu(48, 12289, 9000, 2, SPLIT_SETTINGS); // four chunks, the last one past sampleVocab
    compareWithCpu(256, 151936, 151665, 3, SPLIT_SETTINGS); // 38 chunks, a batch of 256 rows
  });

  it('draws with the frequencies of the CPU sampler\'s distribution (chi-square), never outside the kept set', () => {
    const vocab = 40;
    const draws = 20000;
    const rng = new Rng(seed + 1);
    const row = Float32Array.from({ length: vocab }, () => rng.normal() * 1.5);
    for (const p of [SETTINGS[2], SETTINGS[5], SETTINGS[6], { temperature: 1, topK: 12, topP: 0.7, minP: 0.1 }]) {
      const logits = new Float32Array(draws * vocab);
      for (let d = 0; d < draws; d++) logits.set(row, d * vocab);
      const rows = Array.from({ length: draws }, (_, step) => ({ ...p, seed: seed % 1000, step }));
      const ids = scope(() => sampleOnDevice(tensor(logits, [draws, vocab], 'f32', 'cuda'), rows, vocab).ids);
      const counts = new Array<number>(vocab).fill(0);
      for (const id of ids) counts[id]++;
      const probs = samplingDistribution(row, p);
      let chi = 0;
      let kept = 0;
      probs.forEach((q, i) => {
        if (q === 0) {
          assert.equal(counts[i], 0, `${JSON.stringify(p)}: token ${i} is outside the kept set but was drawn ${counts[i]} times`);
          return;
        }
        kept++;
        chi += (counts[i] - draws * q) ** 2 / (draws * q);
      });
      const critical = chiSquareCritical(Math.max(1, kept - 1));
      console.log(`#   chi-square ${JSON.stringify(p)}: ${chi.toFixed(1)} on ${kept - 1} df (1e-4 critical value ${critical.toFixed(1)})`);
      assert.ok(chi < critical, `${JSON.stringify(p)}: chi-square ${chi} >= ${critical}`);
    }
  });

  // Head size 64, so that the CUDA engine records its decode steps as graphs; mixed prompt lengths, settings and
  // token limits over 5 rows, so that requests enter freed rows, the cache compacts and the batch shrinks.
  it('the engine on CUDA, graphs (pipelined or not) or not, samples what the engine on the CPU samples, with the same log-probabilities', () => {
    const tokenizer = tinyTokenizer();
    const overrides = { hiddenSize: 128, numHeads: 2, numKvHeads: 1, headDim: 64, maxPositionEmbeddings: 96 };
    const cpuModel = tinyModel(3, overrides);
    const cudaModel = tinyModel(3, overrides).to('cuda');
    const requests = Array.from({ length: 14 }, (_, i) => ({
      prompt: tokenizer.encode(['the cat', 'a dog ran to the park', 'numbers: 12 +', '<think>', 'the cat sat on the mat. a dog'][i % 5]),
      seed: 100 + i, temperature: [0, 1, 0.7][i % 3], topK: i % 4 === 0 ? 20 : 0, topP: i % 5 === 1 ? 0.9 : 1, maxNewTokens: 6 + ((i * 7) % 23), stopTokenIds: [],
    }));
    const onCpu = generate(cpuModel, tokenizer, requests, { maxBatchSize: 5 });
    for (const cudaGraphs of [true, false]) {
      let steps = 0;
      const onCuda = withDevice('cuda', () => generate(cudaModel, tokenizer, requests, { maxBatchSize: 5, cudaGraphs, onStep: () => steps++ }));
      assert.ok(steps > 20);
      onCpu.forEach((expected, i) => {
        assert.deepEqual(onCuda[i].tokenIds, expected.tokenIds, `cudaGraphs ${cudaGraphs}, request ${i}`);
        onCuda[i].logprobs.forEach((l, j) => assert.ok(Math.abs(l - expected.logprobs[j]) < 1e-4, `cudaGraphs ${cudaGraphs}, request ${i} token ${j}: ${l} vs ${expected.logprobs[j]}`));
      });
    }
    // Every request in one batch, so that nothing waits and graph steps run ahead of the host (pipelining), with
    // stop strings ending requests on tokens the host finds only after the next step is queued.
    const stopping = requests.map((r, i) => ({ ...r, stop: i % 2 === 0 ? ['e'] : [], maxNewTokens: 10 + i }));
    const cpuStopping = generate(cpuModel, tokenizer, stopping, { maxBatchSize: 16 });
    const cudaStopping = withDevice('cuda', () => generate(cudaModel, tokenizer, stopping, { maxBatchSize: 16 }));
    assert.ok(cpuStopping.some((r) => r.stopString === 'e'), 'some request ended on its stop string');
    cpuStopping.forEach((expected, i) => {
      assert.deepEqual([cudaStopping[i].tokenIds, cudaStopping[i].text, cudaStopping[i].finishReason], [expected.tokenIds, expected.text, expected.finishReason], `one batch, request ${i}`);
      cudaStopping[i].logprobs.forEach((l, j) => assert.ok(Math.abs(l - expected.logprobs[j]) < 1e-4, `one batch, request ${i} token ${j}: ${l} vs ${expected.logprobs[j]}`));
    });
    cudaModel.dispose();
  });

  // Keys and values rounded to bf16 (2^-9 relative) move this peaked tiny model's log-probabilities of greedy
  // tokens by up to ~0.13 (measured on the CPU with K and V rounded in a full forward), while keys read one
  // column off move them by ~17: a bound of 0.5 separates the two. The first token comes from the prefill,
  // float32 in both, so it must be the same exactly. Compared while both greedy completions agree.
  it('the engine with a bf16 KV cache stays within 0.5 of the float32 cache\'s log-probabilities', () => {
    const tokenizer = tinyTokenizer();
    const cudaModel = tinyModel(4, { hiddenSize: 128, numHeads: 2, numKvHeads: 1, headDim: 64, maxPositionEmbeddings: 96 }).to('cuda');
    const requests = Array.from({ length: 10 }, (_, i) => ({
      prompt: tokenizer.encode(['the cat', 'a dog ran to the park', 'numbers: 12 +', '<think>', 'the cat sat on the mat. a dog'][i % 5]),
      temperature: 0, maxNewTokens: 12 + i, stopTokenIds: [],
    }));
    const [f32, bf16] = (['f32', 'bf16'] as const).map((kvCache) => withDevice('cuda', () => generate(cudaModel, tokenizer, requests, { maxBatchSize: 4, kvCache })));
    let worst = 0;
    let compared = 0;
    f32.forEach((expected, i) => {
      assert.deepEqual([bf16[i].tokenIds[0], bf16[i].logprobs[0]], [expected.tokenIds[0], expected.logprobs[0]], `request ${i}: the prefill's token`);
      for (let j = 1; j < expected.tokenIds.length && bf16[i].tokenIds[j] === expected.tokenIds[j]; j++) {
        worst = Math.max(worst, Math.abs(bf16[i].logprobs[j] - expected.logprobs[j]));
        compared++;
      }
    });
    console.log(`#   bf16 KV cache: greedy log-probabilities within ${worst.toExponential(2)} of the float32 cache's over ${compared} decoded tokens`);
    assert.ok(compared >= 50, `only ${compared} tokens were decoded from equal contexts`);
    assert.ok(worst > 0, 'the bf16 cache gave bit-identical log-probabilities: it was not used');
    assert.ok(worst < 0.5, `log-probabilities off by ${worst}`);
    cudaModel.dispose();
  });
});
