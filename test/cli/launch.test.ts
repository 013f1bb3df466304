// `r1 launch` from the shell: each rank runs the same r1 command, and a rank's failure fails the launch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { r1 } from './r1.ts';

test('r1 launch --gpus 2 runs the command twice; a failing command fails the launch naming the rank', () => {
  const ok = r1('launch', '--gpus', '2', '--master-port', '29611', '--', 'verify-answer', '1/2', '0.5');
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.stdout.trim().split('\n'), ['true', 'true']);

  const bad = r1('launch', '--gpus', '1', '--', 'verify-answer', '1/2');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /r1: rank 0 of 1 exited with code 2 \(its own output above says why\)/);
});

test("launch --help's example runs a command with flags that command takes", () => {
  const help = r1('launch', '--help');
  assert.equal(help.code, 0, help.stderr);
  const paragraph = help.stdout.split(/\n\s*\n/).find((p) => p.includes('Example:')) ?? '';
  const example = /Example: r1 launch .*? -- (\S+)(.*)/.exec(paragraph.replace(/\s*\n\s*/g, ' '));
  assert.ok(example, `no example in:\n${help.stdout}`);
  const [, command, args] = example;
  const commandHelp = r1(command, '--help');
  assert.equal(commandHelp.code, 0, commandHelp.stderr);
  for (const flag of args.match(/--[a-z-]+/g) ?? []) {
    assert.match(commandHelp.stdout, new RegExp(`${flag}\\b(?!-)`), `r1 ${command} has no ${flag}`);
  }
});
