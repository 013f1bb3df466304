import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { register } from '../../src/cli/tokenizer.ts';
import { readCorpus } from '../../src/tokenizer/corpus.ts';
import { trainBpe } from '../../src/tokenizer/train.ts';
import { UserError } from '../../src/util/errors.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SMALL_CORPUS = join(ROOT, 'test', 'tokenizer', 'fixtures', 'small-corpus.txt');
const work = mkdtempSync(join(tmpdir(), 'r1-cli-tokenizer-'));
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * Runs `r1 tokenizer ...` in this process: the subcommands registered on a fresh program whose output is
 * captured, with errors reported as main() reports them ("r1: message", exit code 1 for a UserError).
 */
async function r1(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const program = new Command('r1').exitOverride().configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  register(program);
  try {
    await program.parseAsync(['node', 'r1', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (err instanceof UserError) return { code: 1, stdout, stderr: `${stderr}r1: ${err.message}\n` };
    if (err instanceof CommanderError) return { code: err.exitCode, stdout, stderr };
    throw err;
  }
}

/** Runs the real `r1` entry point (src/cli/main.ts, as bin/r1.js runs dist/) in a child process. */
function r1Process(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = "import { main } from './src/cli/main.ts'; await main(['node', 'r1', ...process.argv.slice(1)]);";
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args], { cwd: ROOT, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

test('r1 tokenizer train, encode, decode: a round trip through the files it writes', async () => {
  const corpus = join(work, 'corpus.jsonl');
  const texts = readFileSync(SMALL_CORPUS, 'utf8').split('\n\n');
  writeFileSync(corpus, texts.map((text) => JSON.stringify({ text, source: 'fixture' })).join('\n'));
  const out = join(work, 'tok');
  const trainRun = await r1('tokenizer', 'train', '--corpus', corpus, '--vocab-size', '320', '--out', out, '--special', '<|tool_call|>');
  assert.equal(trainRun.code, 0, trainRun.stderr);
  assert.match(trainRun.stdout, /wrote .*tokenizer\.json: vocab 320 \(256 bytes, 56 learned, 8 added\)/);
  // The command is thin: it writes what the library function makes from the same corpus and flags.
  const library = trainBpe(readCorpus(corpus), { vocabSize: 320, specialTokens: ['<|tool_call|>'] });
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8')), library.tokenizerJson);

  const text = 'The answer is 72 😀<|im_end|>';
  const [encodeRun, tokensRun] = await Promise.all([
    r1('tokenizer', 'encode', '--tokenizer', out, text),
    r1('tokenizer', 'encode', '--tokenizer', join(out, 'tokenizer.json'), '--tokens', text),
  ]);
  assert.equal(encodeRun.code, 0, encodeRun.stderr);
  assert.match(encodeRun.stdout, /^\d+(,\d+)*\n$/);
  const ids = encodeRun.stdout.trim().split(',').map(Number);
  assert.equal(ids.at(-1), 314, '<|im_end|> is the third added token: 320 - 8 + 2');
  const lines = tokensRun.stdout.trim().split('\n');
  assert.equal(lines.length, ids.length);
  assert.equal(lines.at(-1), '314\t<|im_end|>\t"<|im_end|>"');
  // " 😀" is F0 9F 98 80 after the space; this vocabulary learned "Ġ" + F0 9F as one token.
  assert.ok(lines.some((l) => /^\d+\tĠðŁ\t<20 f0 9f>$/.test(l)), 'bytes that are part of a character show as hex');

  const [decodeRun, skipRun] = await Promise.all([
    r1('tokenizer', 'decode', '--tokenizer', out, ids.join(',')),
    r1('tokenizer', 'decode', '--tokenizer', out, '--skip-special-tokens', ids.join(' ')),
  ]);
  assert.equal(decodeRun.stdout, `${text}\n`);
  assert.equal(skipRun.stdout, 'The answer is 72 😀\n');
});

test('bad input: one line naming the file (or flag) and exit code 1', async () => {
  const badJsonl = join(work, 'bad.jsonl');
  writeFileSync(badJsonl, '{"text": "fine"}\n{"text": "broken"\n');
  const noText = join(work, 'notext.jsonl');
  writeFileSync(noText, '{"content": "x"}\n');
  const badUtf8 = join(work, 'bad.txt');
  writeFileSync(badUtf8, Buffer.from([0x61, 0x0a, 0x62, 0xc3, 0x28]));
  const runs = await Promise.all([
    r1('tokenizer', 'train', '--corpus', badJsonl, '--vocab-size', '300', '--out', join(work, 'x')),
    r1('tokenizer', 'train', '--corpus', noText, '--vocab-size', '300', '--out', join(work, 'x')),
    r1('tokenizer', 'train', '--corpus', badUtf8, '--vocab-size', '300', '--out', join(work, 'x')),
    r1('tokenizer', 'train', '--corpus', SMALL_CORPUS, '--vocab-size', '12k', '--out', join(work, 'x')),
    r1('tokenizer', 'train', '--corpus', SMALL_CORPUS, '--out', join(work, 'x')),
    r1('tokenizer', 'decode', '--tokenizer', join(ROOT, 'test', 'tokenizer', 'fixtures', 'trained-small'), '1,x,3'),
    r1('tokenizer', 'encode', '--tokenizer', join(work, 'missing'), 'hi'),
  ]);
  const expected = [
    `r1: ${badJsonl}:2: not valid JSON at column 18: unexpected end of input`,
    `r1: ${noText}:1: no "text" field`,
    `r1: ${badUtf8}: invalid UTF-8 at byte offset 3 (line 2)`,
    "error: option '--vocab-size <n>' argument '12k' is invalid. expected a positive integer",
    "error: required option '--vocab-size <n>' not specified",
    'r1: ids: "x" is not a token id (expected non-negative integers separated by commas)',
    `r1: ${join(work, 'missing')}: no such file or folder`,
  ];
  runs.forEach((run, i) => {
    assert.equal(run.code, 1, `run ${i}: ${run.stderr}`);
    assert.equal(run.stderr.split('\n')[0], expected[i], `run ${i}`);
  });
});

test('--help documents every subcommand and flag', async () => {
  const [group, train, encode, decode] = await Promise.all([
    r1('tokenizer', '--help'),
    r1('tokenizer', 'train', '--help'),
    r1('tokenizer', 'encode', '--help'),
    r1('tokenizer', 'decode', '--help'),
  ]);
  for (const command of ['train', 'encode', 'decode']) assert.match(group.stdout, new RegExp(`\\n  ${command} `));
  for (const flag of ['--corpus <file>', '--vocab-size <n>', '--out <dir>', '--special <tokens...>', '--min-frequency <n>']) assert.ok(train.stdout.includes(flag), flag);
  for (const flag of ['--tokenizer <path>', '--tokens', '--no-add-special-tokens']) assert.ok(encode.stdout.includes(flag), flag);
  for (const flag of ['--tokenizer <path>', '--skip-special-tokens']) assert.ok(decode.stdout.includes(flag), flag);
});

test('the real entry point runs `r1 tokenizer` and prints a UserError as one line with exit code 1', async () => {
  const badJsonl = join(work, 'bad-main.jsonl');
  writeFileSync(badJsonl, '{"text": 1}\n');
  const [help, bad] = await Promise.all([r1Process('--help'), r1Process('tokenizer', 'train', '--corpus', badJsonl, '--vocab-size', '300', '--out', join(work, 'y'))]);
  assert.match(help.stdout, /\n  tokenizer /);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, `r1: ${badJsonl}:1: "text" must be a string, got number\n`);
});
