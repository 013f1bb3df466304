import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { QWEN2_SPLIT_COMPONENT } from '../../src/tokenizer/byte-level.ts';
import { readCorpus, splitTextForTraining } from '../../src/tokenizer/corpus.ts';
import { HfSplitPreTokenizer } from '../../src/tokenizer/hf-tokenizers.ts';
import { assertUserError, withFile } from '../helpers.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

test('invalid UTF-8 in a corpus names the file, byte offset and line', () => {
  const bytes = Buffer.concat([Buffer.from('first line\nsecond '), Buffer.from([0xe4, 0x41]), Buffer.from(' rest\n')]);
  for (const name of ['corpus.txt', 'corpus.jsonl']) {
    withFile(name, bytes, (path) => assertUserError(() => readCorpus(path), `${path}: invalid UTF-8 at byte offset 18 (line 2)`));
  }
});

test('JSONL: one text per line, blank lines and CRLF endings allowed', () => {
  withFile('c.jsonl', '{"text": "first"}\r\n\n  \n{"text": "😀 second", "id": 2}\n{"text": ""}', (path) => {
    assert.deepEqual(readCorpus(path), ['first', '😀 second', '']);
  });
});

test('JSONL errors name file:line and the problem', () => {
  const bad: Array<[string, RegExp]> = [
    ['{"text": "ok"}\n{"text": "a",}\n', /c\.jsonl:2: not valid JSON at column 14: expected a double-quoted property name$/],
    ['{"text": "ok"}\n\n{"txt": "a"}\n', /c\.jsonl:3: no "text" field$/],
    ['{"text": 42}\n', /c\.jsonl:1: "text" must be a string, got number$/],
    ['{"text": null}\n', /c\.jsonl:1: "text" must be a string, got null$/],
    ['["text"]\n', /c\.jsonl:1: expected a JSON object with a "text" field$/],
    ['{"text": "unterminated\n', /c\.jsonl:1: not valid JSON at column 10: unterminated string$/],
  ];
  for (const [content, pattern] of bad) withFile('c.jsonl', content, (path) => assertUserError(() => readCorpus(path), pattern));
});

test('only .txt and .jsonl; a missing file is named', () => {
  withFile('c.csv', 'a,b', (path) => assertUserError(() => readCorpus(path), `${path}: corpus must be a .txt or .jsonl file`));
  assertUserError(() => readCorpus('/nonexistent/corpus.txt'), '/nonexistent/corpus.txt: cannot read (ENOENT)');
});

test('a .txt corpus is cut only where pre-tokenization splits anyway', () => {
  const splitter = new HfSplitPreTokenizer(structuredClone(QWEN2_SPLIT_COMPONENT));
  const words = (texts: string[]) => texts.flatMap((t) => splitter.pre_tokenize_text(t));
  const text = readFileSync(join(FIXTURES, 'small-corpus.txt'), 'utf8') + '\n\n\n   x\n \ny.\n\nz';
  for (const chunk of [1, 7, 40, 200]) {
    const pieces = splitTextForTraining(text, chunk);
    assert.ok(pieces.length > 3, `chunk ${chunk}: cut into ${pieces.length}`);
    assert.equal(pieces.join(''), text);
    for (const piece of pieces.slice(0, -1)) assert.ok(piece.endsWith('\n'));
    assert.deepEqual(words(pieces), words([text]), `chunk ${chunk}: same words as the whole text`);
  }
  assert.deepEqual(readCorpus(join(FIXTURES, 'small-corpus.txt')), [readFileSync(join(FIXTURES, 'small-corpus.txt'), 'utf8')]);
});
