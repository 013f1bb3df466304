// `r1 pipeline`'s edge: --help lists every stage's settings, and bad flags or config files fail naming the flag,
// the file and the field, before any work.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pipelineConfigFromFlags } from '../../src/cli/pipeline.ts';
import { defaultR1PipelineConfig } from '../../src/pipeline/r1.ts';
import { r1 } from './r1.ts';

test('r1 pipeline --help names the stages and the settings of each', () => {
  const run = r1('pipeline', '--help');
  assert.equal(run.code, 0);
  for (const text of ['--stage', 'cold-start', 'student-rl', '--cold-start-data', '--sft-data', '--distill-data', '--language-weight', '--reward-pairs', '--distill-epochs', '--base-steps', '--device', '--config']) {
    assert.ok(run.stdout.includes(text), `no ${text}`);
  }
});

test('flags and config files are validated naming the flag, or the file and field', () => {
  assert.deepEqual(pipelineConfigFromFlags({ zeroSteps: '5', stage: 'distill' }), { ...defaultR1PipelineConfig, zeroSteps: 5, stage: 'distill' });
  assert.throws(() => pipelineConfigFromFlags({ stage: 'sft' }), /^UserError: --stage "sft": /);
  assert.throws(() => pipelineConfigFromFlags({ targetLanguage: 'zh' }), /--target-language and --second-language are both zh/);
  const file = join(mkdtempSync(join(tmpdir(), 'r1-pipeline-cli-')), 'pipeline.json');
  writeFileSync(file, JSON.stringify({ generalFraction: 2, coldStartSteps: 3 }));
  assert.throws(() => pipelineConfigFromFlags({ config: file }), (e: Error) => e.message.includes(`${file}: field "generalFraction"`) && e.message.includes(`${file}: field "coldStartSteps": not a setting of r1 pipeline`));
});
