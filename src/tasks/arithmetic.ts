// Multi-step arithmetic word problems (GSM8K-like, generated): the default task of the laptop R1-Zero run,
// where a model of a few million parameters, pretrained here, learns them by GRPO on a 2-core CPU.
//
// A problem is a short story in plain English about one running quantity (a collection of things, money, a
// baker's batch, a distance travelled, people's ages): an opening sentence states the starting value (or a
// product, "3 boxes with 4 in each"), each following sentence applies one operation to it, and a question asks
// for the result. Levels set the number of operations (1 to 4), the operators and the number ranges; every
// intermediate value is a positive integer, so the gold answer is an integer.
//
// `pretrainingText` writes the corpus a base model is pretrained on before RL: questions in the R1-Zero
// template followed by worked completions, a chosen fraction of them with an arithmetic slip and a chosen
// fraction in a broken format, so that the base model starts with a moderate pass@1 and format rate that RL
// can raise (the R1-Zero curve, SPEC.md 5, at toy scale).
import { checkAnswer } from '../rewards/answer.ts';
import { lastAnswerTag } from '../rewards/extract.ts';
import { chainOfThought } from '../rewards/language.ts';
import { r1ZeroPrompt } from '../rewards/template.ts';
import { Rng } from '../tensor/random.ts';
import { drawHeldOut, intBetween, isHeldOut, pick } from './split.ts';
import type { Example, Task, Verdict } from './task.ts';

export type ArithmeticOp = 'add' | 'sub' | 'mul' | 'div';

export const SYMBOL: Record<ArithmeticOp, string> = { add: '+', sub: '-', mul: '*', div: '/' };

export function applyArithmetic(op: ArithmeticOp, value: number, operand: number): number {
  switch (op) {
    case 'add':
      return value + operand;
    case 'sub':
      return value - operand;
    case 'mul':
      return value * operand;
    case 'div':
      return value / operand;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Levels

export interface ArithmeticLevel {
  /** Number of operations, counting a product in the opening sentence as one (the most, with minSteps). */
  steps: number;
  /** When set, each problem's number of operations is drawn uniformly in [minSteps, steps]: a mix of lengths. */
  minSteps?: number;
  ops: readonly ArithmeticOp[];
  /** Starting values lie in [2, maxStart]. */
  maxStart: number;
  /** Operands of + and - lie in [2, maxOperand]. */
  maxOperand: number;
  /** Factors and divisors lie in [2, maxFactor]. */
  maxFactor: number;
  /** No value in the story exceeds this. */
  maxValue: number;
}

/**
 * Level 1 is one addition or subtraction of a single-digit number, which a model of a few million parameters
 * partly learns from the pretraining text alone; the levels above add steps, operators and larger numbers.
 * Level 5 mixes lengths: 2 to 5 operations on level 4's numbers, so that some problems need twice the working
 * of others (the long-chain preset, configs/zero-gpu.json: a policy that learns to work longer problems out
 * writes longer chains as it learns).
 */
export const ARITHMETIC_LEVELS: Readonly<Record<number, ArithmeticLevel>> = {
  1: { steps: 1, ops: ['add', 'sub'], maxStart: 20, maxOperand: 9, maxFactor: 5, maxValue: 40 },
  2: { steps: 2, ops: ['add', 'sub', 'mul'], maxStart: 30, maxOperand: 12, maxFactor: 5, maxValue: 100 },
  3: { steps: 3, ops: ['add', 'sub', 'mul', 'div'], maxStart: 50, maxOperand: 20, maxFactor: 6, maxValue: 200 },
  4: { steps: 4, ops: ['add', 'sub', 'mul', 'div'], maxStart: 100, maxOperand: 50, maxFactor: 9, maxValue: 1000 },
  5: { steps: 5, minSteps: 2, ops: ['add', 'sub', 'mul', 'div'], maxStart: 100, maxOperand: 50, maxFactor: 9, maxValue: 1000 },
};

// ---------------------------------------------------------------------------------------------------------
// Stories

interface Person {
  name: string;
  he: string;
  him: string;
  his: string;
}

const PEOPLE: readonly Person[] = [
  ...['Mia', 'Ava', 'Lena', 'Sara', 'Nora', 'Emma', 'Lucy', 'Zoe', 'Anna', 'Ruby', 'Iris', 'Maya'].map((name) => ({ name, he: 'she', him: 'her', his: 'her' })),
  ...['Sam', 'Leo', 'Ben', 'Omar', 'Jack', 'Noah', 'Eli', 'Tom', 'Max', 'Ravi', 'Finn', 'Hugo'].map((name) => ({ name, he: 'he', him: 'him', his: 'his' })),
];

const ITEMS = ['marbles', 'stickers', 'stamps', 'shells', 'pencils', 'cards', 'beads', 'crayons', 'buttons', 'coins'];
const TREATS = ['cookies', 'muffins', 'cupcakes', 'rolls', 'pies', 'tarts'];
const PURCHASES = ['a book', 'a toy', 'lunch', 'a ticket', 'a plant', 'a scarf', 'a game', 'some paint'];
const CHORES = ['washing cars', 'walking dogs', 'mowing lawns', 'selling lemonade', 'babysitting'];
const VEHICLES = ['train', 'bus', 'car', 'truck', 'cyclist', 'boat'];

/** What one story knows while its sentences are written. */
interface Cast {
  rng: Rng;
  /** The people of the story, distinct; ages stories name a new one at each step. */
  people: Person[];
  thing: string;
}

interface Scenario {
  /** What the running quantity counts (one is picked per problem). */
  things: readonly string[];
  /** Operations its step sentences can express. */
  ops: readonly ArithmeticOp[];
  /** A realistic ceiling (ages below 100). */
  maxValue: number;
  /** Largest divisor its division sentence can state (ages say "half", "a third", "a quarter"). */
  maxDivisor: number;
  open(c: Cast, value: number): string;
  /** Opening sentence stating the product a * b, for stories that have one. */
  openProduct?(c: Cast, a: number, b: number): string;
  /** The sentence of step `index` (1-based) applying `op` with `n`. */
  step(c: Cast, op: ArithmeticOp, n: number, index: number): string;
  ask(c: Cast, steps: number): string;
}

const cap = (s: string): string => s[0].toUpperCase() + s.slice(1);

/** Words for the divisors of "half as old as" sentences (ages are not divided by numbers in plain English). */
const FRACTION_WORDS: Record<number, string> = { 2: 'half', 3: 'a third', 4: 'a quarter' };

const SCENARIOS: readonly Scenario[] = [
  {
    // A collection of small things.
    things: ITEMS,
    ops: ['add', 'sub', 'mul', 'div'],
    maxValue: Infinity,
    maxDivisor: Infinity,
    open: (c, v) => pick(c.rng, [`${c.people[0].name} has ${v} ${c.thing}.`, `${c.people[0].name} collects ${c.thing} and has ${v} of them.`]),
    openProduct: (c, a, b) =>
      pick(c.rng, [
        `${c.people[0].name} has ${a} boxes of ${c.thing} with ${b} ${c.thing} in each box.`,
        `${c.people[0].name} buys ${a} packs of ${c.thing}, and each pack holds ${b} ${c.thing}.`,
      ]),
    step: (c, op, n) => {
      const [p, friend] = c.people;
      switch (op) {
        case 'add':
          return pick(c.rng, [`${cap(p.he)} buys ${n} more ${c.thing}.`, `${friend.name} gives ${p.him} ${n} more ${c.thing}.`, `${cap(p.he)} finds ${n} more ${c.thing}.`]);
        case 'sub':
          return pick(c.rng, [`${cap(p.he)} gives ${n} ${c.thing} to ${friend.name}.`, `${cap(p.he)} loses ${n} ${c.thing}.`, `${cap(p.he)} sells ${n} ${c.thing}.`]);
        case 'mul':
          return `Then ${p.his} collection grows to ${n} times its size.`;
        case 'div':
          return `${cap(p.he)} divides ${p.his} ${c.thing} into ${n} equal groups, keeps one group and gives the rest away.`;
      }
    },
    ask: (c) => `How many ${c.thing} does ${c.people[0].name} have now?`,
  },
  {
    // Pocket money and shopping.
    things: ['dollars'],
    ops: ['add', 'sub', 'mul', 'div'],
    maxValue: Infinity,
    maxDivisor: Infinity,
    open: (c, v) => pick(c.rng, [`${c.people[0].name} has $${v}.`, `${c.people[0].name} has $${v} in ${c.people[0].his} wallet.`]),
    openProduct: (c, a, b) => `${c.people[0].name} works for ${a} hours and earns $${b} for each hour.`,
    step: (c, op, n) => {
      const [p, friend] = c.people;
      switch (op) {
        case 'add':
          return pick(c.rng, [`${cap(p.he)} earns $${n} more by ${pick(c.rng, CHORES)}.`, `${friend.name} gives ${p.him} $${n} more.`]);
        case 'sub':
          return pick(c.rng, [`${cap(p.he)} spends $${n} on ${pick(c.rng, PURCHASES)}.`, `${cap(p.he)} pays $${n} for ${pick(c.rng, PURCHASES)}.`]);
        case 'mul':
          return `Then ${p.his} savings grow to ${n} times as much.`;
        case 'div':
          return `${cap(p.he)} splits ${p.his} money into ${n} equal parts, keeps one part and gives the rest to charity.`;
      }
    },
    ask: (c) => `How many dollars does ${c.people[0].name} have now?`,
  },
  {
    // A baker's batch, shared out.
    things: TREATS,
    ops: ['add', 'sub', 'div'],
    maxValue: Infinity,
    maxDivisor: Infinity,
    open: (c, v) => `${c.people[0].name} bakes ${v} ${c.thing}.`,
    openProduct: (c, a, b) => `${c.people[0].name} bakes ${a} trays of ${c.thing} with ${b} ${c.thing} on each tray.`,
    step: (c, op, n) => {
      const p = c.people[0];
      switch (op) {
        case 'add':
          return `${cap(p.he)} bakes ${n} more ${c.thing}.`;
        case 'sub':
          return pick(c.rng, [`${cap(p.he)} sells ${n} ${c.thing}.`, `${cap(p.his)} family eats ${n} ${c.thing}.`]);
        case 'div':
          return `${cap(p.he)} packs the ${c.thing} equally into ${n} boxes, keeps one box and gives the others to neighbours.`;
        case 'mul':
          throw new Error('unreachable: the baking story has no multiplying step');
      }
    },
    ask: (c) => `How many ${c.thing} does ${c.people[0].name} have now?`,
  },
  {
    // A trip along a straight road.
    things: VEHICLES,
    ops: ['add', 'sub'],
    maxValue: Infinity,
    maxDivisor: Infinity,
    open: (c, v) => `A ${c.thing} travels ${v} km from the station.`,
    openProduct: (c, a, b) => `A ${c.thing} leaves the station and travels at ${b} km per hour for ${a} hours.`,
    step: (c, op, n) => {
      switch (op) {
        case 'add':
          return `Then it travels ${n} more km in the same direction.`;
        case 'sub':
          return `Then it turns around and goes ${n} km back toward the station.`;
        default:
          throw new Error(`unreachable: the travel story has no ${op} step`);
      }
    },
    ask: (c) => `How far from the station is the ${c.thing} now, in km?`,
  },
  {
    // Ages: each sentence introduces a new person relative to the previous one.
    things: ['years'],
    ops: ['add', 'sub', 'mul', 'div'],
    maxValue: 99,
    maxDivisor: 4,
    open: (c, v) => `${c.people[0].name} is ${v} years old.`,
    step: (c, op, n, i) => {
      const [prev, next] = [c.people[i - 1].name, c.people[i].name];
      switch (op) {
        case 'add':
          return `${next} is ${n} years older than ${prev}.`;
        case 'sub':
          return `${next} is ${n} years younger than ${prev}.`;
        case 'mul':
          return `${next} is ${n} times as old as ${prev}.`;
        case 'div':
          return `${next} is ${FRACTION_WORDS[n]} as old as ${prev}.`;
      }
    },
    ask: (c, steps) => `How old is ${c.people[steps].name}?`,
  },
];

// ---------------------------------------------------------------------------------------------------------
// Problems

export interface ArithmeticStep {
  op: ArithmeticOp;
  operand: number;
  before: number;
  after: number;
}

export interface ArithmeticProblem {
  question: string;
  /** Every operation in order; when the opening sentence states a product, it is the first step. */
  steps: ArithmeticStep[];
  answer: number;
  /** The numeric skeleton (start and operations), the key of the train/test split. */
  key: string;
}

/** Operands for `op` on `value` that keep every value a positive integer within `max`. */
function feasibleOperands(op: ArithmeticOp, value: number, level: ArithmeticLevel, max: number, scenario: Scenario): number[] {
  const out: number[] = [];
  switch (op) {
    case 'add':
      for (let n = 2; n <= level.maxOperand && value + n <= max; n++) out.push(n);
      break;
    case 'sub':
      for (let n = 2; n <= level.maxOperand && n < value; n++) out.push(n);
      break;
    case 'mul':
      for (let n = 2; n <= level.maxFactor && value * n <= max; n++) out.push(n);
      break;
    case 'div':
      for (let n = 2; n <= Math.min(level.maxFactor, scenario.maxDivisor) && n < value; n++) if (value % n === 0) out.push(n);
      break;
  }
  return out;
}

/** One problem at `level` (it may be a held-out one: callers filter by `key`). */
export function drawArithmeticProblem(rng: Rng, level: ArithmeticLevel): ArithmeticProblem {
  for (;;) {
    const scenario = pick(rng, SCENARIOS);
    const ops = level.ops.filter((op) => scenario.ops.includes(op));
    const max = Math.min(level.maxValue, scenario.maxValue);
    const count = level.minSteps === undefined ? level.steps : intBetween(rng, level.minSteps, level.steps);
    const people = shuffled(rng, PEOPLE).slice(0, count + 1);
    const cast: Cast = { rng, people, thing: pick(rng, scenario.things) };

    const steps: ArithmeticStep[] = [];
    const sentences: string[] = [];
    let value: number;
    if (scenario.openProduct !== undefined && level.ops.includes('mul') && rng.uniform() < 0.3) {
      const a = intBetween(rng, 2, level.maxFactor);
      const b = intBetween(rng, 2, Math.max(2, Math.min(level.maxOperand, Math.floor(max / a))));
      if (a * b > max) continue;
      value = a * b;
      steps.push({ op: 'mul', operand: b, before: a, after: value });
      sentences.push(scenario.openProduct(cast, a, b));
    } else {
      value = intBetween(rng, 2, Math.min(level.maxStart, max));
      sentences.push(scenario.open(cast, value));
    }

    let stuck = false;
    while (steps.length < count) {
      const choices = ops.map((op) => ({ op, operands: feasibleOperands(op, value, level, max, scenario) })).filter((c) => c.operands.length > 0);
      if (choices.length === 0) {
        stuck = true;
        break;
      }
      const { op, operands } = pick(rng, choices);
      const operand = pick(rng, operands);
      const after = applyArithmetic(op, value, operand);
      steps.push({ op, operand, before: value, after });
      sentences.push(scenario.step(cast, op, operand, sentences.length));
      value = after;
    }
    if (stuck) continue;
    sentences.push(scenario.ask(cast, sentences.length - 1));
    return { question: sentences.join(' '), steps, answer: value, key: skeletonKey(steps) };
  }
}

/**
 * The number of operations of a generated question, read from its wording: one sentence opens, one per
 * operation follows, one asks; an opening that states a product (two numbers) is an operation too. What a run's
 * analysis groups problems by (bench/zero_curves.ts: length of the answer against length of the problem).
 */
export function operationsOfQuestion(question: string): number {
  const sentences = question.split(/(?<=[.?])\s+/).filter((s) => s.length > 0);
  const openingNumbers = sentences[0].match(/\d+/g)?.length ?? 0;
  return sentences.length - 2 + (openingNumbers === 2 ? 1 : 0);
}

/** Start and operations, e.g. `12+5-3`; a leading product is written smaller factor first (3*4 is 4*3). */
function skeletonKey(steps: readonly ArithmeticStep[]): string {
  const [first, ...rest] = steps;
  const head = first.op === 'mul' ? `${Math.min(first.before, first.operand)}*${Math.max(first.before, first.operand)}` : `${first.before}${SYMBOL[first.op]}${first.operand}`;
  return head + rest.map((s) => `${SYMBOL[s.op]}${s.operand}`).join('');
}

function shuffled<T>(rng: Rng, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** About this fraction of numeric skeletons is held out: no wording of a test problem's arithmetic is trained on. */
const TEST_FRACTION = 1 / 8;
const TEST_SEED = 0xa217;

export function resolveLevel(levelNumber: number): ArithmeticLevel {
  const level = ARITHMETIC_LEVELS[levelNumber];
  if (level === undefined) throw new RangeError(`arithmetic: no level ${levelNumber} (levels: ${Object.keys(ARITHMETIC_LEVELS).join(', ')})`);
  return level;
}

/** A training problem: never one whose skeleton is held out. */
export function drawTrainingProblem(rng: Rng, level: ArithmeticLevel): ArithmeticProblem {
  for (;;) {
    const p = drawArithmeticProblem(rng, level);
    if (!isHeldOut(p.key, TEST_FRACTION)) return p;
  }
}

/** The step-by-step working, one equation per operation ("12 + 5 = 17. 17 / 2 = ..."). */
export function workedSteps(steps: readonly ArithmeticStep[]): string {
  return steps.map((s) => `${s.before} ${SYMBOL[s.op]} ${s.operand} = ${s.after}.`).join(' ');
}

// ---------------------------------------------------------------------------------------------------------
// Chains of thought in words, in two languages

/** Languages a chain of thought can be written in (names as the language reward's targets, rewards/language.ts). */
export const CHAIN_LANGUAGES = ['en', 'zh'] as const;
export type ChainLanguage = (typeof CHAIN_LANGUAGES)[number];

interface ChainPhrases {
  start: (value: number) => string;
  step: Record<ArithmeticOp, (operand: number) => string>;
  end: (answer: number) => string;
  /** Sentence end. */
  stop: string;
}

// Short phrases around each equation: enough words for the language reward to measure (a Han character is a
// word by itself), few enough tokens for a 48-token completion of a one-step problem.
export const CHAIN_PHRASES: Record<ChainLanguage, ChainPhrases> = {
  en: {
    start: (v) => `start with ${v}.`,
    step: { add: (n) => `add ${n}:`, sub: (n) => `take away ${n}:`, mul: (n) => `times ${n}:`, div: (n) => `split into ${n}:` },
    end: (answer) => `so the answer is ${answer}.`,
    stop: '.',
  },
  zh: {
    start: (v) => `从${v}开始。`,
    step: { add: (n) => `加${n}：`, sub: (n) => `减${n}：`, mul: (n) => `乘${n}：`, div: (n) => `除以${n}：` },
    end: (answer) => `所以答案是${answer}。`,
    stop: '。',
  },
};

/**
 * A chain of thought in words: the starting value, one phrase and equation per operation, the conclusion.
 * Sentences are numbered 0 (the start) to steps.length + 1 (the conclusion); with `switchTo`, sentences from
 * `at` on are in the other language: the language mixing of R1-Zero's chains.
 */
export function reasoningChain(steps: readonly ArithmeticStep[], language: ChainLanguage, switchTo?: { at: number; to: ChainLanguage }): string {
  const phrases = (sentence: number) => CHAIN_PHRASES[switchTo !== undefined && sentence >= switchTo.at ? switchTo.to : language];
  const sentences = [phrases(0).start(steps[0].before)];
  steps.forEach((s, i) => {
    const p = phrases(i + 1);
    sentences.push(`${p.step[s.op](s.operand)} ${s.before} ${SYMBOL[s.op]} ${s.operand} = ${s.after}${p.stop}`);
  });
  sentences.push(phrases(steps.length + 1).end(steps[steps.length - 1].after));
  return sentences.join(' ');
}

/**
 * The steps of a chain of thought written by reasoningChain or workedSteps, in either language or mixed,
 * read back from its equations ("12 + 5 = 17"); null when the chain has no equation or its equations do not
 * follow one another (each starting from the previous result). What a rewriter needs to restate a trace.
 */
export function stepsOfChain(chain: string): ArithmeticStep[] | null {
  const steps: ArithmeticStep[] = [];
  for (const m of chain.matchAll(/(\d+) ([-+*\/]) (\d+) = (\d+)/g)) {
    const op = OP_OF_SYMBOL[m[2]];
    const [before, operand, after] = [Number(m[1]), Number(m[3]), Number(m[4])];
    if (steps.length > 0 && steps[steps.length - 1].after !== before) return null;
    steps.push({ op, operand, before, after });
  }
  return steps.length > 0 ? steps : null;
}

const OP_OF_SYMBOL: Record<string, ArithmeticOp> = { '+': 'add', '-': 'sub', '*': 'mul', '/': 'div' };

/**
 * R1's readable form of a solution (SPEC.md 4, cold start): the chain of thought in one language inside
 * `<think>`, then a one-sentence summary with the answer in \boxed{} (R1v2 B.3.2's summary prompt).
 */
export function readableSolution(steps: readonly ArithmeticStep[], language: ChainLanguage): string {
  return `<think> ${reasoningChain(steps, language)} </think> ${SUMMARY[language](steps[steps.length - 1].after)}`;
}

const SUMMARY: Record<ChainLanguage, (answer: number) => string> = {
  en: (answer) => `The answer is \\boxed{${answer}}.`,
  zh: (answer) => `答案是\\boxed{${answer}}。`,
};

/**
 * A kept R1-Zero trace rewritten into the readable form in `language` (R1v2 B.3.2: DeepSeek-V3 translated the
 * thinking "to the same language as the question" and added a summary; here the rewriter reads the trace's
 * equations back and restates them). null when the trace has no chain of equations, its chain does not end
 * at the answer it gives in <answer> tags, or one of its equations is false ("20 - 2 = 1": a right answer reached
 * by wrong reasoning, which a weak R1-Zero writes often and R1's cold-start post-processing would not keep): such
 * a trace cannot be restated faithfully.
 */
export function rewriteReadable(completion: string, language: ChainLanguage): string | null {
  const steps = stepsOfChain(chainOfThought(completion));
  if (steps === null || steps.some((s) => applyArithmetic(s.op, s.before, s.operand) !== s.after)) return null;
  const answer = lastAnswerTag(completion);
  if (answer === null || answer.trim() !== String(steps[steps.length - 1].after)) return null;
  return readableSolution(steps, language);
}

export interface ArithmeticOptions {
  /** Difficulty level (ARITHMETIC_LEVELS); default 1. */
  level?: number;
}

export function arithmeticTask(options: ArithmeticOptions = {}): Task {
  const levelNumber = options.level ?? 1;
  const level = resolveLevel(levelNumber);
  const toExample = (p: ArithmeticProblem, id: string): Example => ({ id, question: p.question, reference: String(p.answer), level: levelNumber });
  return {
    name: 'arithmetic',
    description: `arithmetic word problems, level ${levelNumber}: ${level.minSteps === undefined ? '' : `${level.minSteps} to `}${level.steps} step${level.steps > 1 ? 's' : ''} of ${level.ops.map((op) => SYMBOL[op]).join(' ')}`,
    sample(rng: Rng, count: number): Example[] {
      return Array.from({ length: count }, () => {
        const p = drawTrainingProblem(rng, level);
        return toExample(p, `arithmetic/L${levelNumber}/train/${p.key}`);
      });
    },
    testSet(size = 200): Example[] {
      const problems = drawHeldOut(
        new Rng(TEST_SEED + levelNumber),
        size,
        TEST_FRACTION,
        (rng) => {
          const p = drawArithmeticProblem(rng, level);
          return { key: p.key, dedupKey: p.question, value: p };
        },
        `arithmetic level ${levelNumber} test set`,
      );
      return problems.map((p, i) => toExample(p, `arithmetic/L${levelNumber}/test/${i}`));
    },
    // R1-Zero's required place (SPEC.md 3): only an answer inside <answer> tags counts.
    verify(completion: string, example: Example): Verdict {
      return checkAnswer(completion, example.reference as string, ['answer-tag']);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Pretraining text for the base model

export interface PretrainingTextOptions {
  /** Fraction of completions whose final answer is right; the others carry an arithmetic slip. */
  correctRate: number;
  /** Fraction of completions in the exact `<think> ... </think> <answer> ... </answer>` format. */
  formatRate: number;
  /** Level or levels to draw problems from (uniformly); default 1. */
  level?: number | readonly number[];
  /**
   * Chains of thought in words of two languages (reasoningChain) instead of bare equations; absent: bare
   * equations (workedSteps), the R1-Zero demo's text.
   */
  languages?: ChainLanguageMix;
}

/**
 * How a bilingual pretraining text writes its chains of thought (the R1 pipeline's base model, SPEC.md 4): a
 * chain is in English, in the second language, or starts in one and switches to the other at a step boundary.
 * Chains in the second language are right more often (`secondCorrectRate` instead of `correctRate`): the
 * miniature's stand-in for whatever makes R1-Zero drift into other languages, so that reward for accuracy
 * alone pulls the chains away from English and the language-consistency reward has an accuracy cost to show
 * (R1 sec. 2.3.2 reports that cost), measured rather than assumed.
 */
export interface ChainLanguageMix {
  second: ChainLanguage;
  /** Fraction of chains that start in the second language. */
  secondRate: number;
  /** Fraction of chains that switch language at a step boundary. */
  switchRate: number;
  /** Fraction of right answers among chains that start in the second language. */
  secondCorrectRate: number;
}

/**
 * `count` documents, each an R1-Zero prompt (SPEC.md 2) followed by a worked completion. Correctness and
 * format are drawn independently: a broken-format completion still states its final answer last (the answer is
 * the last number of every completion), so accuracy is measurable on all of them. Problems come from the
 * training side of the split only.
 */
export function pretrainingText(rng: Rng, count: number, options: PretrainingTextOptions): string[] {
  const { correctRate, formatRate } = options;
  if (!(correctRate >= 0 && correctRate <= 1)) throw new RangeError(`pretrainingText: correctRate must be in [0, 1], got ${correctRate}`);
  if (!(formatRate >= 0 && formatRate <= 1)) throw new RangeError(`pretrainingText: formatRate must be in [0, 1], got ${formatRate}`);
  const levels = (typeof options.level === 'number' ? [options.level] : options.level ?? [1]).map(resolveLevel);
  const mix = options.languages;
  const docs: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = drawTrainingProblem(rng, pick(rng, levels));
    const language: ChainLanguage = mix !== undefined && rng.uniform() < mix.secondRate ? mix.second : 'en';
    const correct = rng.uniform() < (language === 'en' ? correctRate : mix!.secondCorrectRate);
    const formatted = rng.uniform() < formatRate;
    const steps = correct ? p.steps : withSlip(rng, p);
    const switchAt = mix !== undefined && rng.uniform() < mix.switchRate ? 1 + rng.int(steps.length + 1) : null;
    const working = mix === undefined ? workedSteps(steps) : reasoningChain(steps, language, switchAt === null ? undefined : { at: switchAt, to: language === 'en' ? mix.second : 'en' });
    const final = steps[steps.length - 1].after;
    docs.push(`${r1ZeroPrompt(p.question)} ${formatted ? formattedCompletion(working, final) : brokenCompletion(rng, working, final)}`);
  }
  return docs;
}

export function formattedCompletion(working: string, final: number): string {
  return `<think> ${working} </think> <answer> ${final} </answer>`;
}

/** The ways small models break the R1-Zero format: no tags, an unclosed think, an untagged or a think-less answer. */
export function brokenCompletion(rng: Rng, working: string, final: number): string {
  switch (rng.int(4)) {
    case 0:
      return `${working} The answer is ${final}.`;
    case 1:
      return `<think> ${working} <answer> ${final} </answer>`;
    case 2:
      return `<think> ${working} </think> The answer is ${final}.`;
    default:
      return `${working} <answer> ${final} </answer>`;
  }
}

/**
 * The steps with one arithmetic slip: one result off by 1 to 3 (or by 10, a carry error), the later steps
 * carried out from the wrong value (a division that no longer comes out even is floored). The final answer is
 * always wrong.
 */
function withSlip(rng: Rng, p: ArithmeticProblem): ArithmeticStep[] {
  const slipAt = rng.int(p.steps.length);
  const out: ArithmeticStep[] = [];
  let value = p.steps[0].before;
  for (let i = 0; i < p.steps.length; i++) {
    const { op, operand } = p.steps[i];
    let after = op === 'div' ? Math.floor(value / operand) : applyArithmetic(op, value, operand);
    if (i === slipAt) {
      const size = rng.uniform() < 0.2 ? 10 : intBetween(rng, 1, 3);
      after += after > size && rng.uniform() < 0.5 ? -size : size;
    }
    if (i === p.steps.length - 1 && after === p.answer) after += 1;
    out.push({ op, operand, before: value, after });
    value = after;
  }
  return out;
}
