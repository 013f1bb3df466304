// The accuracy reward's checker on answers written the way models and datasets write them: a table of cases
// grouped by kind (each with the verdict a careful grader gives), properties over generated answers, and bounds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answersEquivalent, checkAnswer, exactRational, normalizeAnswer, parseStructure, readings } from '../../src/rewards/answer.ts';
import { parseLatex, parseTimeouts, sampleValues } from '../../src/rewards/math-eval.ts';
import { Rng } from '../../src/tensor/random.ts';
import { ANSWER_CASES, type Case } from './answer-cases.ts';


function checkAll(cases: Case[]): void {
  const wrong = cases.filter(([gold, pred, equivalent]) => answersEquivalent(gold, pred) !== equivalent);
  assert.deepEqual(wrong.map(([g, p, e]) => `${JSON.stringify(g)} vs ${JSON.stringify(p)}: expected ${e}`), []);
}

describe('the suite, kind by kind (answer-cases.ts)', () => {
  for (const [kind, cases] of Object.entries(ANSWER_CASES)) it(kind, () => checkAll(cases));

  it('has a few hundred cases, a third of them wrong answers', () => {
    const all = Object.values(ANSWER_CASES).flat();
    assert.ok(all.length >= 300, String(all.length));
    assert.ok(all.filter(([, , equivalent]) => !equivalent).length >= 100);
  });
});

describe('normalisation, readings and structure', () => {
  it('writes forms one way', () => {
    assert.equal(normalizeAnswer('\\left( \\dfrac13 \\right)'), '( \\frac{1}{3} )');
    assert.equal(normalizeAnswer('$x \\geq 5$'), 'x \\ge 5');
    assert.equal(normalizeAnswer('11,\\! 111,\\! 100'), '11111100');
    assert.equal(normalizeAnswer('\\text{(B)}'), 'B');
    assert.deepEqual(exactRational('-1.25'), { num: -125n, den: 100n });
    assert.deepEqual(exactRational('\\frac{3}{4}'), { num: 3n, den: 4n });
    assert.deepEqual(exactRational('1.5\\times10^{3}'), { num: 15000n, den: 10n });
    assert.equal(exactRational('x'), null);
  });

  it('reads an answer every way it can mean', () => {
    assert.deepEqual(readings('28\\%'), ['28', '\\frac{28}{100}']);
    assert.deepEqual(readings('1,22'), ['1,22', '1.22']);
    assert.deepEqual(readings('1 \\pm \\sqrt{2}'), ['1 \\pm \\sqrt{2}', '\\{1+\\sqrt{2}, 1-\\sqrt{2}\\}']);
  });

  it('parses structure', () => {
    assert.deepEqual(parseStructure(normalizeAnswer('[1, 2)')), {
      kind: 'tuple', open: '[', close: ')', items: [{ kind: 'scalar', text: '1' }, { kind: 'scalar', text: '2' }],
    });
    assert.deepEqual(parseStructure('1 < x \\le 2'), { kind: 'relation', parts: ['1', 'x', '2'], ops: ['<', '\\le'] });
    assert.deepEqual(parseStructure('\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}'), { kind: 'matrix', rows: [['1', '2'], ['3', '4']] });
  });
});

describe('properties', () => {
  const rng = new Rng(20261203);
  const randomInt = (max: number) => Math.floor(rng.uniform() * max);

  /** Random golds: integers (some large), negative numbers, decimals, fractions, roots and intervals. */
  function golds(count: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      switch (i % 6) {
        case 0: out.push(String(randomInt(10 ** (1 + randomInt(7))))); break;
        case 1: out.push(String(-1 - randomInt(500))); break;
        case 2: out.push(`${randomInt(1000)}.${1 + randomInt(99)}`); break;
        case 3: out.push(`\\frac{${1 + randomInt(40)}}{${41 + randomInt(40)}}`); break;
        case 4: out.push(`${2 + randomInt(8)}\\sqrt{${[2, 3, 5, 6, 7][randomInt(5)]}}`); break;
        default: out.push(`[${randomInt(10)}, ${10 + randomInt(10)})`);
      }
    }
    return out;
  }

  /** A gold as models and datasets write it. */
  const writtenForms = (gold: string): string[] => [
    gold, `$${gold}$`, `\\(${gold}\\)`, `\\[ ${gold} \\]`, `\\boxed{${gold}}`, `The answer is $${gold}$.`, `x = ${gold}`,
    `Adding it all up we get $\\boxed{${gold}}$.`, `Final Answer: The final answer is $${gold}$. I hope it is correct.`,
    `<think>so it is that</think> <answer>${gold}</answer>`, `$$\n${gold}\n$$`,
  ];

  it('a gold in any of its written forms matches itself, on both sides', () => {
    for (const gold of golds(60)) {
      for (const form of writtenForms(gold)) {
        assert.ok(answersEquivalent(gold, form), `${gold} vs ${JSON.stringify(form)}`);
        assert.ok(answersEquivalent(form, gold), `${JSON.stringify(form)} vs ${gold}`);
      }
      assert.ok(checkAnswer(`<answer>${gold}</answer>`, `$${gold}$`).correct, gold);
    }
  });

  it('numbers written with thousands groups, trailing zeros, signs and as fractions match', () => {
    for (let i = 0; i < 200; i++) {
      const n = randomInt(10 ** 9);
      const grouped = n.toLocaleString('en-US');
      for (const form of [grouped, `${n}.0`, `${n}.00`, `+${n}`, `\\frac{${2 * n}}{2}`, `${grouped.replace(/,/g, '{,}')}`, `\\$${grouped}`, `${n} apples`]) {
        assert.ok(answersEquivalent(String(n), form), `${n} vs ${form}`);
      }
    }
  });

  it('a perturbed number does not match, in any written form', () => {
    for (let i = 0; i < 200; i++) {
      const n = 1 + randomInt(10 ** (1 + randomInt(8)));
      const decimal = `${n}.${1 + randomInt(9)}`;
      const perturbed = [String(n + 1), String(n - 1), String(n * 10), String(-n), `${n}.5`, `${n}${randomInt(10)}`, String(n).slice(0, -1) || '0'];
      for (const wrong of perturbed) {
        if (wrong === String(n)) continue;
        for (const form of [wrong, `$${wrong}$`, `\\boxed{${wrong}}`, `The answer is ${wrong}.`]) {
          assert.ok(!answersEquivalent(String(n), form), `${n} vs ${form}`);
        }
      }
      assert.ok(!answersEquivalent(decimal, `${n}`), decimal);
      assert.ok(!answersEquivalent(decimal, `${n}.${decimal.at(-1) === '9' ? 1 : Number(decimal.at(-1)) + 1}`), decimal);
      assert.ok(!answersEquivalent(`\\frac{${n}}{${n + 1}}`, `\\frac{${n + 1}}{${n + 2}}`), `${n}/${n + 1}`);
    }
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
    quick('a 1.6 MB completion', () => assert.equal(answersEquivalent('12', 'we get 12 '.repeat(160_000)), true), 4_000);
    quick('a list of 64 items', () => answersEquivalent(Array.from({ length: 64 }, (_, i) => `\\sqrt{${i}}`).join(','), Array.from({ length: 64 }, (_, i) => `\\sqrt{${63 - i}}`).join(',')), 8_000);
    // Unclosed math openers made lazy regexes quadratic (50,000 `\(` on one line took 80 s).
    quick('50,000 unclosed \\( and \\[', () => assert.equal(answersEquivalent('5', `${'\\( x \\[ y '.repeat(50_000)} so 5`), true), 4_000);
    quick('50,000 "final answer" and "answer"', () => assert.equal(answersEquivalent('5', `${'final answer, answer '.repeat(50_000)} 5`), true), 4_000);
    quick('a long chain of relations', () => answersEquivalent(Array.from({ length: 60 }, (_, i) => `x_${i}`).join(' < '), 'x < 1'), 8_000);
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
