// The GRPO trainer on models small enough to run in seconds: its token log-probabilities and loss agree with
// grpo.ts worked by hand, a few steps raise a reward the model can learn quickly, a killed run resumes
// exactly, and rewards that throw or return NaN never crash a step.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readJsonl, RUN_FILE, SAMPLES_FILE } from '../../src/io/checkpoint.ts';
import { DenseModel, denseConfig } from '../../src/models/dense.ts';
import type { WeightedReward } from '../../src/rewards/reward.ts';
import { groupAdvantages } from '../../src/rl/grpo.ts';
import type { RolloutTask } from '../../src/rl/rollout.ts';
import {
  cloneModel, countReflectionWords, defaultGrpoConfig, GRPO_RUN_FIELDS, packSequences, tokenLogprobs, trainGrpo, updatePolicy, type GrpoConfig, type GrpoStepRecord,
} from '../../src/rl/trainer.ts';
import type { Example, Task } from '../../src/tasks/task.ts';
import { logSoftmax, tensor } from '../../src/tensor/index.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { trainBpe } from '../../src/tokenizer/train.ts';
import { AdamW } from '../../src/train/optimizer.ts';

const trained = trainBpe(['abc abd abe xyz xyw 123 124'], { vocabSize: 270 });
const tokenizer = Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);

function tinyModel(seed = 3): DenseModel {
  return new DenseModel(denseConfig('1m', tokenizer.vocabSize, { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 16 }), seed);
}

// A task whose reward a tiny model learns in a few steps: the share of lowercase ASCII letters in the
// completion (about 10% of the byte tokens at initialisation).
const letterShare = (text: string) => (text.length ? (text.match(/[a-z]/g)?.length ?? 0) / text.length : 0);
const letterTask: Task = {
  name: 'letters',
  description: 'write lowercase letters',
  sample: (rng, count) => Array.from({ length: count }, (_, i): Example => ({ id: `letters/${rng.int(1000)}/${i}`, question: 'go', reference: null })),
  testSet: () => [],
  verify: (completion) => ({ answer: completion, correct: letterShare(completion) > 0.5 }),
};
function source(rewards: WeightedReward[] = [{ name: 'letters', weight: 1, fn: ({ completion }) => letterShare(completion) }]): RolloutTask {
  return { name: 'letters', task: letterTask, prompt: (q) => `Q: ${q} A:`, rewards, isFormatted: () => true };
}

const fast: GrpoConfig = {
  ...defaultGrpoConfig, steps: 20, promptsPerStep: 4, groupSize: 8, maxNewTokens: 8, lr: 3e-2, beta: 0, checkpointEvery: 100, seed: 7,
};
const quiet = { log: () => {}, progress: false };
const withoutTimes = (r: GrpoStepRecord) => ({ ...r, samplingSeconds: 0, referenceSeconds: 0, trainingSeconds: 0, tokensPerSecond: 0, elapsedSeconds: 0 });

describe('GRPO trainer against grpo.ts', () => {
  const sequences = [
    { promptIds: [5, 6, 7], completionIds: [8, 9], advantage: 0, counted: true },
    { promptIds: [5], completionIds: [10, 11, 12, 13], advantage: 0, counted: true },
    { promptIds: [6, 7], completionIds: [14], advantage: 0, counted: true },
    { promptIds: [7, 7, 7, 7], completionIds: [15, 16, 17], advantage: 0, counted: true },
  ];

  it('reads each completion token\'s log-prob from one right-padded forward', () => {
    const model = tinyModel();
    const batch = packSequences(sequences);
    const { logp } = tokenLogprobs(model, batch);
    const values = logp.toArray();
    sequences.forEach((s, b) => {
      // The reference: a forward over this sequence alone, log_softmax at position t for token t + 1.
      const all = [...s.promptIds, ...s.completionIds];
      const alone = logSoftmax(model.forward(tensor(all.slice(0, -1), [1, all.length - 1], 'i32'))).toArray();
      s.completionIds.forEach((id, j) => {
        const t = s.promptIds.length + j - 1;
        const expected = alone[t * model.config.vocabSize + id];
        assert.ok(Math.abs(values[b * batch.width + t] - expected) < 1e-5, `sequence ${b} token ${j}: ${values[b * batch.width + t]} vs ${expected}`);
      });
    });
    // Prompt and padding positions carry no loss.
    assert.equal(batch.tokens, 2 + 4 + 1 + 3);
    assert.equal(Array.from(batch.mask.toArray()).reduce((a, b) => a + b, 0), 10);
  });

  it('loss of one update equals the hand-worked DAPO and GRPO aggregations (rho = 1)', () => {
    // Rewards 1, 0, 0, 1 in one group: mean 0.5, unbiased std sqrt(1/3), so A = +-0.5 / (0.57735 + 1e-4).
    const advantages = groupAdvantages([1, 0, 0, 1], 4);
    const a = 0.5 / (Math.sqrt(1 / 3) + 1e-4);
    assert.ok(Math.abs(advantages[0] - a) < 1e-12);
    const withA = sequences.map((s, i) => ({ ...s, advantage: advantages[i] }));
    const model = tinyModel();
    const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0 });
    // With rho = 1 every token's loss is -A_i. DAPO: -(sum_i A_i |o_i|) / sum_i |o_i| = -a (2 - 4 - 1 + 3) / 10.
    const dapo = updatePolicy(model, null, optimizer, withA, { ...fast, lossType: 'dapo' }, 0, 1);
    assert.ok(Math.abs(dapo.loss - (-a * (2 - 4 - 1 + 3)) / 10) < 1e-6, `${dapo.loss}`);
    // GRPO: mean over sequences of the per-sequence token mean: -(a - a - a + a) / 4 = 0.
    const grpo = updatePolicy(model, null, optimizer, withA, { ...fast, lossType: 'grpo' }, 0, 1);
    assert.ok(Math.abs(grpo.loss) < 1e-6, `${grpo.loss}`);
    // Dr. GRPO: no std, constant normaliser G x maxNewTokens (8): -(0.5 (2 - 4 - 1 + 3)) / 32.
    const centred = groupAdvantages([1, 0, 0, 1], 4, { scaleByStd: false, epsStd: 1e-4, std: 'unbiased' });
    const dr = updatePolicy(model, null, optimizer, sequences.map((s, i) => ({ ...s, advantage: centred[i] })), { ...fast, lossType: 'dr_grpo' }, 0, 1);
    assert.ok(Math.abs(dr.loss - (-0.5 * (2 - 4 - 1 + 3)) / 32) < 1e-6, `${dr.loss}`);
    assert.equal(dapo.clipFraction, 0);
    assert.equal(dapo.kl, null);
  });

  it('the KL to a reference equal to the policy is 0, and micro-batches add up to the whole batch', () => {
    const advantages = [1, -1, 0.5, -0.5];
    const withA = sequences.map((s, i) => ({ ...s, advantage: advantages[i] }));
    const model = tinyModel();
    const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0 });
    const whole = updatePolicy(model, cloneModel(model), optimizer, withA, { ...fast, beta: 0.04 }, 0, 1);
    assert.ok(Math.abs(whole.kl!) < 1e-7);
    const split = updatePolicy(model, cloneModel(model), optimizer, withA, { ...fast, beta: 0.04, microBatchSize: 1 }, 0, 1);
    assert.ok(Math.abs(split.loss - whole.loss) < 1e-6, `${split.loss} vs ${whole.loss}`);
  });

  it('with mu = 2 the second pass sees ratios away from 1 and clips some', () => {
    const withA = sequences.map((s, i) => ({ ...s, advantage: [2, -2, 2, -2][i] }));
    const model = tinyModel();
    const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0 });
    const result = updatePolicy(model, null, optimizer, withA, { ...fast, mu: 2, lr: 0.05, epsLow: 0.01, epsHigh: 0.01 }, 0.05, 1);
    assert.ok(result.clipFraction > 0, `clip fraction ${result.clipFraction}`);
  });
});

describe('GRPO training runs', () => {
  it('a handful of steps raise the mean reward (deterministic with a seed)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'r1-grpo-'));
    const { records } = await trainGrpo({ model: tinyModel(), tokenizer, sources: [source()], config: fast, out }, quiet);
    const first = records.slice(0, 3).reduce((a, r) => a + r.reward, 0) / 3;
    const last = records.slice(-3).reduce((a, r) => a + r.reward, 0) / 3;
    assert.ok(last > first + 0.4, `mean reward ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    const again = await trainGrpo({ model: tinyModel(), tokenizer, sources: [source()], config: { ...fast, steps: 3 }, out: mkdtempSync(join(tmpdir(), 'r1-grpo-')) }, quiet);
    assert.deepEqual(again.records.map(withoutTimes), records.slice(0, 3).map(withoutTimes));
  });

  it('resumes a killed run exactly', async () => {
    const config = { ...fast, steps: 5, checkpointEvery: 2, beta: 0.01, referenceRefreshEvery: 3 };
    const straight = await trainGrpo({ model: tinyModel(), tokenizer, sources: [source()], config, out: mkdtempSync(join(tmpdir(), 'r1-grpo-')) }, quiet);
    const out = mkdtempSync(join(tmpdir(), 'r1-grpo-'));
    const killed = tinyModel();
    await assert.rejects(trainGrpo({ model: killed, tokenizer, sources: [source()], config, out }, {
      ...quiet, onStep: (r) => { if (r.step === 3) throw new Error('killed'); },
    }), /killed/);
    await assert.rejects(trainGrpo({ model: tinyModel(), tokenizer, sources: [source()], config, out }, quiet), /already holds checkpoints/);
    const resumedModel = tinyModel(99);
    const resumed = await trainGrpo({ model: resumedModel, tokenizer, sources: [source()], config, out, resume: true }, quiet);
    assert.deepEqual(resumed.records.map(withoutTimes), straight.records.map(withoutTimes));
    // What the dashboard reads: one samples.jsonl line per step (the redone step 3 once), and the run's settings.
    const samples = await readJsonl<{ step: number; samples: Array<{ completion: string; reward: number }> }>(join(out, SAMPLES_FILE));
    assert.deepEqual(samples.map((s) => s.step), [1, 2, 3, 4, 5]);
    assert.ok(samples.every((s) => s.samples.length > 0 && s.samples.length <= 16 && typeof s.samples[0].completion === 'string'));
    const run = JSON.parse(readFileSync(join(out, RUN_FILE), 'utf8'));
    assert.equal(run.kind, 'grpo');
    assert.equal(run.config.groupSize, config.groupSize);
  });

  it('a resumed run takes every GRPO setting from its checkpoint but how long it runs and how often it saves', () => {
    const fromGiven = Object.keys(defaultGrpoConfig).filter((key) => !(GRPO_RUN_FIELDS as readonly string[]).includes(key));
    assert.deepEqual(fromGiven, ['steps', 'checkpointEvery', 'keepCheckpoints', 'timeLimitMinutes']);
  });

  it('rewards that throw or return NaN score 0 and the run goes on; flat groups are dropped by dynamic sampling', async () => {
    const rewards: WeightedReward[] = [
      { name: 'letters', weight: 1, fn: ({ completion }) => letterShare(completion) },
      { name: 'throws', weight: 1, fn: () => { throw new Error('bad reward'); } },
      { name: 'nan', weight: 1, fn: () => Number.NaN },
    ];
    const out = mkdtempSync(join(tmpdir(), 'r1-grpo-'));
    const { records } = await trainGrpo({ model: tinyModel(), tokenizer, sources: [source(rewards)], config: { ...fast, steps: 2 }, out }, quiet);
    assert.equal(records.length, 2);
    assert.equal(records[0].rewardFailures, 4 * 8);
    assert.equal(records[0].rewardParts.throws, 0);
    assert.ok(Number.isFinite(records[1].loss));

    const constant = await trainGrpo({
      model: tinyModel(), tokenizer, sources: [source([{ name: 'one', weight: 1, fn: () => 1 }])],
      config: { ...fast, steps: 1, dynamicSampling: true, maxSamplingRounds: 2 }, out: mkdtempSync(join(tmpdir(), 'r1-grpo-')),
    }, quiet);
    assert.equal(constant.records[0].droppedGroups, 4 + 4);
    assert.equal(constant.records[0].trainedGroups, 0);
    assert.equal(constant.records[0].loss, 0);
  });
});

describe('countReflectionWords', () => {
  it('counts the reflection vocabulary as whole words in any case, as the per-step metric does', () => {
    assert.equal(countReflectionWords('check: 17 - 5 = 12. right. wait, that is a mistake: 12 + 5 = 17.'), 3);
    assert.equal(countReflectionWords('Wait, wait. Let me VERIFY it again; however, recheck the sum.'), 6);
    // Inside other words they are not reflection: no match in "awaits", "checkout", "mistaken", "gained".
    assert.equal(countReflectionWords('she awaits the checkout, mistaken; he gained 5.'), 0);
    assert.equal(countReflectionWords(''), 0);
  });
});
