// `r1 sft`'s edge: --help lists its settings, flags are validated naming the flag, and a bad data line fails
// with one line naming the file and line, before any training.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sftConfigFromFlags } from '../../src/cli/sft.ts';
import { parameterArrays } from '../../src/io/checkpoint.ts';
import { saveHfModel } from '../../src/io/hf.ts';
import { defaultSftConfig } from '../../src/train/sft.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';
import { r1 } from './r1.ts';

test('r1 sft --help lists its settings', () => {
  const help = r1('sft', '--help');
  assert.equal(help.code, 0);
  for (const flag of ['--data', '--validation-data', '--model', '--out', '--chat-template', '--epochs', '--batch-size', '--micro-batch-size',
    '--max-length', '--packing', '--lr', '--min-lr-ratio', '--schedule', '--resume', '--device', '--precision']) {
    assert.match(help.stdout, new RegExp(`${flag}\\b`), `no ${flag}`);
  }
  assert.match(help.stdout, /assistant tokens only/);
});

test('flags are validated naming the flag; a bad data line fails naming the file and line', async () => {
  assert.deepEqual(sftConfigFromFlags({ data: 'd.jsonl', model: 'm', epochs: '3', packing: true }), { ...defaultSftConfig, data: 'd.jsonl', model: 'm', epochs: 3, packing: true });
  assert.throws(() => sftConfigFromFlags({ model: 'm' }), /--data: name a JSONL file/);
  assert.throws(() => sftConfigFromFlags({ data: 'd.jsonl', model: 'm', maxLength: '0' }), /^UserError: --max-length "0": /);

  const dir = mkdtempSync(join(tmpdir(), 'r1-cli-sft-'));
  const model = tinyModel(1);
  await saveHfModel(join(dir, 'base'), { config: model.config, tensors: parameterArrays(model.namedParameters()) }, { tokenizerJson: tinyBpe().tokenizerJson, tokenizerConfig: tinyBpe().tokenizerConfig });
  const data = join(dir, 'data.jsonl');
  writeFileSync(data, `${JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'the cat' }] })}\n{"messages": [{"role": "user", "content": "no answer"}]}\n`);
  const run = r1('sft', '--model', join(dir, 'base'), '--data', data, '--out', join(dir, 'run'));
  assert.equal(run.code, 1);
  assert.equal(run.stderr.trim().split('\n').at(-1), `r1: ${data}:2: the conversation has no assistant turn to train on`);
});
