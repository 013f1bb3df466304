// `r1 verify-answer` run as a user runs it (a child process), in both modes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Command, CommanderError } from 'commander';
import { parsePlaces, register, verifyLine, verifyPair } from '../../src/cli/verify-answer.ts';
import { ANSWER_PLACES } from '../../src/rewards/extract.ts';
import { UserError } from '../../src/util/errors.ts';

const mainModule = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-verify-'));
after(() => rmSync(root, { recursive: true, force: true }));

function r1(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The command in this process (a fresh program each time), for the cases that need no real stdout. */
async function runInProcess(...args: string[]): Promise<{ exitCode: number; stderr: string }> {
  let stderr = '';
  const program = new Command('r1').configureOutput({ writeErr: (text) => (stderr += text), writeOut: () => {} });
  register(program);
  const quiet = console.error;
  console.error = (...parts: unknown[]) => (stderr += `${parts.join(' ')}\n`);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { exitCode: 0, stderr };
  } catch (err) {
    if (err instanceof CommanderError) return { exitCode: err.exitCode, stderr };
    if (err instanceof UserError) return { exitCode: 1, stderr: `${stderr}r1: ${err.message}\n` };
    throw err;
  } finally {
    console.error = quiet;
  }
}

describe('r1 verify-answer GOLD PRED', () => {
  it('prints true or false and exits 0 either way; --extract reads the answer out of a whole completion', () => {
    const yes = r1('verify-answer', '\\frac{1}{2}', '0.5');
    assert.deepEqual([yes.status, yes.stdout], [0, 'true\n'], yes.stderr);
    const completion = '<think>3 + 4 = 7, minus 2</think> <answer>x = 5</answer>';
    const extracted = r1('verify-answer', '--extract', '5', completion);
    assert.deepEqual([extracted.status, extracted.stdout], [0, 'true\n'], extracted.stderr);
  });

  it('without --extract each side is read as an answer (a whole text still extracted from); --places limits --extract', () => {
    const completion = '<think>3 + 4 = 7, minus 2</think> <answer>x = 5</answer>';
    const options = { extract: false, places: ANSWER_PLACES };
    assert.deepEqual(verifyPair('5', completion, options), { correct: true, extracted: 'x = 5' });
    assert.deepEqual(verifyPair('$5$', 'x = 5', options), { correct: true, extracted: 'x = 5' });
    assert.deepEqual(verifyPair('5', completion, { ...options, extract: true }), { correct: true, extracted: 'x = 5', goldExtracted: '5' });
    assert.deepEqual(verifyPair('so $\\boxed{5}$', completion, { ...options, extract: true }), { correct: true, extracted: 'x = 5', goldExtracted: '5' });
    assert.deepEqual(verifyPair('5', completion, { extract: true, places: parsePlaces('boxed,gsm8k') }), { correct: false, extracted: null, goldExtracted: '5' });
    assert.deepEqual(verifyPair('[1,2)', '[1,2]', options), { correct: false, extracted: '[1,2]' });
  });

  it('exits 2 on usage errors', async () => {
    const run = r1('verify-answer', '5');
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /give GOLD and PRED, or --jsonl FILE/);
    for (const args of [['verify-answer'], ['verify-answer', '--bogus', '1', '1'], ['verify-answer', '1', '1', '--out', join(root, 'x')], ['verify-answer', '1', '1', '--jsonl', 'f']]) {
      assert.equal((await runInProcess(...args)).exitCode, 2, args.join(' '));
    }
    const badPlace = await runInProcess('verify-answer', '--extract', '--places', 'anywhere', '1', '1');
    assert.equal(badPlace.exitCode, 1);
    assert.match(badPlace.stderr, /--places: unknown place "anywhere"/);
  });
});

describe('r1 verify-answer --jsonl', () => {
  const file = join(root, 'pairs.jsonl');
  writeFileSync(
    file,
    [
      JSON.stringify({ gold: '1,000', pred: '1000' }),
      JSON.stringify({ gold: '\\{1,2\\}', pred: '\\{2,1\\}' }),
      'not json',
      '',
      JSON.stringify({ gold: 3 }),
      JSON.stringify({ gold: '(1,2)', pred: '(2,1)' }),
      JSON.stringify([1, 2]),
      JSON.stringify({ gold: 8, pred: '<think>2^3</think><answer>8</answer>' }),
    ].join('\n') + '\n',
  );

  it('writes one result per non-blank line to stdout, errors naming the line, without stopping', () => {
    const run = r1('verify-answer', '--jsonl', file);
    assert.equal(run.status, 0, run.stderr);
    const results = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(results, [
      { line: 1, correct: true, gold: '1,000', pred: '1000', extracted: '1000' },
      { line: 2, correct: true, gold: '\\{1,2\\}', pred: '\\{2,1\\}', extracted: '\\{2,1\\}' },
      { line: 3, error: results[2].error },
      { line: 5, error: 'line 5: field "pred" is missing' },
      { line: 6, correct: false, gold: '(1,2)', pred: '(2,1)', extracted: '(2,1)' },
      { line: 7, error: 'line 7: expected an object {"gold": ..., "pred": ...}' },
      { line: 8, correct: true, gold: '8', pred: '<think>2^3</think><answer>8</answer>', extracted: '8' },
    ]);
    assert.match(results[2].error, /^line 3: not valid JSON/);
    assert.match(run.stderr, /7 lines: 3 correct, 1 wrong, 3 malformed/);
  });

  it('--extract and --out: results go to the file, extracted answers included', async () => {
    const out = join(root, 'results.jsonl');
    const run = await runInProcess('verify-answer', '--jsonl', file, '--extract', '--out', out);
    assert.equal(run.exitCode, 0, run.stderr);
    const results = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(results.length, 7);
    const line8 = { line: 8, correct: true, gold: '8', pred: '<think>2^3</think><answer>8</answer>', extracted: '8', gold_extracted: '8' };
    assert.deepEqual(results[6], line8);
    assert.deepEqual(results[0], { line: 1, correct: true, gold: '1,000', pred: '1000', extracted: '1000', gold_extracted: '1,000' });
    // A text with no tag, box or #### that is itself an answer is taken whole.
    assert.deepEqual(results[1], { line: 2, correct: true, gold: '\\{1,2\\}', pred: '\\{2,1\\}', extracted: '\\{2,1\\}', gold_extracted: '\\{1,2\\}' });
    assert.match(run.stderr, /7 lines: 3 correct, 1 wrong, 3 malformed/);
  });

  it('piped into a reader that stops early (`| head`), it ends quietly instead of dying with EPIPE', () => {
    const many = join(root, 'many.jsonl');
    writeFileSync(many, `${Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ gold: String(i), pred: `#### ${i}` })).join('\n')}\n`);
    const command = [process.execPath, '--import', 'tsx', '-e', JSON.stringify(`import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`), 'r1', 'verify-answer', '--jsonl', many]
      .map((part) => (part.startsWith('"') ? part : `'${part}'`))
      .join(' ');
    const run = spawnSync('bash', ['-c', `set -o pipefail; ${command} | head -n 2`], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n').map((line) => JSON.parse(line).line), [1, 2]);
    assert.doesNotMatch(run.stderr, /EPIPE|Error/);
  });

  it('a missing file is one error naming it', async () => {
    const run = await runInProcess('verify-answer', '--jsonl', join(root, 'missing.jsonl'));
    assert.equal(run.exitCode, 1);
    assert.equal(run.stderr.trim(), `r1: ${join(root, 'missing.jsonl')}: no such file`);
  });

  it('verifyLine: numbers are read as strings, other types name the field', () => {
    const options = { extract: false, places: ['answer-tag'] as const };
    assert.deepEqual(verifyLine('{"gold": "x=5", "pred": 5}', 4, options), { line: 4, correct: true, gold: 'x=5', pred: '5', extracted: '5' });
    assert.deepEqual(verifyLine('{"gold": null, "pred": "5"}', 9, options), { line: 9, error: 'line 9: field "gold" must be a string or a number' });
  });
});
