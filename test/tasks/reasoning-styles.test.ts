// The long-chain base model's pretraining text: solutions of three lengths whose correctness follows from what
// they write (a chain is right exactly when each of its slips was caught by a check), checks that are true
// arithmetic, and the styles' order in length and accuracy that GRPO is meant to find.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ARITHMETIC_LEVELS, arithmeticTask, drawTrainingProblem } from '../../src/tasks/arithmetic.ts';
import { checkReasoningStyles, inverseCheck, styledPretrainingText, styledSolution, type ReasoningStyles, type StyledSolution } from '../../src/tasks/reasoning-styles.ts';
import { Rng } from '../../src/tensor/random.ts';

const MIX: ReasoningStyles = { guessRate: 0.5, guessCorrectRate: 0.25, checkedRate: 0.3, slipRate: 0.2 };

function solutions(styles: ReasoningStyles, count: number, level = 3, seed = 1): Array<StyledSolution & { answer: number }> {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const problem = drawTrainingProblem(rng, ARITHMETIC_LEVELS[level]);
    return { ...styledSolution(rng, problem, styles), answer: problem.answer };
  });
}

const apply = (a: number, op: string, b: number) => (op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b);

describe('styledSolution', () => {
  it('a worked chain is right exactly when every slip was caught, and says the answer it gives', () => {
    const all = solutions(MIX, 600);
    for (const s of all) {
      assert.equal(s.correct, s.final === s.answer);
      if (s.style === 'guess') continue;
      assert.equal(s.correct, s.slips === s.caught, s.working);
      assert.ok(s.working.endsWith(`so the answer is ${s.final}.`), s.working);
      assert.equal(s.style === 'checked', s.checks > 0);
      assert.equal(s.checks, s.working.split('check:').length - 1);
    }
    // Every style occurs, and slips both caught and missed.
    for (const style of ['guess', 'worked', 'checked']) assert.ok(all.some((s) => s.style === style), style);
    assert.ok(all.some((s) => s.caught > 0) && all.some((s) => s.slips > s.caught));
  });

  it('every check is true arithmetic, and flags a mistake exactly when the step it checks slipped', () => {
    for (const s of solutions({ ...MIX, guessRate: 0, checkedRate: 1 }, 400)) {
      const checks = [...s.working.matchAll(/(\d+) ([-+*/]) (\d+) = (-?\d+)\. check: (\d+) ([-+*/]) (\d+) = (-?\d+)(\. right\.|, not (\d+)\. wait, that is a mistake: (\d+) ([-+*/]) (\d+) = (\d+)\.)/g)];
      assert.equal(checks.length, s.checks, s.working);
      let flagged = 0;
      for (const m of checks) {
        const [written, checkValue] = [Number(m[4]), Number(m[8])];
        const right = apply(Number(m[1]), m[2], Number(m[3]));
        assert.equal(checkValue, apply(Number(m[5]), m[6], Number(m[7])), `check arithmetic: ${m[0]}`);
        assert.equal(m[9] === '. right.', written === right, m[0]);
        if (m[10] !== undefined) {
          flagged++;
          assert.equal(Number(m[14]), right, `the redone step is right: ${m[0]}`);
        }
      }
      assert.equal(flagged, s.caught);
    }
  });

  it('an unchecked slip is carried on: every later step is exact arithmetic on positive integers', () => {
    for (const s of solutions({ ...MIX, guessRate: 0, checkedRate: 0, slipRate: 0.5 }, 400)) {
      const steps = [...s.working.matchAll(/(\d+) ([-+*/]) (\d+) = (\d+)\./g)].map((m) => ({ a: Number(m[1]), op: m[2], b: Number(m[3]), c: Number(m[4]) }));
      let wrong = 0;
      steps.forEach((step, i) => {
        if (i > 0) assert.equal(step.a, steps[i - 1].c, `each step starts from the last result: ${s.working}`);
        assert.ok(Number.isInteger(step.c) && step.c > 0);
        if (step.c !== apply(step.a, step.op, step.b)) wrong++;
      });
      assert.equal(wrong, s.slips, s.working);
      assert.equal(steps[steps.length - 1].c, s.final);
    }
  });

  it('inverse checks give back the step\'s start (a product: its result)', () => {
    assert.deepEqual(inverseCheck({ op: 'add', operand: 5, before: 12, after: 17 }), { text: '17 - 5', value: 12, expected: 12 });
    assert.deepEqual(inverseCheck({ op: 'sub', operand: 4, before: 51, after: 48 }), { text: '48 + 4', value: 52, expected: 51 });
    assert.deepEqual(inverseCheck({ op: 'div', operand: 3, before: 51, after: 17 }), { text: '17 * 3', value: 51, expected: 51 });
    assert.deepEqual(inverseCheck({ op: 'mul', operand: 3, before: 17, after: 52 }), { text: '3 * 17', value: 51, expected: 52 });
  });

  it('with a mix of styles, the longer ones are right more often: what GRPO can find', () => {
    const all = solutions(MIX, 3000);
    const stats = (style: string) => {
      const of = all.filter((s) => s.style === style);
      return { share: of.length / all.length, length: of.reduce((a, s) => a + s.working.length, 0) / of.length, accuracy: of.filter((s) => s.correct).length / of.length };
    };
    const [guess, worked, checked] = ['guess', 'worked', 'checked'].map(stats);
    // Checked: half are chains, 30% of those may check, and a check rate q checks one of 3 steps or more with
    // probability 1 - (1 - q)^3, 3/4 on average over q.
    assert.ok(Math.abs(guess.share - 0.5) < 0.04 && Math.abs(checked.share - 0.5 * 0.3 * 0.75) < 0.03, JSON.stringify({ guess, checked }));
    assert.ok(guess.length < worked.length && worked.length < checked.length);
    assert.ok(Math.abs(guess.accuracy - 0.25) < 0.04 && guess.accuracy < worked.accuracy && worked.accuracy < checked.accuracy, JSON.stringify({ guess, worked, checked }));
    // A chain that checks every step is always right.
    const full = all.filter((s) => s.style === 'checked' && s.checks === 3);
    assert.ok(full.length > 10 && full.every((s) => s.correct));
  });

  it('guessRateBySteps sets the guess rate of problems by their number of operations', () => {
    const styles = { ...MIX, guessRate: 0.5, guessRateBySteps: { '2': 0.1, '5': 0.9 } };
    const rng = new Rng(4);
    const guesses = new Map<number, { n: number; guessed: number }>();
    for (let i = 0; i < 4000; i++) {
      const problem = drawTrainingProblem(rng, ARITHMETIC_LEVELS[5]);
      const steps = problem.steps.length;
      const seen = guesses.get(steps) ?? { n: 0, guessed: 0 };
      seen.n++;
      if (styledSolution(rng, problem, styles).style === 'guess') seen.guessed++;
      guesses.set(steps, seen);
    }
    // 2 and 5 steps at their own rates, 3 and 4 at guessRate.
    for (const [steps, rate] of [[2, 0.1], [3, 0.5], [4, 0.5], [5, 0.9]] as const) {
      const { n, guessed } = guesses.get(steps)!;
      assert.ok(Math.abs(guessed / n - rate) < 0.05, `${steps} steps: ${guessed} of ${n}`);
    }
  });

  it('fractions outside [0, 1] are refused, naming the field', () => {
    assert.throws(() => checkReasoningStyles({ ...MIX, slipRate: 1.5 }), /slipRate must be a fraction in \[0, 1\], got 1\.5/);
    assert.throws(() => checkReasoningStyles({ ...MIX, guessRateBySteps: { '3': 2 } }), /guessRateBySteps\.3 must be a fraction in \[0, 1\], got 2/);
    assert.throws(() => checkReasoningStyles({ ...MIX, guessRateBySteps: { three: 0.5 } }), /guessRateBySteps keys must be numbers of operations/);
  });
});

describe('styledPretrainingText', () => {
  it('writes R1-Zero documents of training problems only, in format at the given rate', () => {
    const docs = styledPretrainingText(new Rng(3), 800, { styles: MIX, formatRate: 0.9, level: 2 });
    const held = new Set(arithmeticTask({ level: 2 }).testSet(200).map((e) => e.question));
    for (const doc of docs) {
      assert.match(doc, /^A conversation between User and Assistant\./);
      const question = doc.slice(doc.indexOf('User: ') + 6, doc.indexOf('. Assistant:'));
      assert.ok(!held.has(question), `a held-out question in the pretraining text: ${question}`);
    }
    const formatted = docs.filter((d) => /Assistant: <think> [^<]+ <\/think> <answer> \d+ <\/answer>$/.test(d)).length / docs.length;
    assert.ok(Math.abs(formatted - 0.9) < 0.04, String(formatted));
    assert.deepEqual(styledPretrainingText(new Rng(3), 5, { styles: MIX, formatRate: 0.9, level: 2 }), docs.slice(0, 5));
  });
});
