import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { jsonlTask, readProblemsJsonl, referenceAnswer } from '../../src/tasks/jsonl.ts';
import { Rng } from '../../src/tensor/random.ts';
import { assertUserError, withFiles } from '../helpers.ts';

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

// GSM8K's own shape: the worked solution, then the final answer after ####.
const GSM8K = jsonl([
  { question: 'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?', answer: 'Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72' },
  { question: 'Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?', answer: 'Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10' },
]);

// MATH's shape: a LaTeX solution whose final answer is the last \boxed{} (with nested braces).
const MATH = jsonl([
  { problem: 'What is $\\frac{1}{2} + \\frac{1}{4}$?', solution: 'We have $\\frac{1}{2} + \\frac{1}{4} = \\boxed{\\frac{3}{4}}$.', level: 'Level 1' },
  { problem: 'Solve $x^2 = 4$ for $x > 0$.', solution: 'Taking roots, $x = \\boxed{2}$.' },
]);

test('GSM8K and MATH files: fields detected, final answers extracted, ids name file:line', () => {
  withFiles({ 'gsm8k.jsonl': GSM8K, 'math.jsonl': MATH }, (p) => {
    const gsm = readProblemsJsonl(p['gsm8k.jsonl']);
    assert.deepEqual(gsm.examples.map((e) => [e.id, e.reference]), [['gsm8k.jsonl:1', '72'], ['gsm8k.jsonl:2', '10']]);
    assert.match(gsm.examples[0].question, /^Natalia sold clips/);
    const math = readProblemsJsonl(p['math.jsonl']);
    assert.deepEqual(math.examples.map((e) => e.reference), ['\\frac{3}{4}', '2']);
  });
});

test('Windows files: a byte-order mark and CRLF line ends', () => {
  withFiles({ 'win.jsonl': '\uFEFF' + GSM8K.replace(/\n/g, '\r\n') }, (p) => {
    assert.deepEqual(readProblemsJsonl(p['win.jsonl']).examples.map((e) => e.reference), ['72', '10']);
  });
});

test('explicit answer fields, numbers, named fields and blank lines', () => {
  const file = jsonl([
    { prompt: 'What is 2 + 2?', answer: 4 },
    { problem: 'Simplify 6/8.', solution: 'Divide by 2: \\boxed{3/4}.', answer: '\\frac{3}{4}' }, // answer preferred
  ]) + '\n   \n';
  withFiles({ 'a.jsonl': file, 'b.jsonl': jsonl([{ input: 'Say 7.', target: '7' }]) }, (p) => {
    assert.deepEqual(readProblemsJsonl(p['a.jsonl']).examples.map((e) => [e.question, e.reference]), [['What is 2 + 2?', '4'], ['Simplify 6/8.', '\\frac{3}{4}']]);
    assert.deepEqual(readProblemsJsonl(p['a.jsonl'], { answerField: 'solution', skipInvalid: true }).examples.map((e) => e.reference), ['3/4']);
    assert.deepEqual(readProblemsJsonl(p['b.jsonl'], { questionField: 'input', answerField: 'target' }).examples.map((e) => e.reference), ['7']);
  });
});

test('referenceAnswer: ####, then the last \\boxed{}, then a one-line answer', () => {
  assert.equal(referenceAnswer('work\n#### 1,234', false), '1,234');
  assert.equal(referenceAnswer('\\boxed{1} then \\boxed{\\dfrac{a}{b}}', true), '\\dfrac{a}{b}');
  assert.equal(referenceAnswer(' 42 ', false), '42');
  assert.deepEqual(referenceAnswer('The answer is 4, as shown.', true), { problem: 'no final answer (expected "#### answer" or \\boxed{answer})' });
  assert.deepEqual(referenceAnswer('line one\nline two', false), { problem: 'several lines but no final answer (expected "#### answer" or \\boxed{answer})' });
  assert.deepEqual(referenceAnswer('x = \\boxed{\\frac{1}{2}', true), { problem: 'unbalanced braces in \\boxed{...}' });
  assert.equal(referenceAnswer('so \\fbox{ 5 }.', true), '5');
});

test('malformed lines fail with file:line and the problem', () => {
  const cases: Array<[string, RegExp | string]> = [
    ['{"question": "q", "answer": "#### 1"}\n{"question": "q2", "answer": "#### 2"\n', /:2: not valid JSON at column \d+: unexpected end of input$/],
    ['[1, 2]\n', /:1: expected a JSON object$/],
    ['{"text": "hi", "answer": "1"}\n', /:1: no question field \(tried "question", "problem", "prompt"; name one with the question-field option\)$/],
    ['{"question": "q"}\n', /:1: no answer field \(tried "answer", "solution"; name one with the answer-field option\)$/],
    ['{"question": 3, "answer": "1"}\n', /:1: "question" must be a string, got number$/],
    ['{"question": "  ", "answer": "1"}\n', /:1: "question" is empty$/],
    ['\n\n{"problem": "p", "solution": "It is 5."}\n', /:3: "solution": no final answer \(expected "#### answer" or \\boxed\{answer\}\)$/],
    ['{"question": "q", "answer": "#### "}\n', /:1: "answer": nothing after "####"$/],
    ['{"question": "q", "answer": null}\n', /:1: "answer" must be a string or a number, got null$/],
  ];
  for (const [content, message] of cases) {
    withFiles({ 'bad.jsonl': content }, (p) => {
      assertUserError(() => readProblemsJsonl(p['bad.jsonl']), new RegExp(`^${escape(p['bad.jsonl'])}${typeof message === 'string' ? escape(message) : message.source}`));
    });
  }
  withFiles({}, () => assertUserError(() => readProblemsJsonl('/nonexistent/x.jsonl'), '/nonexistent/x.jsonl: cannot read (ENOENT)'));
  withFiles({ 'latin1.jsonl': '{"question": "q", "answer": "1"}\n{"question": "caf\xe9", "answer": "1"}\n' }, (p) => {
    writeFileSync(p['latin1.jsonl'], Buffer.from('{"question": "q", "answer": "1"}\n{"question": "caf\xe9", "answer": "1"}\n', 'latin1'));
    assertUserError(() => readProblemsJsonl(p['latin1.jsonl']), /latin1\.jsonl: invalid UTF-8 at byte offset 50 \(line 2\)$/);
  });
  withFiles({ 'named.jsonl': '{"question": "q", "answer": "1"}\n' }, (p) => {
    assertUserError(() => readProblemsJsonl(p['named.jsonl'], { questionField: 'input' }), /named\.jsonl:1: no "input" field$/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('skipInvalid skips and counts bad lines', () => {
  const content = GSM8K + 'not json\n{"question": "q"}\n' + jsonl([{ question: 'What is 1 + 1?', answer: '#### 2' }]);
  withFiles({ 'mixed.jsonl': content }, (p) => {
    const { examples, skipped } = readProblemsJsonl(p['mixed.jsonl'], { skipInvalid: true });
    assert.deepEqual(examples.map((e) => e.id), ['mixed.jsonl:1', 'mixed.jsonl:2', 'mixed.jsonl:5']);
    assert.equal(skipped.length, 2);
    assert.match(skipped[0], /mixed\.jsonl:3: not valid JSON/);
    assert.match(skipped[1], /mixed\.jsonl:4: no answer field/);
    assert.equal(jsonlTask(p['mixed.jsonl'], { skipInvalid: true, testFraction: 0.5 }).skipped.length, 2);
  });
});

test('split: fixed by question hash, disjoint, all examples kept; sample draws training problems only', () => {
  const records = Array.from({ length: 400 }, (_, i) => ({ question: `What is ${i} + ${i}?`, answer: `#### ${2 * i}` }));
  withFiles({ 'big.jsonl': jsonl(records), 'shuffled.jsonl': jsonl([...records].reverse()) }, (p) => {
    const task = jsonlTask(p['big.jsonl']);
    const testQuestions = new Set(task.testSet().map((e) => e.question));
    assert.ok(testQuestions.size > 20 && testQuestions.size < 70, `about 10% held out, got ${testQuestions.size}`);
    assert.equal(task.train.length + task.test.length, 400);
    assert.ok(task.train.every((e) => !testQuestions.has(e.question)));
    // The split depends on the questions, not on their order in the file.
    const reordered = new Set(jsonlTask(p['shuffled.jsonl']).testSet().map((e) => e.question));
    assert.deepEqual([...reordered].sort(), [...testQuestions].sort());
    assert.deepEqual(task.testSet(5), task.testSet().slice(0, 5));

    const batch = task.sample(new Rng(3), 50);
    assert.equal(new Set(batch.map((e) => e.id)).size, 50, 'no repeats within a batch while the data lasts');
    assert.ok(batch.every((e) => !testQuestions.has(e.question)));
    assert.deepEqual(task.sample(new Rng(3), 50), batch);
    assert.equal(task.sample(new Rng(4), 1000).length, 1000); // more than the training set: drawn again
  });
});

test('a separate test file; verify uses the math answer checker', () => {
  withFiles({ 'train.jsonl': GSM8K, 'test.jsonl': MATH }, (p) => {
    const task = jsonlTask(p['train.jsonl'], { testFile: p['test.jsonl'] });
    assert.equal(task.train.length, 2);
    const test = task.testSet();
    assert.deepEqual(test.map((e) => e.reference), ['\\frac{3}{4}', '2']);
    assert.equal(task.verify('<think> 1/2 + 1/4 </think> <answer> \\frac{3}{4} </answer>', test[0]).correct, true);
    assert.equal(task.verify('<think> 1/2 + 1/4 </think> <answer> 3/4 </answer>', test[0]).correct, true);
    assert.equal(task.verify('<think> hmm </think> <answer> 1/2 </answer>', test[0]).correct, false);
    const [natalia] = task.train;
    assert.equal(task.verify('<think> 48 + 24 </think> <answer> 72 </answer>', natalia).correct, true);
    assert.equal(task.verify('<think> 48 + 24 </think> <answer> 73 </answer>', natalia).correct, false);
  });
});

test('a file too small to hold out anything says so at testSet', () => {
  withFiles({ 'tiny.jsonl': jsonl([{ question: 'What is 1 + 1?', answer: '#### 2' }]) }, (p) => {
    const task = jsonlTask(p['tiny.jsonl'], { testFraction: 0.01 });
    assert.equal(task.train.length, 1);
    assertUserError(() => task.testSet(), /tiny\.jsonl: no held-out test problems/);
  });
  withFiles({ 'empty.jsonl': '\n' }, (p) => assertUserError(() => jsonlTask(p['empty.jsonl']), /empty\.jsonl: no training problems$/));
});
