// The checker over GSM8K's whole test set (fixtures/gsm8k: OpenAI's MIT-licensed data, LICENSE beside it): every
// reference solution, read as a whole text, gives its own `#### N`, in GSM8K's form and in the forms models
// write (a box, "The final answer is"), and none of them matches a wrong number.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { answersEquivalent, checkAnswer } from '../../src/rewards/answer.ts';
import { ANSWER_PLACES, extractAnswer } from '../../src/rewards/extract.ts';

interface Problem {
  solution: string;
  /** The text after `####`, as GSM8K writes it (e.g. "70000", "-3", "1,000"). */
  answer: string;
}

const problems: Problem[] = readFileSync(new URL('fixtures/gsm8k/test.jsonl', import.meta.url), 'utf8')
  .trim()
  .split('\n')
  .map((line) => {
    const solution = (JSON.parse(line) as { answer: string }).answer;
    return { solution, answer: solution.slice(solution.lastIndexOf('####') + 4).trim() };
  });

/** The solution with its `#### N` line written another way. */
const rewritten = (p: Problem, last: string) => p.solution.replace(/####[^\n]*$/, last);

describe('GSM8K test set', () => {
  it('has its 1319 problems', () => assert.equal(problems.length, 1319));

  it('every solution, extracted, matches its own #### answer, whatever form the last line takes', () => {
    const failures: string[] = [];
    for (const p of problems) {
      const forms = [
        p.solution,
        rewritten(p, `The final answer is $${p.answer}$. I hope it is correct.`),
        rewritten(p, `So the answer is $\\boxed{${p.answer}}$.`),
        rewritten(p, `<answer>${p.answer}</answer>`),
      ];
      for (const form of forms) if (!answersEquivalent(p.answer, form)) failures.push(`${p.answer}: ${JSON.stringify(form.slice(-80))}`);
      if (!checkAnswer(p.solution, p.answer, ANSWER_PLACES).correct) failures.push(`checkAnswer ${p.answer}`);
      if (extractAnswer(p.solution)?.place !== 'gsm8k') failures.push(`place ${p.answer}`);
    }
    assert.deepEqual(failures, []);
  });

  it('no solution matches a wrong number', () => {
    const falsePositives: string[] = [];
    for (const p of problems) {
      const n = Number(p.answer.replace(/,/g, ''));
      assert.ok(Number.isFinite(n), p.answer);
      const wrong = [n + 1, n - 1, n * 10, n + 0.5, -n - 1, Math.trunc(n / 10)].filter((w) => w !== n);
      for (const w of wrong) {
        if (answersEquivalent(String(w), p.solution)) falsePositives.push(`${w} vs #### ${p.answer}`);
        if (answersEquivalent(p.solution, String(w))) falsePositives.push(`#### ${p.answer} vs ${w}`);
      }
    }
    assert.deepEqual(falsePositives, []);
  });
});
