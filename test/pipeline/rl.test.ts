// GRPO on a mix of prompt sources: each reward kind computes what its entry says (a reward model reads only the
// summary for helpfulness and the whole response for harmlessness), prompts are drawn by the sources' weights
// and from the step each source starts, every sample is scored by its own source's rewards, and a run on two
// sources evaluates both and resumes exactly after a kill.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { saveModel } from '../../src/models/pretrained.ts';
import { RewardModel, saveRewardModel } from '../../src/models/reward-model.ts';
import { buildRewards, buildSources, defaultRlConfig, REWARD_KINDS, runRl, type RlConfig, type RlSourceConfig } from '../../src/pipeline/rl.ts';
import { scoreSample, type RewardInput } from '../../src/rewards/reward.ts';
import { sampleRollout, type RolloutTask } from '../../src/rl/rollout.ts';
import type { GrpoStepRecord } from '../../src/rl/trainer.ts';
import { arithmeticTask } from '../../src/tasks/arithmetic.ts';
import type { Task } from '../../src/tasks/task.ts';
import { Rng } from '../../src/tensor/index.ts';
import { renderConversation } from '../../src/tokenizer/chat.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { UserError } from '../../src/util/errors.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'r1-rl-'));
const quiet = { log: () => {}, progress: false };
let tokenizer: Tokenizer;
let modelDir = '';
let rewardModelDir = '';

before(async () => {
  const tokDir = join(root, 'tok');
  await saveTrainedBpe(tokDir, tinyBpe());
  tokenizer = Tokenizer.fromFile(tokDir);
  modelDir = join(root, 'policy');
  await saveModel(tinyModel(6, { maxPositionEmbeddings: 512 }), tokenizer, modelDir);
  rewardModelDir = join(root, 'rm');
  await saveRewardModel(new RewardModel(tinyModel(7, { maxPositionEmbeddings: 512 }), 2), tokenizer, rewardModelDir);
});

describe('reward kinds', () => {
  const task = arithmeticTask({ level: 1 });
  const example = task.testSet(1)[0];
  const input = (completion: string, prompt = 'Q. Assistant:'): RewardInput => ({ prompt, question: example.question, completion, reference: example.reference });

  it('accuracy, format, language and tag-count score what they name', () => {
    const context = { task, rewardModels: new Map() };
    const right = `<think> we add </think> <answer> ${example.reference as string} </answer>`;
    assert.equal(REWARD_KINDS.accuracy({ kind: 'accuracy', weight: 1 }, context)(input(right)), 1);
    assert.equal(REWARD_KINDS.accuracy({ kind: 'accuracy', weight: 1 }, context)(input('<answer> -1 </answer>')), 0);
    assert.equal(REWARD_KINDS.format({ kind: 'format', weight: 1, rule: 'strict' }, context)(input(right)), 1);
    assert.equal(REWARD_KINDS.format({ kind: 'format', weight: 1, rule: 'readable' }, context)(input(right)), 0);
    assert.equal(REWARD_KINDS.format({ kind: 'format', weight: 1, rule: 'readable' }, context)(input('<think> add </think> It is \\boxed{4}.')), 1);
    // Four counted words in the chain of thought, one of them Chinese: 3/4 in English.
    assert.equal(REWARD_KINDS.language({ kind: 'language', weight: 1, target: 'en' }, context)(input('<think> we add 两 apples </think> ok')), 0.75);
    assert.equal(REWARD_KINDS['tag-count']({ kind: 'tag-count', weight: 1 }, context)(input('<think> x </think>')), 0.5);
    // Weights multiply, names tell the parts apart.
    const rewards = buildRewards([{ kind: 'accuracy', weight: 2 }, { kind: 'language', weight: 0.5, target: 'en' }], context);
    assert.deepEqual(rewards.map((r) => r.name), ['accuracy', 'language:en']);
    assert.equal(scoreSample(rewards, input(right)).total, 2 * 1 + 0.5 * 1);
  });

  it('a reward model judges helpfulness on the summary only and harmlessness on the whole response', async () => {
    const [source] = await buildSources([{
      name: 'general', task: 'arithmetic', level: 1, taskOptions: {}, template: 'chat', weight: 1, fromStep: 1, evaluate: false,
      rewards: [{ kind: 'reward-model', weight: 1, model: rewardModelDir, on: 'summary', input: 'chat' }, { kind: 'reward-model', weight: 1, model: rewardModelDir, on: 'response', input: 'chat' }],
    }], tokenizer);
    const [helpful, harmless] = source.rollout.rewards;
    const a = input('<think> the cat sat </think> The answer is 4.');
    const b = input('<think> 12 + 30 = 42 and the mat </think> The answer is 4.');
    // The same summary: the same helpfulness whatever the reasoning; the whole responses differ.
    assert.equal(helpful.fn(a), helpful.fn(b));
    assert.notEqual(harmless.fn(a), harmless.fn(b));
    // What the reward model reads: the conversation [question, part] in its chat template.
    const { model } = await import('../../src/models/reward-model.ts').then((m) => m.loadRewardModel(rewardModelDir));
    const expected = model.scoreIds([tokenizer.encode(renderConversation(tokenizer, [{ role: 'user', content: example.question }, { role: 'assistant', content: 'The answer is 4.' }]), { addSpecialTokens: false })])[0];
    assert.ok(Math.abs(helpful.fn(a) - expected) < 1e-6, `${helpful.fn(a)} vs ${expected}`);
  });
});

describe('mixed prompt sources', () => {
  // Two sources whose prompts and rewards tell them apart.
  const constantTask = (name: string): Task => ({
    name, description: name, testSet: () => [], verify: () => ({ answer: null, correct: false }),
    sample: (rng, count) => Array.from({ length: count }, (_, i) => ({ id: `${name}/${rng.int(1e6)}/${i}`, question: name, reference: null })),
  });
  const source = (name: string, weight: number, fromStep = 1): RolloutTask => ({
    name, weight, fromStep, task: constantTask(name), prompt: (q) => `${q}:`, isFormatted: () => true,
    rewards: [{ name: `${name}-reward`, weight: 1, fn: ({ question }) => (question === name ? 1 : -1) }],
  });
  const options = { ...defaultRlConfig, promptsPerStep: 8, groupSize: 2, maxNewTokens: 2 };

  it('draws prompts by weight, from each source\'s first step on, and scores each with its own rewards', () => {
    const model = tinyModel(3);
    const sources = [source('math', 3), source('general', 1, 3)];
    const rng = new Rng(5);
    const counts = { math: 0, general: 0 };
    for (let step = 1; step <= 40; step++) {
      const { samples } = sampleRollout(model, tokenizer, sources, options, rng, step);
      assert.equal(samples.length, 16);
      for (const s of samples) {
        counts[s.source as 'math' | 'general']++;
        assert.equal(s.example.question, s.source);
        // Only its own source's reward, and that reward sees its own question.
        assert.deepEqual(Object.keys(s.parts), [`${s.source}-reward`]);
        assert.equal(s.reward, 1);
        if (step < 3) assert.equal(s.source, 'math');
      }
    }
    // Steps 3-40 draw 304 prompts at 3:1: 76 general expected, standard deviation 7.5; steps 1-2 only math.
    const general = counts.general / 2;
    assert.ok(general >= 46 && general <= 106, `${general} general prompts of 320`);
    assert.throws(() => sampleRollout(model, tokenizer, [source('late', 1, 5)], options, new Rng(1), 1), /no prompt source is active yet/);
  });

  it('names what is wrong with the sources before any work', async () => {
    const base: RlSourceConfig = { name: 'a', task: 'arithmetic', level: 1, taskOptions: {}, template: 'r1-zero', weight: 1, fromStep: 1, evaluate: true, rewards: [{ kind: 'accuracy', weight: 1 }] };
    const fails = (sources: RlSourceConfig[], pattern: RegExp) => assert.rejects(buildSources(sources, tokenizer), (e: Error) => e instanceof UserError && pattern.test(e.message));
    await fails([], /at least one prompt source/);
    await fails([base, base], /two sources are named a/);
    await fails([{ ...base, name: 'a b' }], /must be letters/);
    await fails([{ ...base, rewards: [] }], /source a: no rewards/);
    await fails([{ ...base, fromStep: 3 }], /every source starts after step 1/);
    await fails([{ ...base, rewards: [{ kind: 'reward-model', weight: 1, model: join(root, 'none'), on: 'summary', input: 'chat' }] }], /no config\.json/);
  });
});

describe('runRl', () => {
  const config = (out: string, overrides: Partial<RlConfig> = {}): RlConfig => ({
    ...defaultRlConfig, model: modelDir, out, steps: 4, promptsPerStep: 2, groupSize: 2, maxNewTokens: 6, lr: 1e-3, checkpointEvery: 2, beta: 0.01,
    evalK: 2, evalLimit: 2, seed: 3,
    sources: [
      { name: 'zero', task: 'arithmetic', level: 1, taskOptions: {}, template: 'r1-zero', weight: 1, fromStep: 1, evaluate: true, rewards: [{ kind: 'accuracy', weight: 1 }, { kind: 'format', weight: 0.5, rule: 'strict' }] },
      {
        name: 'readable', task: 'readable:arithmetic', level: 1, taskOptions: {}, template: 'chat', weight: 1, fromStep: 2, evaluate: true,
        rewards: [{ kind: 'accuracy', weight: 1 }, { kind: 'language', weight: 1, target: 'en' }, { kind: 'reward-model', weight: 0.5, model: rewardModelDir, on: 'summary', input: 'chat' }],
      },
    ],
    ...overrides,
  });
  const withoutTimes = (r: GrpoStepRecord) => ({ ...r, samplingSeconds: 0, referenceSeconds: 0, trainingSeconds: 0, tokensPerSecond: 0, elapsedSeconds: 0 });

  it('trains on both sources, evaluates each before and after, and resumes a killed run exactly', async () => {
    const straight = await runRl(config(join(root, 'straight')), quiet);
    assert.equal(straight.records.length, 4);
    assert.deepEqual(straight.evaluations.map((e) => e.source), ['zero', 'readable']);
    assert.equal(straight.records[0].perSource.readable.samples, 0);
    assert.ok(straight.records.slice(1).some((r) => r.perSource.readable.samples > 0));
    for (const name of ['before.zero.json', 'after.zero.json', 'before.readable.json', 'after.readable.json', 'report.html', 'final/model.safetensors']) {
      assert.ok(existsSync(join(straight.out, name)), name);
    }
    const summary = JSON.parse(readFileSync(join(straight.out, 'summary.json'), 'utf8'));
    assert.deepEqual(Object.keys(summary.after), ['zero', 'readable']);
    assert.match(readFileSync(straight.reportFile, 'utf8'), /<h3>zero<\/h3>[\s\S]*<h3>readable<\/h3>/);

    const out = join(root, 'killed');
    await assert.rejects(runRl(config(out), { ...quiet, onStep: (r) => { if (r.step === 3) throw new Error('killed'); } }), /killed/);
    // A resume given other sources or another model than the run started with fails, naming the difference.
    const [first, second] = config(out).sources;
    await assert.rejects(runRl({ ...config(out), sources: [first, { ...second, task: 'countdown' }], resume: true }, quiet), /started with other prompt sources/);
    await assert.rejects(runRl({ ...config(out), model: join(root, 'another'), resume: true }, quiet), /is a run of --model .*, not .*another: resume it with the flags it started with/);
    const resumed = await runRl({ ...config(out), resume: true }, quiet);
    assert.deepEqual(resumed.records.map(withoutTimes), straight.records.map(withoutTimes));
    assert.deepEqual(resumed.evaluations.map((e) => e.after.passAt1), straight.evaluations.map((e) => e.after.passAt1));
  });
});
