// Pretraining text whose solutions differ in length and in how often they are right (issue 16): the base model
// of R1-Zero's long-chain run learns several ways of answering an arithmetic word problem, and GRPO then finds
// which of them pays. The ways, from shortest to longest:
//
//   guess    "<think> i think it is 47. </think> <answer> 47 </answer>": no working, right only guessCorrectRate
//            of the time (and far less often for a model, which cannot do three operations in one token);
//   worked   one equation per operation, as the chains of reasoningChain ("add 5: 12 + 5 = 17."), each step
//            slipping (a result off by 1-3 or by 10, carried on) with probability slipRate;
//   checked  a worked chain that checks some of its steps by the inverse operation ("check: 17 - 5 = 12.
//            right."); a checked step that slipped is caught and redone ("check: 18 - 5 = 13, not 12. wait,
//            that is a mistake: 12 + 5 = 17."). How many steps a chain checks varies from chain to chain (each
//            checked chain checks each step with a probability drawn uniformly in [0, 1]), so length is a
//            continuum and every extra check makes a right answer more likely.
//
// So longer, checked reasoning is within the base model's reach, but not its habit: with the preset's shares
// most completions are guesses or unchecked chains. The checks are real computations a model can do (an
// inverse operation on numbers it has just written), not a marker of correctness: a model that keeps the
// habit of checking catches its own slips, which is why checking can pay for it as it does in the text.
import { r1ZeroPrompt } from '../rewards/template.ts';
import type { Rng } from '../tensor/random.ts';
import {
  applyArithmetic, brokenCompletion, CHAIN_PHRASES, drawTrainingProblem, formattedCompletion, resolveLevel, SYMBOL,
  type ArithmeticProblem, type ArithmeticStep,
} from './arithmetic.ts';
import { intBetween, pick } from './split.ts';

/** The mix of answering styles in a base model's pretraining text (see the file comment). */
export interface ReasoningStyles {
  /** Fraction of completions that guess the answer without working. */
  guessRate: number;
  /**
   * Guess rates for problems of a given number of operations ({"2": 0.3, "5": 0.95}), in place of guessRate for
   * those: text that works short problems out and guesses long ones, so that a policy learns to work out the long
   * ones later than the short ones (the long-chain preset on level 5's mixed lengths).
   */
  guessRateBySteps?: Readonly<Record<string, number>>;
  /** Fraction of guesses that are right (the others are near misses). */
  guessCorrectRate: number;
  /**
   * Fraction of worked chains that may check steps: each such chain checks each step with a probability drawn
   * uniformly in [0, 1] (so some check none; a solution's style is 'checked' when it checked at least one step).
   */
  checkedRate: number;
  /** Probability that one step of a worked chain slips; a checked step catches and redoes its slip. */
  slipRate: number;
}

export type ReasoningStyle = 'guess' | 'worked' | 'checked';

/** How a guess's working begins ("i think it is 47."): a completion that starts so answers without working. */
export const GUESS_OPENING = 'i think it is';

/** One written solution and what it is made of (tests and the corpus statistics read these). */
export interface StyledSolution {
  style: ReasoningStyle;
  /** The chain of thought (what goes inside <think>). */
  working: string;
  /** The answer the solution gives. */
  final: number;
  correct: boolean;
  /** Steps checked by their inverse operation. */
  checks: number;
  /** Slips made; `caught` of them were caught by a check and redone. */
  slips: number;
  caught: number;
}

export function checkReasoningStyles(styles: ReasoningStyles, where = 'reasoning styles'): void {
  const { guessRateBySteps = {}, ...rates } = styles;
  const fractions = [...Object.entries(rates), ...Object.entries(guessRateBySteps).map(([steps, value]) => [`guessRateBySteps.${steps}`, value] as const)];
  for (const [name, value] of fractions) {
    if (!(typeof value === 'number' && value >= 0 && value <= 1)) throw new RangeError(`${where}: ${name} must be a fraction in [0, 1], got ${value}`);
  }
  for (const steps of Object.keys(guessRateBySteps)) {
    if (!/^[1-9]\d*$/.test(steps)) throw new RangeError(`${where}: guessRateBySteps keys must be numbers of operations (1, 2, ...), got "${steps}"`);
  }
}

/** The guess rate of a problem of `steps` operations. */
export function guessRateFor(styles: ReasoningStyles, steps: number): number {
  return styles.guessRateBySteps?.[String(steps)] ?? styles.guessRate;
}

/** A solution of `problem` in a style drawn from `styles`. */
export function styledSolution(rng: Rng, problem: ArithmeticProblem, styles: ReasoningStyles): StyledSolution {
  if (rng.uniform() < guessRateFor(styles, problem.steps.length)) {
    const correct = rng.uniform() < styles.guessCorrectRate;
    const final = correct ? problem.answer : nearMiss(rng, problem.answer);
    return { style: 'guess', working: `${GUESS_OPENING} ${final}.`, final, correct, checks: 0, slips: 0, caught: 0 };
  }
  const checkRate = rng.uniform() < styles.checkedRate ? rng.uniform() : 0;
  const en = CHAIN_PHRASES.en;
  const sentences = [en.start(problem.steps[0].before)];
  let value = problem.steps[0].before;
  let [checks, slips, caught] = [0, 0, 0];
  problem.steps.forEach((step, i) => {
    const later = problem.steps.slice(i + 1);
    const checked = rng.uniform() < checkRate;
    const right = applyArithmetic(step.op, value, step.operand);
    // A slip checked is redone, so any wrong value will do; unchecked, it is carried on and must leave every
    // later step a positive integer (divisions exact) for the chain to stay arithmetic a reader can follow. A
    // slip never lands on the problem's own value at that step: a chain off track by an earlier slip is not put
    // back on it by a second, so a chain is right exactly when all its slips were caught.
    const slipped = rng.uniform() < styles.slipRate ? slipValue(rng, right, step.after, checked ? [] : later) : null;
    const written = slipped ?? right;
    let sentence = `${en.step[step.op](step.operand)} ${equation(value, step.op, step.operand, written)}.`;
    if (checked) {
      checks++;
      const check = inverseCheck({ op: step.op, operand: step.operand, before: value, after: written });
      sentence += ` check: ${check.text} = ${check.value}`;
      sentence += check.value === check.expected ? '. right.' : `, not ${check.expected}. wait, that is a mistake: ${equation(value, step.op, step.operand, right)}.`;
    }
    if (slipped !== null) slips++;
    if (slipped !== null && checked) caught++;
    sentences.push(sentence);
    value = checked ? right : written;
  });
  sentences.push(en.end(value));
  return { style: checks > 0 ? 'checked' : 'worked', working: sentences.join(' '), final: value, correct: value === problem.answer, checks, slips, caught };
}

function equation(before: number, op: ArithmeticStep['op'], operand: number, after: number): string {
  return `${before} ${SYMBOL[op]} ${operand} = ${after}`;
}

/**
 * The check of one step by its inverse: `after - operand` should give back `before` (and `after + operand` for
 * a subtraction, `after * operand` for a division); a product is checked by multiplying the other way round,
 * which should give `after` (its inverse, a division, would not come out even after a slip).
 */
export function inverseCheck(step: ArithmeticStep): { text: string; value: number; expected: number } {
  const { op, operand, before, after } = step;
  switch (op) {
    case 'add':
      return { text: `${after} - ${operand}`, value: after - operand, expected: before };
    case 'sub':
      return { text: `${after} + ${operand}`, value: after + operand, expected: before };
    case 'div':
      return { text: `${after} * ${operand}`, value: after * operand, expected: before };
    case 'mul':
      return { text: `${operand} * ${before}`, value: operand * before, expected: after };
  }
}

/**
 * A wrong result near `right` (off by 1-3, or by 10: a carry error), other than `onTrack`, from which every later
 * step stays exact; null if none is.
 */
function slipValue(rng: Rng, right: number, onTrack: number, later: readonly ArithmeticStep[]): number | null {
  const sizes = rng.uniform() < 0.2 ? [10, 1, 2, 3] : [intBetween(rng, 1, 3), 10];
  for (const size of sizes) {
    for (const sign of rng.uniform() < 0.5 ? [-1, 1] : [1, -1]) {
      const wrong = right + sign * size;
      if (wrong > 0 && wrong !== onTrack && carriesOn(wrong, later)) return wrong;
    }
  }
  return null;
}

/** Whether the later steps applied to `value` keep every value a positive integer. */
function carriesOn(value: number, later: readonly ArithmeticStep[]): boolean {
  for (const { op, operand } of later) {
    value = applyArithmetic(op, value, operand);
    if (!Number.isInteger(value) || value <= 0) return false;
  }
  return true;
}

/** A wrong answer a guess might give: the right one off by 1 to 10. */
function nearMiss(rng: Rng, answer: number): number {
  const size = intBetween(rng, 1, 10);
  return answer > size && rng.uniform() < 0.5 ? answer - size : answer + size;
}

export interface StyledTextOptions {
  styles: ReasoningStyles;
  /** Fraction of completions in the exact `<think> ... </think> <answer> ... </answer>` format. */
  formatRate: number;
  /** Level or levels to draw problems from (uniformly); default 1. */
  level?: number | readonly number[];
}

/**
 * `count` documents, each an R1-Zero prompt followed by a solution in a style drawn from `options.styles`:
 * pretrainingText's documents with the styles' chains instead of bare equations. Problems come from the
 * training side of the split only.
 */
export function styledPretrainingText(rng: Rng, count: number, options: StyledTextOptions): string[] {
  checkReasoningStyles(options.styles);
  if (!(options.formatRate >= 0 && options.formatRate <= 1)) throw new RangeError(`styledPretrainingText: formatRate must be in [0, 1], got ${options.formatRate}`);
  const levels = (typeof options.level === 'number' ? [options.level] : options.level ?? [1]).map(resolveLevel);
  return Array.from({ length: count }, () => {
    const problem = drawTrainingProblem(rng, pick(rng, levels));
    const { working, final } = styledSolution(rng, problem, options.styles);
    const completion = rng.uniform() < options.formatRate ? formattedCompletion(working, final) : brokenCompletion(rng, working, final);
    return `${r1ZeroPrompt(problem.question)} ${completion}`;
  });
}

