// `r1 distill`'s edge: --help lists the settings of both stages, and missing or bad flags fail naming the flag.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { distillConfigFromFlags } from '../../src/cli/distill.ts';
import { defaultDistillConfig } from '../../src/pipeline/distill.ts';

const ENTRY = "import { main } from './src/cli/main.ts'; await main(process.argv);";

test('r1 distill --help lists the teacher, student, sampling and SFT settings', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, 'r1', 'distill', '--help'], { encoding: 'utf8', cwd: join(import.meta.dirname, '../..') });
  assert.equal(run.status, 0);
  for (const flag of ['--teacher', '--student', '--task', '--samples-per-prompt', '--keep-per-prompt', '--temperature', '--epochs', '--lr', '--min-lr-ratio', '--max-length', '--resume', '--device']) {
    assert.match(run.stdout, new RegExp(`${flag}\\b`), `no ${flag}`);
  }
});

test('flags are validated naming the flag', () => {
  const config = distillConfigFromFlags({ teacher: 't', student: 's', task: 'arithmetic', prompts: '8', epochs: '3' });
  assert.deepEqual(config, { ...defaultDistillConfig, teacher: 't', student: 's', task: 'arithmetic', prompts: 8, epochs: 3 });
  assert.throws(() => distillConfigFromFlags({ student: 's', task: 'arithmetic' }), /--teacher: name the model folder/);
  assert.throws(() => distillConfigFromFlags({ teacher: 't', student: 's' }), /--task: name the prompts/);
  assert.throws(() => distillConfigFromFlags({ teacher: 't', student: 's', task: 'x', epochs: '0' }), /^UserError: --epochs "0": /);
});
