// Code tasks: the generated task's reference programs pass their own tests in the sandbox and its slips fail, the
// held-out formulas never appear in training, and users' JSONL files load with errors naming file:line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CODE_LEVELS, codeJsonlTask, codePretrainingText, evaluateFormula, generatedCodeTask, readCodeProblems, type CodeReference } from '../../src/tasks/code.ts';
import { taskByName } from '../../src/tasks/registry.ts';
import { verifyAll } from '../../src/tasks/task.ts';
import { Rng } from '../../src/tensor/random.ts';

const skip = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0 ? false : 'bubblewrap is not installed (apt-get install bubblewrap)';
const sandbox = { limits: { wallMs: 5000 }, workers: 4 };
const dir = mkdtempSync(join(tmpdir(), 'r1ts-code-task-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('evaluateFormula', () => {
  it('follows precedence and parentheses like Python and JavaScript', () => {
    assert.equal(evaluateFormula('a - b * 3', 10, 2), 4);
    assert.equal(evaluateFormula('(a - b) * 3', 10, 2), 24);
    assert.equal(evaluateFormula('7 - a - b', 1, 2), 4);
  });
});

describe('the generated code task', { skip }, () => {
  it('reference programs pass their tests and slipped ones fail, in Python and JavaScript', () => {
    for (const language of ['python', 'javascript'] as const) {
      const task = generatedCodeTask({ level: 2, language, sandbox });
      const examples = [...task.sample(new Rng(5), 6), ...task.testSet(4)];
      const answer = (program: string) => `<think> read a and b </think> <answer>\n${program}</answer>`;
      const right = verifyAll(task, examples.map((example) => ({ completion: answer((example.reference as CodeReference).solution!), example })));
      assert.deepEqual(right.map((v) => [v.correct, v.score, v.status]), examples.map(() => [true, 1, 'passed']), language);
      // A slip (another operator or constant) passes at most some of the three tests.
      const slipped = codePretrainingText(new Rng(9), 4, { correctRate: 0, formatRate: 1, level: 2, language });
      const slipExamples = slipped.map((doc) => examples.find((e) => doc.includes(`prints ${e.question.split('prints ')[1]}. Assistant:`)) ?? null);
      const paired = slipped.map((doc, i) => ({ doc, example: slipExamples[i] })).filter((p) => p.example !== null);
      for (const verdict of verifyAll(task, paired.map(({ doc, example }) => ({ completion: doc.split('Assistant:')[1], example: example! })))) {
        assert.equal(verdict.correct, false);
      }
    }
  });

  it('holds formulas out of training, and its test set is the same on every call', () => {
    const task = taskByName('code', { level: 1, sandbox });
    const test = task.testSet();
    assert.deepEqual(task.testSet(), test);
    const held = new Set(test.map((e) => e.question));
    assert.ok(held.size > 0 && held.size < CODE_LEVELS[1].formulas.length);
    for (const example of task.sample(new Rng(3), 300)) assert.ok(!held.has(example.question), example.question);
  });

  it('writes pretraining documents in the R1-Zero template with a program in <answer>', () => {
    const [doc] = codePretrainingText(new Rng(1), 1, { correctRate: 1, formatRate: 1 });
    assert.match(doc, /User: Write a Python program .* prints .+\. Assistant: <think> .* <\/think> <answer>\na, b = map\(int, input\(\)\.split\(\)\)\nprint\(.+\)\n<\/answer>$/s);
  });
});

describe('code problems from a JSONL file', { skip }, () => {
  const lines = [
    { prompt: 'Print the sum of two integers from stdin.', tests: [{ input: '1 2', output: '3' }], solution: 'print(sum(map(int, input().split())))' },
    { question: 'Write add(a, b) in JavaScript.', language: 'javascript', entry_point: 'add', tests: [{ assert: 'if (add(1, 2) !== 3) throw new Error()' }] },
    ...Array.from({ length: 20 }, (_, i) => ({ problem: `Print ${i}.`, tests: [{ input: '', output: String(i) }] })),
  ];

  it('loads the problems, splits them, and judges completions', () => {
    const file = join(dir, 'problems.jsonl');
    writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n'));
    const task = codeJsonlTask(file, { testFraction: 0.3, sandbox });
    const all = [...task.sample(new Rng(1), 40), ...task.testSet()];
    const first = all.find((e) => e.question.startsWith('Print the sum'))!;
    assert.equal((first.reference as CodeReference).solution, 'print(sum(map(int, input().split())))');
    const [good, bad] = verifyAll(task, [
      { completion: '```python\nprint(sum(map(int, input().split())))\n```', example: first },
      { completion: '```python\nprint(0)\n```', example: first },
    ]);
    assert.deepEqual([good.correct, bad.correct, bad.status], [true, false, 'wrong_answer']);
  });

  it('names the file and line of a bad problem', () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, `${JSON.stringify(lines[0])}\n{"prompt": "x", "tests": [{"input": "1"}]}\n`);
    assert.throws(() => readCodeProblems(file), new RegExp(`${file.replace(/[.]/g, '\\.')}:2: tests\\[0\\]\\.output must be a string`));
    writeFileSync(file, '{"prompt": "x", "entry_point": "add", "tests": [{"assert": "assert sub(1, 1) == 0"}]}\n');
    assert.throws(() => readCodeProblems(file), /:1: tests\[0\] does not call the entry point add/);
    assert.equal(readCodeProblems(file, { skipInvalid: true }).skipped.length, 1);
  });

  it('is a task of the registry as code:PATH, with code options refused elsewhere', () => {
    const file = join(dir, 'problems.jsonl');
    assert.match(taskByName(`code:${file}`, { testFraction: 0.3, sandbox }).description, /code problems from/);
    assert.throws(() => taskByName('arithmetic', { language: 'python' }), /they are for code tasks/);
    assert.throws(() => taskByName('code', { level: 9, sandbox }), /level must be one of 1, 2/);
  });
});
