import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COUNTDOWN_LEVELS, countdownTask, evaluateExpression, MAX_NESTING, solvesCountdown, type CountdownReference } from '../../src/tasks/countdown.ts';
import { Rng } from '../../src/tensor/random.ts';

function valueOf(expression: string): string {
  const result = evaluateExpression(expression);
  assert.ok(result.ok, `${expression}: ${result.ok ? '' : result.error}`);
  return result.value.den === 1n ? `${result.value.num}` : `${result.value.num}/${result.value.den}`;
}

test('evaluator: exact rational arithmetic with precedence and parentheses', () => {
  // Worked by hand. Floating point would give 6/4*4 = 6 too, but not (1/3)*3 - 1 = 0 or 1/3 + 1/6 = 1/2 exactly.
  assert.equal(valueOf('6 / 4 * 4'), '6');
  assert.equal(valueOf('1 / 3 * 3 - 1'), '0');
  assert.equal(valueOf('1/3 + 1/6'), '1/2');
  assert.equal(valueOf('2 + 3 * 4'), '14');
  assert.equal(valueOf('(2 + 3) * 4'), '20');
  assert.equal(valueOf('10 - 4 - 3'), '3'); // left-associative
  assert.equal(valueOf('48 / 4 / 2'), '6');
  assert.equal(valueOf('48 / (4 / 2)'), '24');
  assert.equal(valueOf('3 - 10'), '-7');
  assert.equal(valueOf(' ( ( 7 ) ) '), '7');
  assert.equal(valueOf('100 / 7 * 7'), '100');
});

test('evaluator: division by zero is an error, not a crash or Infinity', () => {
  for (const e of ['1 / 0', '5 / (3 - 3)', '0 / 0', '2 * (1 / (2 - 2)) + 1']) {
    const result = evaluateExpression(e);
    assert.deepEqual(result, { ok: false, error: 'division by zero' }, e);
  }
});

test('evaluator: hostile and out-of-grammar strings are rejected without throwing', () => {
  const hostile = [
    'process.exit()',
    "require('fs')",
    "require('child_process').execSync('rm -rf /')",
    '1;2',
    '(()=>1)()',
    '`1`',
    '${1}',
    'constructor',
    '[].constructor.constructor("return 1")()',
    '2 ** 3',
    '2 ^ 3',
    '1e3',
    '1.5 * 2',
    '-3 + 5', // no unary minus in Countdown
    '3 * -1',
    '+3',
    '0x10',
    '1 + ',
    '(1 + 2',
    '1 + 2)',
    '()',
    '',
    '   ',
    '1 2',
    '3 = 3',
    'Math.max(1, 2)',
    '１ + 2', // fullwidth digit
    '1'.repeat(10) + ' + 1', // literal too long
    '('.repeat(10_000) + '1' + ')'.repeat(10_000),
    '('.repeat(MAX_NESTING + 1) + '1' + ')'.repeat(MAX_NESTING + 1), // short enough, too deep
    '1 + '.repeat(5_000) + '1',
    '\u0000',
  ];
  for (const e of hostile) {
    const result = evaluateExpression(e);
    assert.equal(result.ok, false, `accepted ${JSON.stringify(e.slice(0, 60))}`);
    assert.equal(solvesCountdown(e, [1, 2, 3], 6), false);
  }
  // Nesting up to the limit is fine.
  assert.equal(valueOf('('.repeat(MAX_NESTING) + '1' + ')'.repeat(MAX_NESTING)), '1');
});

test('solvesCountdown: each given number exactly once (as a multiset), value equal to the target', () => {
  const numbers = [6, 4, 4];
  assert.equal(solvesCountdown('6 / 4 * 4', numbers, 6), true);
  assert.equal(solvesCountdown('4 * 6 / 4', numbers, 6), true);
  assert.equal(solvesCountdown('6 + 4 - 4', numbers, 6), true);
  assert.equal(solvesCountdown('6 / 4 * 4', numbers, 7), false); // wrong value
  assert.equal(solvesCountdown('6', numbers, 6), false); // numbers unused
  assert.equal(solvesCountdown('6 * 4 / 4 * 4 / 4', numbers, 6), false); // a number used twice
  assert.equal(solvesCountdown('6 * 1', numbers, 6), false); // a number not given
  assert.equal(solvesCountdown('6 + 4 - 4', [6, 4, 5], 6), false); // 4 twice, 5 missing
  assert.equal(solvesCountdown('(6 - 4) / 4', numbers, 0), false); // 1/2 is not the integer target
  assert.equal(solvesCountdown('(25 - 4) * 3 / 9', [25, 4, 3, 9], 7), true);
});

test('verify reads the last <answer> of the completion and never throws', () => {
  const task = countdownTask({ level: 3 });
  const example = { id: 'x', question: 'q', reference: { numbers: [25, 4, 3, 9], target: 7, solution: '' } satisfies CountdownReference };
  assert.deepEqual(task.verify('<think> try </think> <answer> (25 - 4) * 3 / 9 </answer>', example), { answer: '(25 - 4) * 3 / 9', correct: true });
  assert.deepEqual(task.verify('<answer> 25 + 4 </answer> no wait <answer>(25-4)*3/9</answer>', example), { answer: '(25-4)*3/9', correct: true });
  assert.deepEqual(task.verify('<answer> (25 - 4) * 3 / 9 </answer> then <answer> 25 </answer>', example), { answer: '25', correct: false });
  assert.deepEqual(task.verify('(25 - 4) * 3 / 9 = 7', example), { answer: null, correct: false });
  assert.deepEqual(task.verify('<answer> (25 - 4) * 3 / 9 = 7 </answer>', example).correct, false);
  assert.deepEqual(task.verify('<answer>process.exit()</answer>', example), { answer: 'process.exit()', correct: false });
  assert.equal(task.verify(`<answer>${'('.repeat(10_000)}</answer>`, example).correct, false);
  assert.deepEqual(task.verify('</answer> <answer> (25 - 4) * 3 / 9', example), { answer: null, correct: false }); // unclosed
});

test('generated problems are solvable by their construction and respect the level', () => {
  for (const levelNumber of Object.keys(COUNTDOWN_LEVELS).map(Number)) {
    const level = COUNTDOWN_LEVELS[levelNumber];
    const task = countdownTask({ level: levelNumber });
    const examples = [...task.sample(new Rng(levelNumber), 300), ...task.testSet(100)];
    for (const e of examples) {
      const { numbers, target, solution } = e.reference as CountdownReference;
      assert.ok(level.counts.includes(numbers.length), e.id);
      assert.ok(numbers.every((n) => Number.isInteger(n) && n >= level.minNumber && n <= level.maxNumber), e.id);
      assert.ok(Number.isInteger(target) && target >= 1 && target <= level.maxTarget, e.id);
      assert.ok(solvesCountdown(solution, numbers, target), `${e.id}: ${solution}`);
      assert.ok(e.question.includes(`[${numbers.join(', ')}]`) && e.question.includes(`equals ${target}.`), e.question);
      assert.equal(task.verify(`<think> </think> <answer> ${solution} </answer>`, e).correct, true);
    }
  }
});

test('seeds reproduce; test sets are fixed, distinct, and disjoint from training draws', () => {
  const task = countdownTask();
  assert.deepEqual(task.sample(new Rng(42), 50), countdownTask().sample(new Rng(42), 50));
  assert.notDeepEqual(task.sample(new Rng(42), 50), task.sample(new Rng(43), 50));

  const testSet = task.testSet();
  assert.equal(testSet.length, 200);
  assert.deepEqual(countdownTask().testSet(), testSet);
  assert.deepEqual(task.testSet(50), testSet.slice(0, 50));
  const key = (e: { reference: unknown }) => {
    const { numbers, target } = e.reference as CountdownReference;
    return `${[...numbers].sort((a, b) => a - b)}->${target}`;
  };
  const testKeys = new Set(testSet.map(key));
  assert.equal(testKeys.size, testSet.length, 'test problems are distinct');
  assert.equal(new Set(testSet.map((e) => e.id)).size, testSet.length);
  for (let seed = 0; seed < 5; seed++) {
    for (const e of task.sample(new Rng(seed), 2000)) assert.ok(!testKeys.has(key(e)), `training draw ${e.id} is a test problem`);
  }
  // Level 3 is TinyZero's 3-or-4-number data: the test set mixes both.
  assert.ok(testSet.some((e) => (e.reference as CountdownReference).numbers.length === 3));
  assert.ok(testSet.some((e) => (e.reference as CountdownReference).numbers.length === 4));
});
