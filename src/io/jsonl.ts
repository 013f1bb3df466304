// A user's JSONL file, one JSON object per line, read and checked whole before any work: a line that is not JSON
// or not an object fails as `file:line: problem` (with the column of a syntax error). Callers check the fields
// and name the line the same way (`where(line)`).
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { UserError } from '../util/errors.ts';
import { lineAndColumn, locateJsonError } from './json-file.ts';
import { readTextFile } from './text-file.ts';

export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  record: Record<string, unknown>;
}

/** Every non-blank line of `path` as a JSON object, with its line number; `notAnObject` says what a line should be. */
export function readJsonlObjects(path: string, notAnObject = 'expected a JSON object'): JsonlRecord[] {
  const out: JsonlRecord[] = [];
  readTextFile(path).split('\n').forEach((text, i) => {
    if (text.trim().length === 0) return;
    const parsed = parseJsonLine(text);
    if ('error' in parsed) throw new UserError(`${path}:${i + 1}: ${parsed.error}`);
    if (!isJsonObject(parsed.value)) throw new UserError(`${path}:${i + 1}: ${notAnObject}`);
    out.push({ line: i + 1, record: parsed.value });
  });
  return out;
}

/**
 * The non-blank lines of a file as they are read, with their 1-based numbers: for files too long to hold whole
 * (r1 verify-answer and r1 run-code judge a line at a time). A missing file is a UserError naming it.
 */
export async function* streamLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  if (!existsSync(file)) throw new UserError(`${file}: no such file`);
  let line = 0;
  for await (const text of createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })) {
    line++;
    if (text.trim() !== '') yield { line, text };
  }
}

/** One line of JSON, or its syntax error as `not valid JSON at column N: problem` (the caller names the file and line). */
export function parseJsonLine(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch {
    const { offset, problem } = locateJsonError(text);
    return { error: `not valid JSON at column ${lineAndColumn(text, offset).column}: ${problem}` };
  }
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
