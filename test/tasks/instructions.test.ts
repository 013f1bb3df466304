// The general (non-reasoning) task: every request's reference is what an independent reading of the request
// says, the verifier accepts only that answer as the whole summary, the test set is held out from training draws
// (whatever the wording),
// and preference pairs always prefer the right response.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drawInstruction, instructionPreferencePairs, instructionResponse, instructionTask, trainingInstructions } from '../../src/tasks/instructions.ts';
import { isReadableFormat } from '../../src/rewards/format.ts';
import { Rng } from '../../src/tensor/random.ts';

const TIMES: Record<string, number> = { two: 2, three: 3, 2: 2, 3: 3 };

/** The answer to a request, read from its wording alone. */
function answerByReading(question: string): string {
  let m = /^(?:Repeat the number|Say|Write the number) (\d+) (\S+) times\.$/.exec(question);
  if (m) return Array(TIMES[m[2]]).fill(m[1]).join(' ');
  m = /^(?:Write the last of these numbers: (.+)\.|Which number comes last in (.+)\?|What is the last number of (.+)\?)$/.exec(question);
  if (m) return m.slice(1).find((x) => x !== undefined)!.split(', ').at(-1)!;
  m = /^(?:Write (\d+) and (\d+) the other way round\.|Swap the numbers (\d+) and (\d+)\.|Write the numbers (\d+) (\d+) in reverse order\.)$/.exec(question);
  if (m) return m.slice(1).filter((x) => x !== undefined).reverse().join(' ');
  assert.fail(`unrecognised request: ${question}`);
}

/** What a request is about, whatever its wording: the kind and its numbers in order (a repeat: the answer). */
function skeleton(question: string): string {
  if (/last/.test(question)) return `last:${question.match(/\d+/g)!.join(',')}`;
  if (/round|Swap|reverse/.test(question)) return `swap:${question.match(/\d+/g)!.join(',')}`;
  return `repeat:${answerByReading(question)}`;
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
    assert.equal(task.verify(response.replace(/\.$/, ''), example).correct, true, 'the final full stop may be left out');
    assert.equal(task.verify(`${response} and more`, example).correct, false);
    assert.equal(task.verify(`<think> ${instruction.answer} </think>`, example).correct, false, 'the answer inside the thought is not an answer');
  }
  // R1-Zero-style answers count from their <answer> tag.
  assert.equal(task.verify(' <think> x </think> <answer> cat cat </answer>', { id: 'x', question: '', reference: 'cat cat' }).correct, true);
});

test('the test set is fixed, covers every kind, and no training request asks the same thing in any wording', () => {
  const task = instructionTask();
  const test1 = task.testSet(100);
  assert.deepEqual(test1, task.testSet(100));
  assert.equal(new Set(test1.map((e) => e.question)).size, 100, 'distinct requests');
  for (const example of test1) assert.equal(example.reference, answerByReading(example.question), example.question);
  assert.deepEqual(new Set(test1.map((e) => skeleton(e.question).split(':')[0])), new Set(['repeat', 'last', 'swap']));
  const held = new Set(test1.map((e) => skeleton(e.question)));
  for (const instruction of trainingInstructions(new Rng(9), 3000)) assert.ok(!held.has(skeleton(instruction.question)), instruction.question);
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
