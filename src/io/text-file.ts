// A text file a user hands us (a corpus, a JSONL file, a JSON file), read whole and checked before any work: a file
// that cannot be read, or bytes that are not UTF-8, fail with the file's name and the place (byte offset and line),
// rather than decoding to replacement characters that would train or parse as if they were text.
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.ts';

/** The file as text; a leading byte-order mark (some Windows editors write one) is dropped: it is not content. */
export function readTextFile(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new UserError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return decodeUtf8(bytes, path).replace(/^\uFEFF/, '');
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

