// `r1 eval` as a user runs it: figures printed and written as JSON; a model folder without a tokenizer and bad
// flags fail with one line naming what is wrong.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { saveModel } from '../../src/models/pretrained.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';
import { r1 } from './r1.ts';

const root = mkdtempSync(join(tmpdir(), 'r1-cli-eval-'));
const modelDir = join(root, 'model');

before(async () => {
  await saveTrainedBpe(join(root, 'tok'), tinyBpe());
  // The R1-Zero template alone is about 300 tokens of this tiny vocabulary.
  await saveModel(tinyModel(2, { maxPositionEmbeddings: 512 }), Tokenizer.fromFile(join(root, 'tok')), modelDir);
});

test('r1 eval prints pass@1, pass@k, cons@k, format and length, and writes them as JSON', () => {
  const out = join(root, 'eval.json');
  const run = r1('eval', '--model', modelDir, '--task', 'arithmetic', '--k', '2', '--limit', '2', '--max-new-tokens', '3', '--out', out);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /arithmetic: 2 questions x 2 samples \(temperature 0\.6, top-p 0\.95\)/);
  for (const line of [/pass@1 +\d+\.\d%/, /pass@2 +\d+\.\d%/, /cons@2 +\d+\.\d%/, /format +\d+\.\d%/, /length +\d+\.\d tokens/]) assert.match(run.stdout, line);
  const report = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(report.questions, 2);
  assert.equal(report.k, 2);
  assert.equal(report.details.length, 2);
  assert.ok(report.details.every((d: { responses: Array<{ lengthTokens: number }> }) => d.responses.length === 2 && d.responses.every((r) => r.lengthTokens <= 3)));
});

test('a model folder without a tokenizer and bad flags are named', () => {
  const bare = join(root, 'bare');
  spawnSync('cp', ['-r', modelDir, bare]);
  rmSync(join(bare, 'tokenizer.json'));
  let run = r1('eval', '--model', bare, '--limit', '1');
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^r1: .*bare: no tokenizer\.json/);
  run = r1('eval', '--model', modelDir, '--k', 'many');
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^r1: --k "many": /);
  run = r1('eval', '--model', modelDir, '--task', 'chess');
  assert.match(run.stderr, /^r1: unknown task "chess"/);
});
