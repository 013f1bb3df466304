// `r1 run-code` run as a user runs it (a child process): one JSON verdict per line, in line order, a malformed line
// reported without stopping the others, limits taken from flags.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import { register } from '../../src/cli/run-code.ts';
import { UserError } from '../../src/util/errors.ts';

const skip = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0 ? false : 'bubblewrap is not installed (apt-get install bubblewrap)';
const mainModule = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-run-code-'));
after(() => rmSync(root, { recursive: true, force: true }));

function r1(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', ...args], { encoding: 'utf8' });
}

describe('r1 run-code --jsonl FILE', { skip }, () => {
  it('prints one verdict per line and a summary', () => {
    const file = join(root, 'programs.jsonl');
    writeFileSync(file, [
      JSON.stringify({ language: 'python', code: 'print(input()[::-1])', tests: [{ input: 'abc', output: 'cba' }, { input: 'xy', output: 'yx' }] }),
      '{"language": "python", "code": 1}',
      '',
      JSON.stringify({ language: 'python', code: 'while True: pass', tests: [{ input: '', output: '' }] }),
    ].join('\n'));
    const run = r1('run-code', '--jsonl', file, '--wall-ms', '1500', '--cpu-seconds', '1', '--workers', '2');
    assert.equal(run.status, 0, run.stderr);
    const verdicts = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(verdicts.map((v) => [v.line, v.status ?? 'error', v.passed, v.total]), [[1, 'passed', 2, 2], [2, 'error', undefined, undefined], [4, 'timeout', 0, 1]]);
    assert.match(verdicts[1].error, /line 2: "code" must be a string/);
    assert.match(run.stderr, /3 programs: 1 passed, 1 failed, 1 malformed/);
  });

  it('refuses a bad limit naming the flag, before running anything', async () => {
    const program = new Command('r1');
    register(program);
    await assert.rejects(program.parseAsync(['run-code', '--jsonl', join(root, 'programs.jsonl'), '--memory-mb', '0'], { from: 'user' }),
      (err: unknown) => err instanceof UserError && /--memory-mb "0": must be a whole number of at least 1/.test(err.message));
  });
});
