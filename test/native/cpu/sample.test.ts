// r1_sample (native/cpu/sample.cpp), the native core's fused draw, against the draw it replaces in the sampling
// engine: the softmax of logits / T from the tensor kernels, then src/generate/sampler.ts row by row (the
// definition), with the same uniforms. It promises the same token and the same log-probability bit for bit, so
// the comparison is exact: continuous logits, logits on a coarse grid (ties at every cut), masked (-inf) logits,
// a vocabulary that is not a multiple of the vector width, a sampled vocabulary smaller than the model's, and
// enough rows to be split over threads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argmax, sampleFromWeights, type SamplingParams } from '../../../src/generate/sampler.ts';
import { nativeBackend } from '../../../src/tensor/backends/native.ts';
import { SAMPLING_SETTINGS } from '../../generate/fixtures.ts';
import type { FloatArray } from '../../../src/tensor/backend.ts';
import { logSoftmax, mul, Rng, softmax, tensor, withBackend } from '../../../src/tensor/index.ts';

// The fused samplers' settings, and the benchmarks' (0.8, top-p 0.95), a small top-k with min-p, a low temperature.
const SETTINGS: SamplingParams[] = [
  ...SAMPLING_SETTINGS,
  { temperature: 0.8, topK: 0, topP: 0.95, minP: 0 },
  { temperature: 1.3, topK: 3, topP: 0.5, minP: 0.02 },
  { temperature: 0.05, topK: 0, topP: 0.3, minP: 0 },
];

/** What the engine drew before r1_sample: tensor-kernel softmax and log-softmax, then sampler.ts per row. */
function expectedDraw(logits: Float32Array, rows: number, vocab: number, sampleVocab: number, settings: SamplingParams[], uniforms: number[]) {
  return withBackend('native', () => {
    const x = tensor(logits, [rows, vocab]);
    const logprobs = logSoftmax(x).hostValues() as FloatArray;
    const inverse = Float32Array.from(settings, (p) => (p.temperature === 0 ? 1 : 1 / p.temperature));
    const weights = softmax(mul(x, tensor(inverse, [rows, 1]))).hostValues() as FloatArray;
    const ids = settings.map((p, r) => (p.temperature === 0
      ? argmax(logits.subarray(r * vocab, r * vocab + sampleVocab))
      : sampleFromWeights(weights.subarray(r * vocab, r * vocab + sampleVocab), p, uniforms[r])));
    return { ids, logprobs: ids.map((id, r) => logprobs[r * vocab + id]) };
  });
}

function compare(seed: number, rows: number, vocab: number, sampleVocab: number, logit: (rng: Rng) => number): void {
  const rng = new Rng(seed);
  const logits = Float32Array.from({ length: rows * vocab }, () => logit(rng));
  const settings = Array.from({ length: rows }, (_, r) => SETTINGS[(r + seed) % SETTINGS.length]);
  const uniforms = settings.map(() => rng.uniform());
  const params = new Float64Array(5 * rows);
  settings.forEach((p, r) => params.set([p.temperature, p.topP, p.minP, p.topK, uniforms[r]], 5 * r));
  const ids = new Int32Array(rows);
  const logprobs = new Float32Array(rows);
  nativeBackend().sample!(logits, rows, vocab, sampleVocab, params, ids, logprobs);
  const expected = expectedDraw(logits, rows, vocab, sampleVocab, settings, uniforms);
  assert.deepEqual([...ids], expected.ids, `tokens, seed ${seed}, ${rows} x ${vocab} (${sampleVocab} sampled)`);
  assert.deepEqual([...logprobs], expected.logprobs, `log-probabilities, seed ${seed}`);
  for (const id of ids) assert.ok(id >= 0 && id < sampleVocab, `token ${id} outside [0, ${sampleVocab})`);
}

describe('r1_sample', () => {
  it('draws the tokens and log-probabilities of the softmax kernels and sampler.ts, exactly', () => {
    for (let seed = 1; seed <= 6; seed++) compare(seed, 37, 2048, 781, (rng) => 3 * rng.normal());
    compare(7, 9, 1003, 1003, (rng) => rng.normal());
    compare(8, 64, 512, 300, (rng) => 8 * rng.normal());
  });

  it('breaks ties at the cut toward the lower id, as sampler.ts does', () => {
    for (let seed = 11; seed <= 16; seed++) compare(seed, 27, 203, 150, (rng) => rng.int(6) / 2);
  });

  it('never draws a masked (-inf) token', () => {
    compare(21, 18, 100, 100, (rng) => (rng.int(3) === 0 ? -Infinity : rng.normal()));
  });

  it('says so when the arrays do not fit the rows', () => {
    const sample = nativeBackend().sample!;
    assert.throws(() => sample(new Float32Array(20), 2, 10, 10, new Float64Array(5), new Int32Array(2), new Float32Array(2)), /do not fit 2 rows/);
    assert.throws(() => sample(new Float32Array(20), 2, 10, 11, new Float64Array(10), new Int32Array(2), new Float32Array(2)), /sampleVocab 11/);
  });
});
