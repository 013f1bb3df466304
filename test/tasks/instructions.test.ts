// The general (non-reasoning) task: every request's reference is what an independent reading of the request
// says, the verifier accepts only that answer as the whole summary, the test set is held out from training draws,
// and preference pairs always prefer the right response.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BILINGUAL_WORDS } from '../../src/train/corpus.ts';
import { drawInstruction, instructionPreferencePairs, instructionResponse, instructionTask, trainingInstructions } from '../../src/tasks/instructions.ts';
import { isReadableFormat } from '../../src/rewards/format.ts';
import { Rng } from '../../src/tensor/random.ts';

const NUMBERS: Record<string, number> = { two: 2, three: 3 };
const TO_CHINESE = new Map(BILINGUAL_WORDS.map(([en, zh]) => [en, zh]));
const TO_ENGLISH = new Map(BILINGUAL_WORDS.map(([en, zh]) => [zh, en]));

/** The answer to a request, read from its wording alone (the dictionary's sentence for a translation). */
function answerByReading(question: string): string {
  let m = /^(?:Repeat the word|Say|Write) (\S+) (\S+) times\.$/.exec(question);
  if (m) return Array(NUMBERS[m[2]] ?? Number(m[2])).fill(m[1]).join(' ');
  m = /^(?:Translate (\S+) into Chinese\.|What is the Chinese for (\S+)\?|How do you say (\S+) in Chinese\?|Give the Chinese word for (\S+)\.)$/.exec(question);
  if (m) {
    const en = m.slice(1).find((x) => x !== undefined)!;
    return `The Chinese for ${en} is ${TO_CHINESE.get(en)}`;
  }
  m = /^(?:Translate (\S+) into English\.|What does (\S+) mean\?|What is (\S+) in English\?)$/.exec(question);
  if (m) {
    const zh = m.slice(1).find((x) => x !== undefined)!;
    return `${zh} means ${TO_ENGLISH.get(zh)}`;
  }
  assert.fail(`unrecognised request: ${question}`);
}

/** The dictionary word a request is about (English), read from its answer. */
function wordOf(question: string): string {
  const answer = answerByReading(question);
  return /^The Chinese for (\S+) is/.exec(answer)?.[1] ?? / means (\S+)$/.exec(answer)?.[1] ?? answer.split(' ')[0];
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

test('the test set is fixed, covers every kind, and no training request names one of its words', () => {
  const task = instructionTask();
  const test1 = task.testSet(100);
  assert.deepEqual(test1, task.testSet(100));
  assert.equal(new Set(test1.map((e) => e.question)).size, 100, 'distinct requests');
  const kinds = new Set(test1.map((e) => { const reference = String(e.reference); return /^The Chinese for/.test(reference) ? 'to-chinese' : / means /.test(reference) ? 'to-english' : 'repeat'; }));
  assert.equal(kinds.size, 3, [...kinds].join(','));
  for (const example of test1) assert.equal(example.reference, answerByReading(example.question), example.question);
  const testWords = new Set(test1.map((e) => wordOf(e.question)));
  assert.ok(testWords.size >= 4 && testWords.size <= BILINGUAL_WORDS.length / 2, [...testWords].join(' '));
  for (const instruction of trainingInstructions(new Rng(9), 3000)) assert.ok(!testWords.has(wordOf(instruction.question)), instruction.question);
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
