// Supervised fine-tuning end to end on tiny models (a second or two per run): the loss falls on assistant tokens
// only (the first update's loss checked against a hand computation), epochs with a decaying rate, validation,
// exact resume after a kill, both model families, the default template, and the folder it writes.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadLatestCheckpoint, parameterArrays, readJsonl } from '../../src/io/checkpoint.ts';
import { saveHfModel } from '../../src/io/hf.ts';
import { DeepSeekModel, deepseekConfig } from '../../src/models/deepseek.ts';
import { loadModel, type CausalLM } from '../../src/models/pretrained.ts';
import { cudaAvailable } from '../../src/tensor/backends/cuda.ts';
import { logSoftmax, noGrad, tensor, useDevice } from '../../src/tensor/index.ts';
import { CHATML_TEMPLATE, DEFAULT_CHAT_TEMPLATE } from '../../src/tokenizer/chat.ts';
import { defaultSftConfig, encodeSftExamples, sft, type SftConfig, type SftStepRecord } from '../../src/train/sft.ts';
import { readSftExamples, sequenceRows } from '../../src/train/sft-data.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const quiet = { log: () => {}, progress: false };
const tempDir = () => mkdtempSync(join(tmpdir(), 'r1-sft-'));

async function modelFolder(dir: string, model: CausalLM, tokenizerConfig: Record<string, unknown> = tinyBpe().tokenizerConfig as Record<string, unknown>): Promise<string> {
  const folder = join(dir, 'base');
  await saveHfModel(folder, { config: model.config, tensors: parameterArrays(model.namedParameters()) }, { tokenizerJson: tinyBpe().tokenizerJson, tokenizerConfig });
  return folder;
}

const QUESTIONS = ['what did the cat do?', 'where did the dog run?', 'what is 12 + 30?', 'what is 7 * 6?', 'who saw the dog?', 'what sat on the mat?'];
const ANSWERS = ['<think>the cat sat</think> the cat sat on the mat.', '<think>the dog ran</think> to the park.', '<think>12 + 30 = 42</think> 42',
  '<think>7 * 6 = 42</think> 42', '<think>the cat saw it</think> the cat.', '<think>the cat sat</think> the cat.'];

function dataFile(dir: string, name: string, indices: number[]): string {
  const file = join(dir, name);
  writeFileSync(file, indices.map((i) => JSON.stringify({ messages: [{ role: 'user', content: QUESTIONS[i % 6] }, { role: 'assistant', content: ANSWERS[i % 6] }] })).join('\n') + '\n');
  return file;
}

function config(dir: string, model: string, overrides: Partial<SftConfig> = {}): SftConfig {
  return {
    ...defaultSftConfig, model, out: join(dir, 'run'), data: dataFile(dir, 'train.jsonl', [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]),
    validationData: dataFile(dir, 'val.jsonl', [0, 2, 4]), epochs: 3, batchSize: 4, microBatchSize: 2, maxLength: 64, lr: 3e-3,
    evalEvery: 3, checkpointEvery: 3, ...overrides,
  };
}

const losses = async (out: string) => (await readJsonl<SftStepRecord>(join(out, 'metrics.jsonl'))).map((r) => [r.step, r.loss, r.validationLoss ?? null]);

test('epochs of SFT lower the assistant-token loss, decay the rate to a tenth, and write a model folder with its template', async () => {
  const dir = tempDir();
  const base = await modelFolder(dir, tinyModel(1));
  const result = await sft(config(dir, base, { lr: 1e-2 }), quiet);
  const records = await readJsonl<SftStepRecord>(join(dir, 'run', 'metrics.jsonl'));
  assert.deepEqual(records.map((r) => [r.step, r.epoch]), [1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) => [s, Math.ceil(s / 3)]));
  assert.ok(records[0].lr > records.at(-1)!.lr && Math.abs(records.at(-1)!.lr - 1e-3) < 1e-12, `lr ${records[0].lr} -> ${records.at(-1)!.lr}`);
  assert.ok(records.at(-1)!.loss < records[0].loss / 2, `loss ${records[0].loss} -> ${records.at(-1)!.loss}`);
  assert.deepEqual(records.filter((r) => r.validationLoss !== undefined).map((r) => r.step), [3, 6, 9]);
  assert.ok(result.validationLoss !== null && result.validationLoss < records[0].loss / 2);
  assert.equal((await loadLatestCheckpoint(join(dir, 'run')))!.step, 9);
  assert.equal(JSON.parse(readFileSync(join(result.finalDir, 'tokenizer_config.json'), 'utf8')).chat_template, CHATML_TEMPLATE);
  const { model } = await loadModel(result.finalDir);
  assert.equal(model.config.family, 'qwen2');
});

test("the first update's loss is the mean cross-entropy over the batch's assistant tokens alone, however it is split", async () => {
  const dir = tempDir();
  const base = await modelFolder(dir, tinyModel(2));
  // One update over every row, in micro-batches of 5 sequences of unequal assistant lengths.
  const settings = config(dir, base, { epochs: 1, batchSize: 100, microBatchSize: 5, validationData: null, validationFraction: 0 });
  const [record] = (await sft(settings, quiet)).records;

  const { model, tokenizer } = await loadModel(base);
  const { rows } = sequenceRows(encodeSftExamples(tokenizer, CHATML_TEMPLATE, readSftExamples(settings.data)), 64);
  let total = 0;
  let count = 0;
  noGrad(() => {
    for (const row of rows) {
      const logp = logSoftmax(model.forward(tensor(row.inputs, [1, row.inputs.length], 'i32')), -1).toArray();
      const V = model.config.vocabSize;
      row.targets.forEach((target, t) => {
        if (target < 0) return;
        total -= logp[t * V + target];
        count++;
      });
    }
  });
  assert.equal(record.trainedTokens, count);
  assert.ok(Math.abs(record.loss - total / count) < 1e-5, `${record.loss} vs ${total / count}`);
});

test('a run killed after a checkpoint and resumed trains exactly as the uninterrupted one', async () => {
  const dir = tempDir();
  const base = await modelFolder(dir, tinyModel(3));
  const whole = config(dir, base, { out: join(dir, 'whole'), packing: true, maxLength: 24 });
  await sft(whole, quiet);
  const broken = { ...whole, out: join(dir, 'broken') };
  const crash = new Error('simulated crash');
  await assert.rejects(sft(broken, { ...quiet, onStep: (r) => { if (r.step === 5) throw crash; } }), crash);
  assert.equal((await loadLatestCheckpoint(broken.out))!.step, 3);
  await assert.rejects(sft(broken, quiet), /already holds checkpoints; pass --resume/);
  await sft({ ...broken, resume: true }, quiet);
  assert.deepEqual(await losses(broken.out), await losses(whole.out));
  assert.deepEqual(readFileSync(join(broken.out, 'final', 'model.safetensors')), readFileSync(join(whole.out, 'final', 'model.safetensors')));
  // Resuming on changed data cannot be the same run.
  writeFileSync(whole.data, readFileSync(whole.data, 'utf8').split('\n').slice(2).join('\n'));
  await assert.rejects(sft({ ...whole, resume: true, out: broken.out }), /the data changed, so the run cannot resume exactly/);
});

test('a DeepSeek model without a chat template trains with the default one, which its folder then keeps', async () => {
  const dir = tempDir();
  const model = new DeepSeekModel(deepseekConfig(304, {
    hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 2, qLoraRank: 16, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4,
    vHeadDim: 8, numRoutedExperts: 4, numExpertsPerToken: 2, moeIntermediateSize: 16, maxPositionEmbeddings: 128,
  }), 4);
  const { chat_template: _, ...withoutTemplate } = tinyBpe().tokenizerConfig as Record<string, unknown>;
  const base = await modelFolder(dir, model, withoutTemplate);
  const lines: string[] = [];
  const result = await sft(config(dir, base, { epochs: 2 }), { ...quiet, log: (line) => lines.push(line) });
  assert.ok(lines.includes('chat template: the default template (the model has none)'));
  assert.ok(result.records.every((r) => Number.isFinite(r.loss) && Number.isFinite(r.validationLoss ?? 0)));
  assert.ok(result.records.at(-1)!.loss < result.records[0].loss);
  assert.equal(JSON.parse(readFileSync(join(result.finalDir, 'tokenizer_config.json'), 'utf8')).chat_template, DEFAULT_CHAT_TEMPLATE);
  assert.equal((await loadModel(result.finalDir)).model.config.family, 'deepseek');
});

// The same run on CUDA: the same data and initial weights, so the same losses up to summation order (the first
// update 1e-5 relative, as test/tensor/cuda.test.ts bounds a forward; AdamW's later updates amplify that a little:
// 1e-3 after six). Skipped, with the reason, without a GPU or the built library.
const cuda = cudaAvailable();
test('SFT on CUDA computes the losses the CPU computes, for both families', { skip: cuda.ok ? false : cuda.reason }, async () => {
  const dir = tempDir();
  const deepseek = new DeepSeekModel(deepseekConfig(304, {
    hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 2, qLoraRank: 16, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4,
    vHeadDim: 8, numRoutedExperts: 4, numExpertsPerToken: 2, moeIntermediateSize: 16, maxPositionEmbeddings: 128,
  }), 5);
  try {
    for (const [name, model] of [['dense', tinyModel(5)], ['deepseek', deepseek]] as const) {
      const base = await modelFolder(join(dir, name), model);
      const settings = config(join(dir, name), base, { epochs: 2, validationData: null, validationFraction: 0 });
      const cpu = await sft({ ...settings, out: join(dir, name, 'cpu') }, quiet);
      const gpu = await sft({ ...settings, out: join(dir, name, 'cuda'), device: 'cuda' }, quiet);
      cpu.records.forEach((r, i) => {
        const tolerance = i === 0 ? 1e-5 : 1e-3;
        assert.ok(Math.abs(gpu.records[i].loss - r.loss) <= tolerance * r.loss, `${name} step ${r.step}: cuda ${gpu.records[i].loss} vs cpu ${r.loss}`);
      });
    }
  } finally {
    useDevice('cpu');
  }
});
