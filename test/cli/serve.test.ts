// `r1 serve` as a user runs it: a child process that prints its address and answers there until stopped.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { saveModel } from '../../src/models/pretrained.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';
import { r1Args, withServerChild } from './server-child.ts';

const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-serve-'));
const modelDir = join(root, 'model');

before(async () => {
  await saveTrainedBpe(join(root, 'tok'), tinyBpe());
  await saveModel(tinyModel(7, { eosTokenId: 295 }), Tokenizer.fromFile(join(root, 'tok')), modelDir);
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('r1 serve', () => {
  it('has --help naming its flags', () => {
    const run = spawnSync(process.execPath, r1Args('serve', '--help'), { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    for (const flag of ['--model', '--host', '--port', '--api-key', '--device', '--max-batch-size', '--max-waiting', '--max-body-bytes']) assert.ok(run.stdout.includes(flag), flag);
  });

  it('serves the model at the address it prints, on 127.0.0.1, until SIGTERM', () => withServerChild(['serve', '--model', modelDir, '--port', '0'], async (url) => {
    const models = await (await fetch(`${url}/v1/models`)).json() as { data: Array<{ id: string }> };
    assert.deepEqual(models.data.map((m) => m.id), ['model']);
    const answer = await (await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'model', prompt: 'the cat', max_tokens: 4 }) })).json() as { choices: unknown[] };
    assert.equal(answer.choices.length, 1);
  }));
});
