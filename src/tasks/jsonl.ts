// A user's math problems from a JSONL file, one JSON object per line: GSM8K style (`question`, and an `answer`
// whose final answer follows `####`) or MATH style (`problem`, and a `solution` whose final answer is the last
// `\boxed{}`; or an explicit short `answer`). The whole file is read and checked before any training starts, and
// a bad line fails with `file:line: problem` (or, with `skipInvalid`, is skipped and counted).
//
// The held-out test set is either a separate file or a fixed split of this one by a hash of the question text,
// so it does not depend on line order or on the run's seed, and repeated questions fall on the same side.
import { basename } from 'node:path';
import { isJsonObject, parseJsonLine } from '../io/jsonl.ts';
import { readTextFile } from '../io/text-file.ts';
import { checkAnswer } from '../rewards/answer.ts';
import { lastBoxed, lastGsm8kAnswer, type AnswerPlace } from '../rewards/extract.ts';
import type { Rng } from '../tensor/random.ts';
import { UserError } from '../util/errors.ts';
import { drawWithoutReplacement, isHeldOut } from './split.ts';
import type { Example, Task, Verdict } from './task.ts';

/** Fields tried, in order, when the user names none. */
export const QUESTION_FIELDS = ['question', 'problem', 'prompt'] as const;
export const ANSWER_FIELDS = ['answer', 'solution'] as const;

export interface JsonlTaskOptions {
  /** Field holding the question (default: the first of QUESTION_FIELDS present on the line). */
  questionField?: string;
  /** Field holding the answer or solution (default: the first of ANSWER_FIELDS present on the line). */
  answerField?: string;
  /** A separate file of test problems; without it, `testFraction` of this file's questions is held out. */
  testFile?: string;
  /** Fraction of questions held out for testing when there is no test file (default 0.1). */
  testFraction?: number;
  /** Skip malformed lines (counted in `skipped`) instead of failing on the first. */
  skipInvalid?: boolean;
  /**
   * Where the verifier reads a completion's final answer (default: <answer> tags, else the last \boxed{}: the
   * required places of SPEC.md 3, so that R1-Zero-template and \boxed-style models are both scored).
   */
  answerPlaces?: readonly AnswerPlace[];
}

/** One skipped line: `file:line: problem`. */
export type SkippedLine = string;

/** Reads a JSONL file of problems; see the file comment for the formats. */
export function readProblemsJsonl(path: string, options: Pick<JsonlTaskOptions, 'questionField' | 'answerField' | 'skipInvalid'> = {}): { examples: Example[]; skipped: SkippedLine[] } {
  const content = readTextFile(path);
  const examples: Example[] = [];
  const skipped: SkippedLine[] = [];
  const lines = content.split('\n');
  const name = basename(path);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim().length === 0) continue;
    const parsed = parseProblemLine(line, options);
    if (typeof parsed === 'string') {
      const message = `${path}:${i + 1}: ${parsed}`;
      if (!options.skipInvalid) throw new UserError(message);
      skipped.push(message);
      continue;
    }
    examples.push({ id: `${name}:${i + 1}`, question: parsed.question, reference: parsed.answer });
  }
  return { examples, skipped };
}

/** The question and final answer of one line, or what is wrong with it. */
function parseProblemLine(line: string, options: Pick<JsonlTaskOptions, 'questionField' | 'answerField'>): { question: string; answer: string } | string {
  const parsed = parseJsonLine(line);
  if ('error' in parsed) return parsed.error;
  if (!isJsonObject(parsed.value)) return 'expected a JSON object';
  const fields = parsed.value;

  const questionField = options.questionField ?? QUESTION_FIELDS.find((f) => f in fields);
  if (questionField === undefined) return `no question field (tried ${QUESTION_FIELDS.map((f) => `"${f}"`).join(', ')}; name one with the question-field option)`;
  const question = fields[questionField];
  if (question === undefined) return `no "${questionField}" field`;
  if (typeof question !== 'string') return `"${questionField}" must be a string, got ${describeType(question)}`;
  if (question.trim().length === 0) return `"${questionField}" is empty`;

  const answerField = options.answerField ?? ANSWER_FIELDS.find((f) => f in fields);
  if (answerField === undefined) return `no answer field (tried ${ANSWER_FIELDS.map((f) => `"${f}"`).join(', ')}; name one with the answer-field option)`;
  const raw = fields[answerField];
  if (raw === undefined) return `no "${answerField}" field`;
  if (typeof raw === 'number' && Number.isFinite(raw)) return { question, answer: String(raw) };
  if (typeof raw !== 'string') return `"${answerField}" must be a string or a number, got ${describeType(raw)}`;
  const answer = referenceAnswer(raw, answerField === 'solution');
  if (typeof answer !== 'string') return `"${answerField}": ${answer.problem}`;
  return { question, answer };
}

function describeType(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

/**
 * The final answer of a reference field: the rest of the line after the last `####` (GSM8K), else the last `\boxed{}`
 * (MATH), else (for an answer field, not a solution) the whole text when it is a single line.
 */
export function referenceAnswer(text: string, isSolution: boolean): string | { problem: string } {
  const gsm8k = lastGsm8kAnswer(text);
  if (gsm8k !== null) return gsm8k.length > 0 ? gsm8k : { problem: 'nothing after "####"' };
  const boxed = lastBoxed(text)?.trim() ?? null;
  if (boxed !== null) return boxed.length > 0 ? boxed : { problem: 'empty \\boxed{}' };
  if (/\\(?:boxed|fbox)\s*\{/.test(text)) return { problem: 'unbalanced braces in \\boxed{...}' };
  const trimmed = text.trim();
  if (isSolution) return { problem: 'no final answer (expected "#### answer" or \\boxed{answer})' };
  if (trimmed.length === 0) return { problem: 'empty' };
  if (trimmed.includes('\n')) return { problem: 'several lines but no final answer (expected "#### answer" or \\boxed{answer})' };
  return trimmed;
}

/** A task over a user's file; `skipped` lists the lines left out under `skipInvalid`. */
export interface JsonlTask extends Task {
  readonly train: readonly Example[];
  readonly test: readonly Example[];
  readonly skipped: readonly SkippedLine[];
}

export function jsonlTask(path: string, options: JsonlTaskOptions = {}): JsonlTask {
  const testFraction = options.testFraction ?? 0.1;
  const answerPlaces = options.answerPlaces ?? ['answer-tag', 'boxed'];
  if (options.testFile === undefined && !(testFraction > 0 && testFraction < 1)) {
    throw new UserError(`testFraction must be between 0 and 1 (exclusive), got ${testFraction}`);
  }
  const loaded = readProblemsJsonl(path, options);
  let train: Example[];
  let test: Example[];
  let skipped = loaded.skipped;
  if (options.testFile !== undefined) {
    const loadedTest = readProblemsJsonl(options.testFile, options);
    train = loaded.examples;
    test = loadedTest.examples.map((e, i) => ({ ...e, id: `${e.id}/test/${i}` }));
    skipped = [...skipped, ...loadedTest.skipped];
  } else {
    train = loaded.examples.filter((e) => !isHeldOut(e.question, testFraction));
    test = loaded.examples.filter((e) => isHeldOut(e.question, testFraction));
  }
  if (train.length === 0) throw new UserError(`${path}: no training problems${loaded.examples.length > 0 ? ' (all were held out for testing)' : ''}`);

  return {
    name: `jsonl:${path}`,
    description: `math problems from ${path} (${train.length} for training, ${test.length} held out${skipped.length > 0 ? `, ${skipped.length} lines skipped` : ''})`,
    train,
    test,
    skipped,
    sample: (rng: Rng, count: number) => drawWithoutReplacement(rng, train, count),
    testSet(size?: number): Example[] {
      if (test.length === 0) {
        throw new UserError(`${options.testFile ?? path}: no held-out test problems (give a test file, or a larger testFraction than ${testFraction})`);
      }
      return test.slice(0, size ?? test.length);
    },
    verify(completion: string, example: Example): Verdict {
      return checkAnswer(completion, example.reference as string, answerPlaces);
    },
  };
}
