// Countdown, the task of TinyZero's R1-Zero reproduction (Pan et al. 2025, github.com/Jiayi-Pan/TinyZero):
// given 3 or 4 numbers and a target, write an arithmetic expression that uses each number exactly once, with
// + - * / and parentheses, whose value is the target. TinyZero checks the multiset of numbers in the answer
// against the given ones and then Python-evals the expression; here the expression goes through our own
// tokenizer and recursive-descent parser with exact rational arithmetic (so 6 / 4 * 4 is exactly 6), and
// anything outside that grammar is simply wrong. Nothing a model writes is ever executed.
//
// Problems are built so that they are always solvable: the numbers are combined pairwise in a random order
// with random operators (the Countdown game's own rule: every intermediate value a positive integer), and the
// result, when it lands in the level's target range, becomes the target. The construction expression is kept
// as `reference.solution`.
import { lastAnswerTag } from '../rewards/extract.ts';
import { Rng } from '../tensor/random.ts';
import { drawHeldOut, intBetween, isHeldOut, pick } from './split.ts';
import type { Example, Task, Verdict } from './task.ts';

// ---------------------------------------------------------------------------------------------------------
// Exact rationals

/** A rational number in lowest terms with a positive denominator. */
export interface Rational {
  num: bigint;
  den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function rational(num: bigint, den: bigint): Rational {
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

/** The operator applied to two rationals; null for division by zero. */
function applyOp(op: Operator, a: Rational, b: Rational): Rational | null {
  switch (op) {
    case '+':
      return rational(a.num * b.den + b.num * a.den, a.den * b.den);
    case '-':
      return rational(a.num * b.den - b.num * a.den, a.den * b.den);
    case '*':
      return rational(a.num * b.num, a.den * b.den);
    case '/':
      return b.num === 0n ? null : rational(a.num * b.den, a.den * b.num);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The expression language: integers, binary + - * /, parentheses, spaces. Nothing else.

export type Operator = '+' | '-' | '*' | '/';

/** Longer answers are rejected before tokenizing: a 4-number expression needs a few dozen characters. */
export const MAX_EXPRESSION_CHARS = 256;
/** Deeper parenthesis nesting is rejected, so the recursive parser's stack stays small whatever the input. */
export const MAX_NESTING = 32;
/** Longer integer literals are rejected (the given numbers have at most 4 digits at any level). */
const MAX_LITERAL_DIGITS = 9;

export type Evaluation =
  | { ok: true; value: Rational; numbers: number[] }
  | { ok: false; error: string };

type Token = { kind: 'number'; value: number } | { kind: 'op'; op: Operator } | { kind: '(' } | { kind: ')' };

function tokenize(text: string): Token[] | string {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c >= '0' && c <= '9') {
      let j = i;
      while (j < text.length && text[j] >= '0' && text[j] <= '9') j++;
      if (j - i > MAX_LITERAL_DIGITS) return `number at column ${i + 1} is too long`;
      tokens.push({ kind: 'number', value: Number(text.slice(i, j)) });
      i = j;
    } else if (c === '+' || c === '-' || c === '*' || c === '/') {
      tokens.push({ kind: 'op', op: c });
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c });
      i++;
    } else {
      return `unexpected character ${JSON.stringify(c)} at column ${i + 1}`;
    }
  }
  return tokens;
}

/**
 * Evaluates a Countdown expression exactly, or says why it is not one. Grammar (binary operators only, as in
 * the game; no unary minus, no decimals, no exponent):
 *   expr   := term (('+' | '-') term)*
 *   term   := factor (('*' | '/') factor)*
 *   factor := integer | '(' expr ')'
 * Never throws for any input string.
 */
export function evaluateExpression(text: string): Evaluation {
  if (text.length > MAX_EXPRESSION_CHARS) return { ok: false, error: `longer than ${MAX_EXPRESSION_CHARS} characters` };
  const tokens = tokenize(text);
  if (typeof tokens === 'string') return { ok: false, error: tokens };
  if (tokens.length === 0) return { ok: false, error: 'empty expression' };

  let pos = 0;
  const numbers: number[] = [];
  class ParseFailure {
    constructor(readonly error: string) {}
  }
  const fail = (error: string): never => {
    throw new ParseFailure(error);
  };
  const describe = (t: Token | undefined): string =>
    t === undefined ? 'end of input' : t.kind === 'number' ? `number ${t.value}` : t.kind === 'op' ? `'${t.op}'` : `'${t.kind}'`;

  const parseExpr = (depth: number): Rational => {
    let left = parseTerm(depth);
    for (let t = tokens[pos]; t?.kind === 'op' && (t.op === '+' || t.op === '-'); t = tokens[pos]) {
      pos++;
      left = applyOp(t.op, left, parseTerm(depth))!;
    }
    return left;
  };
  const parseTerm = (depth: number): Rational => {
    let left = parseFactor(depth);
    for (let t = tokens[pos]; t?.kind === 'op' && (t.op === '*' || t.op === '/'); t = tokens[pos]) {
      pos++;
      left = applyOp(t.op, left, parseFactor(depth)) ?? fail('division by zero');
    }
    return left;
  };
  const parseFactor = (depth: number): Rational => {
    const t = tokens[pos];
    if (t?.kind === 'number') {
      pos++;
      numbers.push(t.value);
      return { num: BigInt(t.value), den: 1n };
    }
    if (t?.kind === '(') {
      if (depth >= MAX_NESTING) fail(`parentheses nested deeper than ${MAX_NESTING}`);
      pos++;
      const inner = parseExpr(depth + 1);
      if (tokens[pos]?.kind !== ')') fail(`expected ')' but found ${describe(tokens[pos])}`);
      pos++;
      return inner;
    }
    return fail(`expected a number or '(' but found ${describe(t)}`);
  };

  try {
    const value = parseExpr(0);
    if (pos !== tokens.length) return { ok: false, error: `unexpected ${describe(tokens[pos])} after the expression` };
    return { ok: true, value, numbers };
  } catch (err) {
    if (err instanceof ParseFailure) return { ok: false, error: err.error };
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Verifier

export interface CountdownReference {
  numbers: number[];
  target: number;
  /** The expression the generator built the target from (one solution among possibly many). */
  solution: string;
}

/** Whether `expression` uses exactly the given numbers (as a multiset) and evaluates to `target`. */
export function solvesCountdown(expression: string, numbers: readonly number[], target: number): boolean {
  const result = evaluateExpression(expression);
  if (!result.ok) return false;
  if (!sameMultiset(result.numbers, numbers)) return false;
  return result.value.den === 1n && result.value.num === BigInt(target);
}

function sameMultiset(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  return x.every((v, i) => v === y[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Generator

export interface CountdownLevel {
  /** How many numbers a problem gives (one is chosen uniformly per problem). */
  counts: readonly number[];
  minNumber: number;
  maxNumber: number;
  /** Targets lie in [1, maxTarget]. */
  maxTarget: number;
}

/**
 * Level 3 is TinyZero's data (Countdown-Tasks-3to4: 3 or 4 numbers in 1..99, targets up to 100); the others
 * are an easier start and a harder end for curricula.
 */
export const COUNTDOWN_LEVELS: Readonly<Record<number, CountdownLevel>> = {
  1: { counts: [3], minNumber: 1, maxNumber: 20, maxTarget: 50 },
  2: { counts: [3], minNumber: 1, maxNumber: 50, maxTarget: 100 },
  3: { counts: [3, 4], minNumber: 1, maxNumber: 99, maxTarget: 100 },
  4: { counts: [4], minNumber: 1, maxNumber: 99, maxTarget: 1000 },
};

/** About this fraction of all problems (by numbers and target) is held out for testing, at every level. */
const TEST_FRACTION = 1 / 16;
/** The seed of the fixed test sets (training draws use the run's own seeds; the split keeps them apart). */
const TEST_SEED = 0x7e57c0d;

interface Node {
  value: number;
  text: string;
  /** Precedence of the node's top operator: 2 for * and /, 1 for + and -, 3 for a bare number. */
  precedence: number;
}

const PRECEDENCE: Record<Operator, number> = { '+': 1, '-': 1, '*': 2, '/': 2 };

/** Renders `a op b` with only the parentheses it needs. */
function combine(a: Node, op: Operator, b: Node, value: number): Node {
  const p = PRECEDENCE[op];
  const left = a.precedence < p ? `(${a.text})` : a.text;
  // The right operand also needs parentheses at equal precedence under - and / (a - (b + c), a / (b * c)).
  const right = b.precedence < p || (b.precedence === p && (op === '-' || op === '/')) ? `(${b.text})` : b.text;
  return { value, text: `${left} ${op} ${right}`, precedence: p };
}

/** One random expression over all of `numbers`, every intermediate value a positive integer. */
function randomExpression(rng: Rng, numbers: readonly number[]): Node {
  const pool: Node[] = numbers.map((n) => ({ value: n, text: String(n), precedence: 3 }));
  while (pool.length > 1) {
    const a = pool.splice(rng.int(pool.length), 1)[0];
    const b = pool.splice(rng.int(pool.length), 1)[0];
    const choices: Node[] = [combine(a, '+', b, a.value + b.value), combine(a, '*', b, a.value * b.value)];
    if (a.value > b.value) choices.push(combine(a, '-', b, a.value - b.value));
    if (b.value > a.value) choices.push(combine(b, '-', a, b.value - a.value));
    if (a.value % b.value === 0) choices.push(combine(a, '/', b, a.value / b.value));
    else if (b.value % a.value === 0) choices.push(combine(b, '/', a, b.value / a.value));
    pool.push(pick(rng, choices));
  }
  return pool[0];
}

interface Problem {
  numbers: number[];
  target: number;
  solution: string;
}

function drawProblem(rng: Rng, level: CountdownLevel): Problem {
  for (;;) {
    const count = pick(rng, level.counts);
    const numbers = Array.from({ length: count }, () => intBetween(rng, level.minNumber, level.maxNumber));
    // A few expression shapes per number set before drawing new numbers: most sets reach some target in range.
    for (let tries = 0; tries < 8; tries++) {
      const expression = randomExpression(rng, numbers);
      if (expression.value >= 1 && expression.value <= level.maxTarget) return { numbers, target: expression.value, solution: expression.text };
    }
  }
}

/** The split key: the problem as a player sees it (the order numbers are listed in does not make a new one). */
function problemKey(numbers: readonly number[], target: number): string {
  return `${[...numbers].sort((a, b) => a - b).join(',')}->${target}`;
}

/**
 * The question in TinyZero's wording (its prompt, less the tag instructions that the R1-Zero template gives). No
 * final period: the template adds one after the question.
 */
export function countdownQuestion(numbers: readonly number[], target: number): string {
  return (
    `Using the numbers [${numbers.join(', ')}], create an equation that equals ${target}. ` +
    'You can use basic arithmetic operations (+, -, *, /) and each number can only be used once. ' +
    'Write only the expression as the answer, for example <answer> (1 + 2) / 3 </answer>'
  );
}

export interface CountdownOptions {
  /** Difficulty level (COUNTDOWN_LEVELS); default 3, TinyZero's setting. */
  level?: number;
}

export function countdownTask(options: CountdownOptions = {}): Task {
  const levelNumber = options.level ?? 3;
  const level = COUNTDOWN_LEVELS[levelNumber];
  if (level === undefined) throw new RangeError(`countdown: no level ${levelNumber} (levels: ${Object.keys(COUNTDOWN_LEVELS).join(', ')})`);

  const toExample = (p: Problem, id: string): Example => ({
    id,
    question: countdownQuestion(p.numbers, p.target),
    reference: { numbers: p.numbers, target: p.target, solution: p.solution } satisfies CountdownReference,
    level: levelNumber,
  });

  return {
    name: 'countdown',
    description: `Countdown (TinyZero), level ${levelNumber}: reach the target with each of ${level.counts.join(' or ')} numbers in ${level.minNumber}..${level.maxNumber} used once`,
    sample(rng: Rng, count: number): Example[] {
      const out: Example[] = [];
      while (out.length < count) {
        const p = drawProblem(rng, level);
        const key = problemKey(p.numbers, p.target);
        if (isHeldOut(key, TEST_FRACTION)) continue;
        out.push(toExample(p, `countdown/L${levelNumber}/train/${key}`));
      }
      return out;
    },
    testSet(size = 200): Example[] {
      const problems = drawHeldOut(
        new Rng(TEST_SEED + levelNumber),
        size,
        TEST_FRACTION,
        (rng) => {
          const p = drawProblem(rng, level);
          const key = problemKey(p.numbers, p.target);
          return { key, dedupKey: key, value: p };
        },
        `countdown level ${levelNumber} test set`,
      );
      return problems.map((p, i) => toExample(p, `countdown/L${levelNumber}/test/${i}`));
    },
    verify(completion: string, example: Example): Verdict {
      const { numbers, target } = example.reference as CountdownReference;
      // The last <answer>...</answer>, as TinyZero reads it (a \boxed{} inside is unwrapped).
      const answer = lastAnswerTag(completion)?.trim() ?? null;
      return { answer, correct: answer !== null && solvesCountdown(answer, numbers, target) };
    },
  };
}
