// The code reward's judge: programs read out of completions, run against stdin/stdout and assert tests in the
// sandbox, scored as a fraction or all-or-nothing, each failure reported with its own status.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { codeScore, extractProgram, judgePrograms, parseCodeLine, parseCodeTests, sameOutput, type CodeProgram, type CodeVerdict } from '../../src/rewards/code.ts';
import { sharedSandbox } from '../../src/rewards/sandbox.ts';

const skip = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0 ? false : 'bubblewrap is not installed (apt-get install bubblewrap)';

describe('extractProgram', () => {
  it('takes the last fenced block of the language, else the <answer> content', () => {
    const two = 'first\n```python\nprint(1)\n```\nthen\n```py\nprint(2)\n```\n```js\nconsole.log(3)\n```';
    assert.equal(extractProgram(two, 'python'), 'print(2)\n');
    assert.equal(extractProgram(two, 'javascript'), 'console.log(3)\n');
    assert.equal(extractProgram('<think>x</think> <answer>\nprint(5)\n</answer>', 'python'), 'print(5)\n');
    assert.equal(extractProgram('<answer>```\nprint(6)\n```</answer>', 'python'), 'print(6)\n');
    assert.equal(extractProgram('no program here', 'python'), null);
    assert.equal(extractProgram('<answer>   </answer>', 'python'), null);
  });
});

describe('output comparison and test parsing', () => {
  it('ignores line endings and trailing whitespace, nothing else', () => {
    assert.ok(sameOutput('3 \r\n4\n\n', '3\n4'));
    assert.ok(!sameOutput('3 4', '3\n4'));
    assert.ok(!sameOutput(' 3', '3'));
  });

  it('reports what is wrong with a test list', () => {
    assert.deepEqual(parseCodeTests([{ input: '1', output: '2' }, { assert: 'assert f()' }]), [{ input: '1', output: '2' }, { assert: 'assert f()' }]);
    assert.equal(parseCodeTests([]), '"tests" is empty');
    assert.equal(parseCodeTests([{ input: '1' }]), 'tests[0].output must be a string');
    assert.equal(parseCodeTests([{ stdin: '1' }]), 'tests[0] needs "input" and "output", or "assert"');
    assert.match(parseCodeLine('{"language": "ruby", "code": "", "tests": []}') as string, /"language" must be one of python, javascript/);
  });
});

describe('judgePrograms', { skip }, () => {
  const stdin = (input: string, output: string) => ({ input, output });
  const programs: Record<string, CodeProgram> = {
    passed: { language: 'python', code: 'a, b = map(int, input().split())\nprint(a + b)\n', tests: [stdin('1 2\n', '3\n'), stdin('-4 4', '0')] },
    partial: { language: 'python', code: 'a, b = map(int, input().split())\nprint(a + b if a > 0 else 0)\n', tests: [stdin('1 2', '3'), stdin('-1 -2', '-3'), stdin('5 5', '10')] },
    asserts: { language: 'javascript', code: 'function add(a, b) { return a + b; }\n', tests: [{ assert: 'if (add(2, 2) !== 4) throw new Error("add")' }, { assert: 'if (add(2, 3) !== 6) throw new Error("wrong on purpose")' }] },
    compileError: { language: 'python', code: 'def f(:\n    pass\n', tests: [stdin('', '')] },
    runtimeSyntaxError: { language: 'python', code: 'eval("1 +")\n', tests: [stdin('', '')] },
    crash: { language: 'python', code: 'raise SystemExit(3)\n', tests: [stdin('', '')] },
    timeout: { language: 'python', code: 'while True:\n    pass\n', tests: [stdin('', '')] },
    none: { language: 'python', code: null, tests: [stdin('', ''), stdin('', '')] },
  };
  const names = Object.keys(programs);
  let verdicts: Record<string, CodeVerdict> | null = null;
  const verdict = (name: string) => {
    if (verdicts === null) {
      const sandbox = sharedSandbox({ limits: { wallMs: 3000, cpuSeconds: 2 }, workers: 4 });
      const list = judgePrograms(sandbox, names.map((n) => programs[n]));
      verdicts = Object.fromEntries(names.map((n, i) => [n, list[i]]));
    }
    return verdicts[name];
  };

  it('counts the tests passed, with the status of the worst failure', () => {
    assert.deepEqual([verdict('passed').status, verdict('passed').passed, verdict('passed').total], ['passed', 2, 2]);
    assert.deepEqual([verdict('partial').status, verdict('partial').passed, verdict('partial').total], ['wrong_answer', 2, 3]);
    assert.deepEqual([verdict('asserts').status, verdict('asserts').passed], ['runtime_error', 1]);
    assert.match(verdict('asserts').stderr, /wrong on purpose/);
    assert.equal(verdict('crash').status, 'runtime_error');
    assert.equal(verdict('timeout').status, 'timeout');
    assert.deepEqual([verdict('none').status, verdict('none').total], ['no_code', 2]);
  });

  it('tells a program that does not compile from one that raises SyntaxError at run time', () => {
    assert.equal(verdict('compileError').status, 'compile_error');
    assert.match(verdict('compileError').stderr, /SyntaxError/);
    assert.equal(verdict('runtimeSyntaxError').status, 'runtime_error');
  });

  it('scores a fraction of the tests, or all-or-nothing', () => {
    assert.equal(codeScore(verdict('partial'), 'fraction'), 2 / 3);
    assert.equal(codeScore(verdict('partial'), 'all'), 0);
    assert.equal(codeScore(verdict('passed'), 'all'), 1);
    assert.equal(codeScore(verdict('none'), 'fraction'), 0);
  });
});
