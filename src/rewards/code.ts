// The code accuracy reward (SPEC.md 3: "code is compiled and run against test cases"): the program is read out of
// the completion, run in the sandbox (sandbox.ts) once per test, and judged by the tests it passes. Two kinds of
// test, as public code benchmarks use them: stdin/stdout cases (APPS, CodeContests: the output must match, up to
// trailing whitespace) and assert-style tests (HumanEval, MBPP: code appended to the program, passing when the
// run exits 0).
import { isJsonObject, parseJsonLine, streamLines } from '../io/jsonl.ts';
import { LANGUAGES, looksLikeSyntaxError, type Language, type RunResult, type Sandbox, type SandboxJob } from './sandbox.ts';

export type CodeTest = { input: string; output: string } | { assert: string };

export interface CodeProgram {
  language: Language;
  /** The program's source, or null when the completion had none (status no_code). */
  code: string | null;
  tests: readonly CodeTest[];
}

/**
 * How a program fared. A failing program gets the status of its worst failure, in this order: compile_error (the
 * program itself does not compile), timeout, memory_limit, output_limit, runtime_error, wrong_answer.
 */
export const CODE_STATUSES = ['passed', 'wrong_answer', 'runtime_error', 'output_limit', 'memory_limit', 'timeout', 'compile_error', 'no_code'] as const;
export type CodeStatus = (typeof CODE_STATUSES)[number];

export interface CodeVerdict {
  status: CodeStatus;
  passed: number;
  total: number;
  /** Wall time of the slowest test run, in milliseconds. */
  timeMs: number;
  /** The end of the stderr of the first failing run (or of the compile check), at most STDERR_EXCERPT characters. */
  stderr: string;
}

/** How a verdict becomes a reward: the fraction of tests passed, or 1 only when all pass. */
export const CODE_SCORINGS = ['fraction', 'all'] as const;
export type CodeScoring = (typeof CODE_SCORINGS)[number];

export function codeScore(verdict: CodeVerdict, scoring: CodeScoring): number {
  if (verdict.total === 0) return 0;
  return scoring === 'all' ? (verdict.passed === verdict.total ? 1 : 0) : verdict.passed / verdict.total;
}

const STDERR_EXCERPT = 500;

/** Fence labels that name each language (```python, ```js, ...). */
const FENCE_LABELS: Record<Language, readonly string[]> = {
  python: ['python', 'python3', 'py'],
  javascript: ['javascript', 'js', 'node', 'nodejs'],
};

const FENCE = /```[ \t]*([\w+-]*)[^\n]*\n([\s\S]*?)```/g;

/**
 * The program of a completion: the last fenced block labelled with the language; else the content of the last
 * <answer> tags (its last fenced block when it has one, whatever its label). Null when there is neither.
 */
export function extractProgram(completion: string, language: Language): string | null {
  const labelled = [...completion.matchAll(FENCE)].filter((m) => FENCE_LABELS[language].includes(m[1].toLowerCase()));
  if (labelled.length > 0) return nonEmpty(labelled[labelled.length - 1][2]);
  const open = completion.lastIndexOf('<answer>');
  if (open < 0) return null;
  const close = completion.indexOf('</answer>', open);
  const answer = completion.slice(open + '<answer>'.length, close < 0 ? undefined : close);
  const fenced = [...answer.matchAll(FENCE)];
  return nonEmpty(fenced.length > 0 ? fenced[fenced.length - 1][2] : answer);
}

function nonEmpty(code: string): string | null {
  return code.trim().length > 0 ? code.replace(/^\n+/, '').trimEnd() + '\n' : null;
}

/** Output comparison of stdin/stdout tests: line endings and trailing whitespace of lines and of the end do not count. */
export function sameOutput(actual: string, expected: string): boolean {
  const normal = (text: string) => text.replace(/\r\n?/g, '\n').split('\n').map((line) => line.trimEnd()).join('\n').trimEnd();
  return normal(actual) === normal(expected);
}

/** The sandbox job of one test of a program. */
function testJob(language: Language, code: string, test: CodeTest): SandboxJob {
  return 'assert' in test ? { language, code: `${code}\n${test.assert}\n` } : { language, code, stdin: test.input };
}

function testPassed(test: CodeTest, run: RunResult): boolean {
  return run.status === 'ok' && ('assert' in test || sameOutput(run.stdout, test.output));
}

const FAILURE_ORDER: readonly CodeStatus[] = ['timeout', 'memory_limit', 'output_limit', 'runtime_error', 'wrong_answer'];

/**
 * Judges many programs at once: every test of every program goes to the sandbox in one batch (its workers run
 * them in parallel), then programs whose failures read like syntax errors get one compile check each.
 */
export function judgePrograms(sandbox: Sandbox, programs: readonly CodeProgram[]): CodeVerdict[] {
  const jobs: SandboxJob[] = [];
  const firstJob: number[] = [];
  for (const program of programs) {
    firstJob.push(jobs.length);
    if (program.code !== null) for (const test of program.tests) jobs.push(testJob(program.language, program.code, test));
  }
  const runs = sandbox.runSync(jobs);

  const verdicts: CodeVerdict[] = programs.map((program, p) => {
    if (program.code === null) return { status: 'no_code', passed: 0, total: program.tests.length, timeMs: 0, stderr: '' };
    const own = runs.slice(firstJob[p], firstJob[p] + program.tests.length);
    let passed = 0;
    let worst: CodeStatus = 'passed';
    let stderr = '';
    for (let t = 0; t < own.length; t++) {
      if (testPassed(program.tests[t], own[t])) {
        passed++;
        continue;
      }
      const status: CodeStatus = own[t].status === 'ok' ? (('assert' in program.tests[t]) ? 'runtime_error' : 'wrong_answer') : own[t].status as CodeStatus;
      if (worst === 'passed') stderr = excerpt(own[t].stderr);
      if (worst === 'passed' || FAILURE_ORDER.indexOf(status) < FAILURE_ORDER.indexOf(worst)) worst = status;
    }
    return { status: worst, passed, total: program.tests.length, timeMs: Math.round(Math.max(0, ...own.map((r) => r.wallMs))), stderr };
  });

  // A syntax error shows as a runtime error on every test; one check of the program alone tells it from an
  // assert test that does not compile, or a program that raises SyntaxError at run time.
  const suspects = programs.map((program, p) => p).filter((p) => {
    const program = programs[p];
    return program.code !== null && verdicts[p].passed === 0 && verdicts[p].total > 0
      && looksLikeSyntaxError(program.language, runs[firstJob[p]].stderr);
  });
  const checks = sandbox.runSync(suspects.map((p) => ({ language: programs[p].language, code: programs[p].code!, mode: 'check' as const })));
  suspects.forEach((p, i) => {
    if (checks[i].status !== 'ok') verdicts[p] = { ...verdicts[p], status: 'compile_error', stderr: excerpt(checks[i].stderr) };
  });
  return verdicts;
}

/** The start (node's error message) and the end (Python's exception line) of a long stderr. */
function excerpt(stderr: string): string {
  if (stderr.length <= STDERR_EXCERPT) return stderr;
  const half = STDERR_EXCERPT / 2;
  return `${stderr.slice(0, half)}\n...\n${stderr.slice(stderr.length - half)}`;
}

/** Checks a JSON value as a list of code tests; returns the list or what is wrong with it. */
export function parseCodeTests(value: unknown): CodeTest[] | string {
  if (!Array.isArray(value)) return '"tests" must be an array of {"input", "output"} or {"assert"} objects';
  if (value.length === 0) return '"tests" is empty';
  const tests: CodeTest[] = [];
  for (let i = 0; i < value.length; i++) {
    const test = value[i] as Record<string, unknown>;
    if (typeof test !== 'object' || test === null || Array.isArray(test)) return `tests[${i}] must be an object`;
    if ('assert' in test) {
      if (typeof test.assert !== 'string' || test.assert.trim() === '') return `tests[${i}].assert must be a non-empty string`;
      tests.push({ assert: test.assert });
    } else if ('input' in test || 'output' in test) {
      if (typeof test.input !== 'string') return `tests[${i}].input must be a string`;
      if (typeof test.output !== 'string') return `tests[${i}].output must be a string`;
      tests.push({ input: test.input, output: test.output });
    } else {
      return `tests[${i}] needs "input" and "output", or "assert"`;
    }
  }
  return tests;
}

/** One verdict of `r1 run-code`: the line it judged, or what is wrong with the line. */
export type CodeLineResult = ({ line: number } & CodeVerdict) | { line: number; error: string };

/** A `{"language", "code", "tests"}` line as a program, or what is wrong with it. */
export function parseCodeLine(text: string): CodeProgram | string {
  const line = parseJsonLine(text);
  if ('error' in line) return line.error;
  if (!isJsonObject(line.value)) return 'expected an object {"language", "code", "tests"}';
  const { language, code, tests } = line.value;
  if (typeof language !== 'string' || !(LANGUAGES as readonly string[]).includes(language)) return `"language" must be one of ${LANGUAGES.join(', ')}, got ${JSON.stringify(language)}`;
  if (typeof code !== 'string') return '"code" must be a string';
  const parsed = parseCodeTests(tests);
  if (typeof parsed === 'string') return parsed;
  return { language: language as Language, code, tests: parsed };
}

/** Lines judged per sandbox call: enough to keep every worker busy, few enough to stream the verdicts. */
const LINES_PER_BATCH = 64;

/**
 * Judges every non-blank `{"language", "code", "tests"}` line of a JSONL file in the sandbox, handing each
 * verdict to `write` in line order. A malformed line gives an "error" result naming the line; the others still run.
 */
export async function judgeCodeJsonl(file: string, sandbox: Sandbox, write: (result: CodeLineResult) => void): Promise<{ lines: number; passed: number; errors: number }> {
  const summary = { lines: 0, passed: 0, errors: 0 };
  let batch: Array<{ line: number; program: CodeProgram | string }> = [];
  const flush = () => {
    const programs = batch.filter((b) => typeof b.program !== 'string');
    const verdicts = judgePrograms(sandbox, programs.map((b) => b.program as CodeProgram));
    let next = 0;
    for (const { line, program } of batch) {
      const result: CodeLineResult = typeof program === 'string' ? { line, error: `line ${line}: ${program}` } : { line, ...verdicts[next++] };
      summary.lines++;
      if ('error' in result) summary.errors++;
      else if (result.status === 'passed') summary.passed++;
      write(result);
    }
    batch = [];
  };
  for await (const { line, text } of streamLines(file)) {
    batch.push({ line, program: parseCodeLine(text) });
    if (batch.length >= LINES_PER_BATCH) flush();
  }
  flush();
  return summary;
}
