// `r1 serve` as a user runs it: a child process that prints its address and answers there until stopped.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { saveModel } from '../../src/models/pretrained.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const mainModule = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-serve-'));
const modelDir = join(root, 'model');
const r1Args = (...args: string[]) => ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', ...args];

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

  it('serves the model at the address it prints, on 127.0.0.1, until SIGTERM', async () => {
    const child = spawn(process.execPath, r1Args('serve', '--model', modelDir, '--port', '0'), { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (data: Buffer) => {
          out += data.toString();
          const found = out.match(/at (http:\/\/127\.0\.0\.1:\d+)\/v1/);
          if (found) resolve(found[1]);
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code} before serving: ${out}`)));
      });
      const models = await (await fetch(`${url}/v1/models`)).json() as { data: Array<{ id: string }> };
      assert.deepEqual(models.data.map((m) => m.id), ['model']);
      const answer = await (await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'model', prompt: 'the cat', max_tokens: 4 }) })).json() as { choices: unknown[] };
      assert.equal(answer.choices.length, 1);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  });
});
