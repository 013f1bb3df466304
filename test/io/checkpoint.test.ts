import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  appendJsonl, loadCheckpoint, loadLatestCheckpoint, readJsonl, saveCheckpoint, type CheckpointParts, type LoadedCheckpoint,
} from '../../src/io/checkpoint.ts';
import { fromFloat32, toFloat32, type TensorMap } from '../../src/io/safetensors.ts';
import { UserError } from '../../src/util/errors.ts';
import { stepCheckpoint } from './fixtures/step_checkpoint.ts';
import { randomWeights, tinyConfig, withTempDir } from './fixtures/tiny.ts';

function sameTensors(actual: TensorMap, expected: TensorMap): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, array] of expected) {
    const got = actual.get(name)!;
    assert.deepEqual([got.dtype, got.shape], [array.dtype, array.shape], name);
    assert.deepEqual(Buffer.from(got.data), Buffer.from(array.data), name);
  }
}

function tinyParts(seed: number): CheckpointParts {
  const config = tinyConfig('llama');
  const tensors = randomWeights(config, 'BF16', seed);
  return {
    model: { config, tensors },
    optimizer: {
      m: randomWeights(config, 'F32', seed + 100),
      v: randomWeights(config, 'F32', seed + 200),
      other: new Map([['loss_scale', fromFloat32([], Float32Array.of(1024), 'F32')]]),
    },
    trainerState: { seed, rng: { state: [1, 2, 3, 4] }, loader: { epoch: 0, index: 17 }, metrics: { loss: 2.5 } },
  };
}

const quiet = () => {};

test('a saved checkpoint loads back with the same model, optimizer state and trainer state', async () => {
  await withTempDir(async (runDir) => {
    assert.equal(await loadLatestCheckpoint(runDir), null, 'a run without checkpoints has none');
    const parts = tinyParts(1);
    const dir = await saveCheckpoint(runDir, 123, { ...parts, tokenizer: { tokenizerJson: '{"model":{}}' } });
    assert.equal(dir, join(runDir, 'checkpoints', 'step-000123'));
    assert.equal(await readFile(join(runDir, 'checkpoints', 'latest'), 'utf8'), 'step-000123\n');
    assert.deepEqual((await readdir(dir)).sort(),
      ['config.json', 'generation_config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'trainer_state.json']);

    const loaded = (await loadLatestCheckpoint(runDir))!;
    assert.equal(loaded.step, 123);
    assert.equal(loaded.dir, dir);
    assert.deepEqual(loaded.model.config, parts.model.config);
    sameTensors(loaded.model.tensors, parts.model.tensors);
    sameTensors(loaded.optimizer.m, parts.optimizer.m);
    sameTensors(loaded.optimizer.v, parts.optimizer.v);
    sameTensors(loaded.optimizer.other, parts.optimizer.other);
    assert.deepEqual(loaded.trainerState, parts.trainerState);
  });
});

test('only the last K checkpoints are kept, and latest names the newest', async () => {
  await withTempDir(async (runDir) => {
    for (const step of [10, 20, 30, 40]) await saveCheckpoint(runDir, step, tinyParts(step), { keepLast: 2 });
    assert.deepEqual((await readdir(join(runDir, 'checkpoints'))).sort(), ['latest', 'step-000030', 'step-000040']);
    assert.equal((await loadLatestCheckpoint(runDir))!.step, 40);
    // Saving an existing step again replaces it.
    await saveCheckpoint(runDir, 40, tinyParts(99), { keepLast: 2 });
    assert.deepEqual((await loadLatestCheckpoint(runDir))!.trainerState.seed, 99);
    assert.deepEqual((await readdir(join(runDir, 'checkpoints'))).sort(), ['latest', 'step-000030', 'step-000040']);
  });
});

test('a save killed midway leaves the previous checkpoint loadable, and the next save cleans up after it', async () => {
  await withTempDir(async (runDir) => {
    await saveCheckpoint(runDir, 5, tinyParts(5));
    // What a kill during step 6 leaves: a half-written temporary folder, and inside it a half-written file.
    const checkpointsDir = join(runDir, 'checkpoints');
    const partial = join(checkpointsDir, '.tmp-step-000006-4242-deadbeef');
    await mkdir(partial);
    await writeFile(join(partial, 'config.json'), '{"architectures": ["Llama');
    await writeFile(join(partial, '.tmp-model.safetensors-4242-cafe0000'), new Uint8Array(100));
    await writeFile(join(checkpointsDir, '.tmp-latest-4242-00000000'), 'step-0000');

    const loaded = (await loadLatestCheckpoint(runDir, quiet))!;
    assert.equal(loaded.step, 5);
    assert.equal(loaded.trainerState.seed, 5);

    await saveCheckpoint(runDir, 6, tinyParts(6));
    assert.deepEqual((await readdir(checkpointsDir)).sort(), ['latest', 'step-000005', 'step-000006']);
    assert.equal((await loadLatestCheckpoint(runDir))!.step, 6);
  });
});

test('a missing or dangling latest falls back to the newest checkpoint folder, with a warning', async () => {
  await withTempDir(async (runDir) => {
    await saveCheckpoint(runDir, 1, tinyParts(1));
    await saveCheckpoint(runDir, 2, tinyParts(2));
    const warnings: string[] = [];
    const latest = join(runDir, 'checkpoints', 'latest');
    await writeFile(latest, 'step-000003\n'); // killed between removing an old step-3 and renaming the new one
    assert.equal((await loadLatestCheckpoint(runDir, (w) => warnings.push(w)))!.step, 2);
    await rm(latest);
    assert.equal((await loadLatestCheckpoint(runDir, (w) => warnings.push(w)))!.step, 2);
    assert.match(warnings[0], /latest names "step-000003", which is not a checkpoint folder; resuming from the newest, step-000002/);
    assert.match(warnings[1], /latest is missing; resuming from the newest checkpoint, step-000002/);
  });
});

test('a corrupt trainer_state.json or optimizer file is a UserError naming it', async () => {
  await withTempDir(async (runDir) => {
    const dir = await saveCheckpoint(runDir, 7, tinyParts(7));
    const stateFile = join(dir, 'trainer_state.json');
    await writeFile(stateFile, '{"step": "seven", "state": {}}');
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => e instanceof UserError && e.message === `${stateFile}: field "step" must be a non-negative integer, found "seven"`);
    await writeFile(stateFile, '{"step": 7, "state": {}}');
    const optimizerFile = join(dir, 'optimizer.safetensors');
    await writeFile(optimizerFile, new Uint8Array(4));
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => e instanceof UserError && e.message.startsWith(`${optimizerFile}: not a valid safetensors file`));
  });
});

const WRITER = fileURLToPath(new URL('./fixtures/checkpoint_writer.ts', import.meta.url));

/** Start the writer, let it complete at least one save, then SIGKILL it after `delayMs`. */
async function runAndKill(runDir: string, firstStep: number, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, runDir, String(firstStep)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('saved')) resolve(); });
    child.once('exit', (code) => reject(new Error(`writer exited early with code ${code}`)));
  });
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  await exited;
}

function assertConsistent(checkpoint: LoadedCheckpoint): void {
  const expected = stepCheckpoint(checkpoint.step);
  assert.deepEqual(checkpoint.trainerState, expected.trainerState);
  for (const [name, array] of checkpoint.model.tensors) assert.ok(toFloat32(array).every((x) => x === checkpoint.step), name);
  for (const [name, array] of checkpoint.optimizer.m) assert.ok(toFloat32(array).every((x) => x === checkpoint.step + 0.5), name);
  assert.equal(checkpoint.optimizer.v.size, expected.optimizer.v.size);
}

test('a writer killed with SIGKILL at random moments always leaves a complete latest checkpoint', { timeout: 120_000 }, async () => {
  await withTempDir(async (runDir) => {
    let step = 1;
    const delaysMs = [0, 3, 11, 25, 40, 70];
    for (const delayMs of delaysMs) {
      await runAndKill(runDir, step, delayMs);
      const latest = await loadLatestCheckpoint(runDir, quiet);
      assert.ok(latest, 'at least one save completed before the kill');
      assert.ok(latest.step >= step, `latest is a checkpoint of this round (${latest.step} >= ${step})`);
      assertConsistent(latest);
      // Every step-* folder present is complete; half-written ones only ever carry a temporary name.
      for (const name of await readdir(join(runDir, 'checkpoints'))) {
        if (name.startsWith('step-')) assertConsistent(await loadCheckpoint(join(runDir, 'checkpoints', name)));
      }
      step = latest.step + 1;
    }
    await saveCheckpoint(runDir, step, stepCheckpoint(step), { keepLast: 2 });
    const left = await readdir(join(runDir, 'checkpoints'));
    assert.deepEqual(left.filter((name) => name.startsWith('.tmp-')), [], 'the next save removes what killed saves left');
  });
});

test('appendJsonl writes whole lines that readJsonl reads back', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'metrics.jsonl');
    const records = [{ step: 1, loss: 2.5 }, { step: 2, loss: 2.25, note: 'line\nbreak' }, { step: 3, loss: null }];
    for (const record of records) await appendJsonl(file, record);
    assert.equal((await readFile(file, 'utf8')).split('\n').length, 4);
    assert.deepEqual(await readJsonl(file), records);
  });
});

test('readJsonl drops a truncated last line with a warning but names the line of a bad one in the middle', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'metrics.jsonl');
    await writeFile(file, '{"step":1}\n{"step":2}\n{"step":3,"lo');
    const warnings: string[] = [];
    assert.deepEqual(await readJsonl(file, (w) => warnings.push(w)), [{ step: 1 }, { step: 2 }]);
    assert.deepEqual(warnings, [`${file}:3: dropping an unterminated last line that is not valid JSON (an interrupted write)`]);

    await writeFile(file, '{"step":1}\n{"step":2\n{"step":3}\n');
    await assert.rejects(readJsonl(file), (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}:2: not valid JSON`));
    // A final line without a newline that parses (a file edited by hand) is kept.
    await writeFile(file, '{"step":1}\n\n{"step":2}');
    assert.deepEqual(await readJsonl(file), [{ step: 1 }, { step: 2 }]);
  });
});

test('appendJsonl after a killed writer cuts the partial line so that the file stays readable', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'metrics.jsonl');
    await appendJsonl(file, { step: 1 });
    await appendFile(file, '{"step":2,"lo'); // what a killed writer left
    const warnings: string[] = [];
    await appendJsonl(file, { step: 2 }, (w) => warnings.push(w));
    assert.deepEqual(warnings, [`${file}: dropping a partial last line of 13 bytes left by an interrupted write`]);
    assert.equal(await readFile(file, 'utf8'), '{"step":1}\n{"step":2}\n');
  });
});
