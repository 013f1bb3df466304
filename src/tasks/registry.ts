// Tasks by name, for configs and the CLI: `countdown`, `arithmetic`, `instructions` (non-reasoning requests with
// checkable answers), and `jsonl:PATH` (or `jsonl` with `taskFile`) for a user's GSM8K- or MATH-style file; `code`
// (generated programs) and `code:PATH` (a user's programming problems), judged in the sandbox. The prefix
// `readable:` asks any of them in R1's readable form (`readable:arithmetic`: the answer read from the summary's
// \boxed{} after `</think>`, readable.ts).
import type { CodeScoring } from '../rewards/code.ts';
import type { Language, SandboxOptions } from '../rewards/sandbox.ts';
import { UserError } from '../util/errors.ts';
import { ARITHMETIC_LEVELS, arithmeticTask } from './arithmetic.ts';
import { CODE_LEVELS, codeJsonlTask, generatedCodeTask } from './code.ts';
import { COUNTDOWN_LEVELS, countdownTask } from './countdown.ts';
import { instructionTask } from './instructions.ts';
import { jsonlTask, type JsonlTaskOptions } from './jsonl.ts';
import { readableTask } from './readable.ts';
import type { Task } from './task.ts';

export interface TaskOptions extends JsonlTaskOptions {
  /** Difficulty level of a generated task (countdown 1-4, default 3; arithmetic 1-5, default 1). */
  level?: number;
  /** The problems file of the `jsonl` task (the same as naming the task `jsonl:PATH`). */
  taskFile?: string;
  /** Code tasks: the language of generated problems and of file problems that name none (default python). */
  language?: Language;
  /** Code tasks: reward as the fraction of tests passed (default) or all-or-nothing. */
  scoring?: CodeScoring;
  /** Code tasks: the sandbox's limits, workers and interpreters. */
  sandbox?: SandboxOptions;
}

export const TASK_NAMES = ['countdown', 'arithmetic', 'instructions', 'jsonl:PATH', 'readable:NAME', 'code', 'code:PATH'] as const;

const READABLE_PREFIX = 'readable:';

const CODE_ONLY_OPTIONS = ['language', 'scoring', 'sandbox'] as const;

const JSONL_ONLY_OPTIONS = ['questionField', 'answerField', 'testFile', 'testFraction', 'skipInvalid'] as const;

/** Whether a task name is a generated task's (`arithmetic`, `countdown`, `code`, also as `readable:NAME`): those take a level, files do not. */
export function isGeneratedTaskName(name: string): boolean {
  const inner = name.startsWith(READABLE_PREFIX) ? name.slice(READABLE_PREFIX.length) : name;
  return inner === 'arithmetic' || inner === 'countdown' || inner === 'code';
}

/** Whether a task name is a code task's (`code` or `code:PATH`), which take the code options. */
export function isCodeTaskName(name: string): boolean {
  return name === 'code' || name.startsWith('code:');
}

export function taskByName(name: string, options: TaskOptions = {}): Task {
  if (name.startsWith(READABLE_PREFIX)) {
    const inner = name.slice(READABLE_PREFIX.length);
    if (inner === 'instructions' || inner.startsWith(READABLE_PREFIX)) throw new UserError(`task ${name}: ${inner} is already asked in the readable form`);
    return readableTask(taskByName(inner, options));
  }
  if (name === 'instructions') {
    const given = Object.keys(options).filter((key) => options[key as keyof TaskOptions] !== undefined);
    if (given.length > 0) throw new UserError(`task instructions: takes no options (got ${given.join(', ')})`);
    return instructionTask();
  }
  if (!isCodeTaskName(name)) {
    const misplaced = CODE_ONLY_OPTIONS.filter((key) => options[key] !== undefined);
    if (misplaced.length > 0) throw new UserError(`task ${name}: not options of this task (they are for code tasks): ${misplaced.join(', ')}`);
  }
  if (name === 'code') {
    const misplaced = [...JSONL_ONLY_OPTIONS, 'taskFile' as const].filter((key) => options[key] !== undefined);
    if (misplaced.length > 0) throw new UserError(`task code: not options of generated tasks (they are for files): ${misplaced.join(', ')}`);
    if (options.level !== undefined && CODE_LEVELS[options.level] === undefined) {
      throw new UserError(`task code: level must be one of ${Object.keys(CODE_LEVELS).join(', ')}, got ${options.level}`);
    }
    return generatedCodeTask({ level: options.level, language: options.language, scoring: options.scoring, sandbox: options.sandbox });
  }
  if (name.startsWith('code:')) {
    const path = name.slice('code:'.length);
    if (path.length === 0) throw new UserError('task code:PATH: no problems file after "code:"');
    if (options.level !== undefined) throw new UserError('task code:PATH: level applies only to generated tasks');
    const unsupported = (['questionField', 'answerField', 'answerPlaces', 'taskFile'] as const).filter((key) => options[key] !== undefined);
    if (unsupported.length > 0) throw new UserError(`task ${name}: not options of code files: ${unsupported.join(', ')}`);
    return codeJsonlTask(path, { testFile: options.testFile, testFraction: options.testFraction, skipInvalid: options.skipInvalid, language: options.language, scoring: options.scoring, sandbox: options.sandbox });
  }
  if (name === 'countdown' || name === 'arithmetic') {
    const misplaced = [...JSONL_ONLY_OPTIONS, 'taskFile' as const].filter((key) => options[key] !== undefined);
    if (misplaced.length > 0) throw new UserError(`task ${name}: not options of generated tasks (they are for jsonl): ${misplaced.join(', ')}`);
    const levels = name === 'countdown' ? COUNTDOWN_LEVELS : ARITHMETIC_LEVELS;
    if (options.level !== undefined && levels[options.level] === undefined) {
      throw new UserError(`task ${name}: level must be one of ${Object.keys(levels).join(', ')}, got ${options.level}`);
    }
    return name === 'countdown' ? countdownTask({ level: options.level }) : arithmeticTask({ level: options.level });
  }
  if (name === 'jsonl' || name.startsWith('jsonl:')) {
    const fromName = name === 'jsonl' ? undefined : name.slice('jsonl:'.length);
    if (fromName !== undefined && options.taskFile !== undefined && fromName !== options.taskFile) {
      throw new UserError(`task ${name}: the task names file ${fromName} but taskFile is ${options.taskFile}`);
    }
    const path = fromName ?? options.taskFile;
    if (path === undefined || path.length === 0) throw new UserError('task jsonl: no problems file (name the task jsonl:PATH or give taskFile)');
    if (options.level !== undefined) throw new UserError('task jsonl: level applies only to generated tasks (countdown, arithmetic)');
    return jsonlTask(path, options);
  }
  throw new UserError(`unknown task "${name}" (known: ${TASK_NAMES.join(', ')})`);
}
