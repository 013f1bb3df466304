// `r1 reward-model`'s edge: both subcommands have --help listing their settings, and bad flags fail with one
// line naming them, before any work.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rewardModelConfigFromFlags } from '../../src/cli/reward-model.ts';
import { defaultRewardModelConfig } from '../../src/train/reward-model.ts';
import { r1 } from './r1.ts';

test('r1 reward-model train and score have --help with their settings', () => {
  const train = r1('reward-model', 'train', '--help');
  assert.equal(train.code, 0);
  for (const flag of ['--data', '--model', '--out', '--resume', '--epochs', '--batch-size', '--lr', '--max-length', '--validation-fraction', '--device']) {
    assert.match(train.stdout, new RegExp(`${flag}\\b`), `no ${flag}`);
  }
  assert.match(train.stdout, /Bradley-Terry/);
  const score = r1('reward-model', 'score', '--help');
  assert.equal(score.code, 0);
  for (const flag of ['--model', '--data', '--text', '--out']) assert.match(score.stdout, new RegExp(`${flag}\\b`), `no ${flag}`);
});

test('flags are validated, naming the flag', () => {
  const config = rewardModelConfigFromFlags({ data: 'p.jsonl', model: 'm', epochs: '2', lr: '1e-4' });
  assert.deepEqual(config, { ...defaultRewardModelConfig, data: 'p.jsonl', model: 'm', epochs: 2, lr: 1e-4 });
  assert.throws(() => rewardModelConfigFromFlags({ model: 'm' }), /--data: name a JSONL file/);
  assert.throws(() => rewardModelConfigFromFlags({ data: 'p.jsonl', model: 'm', batchSize: '0' }), /^UserError: --batch-size "0": /);
  const missing = r1('reward-model', 'score', '--model', 'nowhere', '--text', 'hi');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^r1: nowhere: no config\.json/);
});
