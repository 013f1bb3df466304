// `r1 rejection-sample`'s edge: --help lists the sampling, filter and judge settings, and missing or bad flags
// fail with one line naming them.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { rejectionSampleConfigFromFlags } from '../../src/cli/rejection-sample.ts';
import { r1 } from './r1.ts';

test('r1 rejection-sample --help lists its settings', () => {
  const { code, stdout } = r1('rejection-sample', '--help');
  assert.equal(code, 0);
  for (const flag of ['--model', '--task', '--samples-per-prompt', '--keep-per-prompt', '--template', '--format-rule', '--language', '--min-language-consistency',
    '--max-paragraph-words', '--allow-code', '--judge', '--judge-attempts', '--out', '--resume']) {
    assert.match(stdout, new RegExp(`${flag}\\b`), `no ${flag}`);
  }
});

test('flags are validated, naming the flag', () => {
  assert.throws(() => rejectionSampleConfigFromFlags({ task: 'arithmetic' }), /--model: name the model folder/);
  assert.throws(() => rejectionSampleConfigFromFlags({ model: 'm' }), /--task: name the prompts/);
  assert.throws(() => rejectionSampleConfigFromFlags({ model: 'm', task: 't', formatRule: 'pretty' }), /^UserError: --format-rule "pretty": /);
  assert.equal(rejectionSampleConfigFromFlags({ model: 'm', task: 't', samplesPerPrompt: '16', allowCode: true }).samplesPerPrompt, 16);
  const run = r1('rejection-sample', '--model', 'nowhere', '--task', 'arithmetic', '--prompts', '2', '--out', join(import.meta.dirname, 'no-such-run'));
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^r1: nowhere: no such model folder/);
});
