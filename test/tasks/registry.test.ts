import assert from 'node:assert/strict';
import { test } from 'node:test';
import { taskByName } from '../../src/tasks/registry.ts';
import { Rng } from '../../src/tensor/random.ts';
import { assertUserError, withFile } from '../helpers.ts';

test('generated tasks by name, with levels', () => {
  const countdown = taskByName('countdown', { level: 1 });
  assert.equal(countdown.name, 'countdown');
  assert.equal(countdown.sample(new Rng(1), 2)[0].level, 1);
  assert.equal(taskByName('countdown').testSet(1)[0].level, 3);
  assert.equal(taskByName('arithmetic').sample(new Rng(1), 1)[0].level, 1);
  assert.equal(taskByName('arithmetic', { level: 4 }).sample(new Rng(1), 1)[0].level, 4);
});

test('jsonl tasks by jsonl:PATH or taskFile', () => {
  withFile('p.jsonl', '{"question": "What is 1 + 1?", "answer": "#### 2"}\n', (path) => {
    assert.equal(taskByName(`jsonl:${path}`, { testFraction: 0.01 }).sample(new Rng(0), 1)[0].reference, '2');
    assert.equal(taskByName('jsonl', { taskFile: path, testFraction: 0.01 }).name, `jsonl:${path}`);
    assertUserError(() => taskByName('jsonl'), 'task jsonl: no problems file (name the task jsonl:PATH or give taskFile)');
    assertUserError(() => taskByName(`jsonl:${path}`, { taskFile: '/other.jsonl' }), `task jsonl:${path}: the task names file ${path} but taskFile is /other.jsonl`);
    assertUserError(() => taskByName(`jsonl:${path}`, { level: 2 }), 'task jsonl: level applies only to generated tasks (countdown, arithmetic)');
  });
});

test('unknown names, bad levels and misplaced options are UserErrors that list what is known', () => {
  assertUserError(() => taskByName('gsm8k'), 'unknown task "gsm8k" (known: countdown, arithmetic, instructions, jsonl:PATH, readable:NAME, code, code:PATH)');
  assertUserError(() => taskByName('countdown', { level: 9 }), 'task countdown: level must be one of 1, 2, 3, 4, got 9');
  assertUserError(() => taskByName('arithmetic', { testFile: 'x.jsonl' }), 'task arithmetic: not options of generated tasks (they are for jsonl): testFile');
});

test('instructions and the readable: prefix by name', () => {
  assert.equal(taskByName('instructions').name, 'instructions');
  assertUserError(() => taskByName('instructions', { level: 2 }), 'task instructions: takes no options (got level)');
  const readable = taskByName('readable:arithmetic', { level: 2 });
  assert.deepEqual(readable.testSet(3), taskByName('arithmetic', { level: 2 }).testSet(3));
  const example = readable.testSet(1)[0];
  assert.equal(readable.verify(`<think> x </think> The answer is \\boxed{${example.reference}}.`, example).correct, true);
  assert.equal(readable.verify(`<think> x </think> <answer> ${example.reference} </answer>`, example).correct, false);
  assertUserError(() => taskByName('readable:readable:arithmetic'), 'task readable:readable:arithmetic: readable:arithmetic is already asked in the readable form');
  assertUserError(() => taskByName('readable:nope'), 'unknown task "nope" (known: countdown, arithmetic, instructions, jsonl:PATH, readable:NAME, code, code:PATH)');
});
