// Code tasks: programming problems whose completions are programs, judged by running them against tests in the
// sandbox (src/rewards/code.ts, src/rewards/sandbox.ts), R1's code reward (SPEC.md 3).
//
// Two sources. `code` generates short stdin/stdout programs a model of a few million parameters pretrained here
// can learn: read two integers, print a formula of them ("prints a * 3 + b"), with levels for longer formulas.
// `code:PATH` reads a user's JSONL file, one problem a line:
//   {"prompt": "...", "tests": [{"input": "1 2\n", "output": "3\n"} | {"assert": "assert add(1, 2) == 3"}],
//    "language": "python" | "javascript" (default: the task's), "entry_point": "add" (optional: the function the
//    assert tests call), "solution": "..." (optional reference solution)}
// The question field may also be called "question" or "problem". The held-out split is by a hash of the prompt,
// as for math files (jsonl.ts).
//
// The verdict of a completion is the sandbox's: correct when every test passes; its score (the reward) is the
// fraction of tests passed or all-or-nothing (`scoring`); its status says what went wrong.
import { basename } from 'node:path';
import { readJsonlObjects } from '../io/jsonl.ts';
import { CODE_SCORINGS, codeScore, extractProgram, judgePrograms, parseCodeTests, type CodeProgram, type CodeScoring, type CodeTest, type CodeVerdict } from '../rewards/code.ts';
import { LANGUAGES, sharedSandbox, type Language, type Sandbox, type SandboxOptions } from '../rewards/sandbox.ts';
import { r1ZeroPrompt } from '../rewards/template.ts';
import { Rng } from '../tensor/random.ts';
import { UserError } from '../util/errors.ts';
import { drawWithoutReplacement, hash32, intBetween, isHeldOut, pick } from './split.ts';
import type { Example, Task, Verdict, VerifyItem } from './task.ts';

/** What a code example's verifier checks against (Example.reference of code tasks). */
export interface CodeReference {
  language: Language;
  tests: CodeTest[];
  /** The function the assert tests call, when they call one. */
  entryPoint?: string;
  /** A program that passes the tests. */
  solution?: string;
}

export interface CodeTaskOptions {
  /** Language of generated problems, and of file problems that name none (default python). */
  language?: Language;
  /** Reward of a verdict: fraction of tests passed (default) or all-or-nothing. */
  scoring?: CodeScoring;
  /** Limits, workers and interpreters of the sandbox. */
  sandbox?: SandboxOptions;
}

/** Verifies code completions: extracts each program and judges all of a batch's programs in one sandbox call. */
function codeVerifier(sandbox: Sandbox, scoring: CodeScoring): Pick<Task, 'verify' | 'verifyMany'> {
  const verifyMany = (items: readonly VerifyItem[]): Verdict[] => {
    const programs: CodeProgram[] = items.map(({ completion, example }) => {
      const reference = example.reference as CodeReference;
      return { language: reference.language, code: extractProgram(completion, reference.language), tests: reference.tests };
    });
    return judgePrograms(sandbox, programs).map((verdict, i) => codeVerdict(programs[i].code, verdict, scoring));
  };
  return { verifyMany, verify: (completion, example) => verifyMany([{ completion, example }])[0] };
}

function codeVerdict(code: string | null, verdict: CodeVerdict, scoring: CodeScoring): Verdict {
  return { answer: code, correct: verdict.status === 'passed', score: codeScore(verdict, scoring), status: verdict.status };
}

/** The sandbox of a code task, checked at the start: it exists and runs each of the languages given. */
function openSandbox(options: CodeTaskOptions, languages: Iterable<Language>): Sandbox {
  const scoring = options.scoring ?? 'fraction';
  if (!(CODE_SCORINGS as readonly string[]).includes(scoring)) throw new UserError(`code task: scoring must be one of ${CODE_SCORINGS.join(', ')}, got ${scoring}`);
  const sandbox = sharedSandbox(options.sandbox);
  for (const language of languages) sandbox.interpreter(language);
  return sandbox;
}

function checkLanguage(language: string, where: string): Language {
  if (!(LANGUAGES as readonly string[]).includes(language)) throw new UserError(`${where}: language must be one of ${LANGUAGES.join(', ')}, got ${JSON.stringify(language)}`);
  return language as Language;
}

// ---------------------------------------------------------------------------------------------------------
// The generated task: print a formula of two integers read from stdin

export interface CodeLevel {
  /** Formulas of this level, each an expression of a and b valid in both Python and JavaScript. */
  formulas: readonly string[];
  description: string;
}

const OPS = ['+', '-', '*'] as const;
const CONSTANTS = Array.from({ length: 8 }, (_, i) => i + 2);

function levelOneFormulas(): string[] {
  const out = new Set<string>();
  for (const op of OPS) {
    out.add(`a ${op} b`).add(`b ${op} a`);
    for (const k of CONSTANTS) out.add(`a ${op} ${k}`).add(`b ${op} ${k}`).add(`${k} ${op} a`);
  }
  return [...out];
}

function levelTwoFormulas(): string[] {
  const out = new Set<string>();
  for (const op1 of OPS) for (const op2 of OPS) for (const k of CONSTANTS) {
    out.add(`a ${op1} b ${op2} ${k}`).add(`(a ${op1} b) ${op2} ${k}`).add(`a ${op1} ${k} ${op2} b`).add(`${k} ${op1} a ${op2} b`);
  }
  return [...out];
}

export const CODE_LEVELS: Readonly<Record<number, CodeLevel>> = {
  1: { formulas: levelOneFormulas(), description: 'one operation (+ - *) on a, b or a constant' },
  2: { formulas: levelTwoFormulas(), description: 'two operations (+ - *) with a constant, precedence and parentheses' },
};

const CODE_TEST_FRACTION = 1 / 8;
const TESTS_PER_PROBLEM = 3;
const LANGUAGE_NAMES: Record<Language, string> = { python: 'Python', javascript: 'JavaScript (Node.js)' };

/** The program that reads a and b and prints the formula, in the language (String() prints -0 as 0, as Python does). */
export function formulaProgram(language: Language, formula: string): string {
  return language === 'python'
    ? `a, b = map(int, input().split())\nprint(${formula})\n`
    : `const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\nconsole.log(String(${formula}));\n`;
}

/** Evaluates a formula of the generated task (integers, + - * and parentheses: the same in Python and JavaScript). */
export function evaluateFormula(formula: string, a: number, b: number): number {
  const tokens = formula.match(/\d+|[ab()+\-*]/g) ?? [];
  let at = 0;
  const primary = (): number => {
    const token = tokens[at++];
    if (token === '(') {
      const value = sum();
      at++; // ')'
      return value;
    }
    return token === 'a' ? a : token === 'b' ? b : Number(token);
  };
  const product = (): number => {
    let value = primary();
    while (tokens[at] === '*') {
      at++;
      value *= primary();
    }
    return value;
  };
  const sum = (): number => {
    let value = product();
    while (tokens[at] === '+' || tokens[at] === '-') {
      const op = tokens[at++];
      value = op === '+' ? value + product() : value - product();
    }
    return value;
  };
  return sum();
}

function formulaQuestion(language: Language, formula: string): string {
  return `Write a ${LANGUAGE_NAMES[language]} program that reads two integers a and b from standard input, on one line separated by a space, and prints ${formula}`;
}

function formulaTests(rng: Rng, formula: string): CodeTest[] {
  return Array.from({ length: TESTS_PER_PROBLEM }, () => {
    const a = intBetween(rng, -20, 20);
    const b = intBetween(rng, -20, 20);
    return { input: `${a} ${b}\n`, output: `${evaluateFormula(formula, a, b)}\n` };
  });
}

export interface GeneratedCodeOptions extends CodeTaskOptions {
  /** Difficulty level (CODE_LEVELS); default 1. */
  level?: number;
}

function resolveCodeLevel(level: number): CodeLevel {
  const found = CODE_LEVELS[level];
  if (found === undefined) throw new UserError(`task code: level must be one of ${Object.keys(CODE_LEVELS).join(', ')}, got ${level}`);
  return found;
}

/** The generated code task: formulas held out by a hash of their text, each example with fresh test inputs. */
export function generatedCodeTask(options: GeneratedCodeOptions = {}): Task {
  const levelNumber = options.level ?? 1;
  const level = resolveCodeLevel(levelNumber);
  const language = checkLanguage(options.language ?? 'python', 'task code');
  const scoring = options.scoring ?? 'fraction';
  const sandbox = openSandbox(options, [language]);
  const train = level.formulas.filter((f) => !isHeldOut(f, CODE_TEST_FRACTION));
  const test = level.formulas.filter((f) => isHeldOut(f, CODE_TEST_FRACTION));
  const toExample = (formula: string, tests: CodeTest[], id: string): Example => ({
    id, question: formulaQuestion(language, formula), level: levelNumber,
    reference: { language, tests, solution: formulaProgram(language, formula) } satisfies CodeReference,
  });
  return {
    name: 'code',
    description: `${LANGUAGE_NAMES[language]} programs, level ${levelNumber}: ${level.description} (${train.length} formulas for training, ${test.length} held out)`,
    sample(rng: Rng, count: number): Example[] {
      return Array.from({ length: count }, () => {
        const formula = pick(rng, train);
        return toExample(formula, formulaTests(rng, formula), `code/L${levelNumber}/train/${formula}`);
      });
    },
    testSet(size?: number): Example[] {
      // Every held-out formula once, its tests drawn from a generator seeded by the formula: the same on every machine.
      return test.slice(0, size ?? test.length).map((formula, i) => toExample(formula, formulaTests(new Rng(hash32(formula)), formula), `code/L${levelNumber}/test/${i}`));
    },
    ...codeVerifier(sandbox, scoring),
  };
}

/**
 * Pretraining documents for a base model (r1 zero): generated questions in the R1-Zero template with a worked
 * completion, `correctRate` of them with the right program (the others print a formula with one slip: another
 * operator or constant) and `formatRate` of them in the exact format.
 */
export function codePretrainingText(rng: Rng, count: number, options: { correctRate: number; formatRate: number; level?: number; language?: Language }): string[] {
  const level = resolveCodeLevel(options.level ?? 1);
  const language = options.language ?? 'python';
  const train = level.formulas.filter((f) => !isHeldOut(f, CODE_TEST_FRACTION));
  return Array.from({ length: count }, () => {
    const formula = pick(rng, train);
    const written = rng.uniform() < options.correctRate ? formula : formulaSlip(rng, formula);
    const program = formulaProgram(language, written).trimEnd();
    const thinking = `read a and b, then print ${written}.`;
    const completion = rng.uniform() < options.formatRate ? `<think> ${thinking} </think> <answer>\n${program}\n</answer>` : `${thinking}\n${program}`;
    return `${r1ZeroPrompt(formulaQuestion(language, formula))} ${completion}`;
  });
}

/** The program of a formula, for the pretraining drill (the base model's knowledge of the language). */
export function codeDrill(rng: Rng, level: number | null, language: Language = 'python'): string {
  return formulaProgram(language, pick(rng, resolveCodeLevel(level ?? 1).formulas));
}

/** The formula with one slip: an operator swapped for another or a constant changed, never the same value everywhere. */
function formulaSlip(rng: Rng, formula: string): string {
  for (;;) {
    const tokens = formula.split(' ');
    const at = rng.int(tokens.length);
    const token = tokens[at].replace(/[()]/g, '');
    if ((OPS as readonly string[]).includes(token)) tokens[at] = tokens[at].replace(token, pick(rng, OPS.filter((op) => op !== token)));
    else if (/^\d+$/.test(token)) tokens[at] = tokens[at].replace(token, String(pick(rng, CONSTANTS.filter((k) => String(k) !== token))));
    else continue;
    const slipped = tokens.join(' ');
    if ([[3, 5], [-2, 7], [4, -1]].some(([a, b]) => evaluateFormula(slipped, a, b) !== evaluateFormula(formula, a, b))) return slipped;
  }
}

// ---------------------------------------------------------------------------------------------------------
// A user's file

export interface CodeJsonlOptions extends CodeTaskOptions {
  /** A separate file of test problems; without it, `testFraction` of this file's problems is held out. */
  testFile?: string;
  /** Fraction of problems held out for testing when there is no test file (default 0.1). */
  testFraction?: number;
  /** Skip malformed lines instead of failing on the first. */
  skipInvalid?: boolean;
}

const PROMPT_FIELDS = ['prompt', 'question', 'problem'] as const;

/**
 * Reads a JSONL file of code problems (the format in the file comment); a bad line fails as `file:line: problem`
 * (with `skipInvalid`, a line whose fields are wrong is skipped and listed instead; one that is not a JSON object
 * always fails).
 */
export function readCodeProblems(path: string, options: Pick<CodeJsonlOptions, 'language' | 'skipInvalid'> = {}): { examples: Example[]; skipped: string[] } {
  const examples: Example[] = [];
  const skipped: string[] = [];
  for (const { line, record } of readJsonlObjects(path)) {
    const parsed = parseCodeProblem(record, options.language ?? 'python');
    if (typeof parsed === 'string') {
      const message = `${path}:${line}: ${parsed}`;
      if (!options.skipInvalid) throw new UserError(message);
      skipped.push(message);
      continue;
    }
    examples.push({ id: `${basename(path)}:${line}`, question: parsed.question, reference: parsed.reference });
  }
  return { examples, skipped };
}

function parseCodeProblem(fields: Record<string, unknown>, defaultLanguage: Language): { question: string; reference: CodeReference } | string {
  const promptField = PROMPT_FIELDS.find((f) => f in fields);
  if (promptField === undefined) return `no prompt field (tried ${PROMPT_FIELDS.map((f) => `"${f}"`).join(', ')})`;
  const question = fields[promptField];
  if (typeof question !== 'string' || question.trim() === '') return `"${promptField}" must be a non-empty string`;
  const language = fields.language ?? defaultLanguage;
  if (typeof language !== 'string' || !(LANGUAGES as readonly string[]).includes(language)) return `"language" must be one of ${LANGUAGES.join(', ')}, got ${JSON.stringify(language)}`;
  const tests = parseCodeTests(fields.tests);
  if (typeof tests === 'string') return tests;
  const reference: CodeReference = { language: language as Language, tests };
  if (fields.entry_point !== undefined) {
    if (typeof fields.entry_point !== 'string' || !/^[A-Za-z_$][\w$]*$/.test(fields.entry_point)) return '"entry_point" must be a function name';
    // A test that does not call the entry point is almost always a typo in one of them.
    const missing = tests.findIndex((t) => 'assert' in t && !t.assert.includes(fields.entry_point as string));
    if (missing >= 0) return `tests[${missing}] does not call the entry point ${fields.entry_point}`;
    reference.entryPoint = fields.entry_point;
  }
  if (fields.solution !== undefined) {
    if (typeof fields.solution !== 'string' || fields.solution.trim() === '') return '"solution" must be a non-empty string';
    reference.solution = fields.solution;
  }
  return { question, reference };
}

/** A code task over a user's file. */
export function codeJsonlTask(path: string, options: CodeJsonlOptions = {}): Task {
  const testFraction = options.testFraction ?? 0.1;
  if (options.testFile === undefined && !(testFraction > 0 && testFraction < 1)) throw new UserError(`testFraction must be between 0 and 1 (exclusive), got ${testFraction}`);
  const loaded = readCodeProblems(path, options);
  let train = loaded.examples;
  let test: Example[];
  let skipped = loaded.skipped;
  if (options.testFile !== undefined) {
    const loadedTest = readCodeProblems(options.testFile, options);
    test = loadedTest.examples;
    skipped = [...skipped, ...loadedTest.skipped];
  } else {
    train = loaded.examples.filter((e) => !isHeldOut(e.question, testFraction));
    test = loaded.examples.filter((e) => isHeldOut(e.question, testFraction));
  }
  if (train.length === 0) throw new UserError(`${path}: no training problems${loaded.examples.length > 0 ? ' (all were held out for testing)' : ''}`);
  const languages = new Set([...train, ...test].map((e) => (e.reference as CodeReference).language));
  const sandbox = openSandbox(options, languages);
  return {
    name: `code:${path}`,
    description: `code problems from ${path} (${train.length} for training, ${test.length} held out${skipped.length > 0 ? `, ${skipped.length} lines skipped` : ''})`,
    sample: (rng: Rng, count: number) => drawWithoutReplacement(rng, train, count),
    testSet(size?: number): Example[] {
      if (test.length === 0) throw new UserError(`${options.testFile ?? path}: no held-out test problems (give a test file, or a larger testFraction than ${testFraction})`);
      return test.slice(0, size ?? test.length);
    },
    ...codeVerifier(sandbox, options.scoring ?? 'fraction'),
  };
}
