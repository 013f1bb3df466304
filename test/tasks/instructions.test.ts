// The general (non-reasoning) task: every request's reference is what an independent reading of the request
// says, the verifier accepts only that answer as the whole summary, the test set is held out from training draws,
// and preference pairs always prefer the right response.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BILINGUAL_WORDS } from '../../src/train/corpus.ts';
import { drawInstruction, instructionPreferencePairs, instructionResponse, instructionTask, trainingInstructions } from '../../src/tasks/instructions.ts';
import { isReadableFormat } from '../../src/rewards/format.ts';
import { Rng } from '../../src/tensor/random.ts';

const NUMBERS: Record<string, number> = { two: 2, three: 3, four: 4 };

/** The answer to a request, read from its wording alone. */
function answerByReading(question: string): string {
  let m = /^Repeat the word (\S+) (\S+) times\.$/.exec(question);
  if (m) return Array(NUMBERS[m[2]] ?? Number(m[2])).fill(m[1]).join(' ');
  m = /^Write these words in reverse order: (.+)\.$/.exec(question);
  if (m) return m[1].split(' ').reverse().join(' ');
  m = /^Write the word (\S+) in capital letters\.$/.exec(question);
  if (m) return m[1].toUpperCase();
  m = /^Translate (\S+) into (Chinese|English)\.$/.exec(question);
  if (m) return Object.fromEntries(BILINGUAL_WORDS.flatMap(([en, zh]) => [[en, zh], [zh, en]]))[m[1]];
  assert.fail(`unrecognised request: ${question}`);
}

test('references agree with an independent reading; the verifier wants exactly the answer as the summary', () => {
  const task = instructionTask();
  const rng = new Rng(3);
  for (let i = 0; i < 300; i++) {
    const instruction = drawInstruction(rng);
    assert.equal(instruction.answer, answerByReading(instruction.question), instruction.question);
    const example = { id: 'x', question: instruction.question, reference: instruction.answer };
    const response = instructionResponse(instruction);
    assert.ok(isReadableFormat(response), response);
    assert.equal(task.verify(response, example).correct, true);
    assert.equal(task.verify(`${response}.`, example).correct, true, 'a final full stop is allowed');
    assert.equal(task.verify(`${response} and more`, example).correct, false);
    assert.equal(task.verify(`<think> ${instruction.answer} </think>`, example).correct, false, 'the answer inside the thought is not an answer');
  }
  // R1-Zero-style answers count from their <answer> tag.
  assert.equal(task.verify(' <think> x </think> <answer> HONEY </answer>', { id: 'x', question: '', reference: 'HONEY' }).correct, true);
});

test('the test set is fixed, covers every kind, and no training draw is one of its requests', () => {
  const task = instructionTask();
  const test1 = task.testSet(100);
  assert.deepEqual(test1, task.testSet(100));
  const kinds = new Set(test1.map((e) => /^(Repeat|Write these|Write the word|Translate)/.exec(e.question)?.[1]));
  assert.ok(kinds.size >= 4, [...kinds].join(','));
  const held = new Set(test1.map((e) => e.question));
  for (const instruction of trainingInstructions(new Rng(9), 3000)) assert.ok(!held.has(instruction.question), instruction.question);
});

test('preference pairs: conversational TRL rows whose chosen response is right and rejected one is not', () => {
  const task = instructionTask();
  const pairs = instructionPreferencePairs(new Rng(4), 400);
  const kinds = new Set<string>();
  for (const pair of pairs) {
    assert.equal(pair.prompt[0].role, 'user');
    const example = { id: 'x', question: pair.prompt[0].content, reference: answerByReading(pair.prompt[0].content) };
    assert.equal(task.verify(pair.chosen[0].content, example).correct, true, pair.chosen[0].content);
    assert.equal(task.verify(pair.rejected[0].content, example).correct, false, pair.rejected[0].content);
    kinds.add(isReadableFormat(pair.rejected[0].content) ? 'readable' : 'unreadable');
  }
  assert.deepEqual([...kinds].sort(), ['readable', 'unreadable']);
});
