import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  answersEquivalent,
  checkAnswer,
  exactRational,
  extractAnswer,
  lastBoxed,
  lastNumber,
  normalizeAnswer,
  parseStructure,
} from '../../src/rewards/answer.ts';
import { parseLatex, parseTimeouts, sampleValues } from '../../src/rewards/math-eval.ts';

type Case = [gold: string, pred: string, equivalent: boolean];

function checkAll(cases: Case[]): void {
  for (const [gold, pred, equivalent] of cases) {
    assert.equal(answersEquivalent(gold, pred), equivalent, `${JSON.stringify(gold)} vs ${JSON.stringify(pred)}: expected ${equivalent}`);
  }
}

describe('extraction', () => {
  const text = 'Step 1: 12 apples. \\boxed{7} then <answer>\\frac{1}{2}</answer> and #### 42\nfinally 99 left';

  it('prefers <answer>, then \\boxed, then ####, then the last number, among the places allowed', () => {
    assert.deepEqual(extractAnswer(text), { answer: '\\frac{1}{2}', place: 'answer-tag' });
    assert.deepEqual(extractAnswer(text, ['boxed', 'gsm8k', 'last-number']), { answer: '7', place: 'boxed' });
    assert.deepEqual(extractAnswer(text, ['gsm8k', 'last-number']), { answer: '42', place: 'gsm8k' });
    assert.deepEqual(extractAnswer(text, ['last-number']), { answer: '99', place: 'last-number' });
    // The order of the list does not change the preference.
    assert.deepEqual(extractAnswer(text, ['last-number', 'answer-tag']), { answer: '\\frac{1}{2}', place: 'answer-tag' });
    assert.equal(extractAnswer('I think it is 5', ['answer-tag']), null);
  });

  it('takes the last complete <answer> block, unwrapping a \\boxed inside it; an unclosed or empty one is no answer', () => {
    assert.equal(extractAnswer('<answer>3</answer> wait <answer> 4 </answer>', ['answer-tag'])?.answer, '4');
    assert.equal(extractAnswer('<answer>The answer is $\\boxed{12}$.</answer>', ['answer-tag'])?.answer, '12');
    assert.equal(extractAnswer('<answer>3</answer> wait <answer>4', ['answer-tag'])?.answer, '3');
    assert.equal(extractAnswer('<answer>5', ['answer-tag']), null);
    assert.equal(extractAnswer('<answer>  </answer>', ['answer-tag']), null);
    assert.equal(extractAnswer('</answer> 5 <answer>', ['answer-tag']), null);
  });

  it('reads \\boxed{} with balanced (and escaped) braces, the last complete one, \\fbox and \\boxed 5', () => {
    assert.equal(lastBoxed('\\boxed{1} and \\boxed{\\frac{a}{b^{2}}}'), '\\frac{a}{b^{2}}');
    assert.equal(lastBoxed('so $\\boxed{\\{1, 2\\}}$'), '\\{1, 2\\}');
    assert.equal(lastBoxed('\\boxed{3} and then \\boxed{\\frac{1}{2'), '3'); // truncated last box
    assert.equal(lastBoxed('\\fbox{9}'), '9');
    assert.equal(lastBoxed('is $\\boxed 5$.'), '5');
    assert.equal(lastBoxed('\\boxedfoo{1}'), null);
    assert.equal(lastBoxed('no box'), null);
  });

  it('GSM8K: the rest of the line after the last ####', () => {
    assert.equal(extractAnswer('She has 3 + 4 = 7\n#### 1,000\n', ['gsm8k'])?.answer, '1,000');
    assert.equal(extractAnswer('#### 5\nmore #### 6.', ['gsm8k'])?.answer, '6');
    assert.equal(extractAnswer('#### \n', ['gsm8k']), null);
  });

  it('the last number: signs, decimals, thousands groups and fractions, not a minus that is subtraction', () => {
    assert.equal(lastNumber('costs 1,234.50 dollars'), '1,234.50');
    assert.equal(lastNumber('it is -3.'), '-3');
    assert.equal(lastNumber('it is −7'), '−7');
    assert.equal(lastNumber('so 5-3'), '3');
    assert.equal(lastNumber('p = 3/4'), '3/4');
    assert.equal(lastNumber('values 1,2,3'), '3');
    assert.equal(lastNumber('about .5 of it'), '.5');
    assert.equal(lastNumber('no digits'), null);
  });

  it('checkAnswer gives the Verdict of a completion (R1-Zero: <answer> required by default)', () => {
    assert.deepEqual(checkAnswer('<think>2+3</think> <answer>5</answer>', '5'), { answer: '5', correct: true });
    assert.deepEqual(checkAnswer('<think>2+3</think> <answer>6</answer>', '5'), { answer: '6', correct: false });
    assert.deepEqual(checkAnswer('<think>2+3</think> \\boxed{5}', '5'), { answer: null, correct: false });
    assert.deepEqual(checkAnswer('<think>2+3</think> \\boxed{5}', '5', ['answer-tag', 'boxed']), { answer: '5', correct: true });
  });
});

describe('equivalence', () => {
  it('integers and thousands separators (a whole-answer 1,234 is one number; other commas separate items)', () => {
    checkAll([
      ['1,000', '1000', true], ['1000', '1,000', true], ['1234567', '1,234,567', true], ['1000', '1{,}000', true],
      ['10000', '10,\\!000', true], ['1000', '1\\,000', true], ['1000', '1 000', true], ['1000.5', '1,000.5', true],
      ['1000', '1000.0', true], ['12000023', '12000024', false], ['1000', '100', false],
      ['12', '1,2', false], ['1,2', '(1,2)', false], ['1,23', '123', false],
    ]);
  });

  it('decimals and fractions, exactly: 0.5 = .5 = 1/2, but 1/3 is not 0.33 nor any finite decimal', () => {
    checkAll([
      ['0.5', '.5', true], ['0.5', '\\frac{1}{2}', true], ['1/2', '0.5', true], ['\\frac12', '0.50', true],
      ['\\dfrac{3}{4}', '0.75', true], ['\\tfrac{3}{4}', '\\frac34', true], ['\\cfrac{2}{4}', '1/2', true], ['10/9', '\\frac{10}{9}', true],
      ['-10/9', '-\\frac{10}{9}', true], ['-\\frac{1}{2}', '\\frac{-1}{2}', true], ['\\frac{2}{4}', '\\frac{1}{2}', true],
      ['\\frac{1}{3}', '0.33', false], ['\\frac{1}{3}', '0.333333', false], ['0.5', '0.51', false], ['\\frac{1}{2}', '\\frac{1}{3}', false],
    ]);
    assert.deepEqual(exactRational('-1.25'), { num: -125n, den: 100n });
    assert.deepEqual(exactRational('\\frac{3}{4}'), { num: 3n, den: 4n });
    assert.equal(exactRational('x'), null);
  });

  it('roots, powers and arithmetic by value', () => {
    checkAll([
      ['\\sqrt{8}', '2\\sqrt{2}', true], ['\\frac{\\sqrt{2}}{2}', '\\frac{1}{\\sqrt{2}}', true], ['\\sqrt[3]{-8}', '-2', true],
      ['\\sqrt{3}', '\\sqrt3', true], ['5', '2+3', true], ['8', '2^3', true], ['2^{10}', '1024', true], ['6', '3!', true],
      ['\\frac{\\pi}{2}', '\\pi/2', true], ['-1', 'e^{i\\pi}', true], ['2', '\\ln(e^2)', true], ['3', '\\log_2 8', true],
      ['\\frac{1}{2}', '\\sin(\\pi/6)', true], ['2+3i', '3i+2', true],
      ['\\sqrt{8}', '2\\sqrt{3}', false], ['\\pi', '3.14', false], ['\\pi', '3.14159', false], ['2+3i', '3+2i', false],
      ['2', '\\frac{1+\\sqrt{5}}{2}', false], ['1\\sqrt{19}', '1', false],
    ]);
  });

  it('percentages: the percent sign is dropped (50% = 50, not 0.5), as Math-Verify', () => {
    checkAll([
      ['50\\%', '50', true], ['50', '50%', true], ['28\\%', '28 percent', true], ['12.5\\%', '12.5', true],
      ['50\\%', '0.5', false], ['0.28', '28\\%', false],
    ]);
  });

  it('negative numbers and the unicode minus', () => {
    checkAll([['-3', '−3', true], ['−3', '-3.0', true], ['-3', '3', false], ['−\\frac{1}{2}', '-0.5', true]]);
  });

  it('LaTeX wrappers, spacing, \\text, degrees, units and a leading "x ="', () => {
    checkAll([
      ['5', '$5$', true], ['5', '\\(5\\)', true], ['5', '\\[5\\]', true], ['5', '$$ 5 $$', true], ['5', '\\boxed{5}', true],
      ['5', '\\text{5}', true], ['5', '\\mathrm{5}', true], ['\\frac{1}{2}', '\\left(\\frac{1}{2}\\right)', true],
      ['\\frac{1}{2}', '\\displaystyle\\frac{1}{2}', true], ['90', '90^\\circ', true], ['90^{\\circ}', '90°', true],
      ['5', '5\\text{ cm}', true], ['5', '5 \\text{cm}^2', true], ['5', '5 meters', true], ['1000.99', '\\$1,000.99', true],
      ['\\frac{1}{3}', '\\frac{1}{3} \\textbf{meters}', true], ['\\text{Evelyn}', 'Evelyn', true], ['yes', '\\text{Yes}', true],
      ['5', 'x = 5', true], ['x=5', '5', true], ['\\frac13', 'k = \\frac{1}{3}', true], ['5', 'x = 2 + 3 = 5', true],
      ['2x+3', 'y = 2x + 3', true], ['5', 'The answer is 5', true], ['[1, 2]', 'x \\in [1, 2]', true],
      ['5', 'x = 6', false], ['yes', 'no', false], ['yes', 'sey', false], ['5', '5\\text{ cm} + 1', false],
    ]);
  });

  it('tuples are ordered, intervals must match open/closed ends, sets and bare lists are unordered', () => {
    checkAll([
      ['(1,2)', '(1, 2)', true], ['(1,2)', '\\left(1,2\\right)', true], ['(1,2)', '(2,1)', false], ['(1,2)', '(1,2,3)', false],
      ['(3, \\frac{\\pi}{2})', '\\left( 3, \\frac{\\pi}{2} \\right)', true], ['(\\frac{4}{5}, \\frac{1}{5})', '(0.8, 0.2)', true],
      ['[1,2)', '[1,2)', true], ['[1,2)', '[1,2]', false], ['(0,9)', '[0,9)', false], ['[0,1)', '(0,1)', false], ['(1,2]', '(1, 2]', true],
      ['\\{1,2\\}', '\\{2,1\\}', true], ['\\{1,2\\}', '\\{1,3\\}', false], ['\\{1,2\\}', '\\{1,2,3\\}', false], ['\\{1,2\\}', '2, 1', true],
      ['1, 2', '2, 1', true], ['1, 2', '(1, 2)', false], ['\\{\\frac{1}{2}, 3\\}', '\\{3, 0.5\\}', true],
      ['(-\\infty, 1) \\cup (2, \\infty)', '(2,\\infty)\\cup(-\\infty,1)', true], ['(-\\infty, 1) \\cup (2, \\infty)', '(-\\infty, 1] \\cup (2, \\infty)', false],
      ['(A)', 'A', true], ['A', 'B', false],
    ]);
    assert.deepEqual(parseStructure(normalizeAnswer('[1, 2)')), {
      kind: 'tuple', open: '[', close: ')', items: [{ kind: 'scalar', text: '1' }, { kind: 'scalar', text: '2' }],
    });
  });

  it('expressions with variables agree at random points', () => {
    checkAll([
      ['(x+1)^2', 'x^2+2x+1', true], ['\\frac{x^2-1}{x-1}', 'x+1', true], ['2ab', 'ba\\cdot 2', true], ['x_1+x_2', 'x_2+x_1', true],
      ['\\sin^2 x + \\cos^2 x', '1', true], ['\\frac{x}{x}', '1', true], ['|x|', '\\sqrt{x^2}', true], ['e^{2x}', '(e^x)^2', true],
      ['(x+1)^2', 'x^2+2x+2', false], ['x+2n+1', 'x+1', false], ['|x|', 'x', false], ['x', 'y', false], ['(a+5)(b+2)', '(+5)(b+2)', false],
    ]);
  });

  it('equations: the same relation up to sides and sign', () => {
    checkAll([
      ['x^2+y^2=1', 'y^2+x^2=1', true], ['34x+45y-20z+100=0', '-34x-45y+20z-100=0', true], ['2x+3=y+1', 'y+1=2x+3', true],
      ['x^2+y^2=1', 'x^2+y^2=2', false], ['x+y=1', 'x-y=1', false],
    ]);
  });

  it('never equal when either side is empty or unparseable garbage differing from the other', () => {
    checkAll([['5', '', false], ['', '', false], ['\\frac{', '\\frac{{', false], ['\\sum_{i=1}^{10} i', '55', false]]);
    checkAll([['\\sum_{i=1}^{10} i', '\\sum_{i=1}^{10}i', true]]); // same text after normalisation
  });
});

describe('bounded work', () => {
  // The limits catch runaway work (the engine's backtracking ran for 8-14 s on nested brackets before the
  // guards), not speed: they leave room for a loaded 2-core CI machine running other test files beside this one.
  const quick = (label: string, f: () => unknown, limitMs: number) => {
    const start = performance.now();
    f();
    const ms = performance.now() - start;
    assert.ok(ms < limitMs, `${label}: ${ms.toFixed(0)} ms`);
  };

  it('huge answers and completions return quickly', () => {
    answersEquivalent('\\sqrt{2}', '\\sqrt{2}'); // start the parser outside the timings
    quick('10k-digit numbers', () => assert.equal(answersEquivalent('1'.repeat(10_000), `${'1'.repeat(9_999)}2`), false), 3_000);
    quick('10k-character expressions', () => assert.equal(answersEquivalent('x+'.repeat(5_000), `${'x+'.repeat(4_999)}y`), false), 3_000);
    quick('10k-character identical expressions', () => assert.equal(answersEquivalent('x+'.repeat(5_000), 'x+'.repeat(5_000)), true), 3_000);
    quick('deep nesting', () => answersEquivalent(`${'\\sqrt{'.repeat(200)}2${'}'.repeat(200)}`, '2'), 3_000);
    quick('unbalanced brackets', () => answersEquivalent('[('.repeat(200), '(['.repeat(200)), 3_000);
    quick('runs of signs', () => answersEquivalent(`${'-'.repeat(30)}1`, '1'), 3_000);
    quick('towers and factorials', () => assert.equal(answersEquivalent('9^{9^{9}}', '9'), false), 6_000);
    quick('a 1.6 MB completion', () => assert.equal(extractAnswer('we get 12 '.repeat(160_000))?.answer, '12'), 4_000);
    quick('thousands of unclosed boxes', () => extractAnswer(`${'\\boxed{'.repeat(5_000)}5`), 4_000);
    quick('a list of 64 items', () => answersEquivalent(Array.from({ length: 64 }, (_, i) => `\\sqrt{${i}}`).join(','), Array.from({ length: 64 }, (_, i) => `\\sqrt{${63 - i}}`).join(',')), 8_000);
  });

  it('a parse that outlives its time limit is abandoned, and the next parse gets a fresh parser', () => {
    // A limit of 0 ms almost always expires first; on a loaded machine the parser may still answer before the
    // caller starts waiting, so the call is repeated until it does time out (a race, not a failure).
    const before = parseTimeouts();
    let result = parseLatex('(x+1)^2', 0);
    for (let tries = 1; parseTimeouts() === before && tries < 50; tries++) result = parseLatex('(x+1)^2', 0);
    assert.equal(parseTimeouts(), before + 1);
    assert.equal(result, null);
    assert.deepEqual(parseLatex('(x+1)^2'), ['Power', ['Add', 'x', 1], 2]);
  });

  it('sample values are the same on every call (seeded points)', () => {
    const first = sampleValues('x^3 - 2y');
    assert.ok(first !== null && first.every(([re, im]) => Number.isFinite(re) && im === 0));
    assert.deepEqual(sampleValues('-2y + x^3'), first);
  });
});
