// A user's JSONL file, one JSON object per line, read and checked whole before any work: a line that is not JSON
// or not an object fails as `file:line: problem` (with the column of a syntax error). Callers check the fields
// and name the line the same way (`where(line)`).
import { readFileSync } from 'node:fs';
import { decodeUtf8 } from '../tokenizer/corpus.ts';
import { lineAndColumn, locateJsonError } from './json-file.ts';
import { UserError } from '../util/errors.ts';

export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  record: Record<string, unknown>;
}

/** Every non-blank line of `path` as a JSON object, with its line number. */
export function readJsonlObjects(path: string): JsonlRecord[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new UserError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // A byte-order mark (some Windows editors write one) is not part of the first line's JSON.
  const lines = decodeUtf8(bytes, path).replace(/^\uFEFF/, '').split('\n');
  const out: JsonlRecord[] = [];
  lines.forEach((text, i) => {
    if (text.trim().length === 0) return;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      const { offset, problem } = locateJsonError(text);
      throw new UserError(`${path}:${i + 1}: not valid JSON at column ${lineAndColumn(text, offset).column}: ${problem}`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new UserError(`${path}:${i + 1}: expected a JSON object`);
    out.push({ line: i + 1, record: record as Record<string, unknown> });
  });
  return out;
}
