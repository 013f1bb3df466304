import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BYTE_TO_CHAR, bytesToVocabString, CHAR_TO_BYTE, vocabStringToBytes } from '../../src/tokenizer/byte-level.ts';

test("GPT-2's bytes_to_unicode: printable bytes are themselves, the other 68 count up from U+0100", () => {
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  assert.equal(BYTE_TO_CHAR[0x41], 'A');
  assert.equal(BYTE_TO_CHAR[0xe9], 'é');
  // Non-printable bytes in order: 0x00-0x20 -> U+0100-U+0120, 0x7F-0xA0 -> U+0121-U+0142, 0xAD -> U+0143.
  assert.equal(BYTE_TO_CHAR[0x00], '\u0100');
  assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
  assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
  assert.equal(BYTE_TO_CHAR[0x7f], '\u0121');
  assert.equal(BYTE_TO_CHAR[0xa0], 'ł');
  assert.equal(BYTE_TO_CHAR[0xad], 'Ń');
  for (let b = 0; b < 256; b++) assert.equal(CHAR_TO_BYTE.get(BYTE_TO_CHAR[b]), b);
});

test('vocabulary strings and bytes convert both ways; characters outside the alphabet give null', () => {
  const bytes = new TextEncoder().encode(' 你好\n');
  assert.equal(bytesToVocabString(bytes), 'Ġä½łå¥½Ċ');
  assert.deepEqual(vocabStringToBytes('Ġä½łå¥½Ċ'), bytes);
  assert.equal(vocabStringToBytes('<｜User｜>'), null);
  assert.deepEqual(vocabStringToBytes(''), new Uint8Array(0));
});
