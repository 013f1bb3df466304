// Reward-model training: the Bradley-Terry loss and its gradient worked by hand and checked by finite
// differences, TRL's preference formats read (and bad lines named), a few steps that learn a preference a tiny
// model can see, exact resume after a kill, and the saved folder in transformers' sequence-classifier layout.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { deepseekConfig } from '../../src/models/deepseek.ts';
import { DeepSeekModel } from '../../src/models/deepseek.ts';
import { loadModel, saveModel } from '../../src/models/pretrained.ts';
import { loadRewardModel, padRight, RewardModel } from '../../src/models/reward-model.ts';
import { tensor } from '../../src/tensor/index.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import {
  bradleyTerryLoss, defaultRewardModelConfig, readPreferencePairs, scorePreferencePairs, trainRewardModel, type RewardModelConfig, type RewardModelStepRecord,
} from '../../src/train/reward-model.ts';
import { UserError } from '../../src/util/errors.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';
import { gradcheck, leaf } from '../tensor/gradcheck.ts';

const root = mkdtempSync(join(tmpdir(), 'r1-reward-model-'));
const quiet = { log: () => {}, progress: false };

describe('Bradley-Terry loss', () => {
  it('matches the loss and gradients worked by hand', () => {
    // d = chosen - rejected = [2 - 1, 0 - 3] = [1, -3].
    // L = (log(1 + e^-1) + log(1 + e^3)) / 2 = (0.3132617 + 3.0485874) / 2 = 1.6809245.
    // dL/dchosen_i = -sigmoid(-d_i) / 2 = [-0.2689414 / 2, -0.9525741 / 2]; dL/drejected_i = the opposite.
    const chosen = tensor([2, 0], [2], 'f64');
    const rejected = tensor([1, 3], [2], 'f64');
    chosen.requiresGrad = true;
    rejected.requiresGrad = true;
    const loss = bradleyTerryLoss(chosen, rejected);
    assert.ok(Math.abs(loss.item() - 1.6809245) < 1e-7, `${loss.item()}`);
    loss.backward();
    const expected = [-0.1344707, -0.4762871];
    chosen.grad!.toArray().forEach((g, i) => assert.ok(Math.abs(g - expected[i]) < 1e-7, `dL/dchosen[${i}] = ${g}`));
    rejected.grad!.toArray().forEach((g, i) => assert.ok(Math.abs(g + expected[i]) < 1e-7, `dL/drejected[${i}] = ${g}`));
  });

  it('stays finite for huge margins: about 0 when the chosen wins by far, about the margin when it loses by far', () => {
    const loss = (c: number, r: number) => bradleyTerryLoss(tensor([c]), tensor([r])).item();
    assert.ok(loss(200, 0) >= 0 && loss(200, 0) < 1e-30);
    assert.ok(Math.abs(loss(0, 200) - 200) < 1e-4);
  });

  it('has the gradient of its finite differences (float64)', () => {
    gradcheck((c, r) => bradleyTerryLoss(c, r), [leaf([6], 1), leaf([6], 2)]);
  });
});

describe('preference pairs', () => {
  it("reads TRL's formats: implicit or explicit prompt, strings or message lists", () => {
    const file = join(root, 'formats.jsonl');
    writeFileSync(file, [
      { chosen: 'Q: 1+1? A: 2', rejected: 'Q: 1+1? A: 3' },
      { prompt: 'Q: 1+1? A:', chosen: ' 2', rejected: ' 3' },
      { chosen: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }], rejected: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'go away' }] },
      { prompt: [{ role: 'user', content: 'hi' }], chosen: [{ role: 'assistant', content: 'hello' }], rejected: [{ role: 'assistant', content: 'go away' }] },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n\n');
    const pairs = readPreferencePairs(file);
    assert.equal(pairs.length, 4);
    assert.equal(pairs[1].prompt, 'Q: 1+1? A:');
    assert.deepEqual(pairs[3].chosen, [{ role: 'assistant', content: 'hello' }]);
    assert.equal(pairs[2].id, `${file}:3`);
  });

  it('names the file and line of a bad pair', () => {
    const bad = (lines: string[], pattern: RegExp) => {
      const file = join(root, 'bad.jsonl');
      writeFileSync(file, lines.join('\n'));
      assert.throws(() => readPreferencePairs(file), (e: Error) => e instanceof UserError && e.message.startsWith(`${file}:`) && pattern.test(e.message), pattern.source);
    };
    const good = JSON.stringify({ chosen: 'a', rejected: 'b' });
    bad([good, '{"chosen": "a", "rejected": '], /:2: not valid JSON at column/);
    bad([good, good, JSON.stringify({ chosen: 'a' })], /:3: a preference pair needs "chosen" and "rejected"/);
    bad([JSON.stringify({ prompt: [{ role: 'user', content: 'q' }], chosen: 'a', rejected: 'b' })], /:1: .*all be strings or all be message lists/);
    bad([JSON.stringify({ chosen: [{ role: 'user' }], rejected: [] })], /:1: "chosen"\[0\] must be a message/);
    bad([''], /no preference pairs/);
  });
});

describe('RewardModel', () => {
  it('reads each row at its last real token: right padding changes nothing', () => {
    const model = new RewardModel(tinyModel(2), 5);
    const rows = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]];
    const together = model.scoreIds(rows, 3);
    rows.forEach((row, i) => assert.ok(Math.abs(model.scoreIds([row])[0] - together[i]) < 1e-5, `row ${i}`));
    // The reward of a prefix is the reward read at that position of the longer row.
    const { ids } = padRight([rows[0]]);
    const atThree = model.rewards(ids, [3]).item();
    assert.ok(Math.abs(atThree - model.scoreIds([rows[0].slice(0, 3)])[0]) < 1e-5);
  });
});

describe('trainRewardModel', () => {
  // A preference a tiny model can learn in a few steps: answers in words over answers in digits.
  const words = ['the cat sat on the mat', 'a dog ran to the park', 'the cat saw it', 'two and two', 'the mat and the park', 'a cat and a dog'];
  const digits = ['12 + 30 = 42', '7 * 6 = 42', '42 42 12', '30 + 12', '6 * 7 = 42 too', '12 30 42 7'];
  let modelDir = '';
  const dataFile = join(root, 'pairs.jsonl');

  async function setUp(): Promise<void> {
    if (modelDir) return;
    const tokDir = join(root, 'tok');
    await saveTrainedBpe(tokDir, tinyBpe());
    modelDir = join(root, 'base');
    await saveModel(tinyModel(3), Tokenizer.fromFile(tokDir), modelDir);
    const lines: string[] = [];
    for (let i = 0; i < 48; i++) {
      const good = `${words[i % words.length]} ${words[(i * 5 + 1) % words.length]}`;
      const poor = `${digits[i % digits.length]} ${digits[(i * 7 + 2) % digits.length]}`;
      lines.push(JSON.stringify(i % 2 === 0 ? { chosen: good, rejected: poor } : { prompt: `q${i}: `, chosen: good, rejected: poor }));
    }
    writeFileSync(dataFile, lines.join('\n'));
  }

  const config = (out: string, overrides: Partial<RewardModelConfig> = {}): RewardModelConfig => ({
    ...defaultRewardModelConfig, data: dataFile, model: modelDir, out, epochs: 2, batchSize: 8, microBatchSize: 4, lr: 1e-2, schedule: 'constant',
    validationFraction: 0.25, checkpointEvery: 4, seed: 3, ...overrides,
  });
  const withoutTime = (r: RewardModelStepRecord) => ({ ...r, elapsedSeconds: 0 });

  it('learns the preference, and writes a reward model that reloads with the same scores', async () => {
    await setUp();
    const result = await trainRewardModel(config(join(root, 'run')), quiet);
    assert.equal(result.counts.train + result.counts.validation, 48);
    assert.ok(result.counts.validation > 0);
    const first = result.records[0];
    const last = result.records.at(-1)!;
    assert.ok(last.loss < first.loss, `loss ${first.loss} -> ${last.loss}`);
    assert.ok(result.validation!.accuracy >= 0.9, `held-out accuracy ${result.validation!.accuracy}`);

    // The folder is transformers' sequence-classifier layout (AutoModelForSequenceClassification, num_labels 1).
    const json = JSON.parse(readFileSync(join(result.finalDir, 'config.json'), 'utf8'));
    assert.deepEqual(json.architectures, ['Qwen2ForSequenceClassification']);
    assert.equal(json.num_labels, 1);
    assert.ok(Number.isInteger(json.pad_token_id));
    const header = await readSafetensorsHeader(join(result.finalDir, 'model.safetensors'));
    assert.deepEqual(header.tensors.get('score.weight')!.shape, [1, 32]);
    assert.ok(header.tensors.has('model.layers.0.self_attn.q_proj.weight'));

    const { model, tokenizer } = await loadRewardModel(result.finalDir);
    const pairs = readPreferencePairs(dataFile);
    const scored = scorePreferencePairs(model, tokenizer, pairs);
    assert.ok(scored.accuracy >= 0.9, `accuracy ${scored.accuracy}`);
    // Loading it as a causal LM fails with a pointer to the right loader.
    await assert.rejects(loadModel(result.finalDir), /unexpected tensor "score.weight".*reward model/);
  });

  it('resumes a killed run exactly, and refuses to start over an earlier run', async () => {
    await setUp();
    const straight = await trainRewardModel(config(join(root, 'straight')), quiet);
    const out = join(root, 'killed');
    await assert.rejects(trainRewardModel(config(out), { ...quiet, onStep: (r) => { if (r.step === 6) throw new Error('killed'); } }), /killed/);
    await assert.rejects(trainRewardModel(config(out), quiet), /already holds checkpoints/);
    const resumed = await trainRewardModel({ ...config(out), resume: true }, quiet);
    assert.deepEqual(resumed.records.map(withoutTime), straight.records.slice(-resumed.records.length).map(withoutTime));
    // The metrics file a user reads holds the whole run, the same as the uninterrupted run's.
    const metrics = async (dir: string) => (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((line) => withoutTime(JSON.parse(line)));
    assert.deepEqual(await metrics(out), await metrics(join(root, 'straight')));
    assert.ok(resumed.records.length < straight.records.length, 'the resumed run started from a checkpoint');
  });

  it('puts a head on a DeepSeek backbone too, and that reward model reloads', async () => {
    await setUp();
    const tokenizer = Tokenizer.fromFile(modelDir);
    const dsDir = join(root, 'deepseek');
    const backbone = new DeepSeekModel(deepseekConfig(tokenizer.vocabSize, {
      hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 2, qLoraRank: 16, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4,
      vHeadDim: 8, numRoutedExperts: 4, numExpertsPerToken: 2, moeIntermediateSize: 16, maxPositionEmbeddings: 64, mtpDepth: 0,
    }), 1);
    await saveModel(backbone, tokenizer, dsDir);
    const result = await trainRewardModel(config(join(root, 'ds-run'), { model: dsDir, epochs: 1, batchSize: 16, microBatchSize: 16, maxLength: 64 }), quiet);
    assert.equal(result.steps, 3);
    const loaded = await loadRewardModel(result.finalDir);
    assert.deepEqual(JSON.parse(readFileSync(join(result.finalDir, 'config.json'), 'utf8')).architectures, ['DeepseekV3ForSequenceClassification']);
    const ids = [tokenizer.encode('the cat sat'), tokenizer.encode('12 + 30')];
    const again = scorePreferencePairs(loaded.model, loaded.tokenizer, [{ id: 'x', prompt: null, chosen: 'the cat sat', rejected: '12 + 30' }]).scores[0];
    const direct = loaded.model.scoreIds(ids);
    assert.ok(Math.abs(again.chosen - direct[0]) < 1e-6 && Math.abs(again.rejected - direct[1]) < 1e-6);
  });
});
