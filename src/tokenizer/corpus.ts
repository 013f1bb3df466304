// Training text for the BPE trainer: a .txt file (all of it is text) or a .jsonl file (one JSON object per line
// with a "text" string, as pretraining dumps are shipped). The whole file is read and checked before training
// starts, so a bad byte or line fails at once with its place, not after minutes of counting.
import { extname } from 'node:path';
import { readJsonlObjects } from '../io/jsonl.ts';
import { readTextFile } from '../io/text-file.ts';
import { UserError } from '../util/errors.ts';

/** Texts under this many UTF-16 units are not split further (see splitTextForTraining). */
const TXT_CHUNK_UNITS = 1 << 20;

/** Reads a .txt or .jsonl corpus into texts for trainBpe. */
export function readCorpus(path: string): string[] {
  const ext = extname(path).toLowerCase();
  if (ext !== '.txt' && ext !== '.jsonl') throw new UserError(`${path}: corpus must be a .txt or .jsonl file`);
  return ext === '.txt' ? splitTextForTraining(readTextFile(path)) : jsonlTexts(path);
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

function jsonlTexts(path: string): string[] {
  return readJsonlObjects(path, 'expected a JSON object with a "text" field').map(({ line, record }) => {
    const where = `${path}:${line}`;
    const text = record.text;
    if (text === undefined) throw new UserError(`${where}: no "text" field`);
    if (typeof text !== 'string') throw new UserError(`${where}: "text" must be a string, got ${text === null ? 'null' : typeof text}`);
    return text;
  });
}
