// `r1 sample` and `r1 logits` run as a user runs them (a child process), on a tiny model folder.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { generate } from '../../src/generate/engine.ts';
import { readSafetensors, toFloat32 } from '../../src/io/safetensors.ts';
import { saveModel } from '../../src/models/pretrained.ts';
import { noGrad, tensor } from '../../src/tensor/index.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const mainModule = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-sample-'));
const modelDir = join(root, 'model');
const model = tinyModel(7, { eosTokenId: 295 });
let tokenizer: Tokenizer;

function r1(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

before(async () => {
  await saveTrainedBpe(join(root, 'tok'), tinyBpe());
  tokenizer = Tokenizer.fromFile(join(root, 'tok'));
  await saveModel(model, tokenizer, modelDir);
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('r1 sample', () => {
  it('prints the completions the engine gives, as JSON lines', () => {
    const run = r1('sample', '--model', modelDir, '--prompt', 'the cat', '--num', '3', '--seed', '5', '--max-tokens', '12', '--temperature', '0.9', '--json');
    assert.equal(run.status, 0, run.stderr);
    const printed = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
    const expected = generate(model, tokenizer, [0, 1, 2].map(() => ({ prompt: 'the cat' })), {
      maxNewTokens: 12, temperature: 0.9, topP: 0.95, seed: 5, stopTokenIds: [295],
    });
    assert.equal(printed.length, 3);
    printed.forEach((p, i) => {
      assert.deepEqual(p.tokenIds, expected[i].tokenIds);
      assert.equal(p.text, expected[i].text);
      assert.equal(p.finishReason, expected[i].finishReason);
      assert.equal(p.seed, 5 + i);
    });
    assert.notDeepEqual(printed[0].tokenIds, printed[1].tokenIds);
  });

  it('streams a single greedy completion, cut at a stop string', () => {
    const free = generate(model, tokenizer, [{ prompt: 'a dog', temperature: 0, maxNewTokens: 20, stopTokenIds: [295] }])[0];
    const stop = free.text.slice(4, 6);
    const run = r1('sample', '--model', modelDir, '--prompt', 'a dog', '--temperature', '0', '--max-tokens', '20', '--stop', stop);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, `${free.text.slice(0, free.text.indexOf(stop))}\n`);
    assert.match(run.stderr, new RegExp(`stopped at ${JSON.stringify(stop).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}`));
  });

  it('rejects bad flags and folders with one line naming them', () => {
    const badTemp = r1('sample', '--model', modelDir, '--prompt', 'x', '--temperature', 'hot');
    assert.notEqual(badTemp.status, 0);
    assert.match(badTemp.stderr, /--temperature.*'hot' is invalid/);
    const noModel = r1('sample', '--model', join(root, 'missing'), '--prompt', 'x');
    assert.equal(noModel.status, 1);
    assert.equal(noModel.stderr.trim(), `r1: ${join(root, 'missing')}: no such model folder`);
  });
});

describe('r1 logits', () => {
  it('writes the model\'s logits [1, T, V] as float32 safetensors', async () => {
    const out = join(root, 'logits.safetensors');
    const run = r1('logits', '--model', modelDir, '--ids', '1,2, 3,250', '--out', out);
    assert.equal(run.status, 0, run.stderr);
    const { tensors } = await readSafetensors(out);
    const logits = tensors.get('logits')!;
    assert.equal(logits.dtype, 'F32');
    assert.deepEqual(logits.shape, [1, 4, 304]);
    const expected = noGrad(() => model.forward(tensor([1, 2, 3, 250], [1, 4], 'i32'))).toArray();
    assert.deepEqual(toFloat32(logits), expected);
    assert.deepEqual(Array.from(toFloat32(tensors.get('input_ids')!)), [1, 2, 3, 250]);
  });

  it('tokenizes --text first', async () => {
    const out = join(root, 'text.safetensors');
    const run = r1('logits', '--model', modelDir, '--text', 'the cat sat', '--out', out);
    assert.equal(run.status, 0, run.stderr);
    const { tensors } = await readSafetensors(out);
    assert.deepEqual(Array.from(toFloat32(tensors.get('input_ids')!)), tokenizer.encode('the cat sat'));
  });

  it('rejects ids that are not integers or not in the vocabulary', () => {
    const out = join(root, 'bad.safetensors');
    assert.equal(r1('logits', '--model', modelDir, '--ids', '1,2.5', '--out', out).stderr.trim(),
      'r1: --ids: entry 1 "2.5" is not a token id (expected non-negative integers separated by commas)');
    assert.equal(r1('logits', '--model', modelDir, '--ids', '1,304', '--out', out).stderr.trim(),
      'r1: --ids: entry 1 is 304, outside the model\'s vocabulary [0, 304)');
    assert.match(r1('logits', '--model', modelDir, '--out', out).stderr, /give exactly one of --ids and --text/);
  });
});
