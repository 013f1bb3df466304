import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lineAndColumn, locateJsonError, parseJsonText } from '../../src/io/json-file.ts';
import { UserError } from '../../src/util/errors.ts';

test('syntax errors are located at the offending character, with line:column', () => {
  const cases: Array<[string, number, string]> = [
    ['abc', 0, 'unexpected character "a"'],
    ['{"a": tru}', 9, 'unexpected character "}"'], // JSON.parse gives no offset for this one
    ['{"a":1,}', 7, 'expected a double-quoted property name'],
    ['{"a" 1}', 5, "expected ':' after property name"],
    ['[1 2]', 3, "expected ',' or ']'"],
    ['{"a": "b\u0001"}', 8, 'control character in string (escape it)'],
    ['"\\x"', 1, 'bad escape'],
    ['"\\u12g4"', 1, 'bad \\u escape'],
    ['[1, 2', 5, 'unexpected end of input'],
    ['{"a": "open', 6, 'unterminated string'],
    ['[1] [2]', 4, 'unexpected text after the JSON value'],
    ['[01]', 2, "expected ',' or ']'"],
    ['[-]', 2, 'unexpected character "]"'],
    ['[1.]', 3, 'unexpected character "]"'],
    ['', 0, 'unexpected end of input'],
  ];
  for (const [text, offset, problem] of cases) {
    assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse rejects ${text}`);
    assert.deepEqual(locateJsonError(text), { offset, problem }, text);
  }
  assert.throws(
    () => parseJsonText('{\n  "a": 1,\n  "b": [1, 2,]\n}', 'dir/x.json'),
    (e: Error) => e instanceof UserError && e.message === 'dir/x.json:3:14: not valid JSON: unexpected character "]"',
  );
});

test('valid JSON parses; the checker accepts whatever JSON.parse accepts', () => {
  const valid = ['{}', '[]', '0', '-0.5e+10', '"\\u00e9\\n"', ' {"a": [true, false, null, {"b": "c"}]} \n', '"😀"'];
  for (const text of valid) {
    assert.deepEqual(parseJsonText(text, 'x'), JSON.parse(text));
    assert.deepEqual(locateJsonError(text), { offset: 0, problem: 'rejected by JSON.parse' }, 'no error found in valid JSON');
  }
});

test('lineAndColumn counts from 1', () => {
  assert.deepEqual(lineAndColumn('ab\ncd\nef', 0), { line: 1, column: 1 });
  assert.deepEqual(lineAndColumn('ab\ncd\nef', 4), { line: 2, column: 2 });
  assert.deepEqual(lineAndColumn('ab\ncd\nef', 6), { line: 3, column: 1 });
});
