// Training text for the BPE trainer: a .txt file (all of it is text) or a .jsonl file (one JSON object per line
// with a "text" string, as pretraining dumps are shipped). The whole file is read and checked before training
// starts, so a bad byte or line fails at once with its place, not after minutes of counting.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { UserError } from '../util/errors.ts';
import { lineAndColumn, locateJsonError } from '../io/json-file.ts';

/** Texts under this many UTF-16 units are not split further (see splitTextForTraining). */
const TXT_CHUNK_UNITS = 1 << 20;

/** Reads a .txt or .jsonl corpus into texts for trainBpe. */
export function readCorpus(path: string): string[] {
  const ext = extname(path).toLowerCase();
  if (ext !== '.txt' && ext !== '.jsonl') throw new UserError(`${path}: corpus must be a .txt or .jsonl file`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new UserError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const text = decodeUtf8(bytes, path);
  return ext === '.txt' ? splitTextForTraining(text) : jsonlTexts(text, path);
}

/** Decodes UTF-8, or throws a UserError with the byte offset and line of the first invalid sequence. */
export function decodeUtf8(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    throw new UserError(`${path}: invalid UTF-8 at byte offset ${offset} (line ${line})`);
  }
}

/**
 * Offset of the first byte that starts an ill-formed UTF-8 sequence (Unicode 15, Table 3-7: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or -1 when all of `bytes` is well formed.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let length: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) lo = 0xa0; // overlong
      if (b === 0xed) hi = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) lo = 0x90; // overlong
      if (b === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return i;
    if (i + length > bytes.length) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < length; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return i;
    i += length;
  }
  return -1;
}

/**
 * Cuts a long text into pieces of about 1M UTF-16 units, each cut just after a newline that is followed by a
 * non-space character. No match of the pre-tokenizer regex contains a newline followed by a non-space (newline
 * runs, punctuation with trailing newlines and whitespace runs all end there), so the pieces pre-tokenize to
 * exactly the words of the whole text, while the regex never has to hold all of a large file's matches at once.
 */
export function splitTextForTraining(text: string, chunkUnits = TXT_CHUNK_UNITS): string[] {
  const pieces: string[] = [];
  const boundary = /\n(?=\S)/g;
  let start = 0;
  while (text.length - start > chunkUnits) {
    boundary.lastIndex = start + chunkUnits;
    const match = boundary.exec(text);
    if (match === null) break;
    pieces.push(text.slice(start, match.index + 1));
    start = match.index + 1;
  }
  pieces.push(text.slice(start));
  return pieces;
}

function jsonlTexts(content: string, path: string): string[] {
  const texts: string[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim().length === 0) continue;
    const where = `${path}:${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      const { offset, problem } = locateJsonError(line);
      throw new UserError(`${where}: not valid JSON at column ${lineAndColumn(line, offset).column}: ${problem}`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new UserError(`${where}: expected a JSON object with a "text" field`);
    const text = (record as { text?: unknown }).text;
    if (text === undefined) throw new UserError(`${where}: no "text" field`);
    if (typeof text !== 'string') throw new UserError(`${where}: "text" must be a string, got ${text === null ? 'null' : typeof text}`);
    texts.push(text);
  }
  return texts;
}
