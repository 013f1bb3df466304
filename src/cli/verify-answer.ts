// `r1 verify-answer`: the accuracy reward's answer checker (src/rewards/answer.ts) from the shell, to see what it
// accepts before a run relies on it. One pair prints `true` or `false` (exit 0 either way, 2 on usage errors);
// `--jsonl FILE` checks {"gold", "pred"} lines and writes one JSON result per line, a malformed line giving a
// result with an "error" instead of stopping the others. Output piped into a reader that stops early (`| head`)
// ends the command quietly.
import { createWriteStream } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isJsonObject, parseJsonLine, streamLines } from '../io/jsonl.ts';
import { answerOf, finalAnswersEquivalent, optionsFor } from '../rewards/answer.ts';
import { ANSWER_PLACES, extractAnswer, type AnswerPlace } from '../rewards/extract.ts';
import { UserError } from '../util/errors.ts';

export interface VerifyOptions {
  /**
   * Read both sides as whole solutions: the final answer of pred from `places` only, that of gold from every
   * place. Without it each side is an answer, still read through delimiters and phrases ("$5$", "x = 5", "The
   * answer is 5") and extracted from when it is a whole text (answerOf).
   */
  extract: boolean;
  places: readonly AnswerPlace[];
}

export interface PairResult {
  correct: boolean;
  /** The answer compared with the gold (null when none was found). */
  extracted: string | null;
  /** With `extract`: the answer read from the gold (null when none was found). */
  goldExtracted?: string | null;
}

export type LineResult =
  | { line: number; correct: boolean; gold: string; pred: string; extracted: string | null; gold_extracted?: string | null }
  | { line: number; error: string };

export function verifyPair(gold: string, pred: string, options: VerifyOptions): PairResult {
  const goldAnswer = answerOf(gold);
  const extracted = options.extract ? (extractAnswer(pred, options.places, optionsFor(goldAnswer))?.answer ?? null) : answerOf(pred, optionsFor(goldAnswer));
  const correct = goldAnswer !== null && extracted !== null && finalAnswersEquivalent(goldAnswer, extracted);
  return options.extract ? { correct, extracted, goldExtracted: goldAnswer } : { correct, extracted };
}

/** One JSONL line -> its result (an "error" result naming the line and the problem when it is malformed). */
export function verifyLine(text: string, line: number, options: VerifyOptions): LineResult {
  const parsed = parseJsonLine(text);
  if ('error' in parsed) return { line, error: `line ${line}: ${parsed.error}` };
  const record = parsed.value;
  if (!isJsonObject(record)) return { line, error: `line ${line}: expected an object {"gold": ..., "pred": ...}` };
  const fields: Record<string, string> = {};
  for (const name of ['gold', 'pred']) {
    const value = record[name];
    if (typeof value === 'number' && Number.isFinite(value)) fields[name] = String(value);
    else if (typeof value === 'string') fields[name] = value;
    else return { line, error: `line ${line}: field "${name}" ${value === undefined ? 'is missing' : 'must be a string or a number'}` };
  }
  const { correct, extracted, goldExtracted } = verifyPair(fields.gold, fields.pred, options);
  const result = { line, correct, gold: fields.gold, pred: fields.pred, extracted };
  return goldExtracted === undefined ? result : { ...result, gold_extracted: goldExtracted };
}

export interface JsonlSummary {
  lines: number;
  correct: number;
  errors: number;
}

/**
 * Checks every non-blank line of a JSONL file, handing each result to `write` in order; `write` returning false
 * stops the reading (its reader has gone).
 */
export async function verifyJsonl(file: string, options: VerifyOptions, write: (result: LineResult) => boolean | void): Promise<JsonlSummary> {
  const summary: JsonlSummary = { lines: 0, correct: 0, errors: 0 };
  for await (const { line, text } of streamLines(file)) {
    const result = verifyLine(text, line, options);
    summary.lines++;
    if ('error' in result) summary.errors++;
    else if (result.correct) summary.correct++;
    // Leaving the loop closes the file (readline closes when its iteration ends early).
    if (write(result) === false) break;
  }
  return summary;
}

export function parsePlaces(text: string): AnswerPlace[] {
  const places = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  for (const place of places) {
    if (!(ANSWER_PLACES as readonly string[]).includes(place)) {
      throw new UserError(`--places: unknown place ${JSON.stringify(place)} (expected some of ${ANSWER_PLACES.join(', ')})`);
    }
  }
  if (places.length === 0) throw new UserError(`--places: give at least one of ${ANSWER_PLACES.join(', ')}`);
  return places as AnswerPlace[];
}

interface CommandOptions {
  extract?: boolean;
  places: string;
  jsonl?: string;
  out?: string;
}

export function register(program: Command): void {
  program
    .command('verify-answer')
    .description(
      'check whether PRED is mathematically equivalent to GOLD (the accuracy reward\'s checker): prints true or false. ' +
        'With --jsonl, checks {"gold", "pred"} lines and writes one JSON result per line ' +
        '({"line", "correct", "gold", "pred", "extracted"}, with "gold_extracted" under --extract, or {"line", "error"} ' +
        'for a malformed line).',
    )
    .argument('[gold]', 'the reference answer, e.g. "\\frac{1}{2}"')
    .argument('[pred]', 'the predicted answer (a whole completion with --extract)')
    .option('--extract', 'read GOLD and PRED as whole solutions: extract the final answer of each first')
    .option('--places <list>', 'with --extract: where the answer may be, in order of preference', ANSWER_PLACES.join(','))
    .option('--jsonl <file>', 'check every {"gold": ..., "pred": ...} line of a JSONL file')
    .option('--out <file>', 'with --jsonl: write the results here instead of stdout')
    // Usage errors exit with 2 (help and version still exit 0), so scripts can tell them from a `false`.
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(2, err.code, err.message);
    })
    .action(async (gold: string | undefined, pred: string | undefined, opts: CommandOptions, command: Command) => {
      const usage = (message: string) => command.error(`error: ${message}`, { exitCode: 2, code: 'r1.usage' });
      if (opts.jsonl !== undefined && (gold !== undefined || pred !== undefined)) usage('give GOLD PRED or --jsonl FILE, not both');
      if (opts.jsonl === undefined && (gold === undefined || pred === undefined)) usage('give GOLD and PRED, or --jsonl FILE');
      if (opts.out !== undefined && opts.jsonl === undefined) usage('--out goes with --jsonl');
      const options: VerifyOptions = { extract: opts.extract === true, places: parsePlaces(opts.places) };
      if (opts.jsonl === undefined) {
        const result = verifyPair(gold!, pred!, options);
        console.log(String(result.correct));
        return;
      }
      const out = opts.out === undefined ? process.stdout : createWriteStream(opts.out);
      // A reader that closes the pipe (`| head`) is not an error: stop writing and reading, and exit quietly.
      let closed = false;
      const onError = (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err;
        closed = true;
      };
      out.on('error', onError);
      const summary = await verifyJsonl(opts.jsonl, options, (result) => !closed && (out.write(`${JSON.stringify(result)}\n`), !closed));
      if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      if (closed) return;
      console.error(`${summary.lines} lines: ${summary.correct} correct, ${summary.lines - summary.correct - summary.errors} wrong, ${summary.errors} malformed`);
    });
}
