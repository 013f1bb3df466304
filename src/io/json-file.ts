// JSON files a user hands us (config.json, tokenizer.json, tokenizer_config.json, JSONL lines), with errors that say where.
//
// Node 20's JSON.parse names an offset for some syntax errors and none for others ("Unexpected token 'x',
// "..." is not valid JSON"), so on failure we re-scan the text with a small RFC 8259 checker that finds the
// first offending character, and report it as line:column.
import { UserError } from '../util/errors.ts';
import { readTextFile } from './text-file.ts';

/** Reads and parses a JSON file; a missing file, bad UTF-8 or a syntax error is a UserError naming the file (and line:column). */
export function readJsonFile(path: string): unknown {
  return parseJsonText(readTextFile(path), path);
}

/** Parses `text`; on a syntax error throws a UserError `where:line:column: not valid JSON: problem`. */
export function parseJsonText(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    const { offset, problem } = locateJsonError(text);
    const { line, column } = lineAndColumn(text, offset);
    throw new UserError(`${where}:${line}:${column}: not valid JSON: ${problem}`);
  }
}

/** 1-based line and column (in UTF-16 units, as editors count for BMP text) of a string offset. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/** Offset and description of the first JSON syntax error in `text` (RFC 8259 grammar). */
export function locateJsonError(text: string): { offset: number; problem: string } {
  let pos = 0;
  class Fail {
    constructor(readonly offset: number, readonly problem: string) {}
  }
  const fail = (problem?: string, at = pos): never => {
    if (at >= text.length) throw new Fail(at, 'unexpected end of input');
    throw new Fail(at, problem ?? `unexpected character ${JSON.stringify(text[at])}`);
  };
  const skipSpace = () => {
    while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t' || text[pos] === '\n' || text[pos] === '\r')) pos++;
  };
  const expectLiteral = (word: string) => {
    for (let i = 0; i < word.length; i++) if (text[pos + i] !== word[i]) fail(undefined, pos + i);
    pos += word.length;
  };
  const digits = () => {
    const start = pos;
    while (pos < text.length && text[pos] >= '0' && text[pos] <= '9') pos++;
    if (pos === start) fail();
  };
  const string = () => {
    const opening = pos++;
    for (;;) {
      if (pos >= text.length) fail('unterminated string', opening);
      const c = text.charCodeAt(pos);
      if (c === 0x22) return void pos++;
      if (c < 0x20) fail('control character in string (escape it)');
      if (c === 0x5c) {
        const e = text[pos + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) fail('bad \\u escape');
          pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) pos += 2;
        else fail('bad escape');
      } else pos++;
    }
  };
  const value = (): void => {
    skipSpace();
    const c = text[pos];
    if (c === '{') {
      pos++;
      skipSpace();
      if (text[pos] === '}') return void pos++;
      for (;;) {
        skipSpace();
        if (text[pos] !== '"') fail('expected a double-quoted property name');
        string();
        skipSpace();
        if (text[pos] !== ':') fail("expected ':' after property name");
        pos++;
        value();
        skipSpace();
        if (text[pos] === ',') pos++;
        else if (text[pos] === '}') return void pos++;
        else fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      pos++;
      skipSpace();
      if (text[pos] === ']') return void pos++;
      for (;;) {
        value();
        skipSpace();
        if (text[pos] === ',') pos++;
        else if (text[pos] === ']') return void pos++;
        else fail("expected ',' or ']'");
      }
    } else if (c === '"') string();
    else if (c === 't') expectLiteral('true');
    else if (c === 'f') expectLiteral('false');
    else if (c === 'n') expectLiteral('null');
    else if (c === '-' || (c >= '0' && c <= '9')) {
      if (text[pos] === '-') pos++;
      if (text[pos] === '0') pos++;
      else digits();
      if (text[pos] === '.') {
        pos++;
        digits();
      }
      if (text[pos] === 'e' || text[pos] === 'E') {
        pos++;
        if (text[pos] === '+' || text[pos] === '-') pos++;
        digits();
      }
    } else fail();
  };
  try {
    value();
    skipSpace();
    if (pos < text.length) fail('unexpected text after the JSON value');
  } catch (err) {
    if (err instanceof Fail) return { offset: err.offset, problem: err.problem };
    throw err;
  }
  // JSON.parse rejected what the grammar accepts: only possible for inputs beyond V8's limits.
  return { offset: 0, problem: 'rejected by JSON.parse' };
}
