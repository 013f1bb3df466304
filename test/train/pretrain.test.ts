import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadLatestCheckpoint, readJsonl } from '../../src/io/checkpoint.ts';
import { syntheticCorpus } from '../../src/train/corpus.ts';
import { defaultPretrainConfig, pretrain, type PretrainConfig, type StepRecord } from '../../src/train/pretrain.ts';

// A model of about 20k parameters on a small corpus: each run takes a second or two.
function tinyConfig(out: string, overrides: Partial<PretrainConfig> = {}): PretrainConfig {
  return {
    ...defaultPretrainConfig,
    out,
    syntheticDocuments: 200,
    vocabSize: 400,
    modelOverrides: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16 },
    steps: 8,
    batchSize: 4,
    seqLen: 16,
    warmup: 2,
    lr: 1e-2,
    evalEvery: 4,
    evalBatches: 2,
    checkpointEvery: 4,
    samples: 1,
    sampleTokens: 8,
    ...overrides,
  };
}

const quiet = { log: () => {}, progress: false };
const tempDir = () => mkdtempSync(join(tmpdir(), 'r1-pretrain-'));
const losses = async (out: string) => (await readJsonl<StepRecord>(join(out, 'metrics.jsonl'))).map((r) => [r.step, r.loss]);

test('a few steps on a tiny repetitive corpus lower the loss, and the run leaves metrics, checkpoints and a final model', async () => {
  const dir = tempDir();
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, 'the cat sat on the mat. '.repeat(400));
  const out = join(dir, 'run');
  const result = await pretrain(tinyConfig(out, { corpus, steps: 30, warmup: 3, evalEvery: 10, checkpointEvery: 10 }), quiet);
  const records = await readJsonl<StepRecord>(join(out, 'metrics.jsonl'));
  assert.deepEqual(records.map((r) => r.step), Array.from({ length: 30 }, (_, i) => i + 1));
  for (const r of records) assert.ok(r.lr > 0 && r.gradNorm > 0 && r.tokensPerSecond > 0 && r.elapsedSeconds > 0);
  const first = records[0].loss;
  const last = records.at(-1)!.loss;
  assert.ok(last < first / 3, `loss went from ${first} to ${last}`);
  assert.ok(result.validationLoss < first / 3);
  assert.equal(result.steps, 30);
  assert.equal((await loadLatestCheckpoint(out))!.step, 30);
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) readFileSync(join(result.finalDir, file));
  assert.equal(result.samples.length, 1);

  // Training on from the saved model starts where this run ended, not from a fresh initialisation.
  const next = join(dir, 'next');
  await pretrain(tinyConfig(next, { corpus, model: result.finalDir, steps: 2, warmup: 1, lr: 1e-4 }), quiet);
  const continued = await readJsonl<StepRecord>(join(next, 'metrics.jsonl'));
  assert.ok(continued[0].loss < first / 3, `continued at ${continued[0].loss}`);
});

test('a run killed after a checkpoint and resumed computes exactly the losses of an uninterrupted run', async () => {
  const dir = tempDir();
  const whole = join(dir, 'whole');
  await pretrain(tinyConfig(whole), quiet);

  const broken = join(dir, 'broken');
  const crash = new Error('simulated crash');
  await assert.rejects(pretrain(tinyConfig(broken), { ...quiet, onStep: (r) => { if (r.step === 6) throw crash; } }), crash);
  assert.equal((await loadLatestCheckpoint(broken))!.step, 4);
  assert.deepEqual((await losses(broken)).map(([s]) => s), [1, 2, 3, 4, 5, 6]);

  // A flag that would change what the run computes is the checkpoint's, and run.json records the one in use.
  const { lr } = tinyConfig(broken);
  const resumeLog: string[] = [];
  await pretrain(tinyConfig(broken, { resume: true, lr: lr * 10 }), { ...quiet, log: (line) => resumeLog.push(line) });
  assert.ok(!resumeLog.some((line) => line.startsWith('settings given now')), resumeLog.join('\n'));
  assert.equal(JSON.parse(readFileSync(join(broken, 'run.json'), 'utf8')).config.lr, lr);
  // Bit-identical: same parameters, moments, step count and batch generator state after step 4.
  assert.deepEqual(await losses(broken), await losses(whole));
  assert.deepEqual(readFileSync(join(broken, 'final', 'model.safetensors')), readFileSync(join(whole, 'final', 'model.safetensors')));
});

test('a resume given another length says so, with the run\'s and the new value', async () => {
  const out = join(tempDir(), 'run');
  await pretrain(tinyConfig(out), quiet);
  const lines: string[] = [];
  await pretrain(tinyConfig(out, { resume: true, steps: 10 }), { ...quiet, log: (line) => lines.push(line) });
  assert.ok(lines.includes("settings given now, not the run's: steps 8 -> 10"), lines.join('\n'));
});

test('a run started with a relative corpus path resumes from another directory', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'corpus.txt'), syntheticCorpus(1, 200).join('\n'));
  const out = join(dir, 'run');
  const start = process.cwd();
  try {
    process.chdir(dir);
    await assert.rejects(pretrain(tinyConfig(out, { corpus: 'corpus.txt' }), { ...quiet, onStep: (r) => { if (r.step === 6) throw new Error('killed'); } }), /killed/);
    assert.equal(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).config.corpus, join(dir, 'corpus.txt'));
    process.chdir(tmpdir());
    assert.equal((await pretrain(tinyConfig(out, { resume: true }), quiet)).steps, 8);
  } finally {
    process.chdir(start);
  }
});

test('a failing run leaves the previous checkpoint intact', async () => {
  const dir = tempDir();
  const corpus = join(dir, 'corpus.txt');
  const good = Buffer.from(syntheticCorpus(1, 200).join('\n'));
  writeFileSync(corpus, good);
  const out = join(dir, 'run');
  await assert.rejects(pretrain(tinyConfig(out, { corpus }), { ...quiet, onStep: (r) => { if (r.step === 7) throw new Error('mid-run failure'); } }), /mid-run failure/);
  const checkpointDir = join(out, 'checkpoints', 'step-000004');
  const snapshot = () => readdirSync(checkpointDir).map((name) => [name, readFileSync(join(checkpointDir, name))]);
  const saved = snapshot();

  // A new run in the same folder would start over the checkpoints: refused before anything is written.
  await assert.rejects(pretrain(tinyConfig(out, { corpus }), quiet), /already holds checkpoints; pass --resume/);
  // Resuming after the corpus went bad fails at the corpus, naming the file and the offset.
  writeFileSync(corpus, Buffer.concat([good.subarray(0, 100), Buffer.from([0xff]), good.subarray(100)]));
  const line = 1 + good.subarray(0, 100).filter((byte) => byte === 0x0a).length;
  await assert.rejects(pretrain(tinyConfig(out, { corpus, resume: true }), quiet), new RegExp(`corpus\\.txt: invalid UTF-8 at byte offset 100 \\(line ${line}\\)`));
  // Resuming on a different corpus cannot continue the same run.
  writeFileSync(corpus, good.subarray(0, good.length - 200));
  await assert.rejects(pretrain(tinyConfig(out, { corpus, resume: true }), quiet), /the corpus changed/);
  // A resumed run that fails again before its next checkpoint.
  writeFileSync(corpus, good);
  await assert.rejects(pretrain(tinyConfig(out, { corpus, resume: true }), { ...quiet, onStep: () => { throw new Error('again'); } }), /again/);

  assert.deepEqual(snapshot(), saved);
  assert.equal((await loadLatestCheckpoint(out))!.step, 4);
  assert.equal((await pretrain(tinyConfig(out, { corpus, resume: true }), quiet)).steps, 8);
});

test('gradient accumulation over 2 micro-batches of 2 matches one batch of 4 (the same windows are drawn)', async () => {
  const dir = tempDir();
  const one = join(dir, 'one');
  const two = join(dir, 'two');
  await pretrain(tinyConfig(one, { steps: 4, batchSize: 4, samples: 0 }), quiet);
  await pretrain(tinyConfig(two, { steps: 4, batchSize: 2, gradAccumSteps: 2, samples: 0 }), quiet);
  const a = await losses(one);
  const b = await losses(two);
  // Equal but for float32 summation order: the mean of two means of 32 tokens vs one mean of 64.
  a.forEach(([step, loss], i) => assert.ok(Math.abs(loss - b[i][1]) < 1e-4, `step ${step}: ${loss} vs ${b[i][1]}`));
});
