import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ARITHMETIC_LEVELS, arithmeticTask, drawArithmeticProblem, operationsOfQuestion, pretrainingText, readableSolution, reasoningChain, rewriteReadable, stepsOfChain } from '../../src/tasks/arithmetic.ts';
import { checkAnswer } from '../../src/rewards/answer.ts';
import { lastAnswerTag } from '../../src/rewards/extract.ts';
import { isReadableFormat } from '../../src/rewards/format.ts';
import { chainOfThought, languageConsistency } from '../../src/rewards/language.ts';
import { r1ZeroPrompt } from '../../src/rewards/template.ts';
import { Rng } from '../../src/tensor/random.ts';

/**
 * Solves a generated question from its English alone, with its own reading rules (not the generator's
 * tables): the first sentence states the starting quantity (two numbers there are a product: "3 boxes with 4
 * in each", "at 11 km per hour for 3 hours"), each later sentence but the question applies one operation with
 * the number it states, read from its wording. Returns the answer and the numbers it read.
 */
function solveByReading(question: string): { answer: number; numbers: number[] } {
  const sentences = question.match(/[^.?]+[.?]/g)!.map((s) => s.trim());
  const ask = sentences.pop()!;
  assert.match(ask, /^How (many|far|old)\b.*\?$/, question);
  const numbersIn = (s: string) => (s.match(/\d+/g) ?? []).map(Number);
  const read: number[] = [];
  const opening = numbersIn(sentences[0]);
  assert.ok(opening.length === 1 || opening.length === 2, sentences[0]);
  read.push(...opening);
  let value = opening.length === 1 ? opening[0] : opening[0] * opening[1];
  const fractions: Record<string, number> = { half: 2, 'a third': 3, 'a quarter': 4 };
  for (const s of sentences.slice(1)) {
    const fraction = /is (half|a third|a quarter) as old as/.exec(s);
    if (fraction !== null) {
      value /= fractions[fraction[1]];
      read.push(fractions[fraction[1]]);
      continue;
    }
    const ns = numbersIn(s);
    assert.equal(ns.length, 1, `one number per step sentence: ${s}`);
    const n = ns[0];
    read.push(n);
    if (/\bequal(ly)?\b/.test(s)) value /= n; // "into 5 equal groups, keeps one"
    else if (/\btimes\b/.test(s)) value *= n;
    else if (/\b(more|older)\b/.test(s)) value += n;
    else if (/\b(younger|gives|loses|sells|spends|pays|eats|back)\b/.test(s)) value -= n;
    else assert.fail(`no operation recognised in: ${s}`);
    assert.ok(Number.isInteger(value) && value > 0, `${s} -> ${value}`);
  }
  return { answer: value, numbers: read };
}

test('gold answers agree with an independent reading of the question', () => {
  for (const levelNumber of Object.keys(ARITHMETIC_LEVELS).map(Number)) {
    const level = ARITHMETIC_LEVELS[levelNumber];
    const task = arithmeticTask({ level: levelNumber });
    for (const e of [...task.sample(new Rng(100 + levelNumber), 400), ...task.testSet(100)]) {
      const { answer, numbers } = solveByReading(e.question);
      assert.equal(String(answer), e.reference, e.question);
      // Level 1 is one + or - of a single digit; more steps at higher levels (a product opening counts as one);
      // level 5 mixes problems of 2 to 5 steps.
      assert.ok(numbers.length >= (level.minSteps ?? level.steps) + 1 && numbers.length <= level.steps + 1, e.question);
      assert.ok(numbers.every((n) => n >= 2 && n <= Math.max(level.maxStart, level.maxOperand)), e.question);
      assert.ok(answer <= level.maxValue, e.question);
    }
  }
});

test('level 5 mixes problems of every length from 2 to 5 steps, in training and test sets alike', () => {
  const task = arithmeticTask({ level: 5 });
  for (const examples of [task.sample(new Rng(5), 800), task.testSet(200)]) {
    const counts = new Map<number, number>();
    for (const e of examples) {
      const steps = solveByReading(e.question).numbers.length - 1;
      counts.set(steps, (counts.get(steps) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), [2, 3, 4, 5]);
    for (const [steps, count] of counts) assert.ok(count > examples.length / 8, `${steps} steps: ${count} of ${examples.length}`);
  }
  assert.match(task.description, /level 5: 2 to 5 steps/);
});

test('operationsOfQuestion reads the number of operations from the wording, at every level and in every story', () => {
  const rng = new Rng(11);
  for (const level of Object.values(ARITHMETIC_LEVELS)) {
    for (let i = 0; i < 500; i++) {
      const p = drawArithmeticProblem(rng, level);
      assert.equal(operationsOfQuestion(p.question), p.steps.length, p.question);
    }
  }
  assert.equal(operationsOfQuestion('Ava is 30 years old. Ben is a third as old as Ava. Eli is 4 times as old as Ben. How old is Eli?'), 2);
  assert.equal(operationsOfQuestion('Mia has 3 boxes of beads with 4 beads in each box. She loses 2 beads. How many beads does Mia have now?'), 2);
});

test('hand-checked example and English spot checks', () => {
  const [e] = arithmeticTask({ level: 1 }).sample(new Rng(7), 1);
  assert.equal(solveByReading(e.question).answer, Number(e.reference));
  // Worked by hand: the reader itself on a fixed question of each kind.
  assert.equal(solveByReading('Mia has 12 marbles. She buys 5 more marbles. She gives 3 marbles to Tom. How many marbles does Mia have now?').answer, 14);
  assert.equal(solveByReading('Ava is 30 years old. Ben is a third as old as Ava. Eli is 4 times as old as Ben. How old is Eli?').answer, 40);
  for (const q of arithmeticTask({ level: 4 }).sample(new Rng(3), 50).map((x) => x.question)) {
    assert.doesNotMatch(q, / 1 [a-z]+s\b/, 'no "1 marbles"');
    assert.match(q, /^[A-Z]/);
  }
});

test('verify checks the <answer> against the gold integer', () => {
  const task = arithmeticTask();
  const [e] = task.sample(new Rng(1), 1);
  const gold = e.reference as string;
  assert.deepEqual(task.verify(`<think> working </think> <answer> ${gold} </answer>`, e), { answer: gold, correct: true });
  assert.equal(task.verify(`<think> working </think> <answer> ${Number(gold) + 1} </answer>`, e).correct, false);
  assert.equal(task.verify('<think> no answer </think>', e).correct, false);
});

test('seeds reproduce; test sets are fixed and no training draw shares a test problem\'s arithmetic', () => {
  for (const levelNumber of [1, 3]) {
    const task = arithmeticTask({ level: levelNumber });
    assert.deepEqual(task.sample(new Rng(5), 30), arithmeticTask({ level: levelNumber }).sample(new Rng(5), 30));
    assert.notDeepEqual(task.sample(new Rng(5), 30), task.sample(new Rng(6), 30));
    const testSet = task.testSet();
    assert.equal(testSet.length, 200);
    assert.deepEqual(arithmeticTask({ level: levelNumber }).testSet(), testSet);
    assert.deepEqual(task.testSet(20), testSet.slice(0, 20));
    assert.equal(new Set(testSet.map((x) => x.question)).size, testSet.length, 'test questions are distinct');
    // The arithmetic of a question (start, then each operation and number), read from the text: no training
    // draw, whatever its wording, has the arithmetic of a test question.
    const testKeys = new Set(testSet.map((x) => skeletonKeyFromReading(x.question)));
    for (const x of task.sample(new Rng(11), 3000)) {
      const key = skeletonKeyFromReading(x.question);
      assert.equal(x.id, `arithmetic/L${levelNumber}/train/${key}`);
      assert.ok(!testKeys.has(key), `training draw has the arithmetic of a test question: ${x.question}`);
    }
  }
});

/**
 * The generator's key format (start, then operator and number for each step; a leading product smaller factor
 * first), rebuilt from the text by the reader's rules.
 */
function skeletonKeyFromReading(question: string): string {
  return skeletonKeyFromSteps(question).replace(/^(\d+)\*(\d+)/, (_, a, b) => `${Math.min(+a, +b)}*${Math.max(+a, +b)}`);
}

function skeletonKeyFromSteps(question: string): string {
  const sentences = question.match(/[^.?]+[.?]/g)!.map((s) => s.trim()).slice(0, -1);
  const numbersIn = (s: string) => (s.match(/\d+/g) ?? []).map(Number);
  const opening = numbersIn(sentences[0]);
  let key = opening.length === 1 ? `${opening[0]}` : `${opening[0]}*${opening[1]}`;
  const fractions: Record<string, number> = { half: 2, 'a third': 3, 'a quarter': 4 };
  for (const s of sentences.slice(1)) {
    const fraction = /is (half|a third|a quarter) as old as/.exec(s);
    if (fraction !== null) {
      key += `/${fractions[fraction[1]]}`;
      continue;
    }
    const n = numbersIn(s)[0];
    if (/\bequal(ly)?\b/.test(s)) key += `/${n}`;
    else if (/\btimes\b/.test(s)) key += `*${n}`;
    else if (/\b(more|older)\b/.test(s)) key += `+${n}`;
    else key += `-${n}`;
  }
  return key;
}

/** Last integer of a text (every pretraining completion states its final answer last). */
function lastNumber(text: string): number | null {
  const all = text.match(/-?\d+/g);
  return all === null ? null : Number(all[all.length - 1]);
}

const EXACT_FORMAT = /^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>$/;

test('pretrainingText: prompts in the R1-Zero template, correct and format rates within sampling error', () => {
  const count = 2000;
  const question = 'QUESTION_MARKER';
  const [before, after] = r1ZeroPrompt(question).split(question);
  for (const { correctRate, formatRate } of [
    { correctRate: 0.5, formatRate: 0.7 },
    { correctRate: 0.2, formatRate: 0.95 },
    { correctRate: 1, formatRate: 0 },
  ]) {
    const docs = pretrainingText(new Rng(9), count, { correctRate, formatRate, level: [1, 2, 3] });
    assert.equal(docs.length, count);
    let correct = 0;
    let formatted = 0;
    for (const doc of docs) {
      assert.ok(doc.startsWith(before), doc);
      const end = doc.indexOf(after, before.length);
      assert.ok(end > 0, doc);
      const q = doc.slice(before.length, end);
      const completion = doc.slice(end + after.length).trim();
      if (lastNumber(completion) === solveByReading(q).answer) correct++;
      if (EXACT_FORMAT.test(completion)) formatted++;
      // Every completion shows its working as equations.
      assert.match(completion, /\d+ [-+*/] \d+ = -?\d+\./, completion);
    }
    // 4.5 standard deviations of a binomial proportion: a correct generator fails this about once in 10^5 runs.
    const tolerance = (p: number) => 4.5 * Math.sqrt((p * (1 - p)) / count) + 1e-9;
    assert.ok(Math.abs(correct / count - correctRate) <= tolerance(correctRate), `correct ${correct / count} vs ${correctRate}`);
    assert.ok(Math.abs(formatted / count - formatRate) <= tolerance(formatRate), `formatted ${formatted / count} vs ${formatRate}`);
  }
  assert.deepEqual(pretrainingText(new Rng(1), 20, { correctRate: 0.5, formatRate: 0.5 }), pretrainingText(new Rng(1), 20, { correctRate: 0.5, formatRate: 0.5 }));
  assert.throws(() => pretrainingText(new Rng(1), 1, { correctRate: 1.5, formatRate: 0.5 }), RangeError);
});

test('pretrainingText never contains a held-out test question', () => {
  const testQuestions = new Set(arithmeticTask({ level: 1 }).testSet().map((e) => skeletonKeyFromReading(e.question)));
  const question = 'QUESTION_MARKER';
  const [before, after] = r1ZeroPrompt(question).split(question);
  for (const doc of pretrainingText(new Rng(2), 3000, { correctRate: 0.5, formatRate: 0.5, level: 1 })) {
    const q = doc.slice(before.length, doc.indexOf(after, before.length));
    assert.ok(!testQuestions.has(skeletonKeyFromReading(q)), q);
  }
});

// Chains of thought in two languages (the R1 pipeline's base text): the language reward sees what each chain is
// written in, every chain's equations carry the problem's arithmetic, and the second language is right as often
// as asked, independently of English.
test('bilingual pretraining text: chain languages, switches and per-language correctness as asked', () => {
  const rng = new Rng(11);
  const mix = { second: 'zh' as const, secondRate: 0.4, switchRate: 0.25, secondCorrectRate: 0.7 };
  const docs = pretrainingText(rng, 3000, { correctRate: 0.2, formatRate: 1, level: 1, languages: mix });
  const counts = { en: 0, zh: 0, mixed: 0, enRight: 0, zhRight: 0, enStart: 0, zhStart: 0 };
  for (const doc of docs) {
    const completion = doc.slice(doc.lastIndexOf('Assistant:'));
    const chain = chainOfThought(completion);
    const english = languageConsistency(chain, 'en');
    if (english === 1) counts.en++;
    else if (english === 0) counts.zh++;
    else counts.mixed++;
    const steps = stepsOfChain(chain)!;
    assert.ok(steps !== null, chain);
    const question = doc.slice(doc.lastIndexOf('User: ') + 6, doc.lastIndexOf('. Assistant:'));
    const right = solveByReading(question).answer === Number(lastAnswerTag(completion));
    // The language a chain starts in is that of its first word.
    if (/^\s*start/.test(chain)) {
      counts.enStart++;
      if (right) counts.enRight++;
    } else {
      assert.match(chain, /^\s*从/);
      counts.zhStart++;
      if (right) counts.zhRight++;
    }
  }
  const n = docs.length;
  assert.ok(Math.abs(counts.zhStart / n - 0.4) < 0.04, `second-language starts ${counts.zhStart / n}`);
  assert.ok(Math.abs(counts.mixed / n - 0.25) < 0.04, `mixed chains ${counts.mixed / n}`);
  assert.ok(Math.abs(counts.enRight / counts.enStart - 0.2) < 0.04, `English right ${counts.enRight / counts.enStart}`);
  assert.ok(Math.abs(counts.zhRight / counts.zhStart - 0.7) < 0.05, `Chinese right ${counts.zhRight / counts.zhStart}`);
  // Without `languages`, the R1-Zero demo's text is unchanged: bare equations.
  const bare = pretrainingText(new Rng(11), 5, { correctRate: 0.2, formatRate: 1 });
  for (const doc of bare) assert.match(doc, /<think> (\d+ [-+*/] \d+ = \d+\. ?)+ <\/think>/);
});

test('reasoningChain states every step; stepsOfChain reads it back in either language, mixed or not', () => {
  const rng = new Rng(5);
  for (let i = 0; i < 200; i++) {
    const p = drawArithmeticProblem(rng, ARITHMETIC_LEVELS[1 + (i % 4)]);
    for (const [language, switchTo] of [['en', undefined], ['zh', undefined], ['en', { at: 2, to: 'zh' }], ['zh', { at: 1, to: 'en' }]] as const) {
      const chain = reasoningChain(p.steps, language, switchTo);
      assert.deepEqual(stepsOfChain(chain), p.steps, chain);
    }
  }
  assert.equal(reasoningChain([{ op: 'add', operand: 5, before: 12, after: 17 }], 'en'), 'start with 12. add 5: 12 + 5 = 17. so the answer is 17.');
  assert.equal(reasoningChain([{ op: 'add', operand: 5, before: 12, after: 17 }], 'en', { at: 2, to: 'zh' }), 'start with 12. add 5: 12 + 5 = 17. 所以答案是17。');
  // Equations that do not follow one another are not a chain.
  assert.equal(stepsOfChain('12 + 5 = 17. 3 + 1 = 4.'), null);
  assert.equal(stepsOfChain('no equations here'), null);
});

test('rewriteReadable restates a kept R1-Zero trace in one language with a boxed summary, or refuses', () => {
  const trace = ' <think> 从12开始。 加5： 12 + 5 = 17。 so the answer is 17. </think> <answer> 17 </answer>';
  const readable = rewriteReadable(trace, 'en')!;
  assert.equal(readable, '<think> start with 12. add 5: 12 + 5 = 17. so the answer is 17. </think> The answer is \\boxed{17}.');
  assert.ok(isReadableFormat(readable));
  assert.equal(languageConsistency(chainOfThought(readable), 'en'), 1);
  assert.equal(checkAnswer(readable, '17', ['boxed']).correct, true);
  // The chain must end at the answer the trace gives, there must be a chain, and its equations must be true.
  assert.equal(rewriteReadable(' <think> start with 20. take away 2: 20 - 2 = 1. so the answer is 1. </think> <answer> 1 </answer>', 'en'), null);
  assert.equal(rewriteReadable(' <think> 12 + 5 = 17. </think> <answer> 18 </answer>', 'en'), null);
  assert.equal(rewriteReadable(' <think> I just know. </think> <answer> 17 </answer>', 'en'), null);
  assert.equal(rewriteReadable(' <think> 12 + 5 = 17. </think> The answer is 17.', 'en'), null);
  assert.equal(readableSolution([{ op: 'sub', operand: 2, before: 9, after: 7 }], 'zh'), '<think> 从9开始。 减2： 9 - 2 = 7。 所以答案是7。 </think> 答案是\\boxed{7}。');
});
