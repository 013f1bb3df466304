// The sampler on hand-made distributions: greedy, top-k, top-p, temperature, and the log-probability it
// reports (always the model's own, temperature 1, unfiltered).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argmax, samplingDistribution, sampleToken, tokenLogprob, type SamplingParams } from '../../src/generate/sampler.ts';
import { Rng } from '../../src/tensor/random.ts';

const params = (p: Partial<SamplingParams>): SamplingParams => ({ temperature: 1, topK: 0, topP: 1, minP: 0, ...p });
/** Logits whose softmax is `probs` (up to a constant shift, which softmax ignores). */
const logitsOf = (probs: number[]) => Float32Array.from(probs, (p) => Math.log(p) + 3);
const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-6) => {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
};

// Token ids in a shuffled order so that "most likely first" is not the id order.
const PROBS = [0.15, 0.05, 0.5, 0.1, 0.2];

describe('sampler', () => {
  it('top-p keeps the smallest set of most likely tokens whose mass reaches p', () => {
    const logits = logitsOf(PROBS);
    // Sorted: 0.5 (id 2), 0.2 (id 4), 0.15 (id 0), 0.1 (id 3), 0.05 (id 1); cumulative 0.5, 0.7, 0.85, 0.95, 1.
    close(samplingDistribution(logits, params({ topP: 0.45 })), [0, 0, 1, 0, 0]);
    close(samplingDistribution(logits, params({ topP: 0.6 })), [0, 0, 0.5 / 0.7, 0, 0.2 / 0.7]);
    close(samplingDistribution(logits, params({ topP: 0.8 })), [0.15 / 0.85, 0, 0.5 / 0.85, 0, 0.2 / 0.85]);
    close(samplingDistribution(logits, params({ topP: 0.99 })), PROBS);
    close(samplingDistribution(logits, params({ topP: 1 })), PROBS);
  });

  it('top-k keeps the k most likely tokens, and top-p then applies within them', () => {
    const logits = logitsOf(PROBS);
    close(samplingDistribution(logits, params({ topK: 2 })), [0, 0, 0.5 / 0.7, 0, 0.2 / 0.7]);
    close(samplingDistribution(logits, params({ topK: 3 })), [0.15 / 0.85, 0, 0.5 / 0.85, 0, 0.2 / 0.85]);
    // Within the top 2 renormalised, 0.5 / 0.7 = 0.714 already reaches p = 0.6.
    close(samplingDistribution(logits, params({ topK: 2, topP: 0.6 })), [0, 0, 1, 0, 0]);
    close(samplingDistribution(logits, params({ topK: 10 })), PROBS);
  });

  it('min-p keeps the tokens at least minP times as likely as the most likely, after top-k and top-p', () => {
    const logits = logitsOf(PROBS);
    // 0.29 x 0.5 = 0.145: ids 2, 4 and 0 (0.15) stay; 0.41 x 0.5 = 0.205 leaves id 2 alone.
    close(samplingDistribution(logits, params({ minP: 0.29 })), [0.15 / 0.85, 0, 0.5 / 0.85, 0, 0.2 / 0.85]);
    close(samplingDistribution(logits, params({ minP: 0.41 })), [0, 0, 1, 0, 0]);
    close(samplingDistribution(logits, params({ minP: 0.29, topK: 2 })), [0, 0, 0.5 / 0.7, 0, 0.2 / 0.7]);
    close(samplingDistribution(logits, params({ minP: 0 })), PROBS);
  });

  it('temperature divides the logits before softmax', () => {
    // logits [0, ln 4]: softmax [1/5, 4/5]; at T = 2 the logits are [0, ln 2]: [1/3, 2/3]; at T = 0.5, [0, ln 16]: [1/17, 16/17].
    const logits = Float32Array.from([0, Math.log(4)]);
    close(samplingDistribution(logits, params({ temperature: 1 })), [1 / 5, 4 / 5]);
    close(samplingDistribution(logits, params({ temperature: 2 })), [1 / 3, 2 / 3]);
    close(samplingDistribution(logits, params({ temperature: 0.5 })), [1 / 17, 16 / 17]);
    close(samplingDistribution(logits, params({ temperature: 0 })), [0, 1]);
  });

  it('top-k = 1 and temperature 0 both pick the argmax, lowest id on ties', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 50; trial++) {
      const logits = Float32Array.from({ length: 40 }, () => rng.normal() * 3);
      const greedy = sampleToken(logits, params({ temperature: 0 }), new Rng(0)).id;
      assert.equal(greedy, argmax(logits));
      assert.equal(sampleToken(logits, params({ topK: 1, temperature: 1.5 }), new Rng(trial)).id, greedy);
    }
    assert.equal(argmax([1, 3, 3, 2]), 1);
    assert.equal(sampleToken([1, 3, 3, 2], params({ topK: 1 }), new Rng(0)).id, 1);
  });

  it('draws tokens with the frequencies of the distribution', () => {
    const rng = new Rng(11);
    const logits = logitsOf(PROBS);
    const counts = new Array(PROBS.length).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, params({}), rng).id]++;
    // Binomial standard deviation of a frequency is at most sqrt(0.25 / n) = 0.0035; allow 4 of them.
    PROBS.forEach((p, i) => assert.ok(Math.abs(counts[i] / n - p) < 0.014, `token ${i}: ${counts[i] / n} vs ${p}`));
    const filtered = new Array(PROBS.length).fill(0);
    for (let i = 0; i < n; i++) filtered[sampleToken(logits, params({ topP: 0.6 }), rng).id]++;
    assert.deepEqual([filtered[0], filtered[1], filtered[3]], [0, 0, 0]);
    assert.ok(Math.abs(filtered[2] / n - 0.5 / 0.7) < 0.014);
  });

  it('reports the log-probability under the unmodified distribution, whatever the sampling settings', () => {
    const logits = logitsOf(PROBS);
    for (const p of [params({}), params({ temperature: 0.3 }), params({ topK: 2 }), params({ topP: 0.5 }), params({ temperature: 0 })]) {
      const { id, logprob } = sampleToken(logits, p, new Rng(3));
      assert.ok(Math.abs(logprob - Math.log(PROBS[id])) < 1e-6, `${JSON.stringify(p)}: ${logprob} vs log ${PROBS[id]}`);
      assert.ok(Math.abs(tokenLogprob(logits, id) - logprob) < 1e-12);
    }
  });

  it('keeps the same set as sorting the vocabulary would, ties going to the lower id', () => {
    // The sampler finds the cut from a histogram of the weights; this reference sorts (probability descending, then id).
    const reference = (logits: Float32Array, p: SamplingParams): number[] => {
      const w = Array.from(logits, (l) => Math.exp(l / p.temperature));
      let order = w.map((_, i) => i).sort((a, b) => w[b] - w[a] || a - b);
      if (p.topK > 0) order = order.slice(0, p.topK);
      const mass = order.reduce((m, i) => m + w[i], 0);
      let acc = 0;
      const cut = order.findIndex((i) => (acc += w[i]) >= p.topP * mass);
      return order.slice(0, cut + 1).sort((a, b) => a - b);
    };
    const rng = new Rng(21);
    for (let trial = 0; trial < 300; trial++) {
      // Logits on a coarse grid, so that many tokens tie.
      const logits = Float32Array.from({ length: 1 + rng.int(60) }, () => rng.int(6) / 2);
      const p = params({ temperature: 0.5 + rng.uniform(), topK: rng.int(3) === 0 ? 0 : 1 + rng.int(20), topP: rng.int(3) === 0 ? 1 : 0.05 + 0.9 * rng.uniform() });
      const kept = [...samplingDistribution(logits, p).entries()].filter(([, q]) => q > 0).map(([i]) => i);
      assert.deepEqual(kept, reference(logits, p), `trial ${trial}: ${JSON.stringify(p)}`);
    }
    // Vocabulary-sized rows of continuous logits with some exact repeats: the cut falls inside one of many
    // histogram buckets, among distinct weights or on a tie.
    for (let trial = 0; trial < 40; trial++) {
      const logits = Float32Array.from({ length: 500 + rng.int(3000) }, () => (rng.int(4) === 0 ? rng.int(8) / 4 : 3 * rng.normal()));
      const p = params({ temperature: 0.3 + rng.uniform(), topK: rng.int(3) === 0 ? 1 + rng.int(300) : 0, topP: 0.05 + 0.95 * rng.uniform() });
      const kept = [...samplingDistribution(logits, p).entries()].filter(([, q]) => q > 0).map(([i]) => i);
      assert.deepEqual(kept, reference(logits, p), `large trial ${trial}: ${JSON.stringify(p)}`);
    }
  });

  it('a seed fixes the draw', () => {
    const logits = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i));
    const draw = (seed: number) => { const rng = new Rng(seed); return Array.from({ length: 20 }, () => sampleToken(logits, params({}), rng).id); };
    assert.deepEqual(draw(1), draw(1));
    assert.notDeepEqual(draw(1), draw(2));
  });
});
