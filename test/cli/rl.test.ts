// `r1 rl`'s edge: --help lists GRPO's settings, the sources come from the --config file with their defaults
// filled in, and a bad source or reward fails naming the file and the field.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readRlConfigFile, rlConfigFromFlags } from '../../src/cli/rl.ts';
import { defaultRlConfig } from '../../src/pipeline/rl.ts';
import { r1 } from './r1.ts';

test('r1 rl --help lists the GRPO and evaluation settings and the reward kinds', () => {
  const { code, stdout } = r1('rl', '--help');
  assert.equal(code, 0);
  for (const flag of ['--model', '--out', '--resume', '--config', '--steps', '--group-size', '--loss-type', '--beta', '--lr', '--eval-k', '--device']) {
    assert.match(stdout, new RegExp(`${flag}\\b`), `no ${flag}`);
  }
  assert.ok(stdout.replace(/\s+/g, ' ').includes('reward-model (model folder, on: summary | response, input: chat | text)'));
});

test('sources come from the config file, defaults filled in; bad ones are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-rl-'));
  const file = join(dir, 'rl.json');
  writeFileSync(file, JSON.stringify({
    steps: 7,
    sources: [
      { name: 'math', task: 'arithmetic', rewards: [{ kind: 'accuracy', weight: 1 }, { kind: 'language', weight: 1, target: 'en' }] },
      { name: 'general', task: 'arithmetic', weight: 0.5, fromStep: 5, rewards: [{ kind: 'reward-model', weight: 1, model: 'rm', on: 'summary' }] },
    ],
  }));
  const config = rlConfigFromFlags({ config: file, model: 'm', lr: '1e-5' });
  assert.equal(config.steps, 7);
  assert.equal(config.lr, 1e-5);
  assert.deepEqual(config.sources[0], { name: 'math', task: 'arithmetic', level: null, taskOptions: {}, template: 'chat', weight: 1, fromStep: 1, evaluate: true, rewards: [{ kind: 'accuracy', weight: 1 }, { kind: 'language', weight: 1, target: 'en' }] });
  assert.deepEqual(config.sources[1].rewards, [{ kind: 'reward-model', weight: 1, model: 'rm', on: 'summary', input: 'chat' }]);
  assert.deepEqual(rlConfigFromFlags({ model: 'm' }).sources, defaultRlConfig.sources);

  writeFileSync(file, JSON.stringify({ sources: [{ name: 'x', task: 'arithmetic', rewards: [{ kind: 'helpfulness', weight: 1 }] }] }));
  assert.throws(() => readRlConfigFile(file), /rl\.json: field "sources\.0\.rewards\.0\.kind"/);
  writeFileSync(file, JSON.stringify({ sources: [{ name: 'x', task: 'arithmetic', rewards: [{ kind: 'language', weight: 1, target: 'fr' }] }] }));
  assert.throws(() => readRlConfigFile(file), /field "sources\.0\.rewards\.0\.target"/);
  assert.throws(() => rlConfigFromFlags({}), /--model: name the model folder/);
  assert.throws(() => rlConfigFromFlags({ model: 'm', epsLow: '1' }), /--eps-low 1: must be below 1/);
});
