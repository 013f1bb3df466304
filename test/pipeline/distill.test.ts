// Distillation end to end in miniature: a teacher that has learnt to answer four problems in the <think>/<answer>
// form writes traces, rejection sampling keeps the correct ones, and a smaller student is fine-tuned on them for
// two epochs with a decaying rate; a kill during the student's training resumes exactly.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parameterArrays, readJsonl } from '../../src/io/checkpoint.ts';
import { saveHfModel } from '../../src/io/hf.ts';
import { loadModel, type CausalLM } from '../../src/models/pretrained.ts';
import { defaultDistillConfig, distill, STUDENT_DIR, TRACES_DIR, type DistillConfig } from '../../src/pipeline/distill.ts';
import { checkAnswer } from '../../src/rewards/answer.ts';
import { defaultSftConfig, sft, type SftStepRecord } from '../../src/train/sft.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const quiet = { log: () => {}, progress: false };
const PROBLEMS = [['what is 12 + 30?', '42'], ['what is 7 * 6?', '42'], ['what is 2 + 2?', '4'], ['what is 30 + 12?', '42']];

async function modelFolder(dir: string, name: string, model: CausalLM): Promise<string> {
  const folder = join(dir, name);
  await saveHfModel(folder, { config: model.config, tensors: parameterArrays(model.namedParameters()) }, { tokenizerJson: tinyBpe().tokenizerJson, tokenizerConfig: tinyBpe().tokenizerConfig });
  return folder;
}

test('a teacher\'s correct traces distil into a smaller student over two epochs with a decaying rate, resumable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-distill-'));
  // The teacher: a tiny model fine-tuned until it answers the four problems in the reasoning format.
  const lessons = join(dir, 'lessons.jsonl');
  writeFileSync(lessons, PROBLEMS.map(([q, a]) => JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: `<think>${q.slice(8, -1)} = ${a}</think> <answer>${a}</answer>` }] })).join('\n'));
  const teacherRun = await sft({
    ...defaultSftConfig, model: await modelFolder(dir, 'teacher-base', tinyModel(1)), data: lessons, validationFraction: 0, out: join(dir, 'teacher'),
    epochs: 40, batchSize: 4, microBatchSize: 4, maxLength: 64, lr: 1e-2,
  }, quiet);
  const student = await modelFolder(dir, 'student-base', tinyModel(2, { hiddenSize: 16, intermediateSize: 32, numLayers: 1, headDim: 4 }));
  const problems = join(dir, 'problems.jsonl');
  writeFileSync(problems, PROBLEMS.map(([question, answer]) => JSON.stringify({ question, answer: `#### ${answer}` })).join('\n'));

  const config: DistillConfig = {
    ...defaultDistillConfig, teacher: teacherRun.finalDir, student, task: `jsonl:${problems}`, samplesPerPrompt: 4, maxNewTokens: 32, temperature: 0.5,
    epochs: 2, batchSize: 2, microBatchSize: 2, maxLength: 64, lr: 5e-3, validationFraction: 0, out: join(dir, 'whole'),
  };
  const whole = await distill(config, quiet);
  const traces = (await readJsonl<{ messages: Array<{ role: string; content: string }> }>(whole.traces.file));
  assert.ok(traces.length >= 2, `${traces.length} traces kept`);
  for (const { messages } of traces) {
    const [question, answer] = PROBLEMS.find(([q]) => q === messages[0].content)!;
    assert.ok(checkAnswer(messages[1].content, answer).correct, `kept a wrong trace for ${question}: ${messages[1].content}`);
  }
  const records = await readJsonl<SftStepRecord>(join(config.out, STUDENT_DIR, 'metrics.jsonl'));
  assert.deepEqual([...new Set(records.map((r) => r.epoch))], [1, 2]);
  assert.ok(Math.abs(records.at(-1)!.lr - 5e-4) < 1e-12 && records[0].lr === 5e-3, 'the rate decays to a tenth');
  assert.equal((await loadModel(whole.finalDir)).model.config.numLayers, 1);

  // Killed during the student's training, resumed: the same traces and the same student.
  const broken = { ...config, out: join(dir, 'broken') };
  const crash = new Error('simulated crash');
  await assert.rejects(distill(broken, { ...quiet, onStep: (r) => { if (r.step === records.length - 1) throw crash; } }), crash);
  await assert.rejects(distill(broken, quiet), /already holds a rejection-sampling run; pass --resume/);
  const resumed = await distill({ ...broken, resume: true }, quiet);
  assert.equal(readFileSync(resumed.traces.file, 'utf8'), readFileSync(whole.traces.file, 'utf8'));
  assert.deepEqual(readFileSync(join(resumed.finalDir, 'model.safetensors')), readFileSync(join(whole.finalDir, 'model.safetensors')));
  assert.equal(join(broken.out, TRACES_DIR, 'sft.jsonl'), resumed.traces.file);
});
