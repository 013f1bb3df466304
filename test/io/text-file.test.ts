// A user's text file: read whole, UTF-8 checked to the letter of Unicode (the place of a bad byte named), a
// byte-order mark dropped, a missing file named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firstInvalidUtf8, readTextFile } from '../../src/io/text-file.ts';
import { assertUserError, withFile } from '../helpers.ts';

test('firstInvalidUtf8 follows Unicode Table 3-7 (as TextDecoder fatal does)', () => {
  const cases: Array<[number[], number]> = [
    [[0x61, 0x62], -1],
    [[0xe4, 0xbd, 0xa0, 0xf0, 0x9f, 0x98, 0x80], -1], // 你😀
    [[0x61, 0xff], 1], // never valid
    [[0x61, 0x80], 1], // lone continuation byte
    [[0xc0, 0x80], 0], // overlong NUL
    [[0xe0, 0x80, 0x80], 0], // overlong 3-byte
    [[0xed, 0xa0, 0x80], 0], // UTF-16 surrogate D800
    [[0xf4, 0x90, 0x80, 0x80], 0], // above U+10FFFF
    [[0x61, 0xe4, 0xbd], 1], // truncated at the end
    [[0xe4, 0x41, 0xa0], 0], // continuation missing
  ];
  for (const [bytes, expected] of cases) {
    assert.equal(firstInvalidUtf8(Uint8Array.from(bytes)), expected, bytes.map((b) => b.toString(16)).join(' '));
    let fatalRejects = false;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
    } catch {
      fatalRejects = true;
    }
    assert.equal(fatalRejects, expected !== -1, 'agrees with TextDecoder on validity');
  }
});

test('readTextFile drops a byte-order mark, names a bad byte by offset and line, and names a missing file', () => {
  withFile('bom.jsonl', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a": 1}\n')]), (path) => assert.equal(readTextFile(path), '{"a": 1}\n'));
  withFile('bad.txt', Buffer.concat([Buffer.from('ok\nalmost '), Buffer.from([0xc0, 0x80])]), (path) => assertUserError(() => readTextFile(path), `${path}: invalid UTF-8 at byte offset 10 (line 2)`));
  assertUserError(() => readTextFile('/nonexistent/r1ts.txt'), '/nonexistent/r1ts.txt: cannot read (ENOENT)');
});
