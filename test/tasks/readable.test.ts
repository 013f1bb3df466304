// A task asked in R1's readable form reads the answer from the summary's \boxed{} only.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { arithmeticTask } from '../../src/tasks/arithmetic.ts';
import { readableTask } from '../../src/tasks/readable.ts';

test('readableTask: same problems, the answer read from the summary, never from the thought or answer tags', () => {
  const plain = arithmeticTask();
  const task = readableTask(plain);
  assert.deepEqual(task.testSet(5), plain.testSet(5));
  const example = { id: 'x', question: 'q', reference: '17' };
  assert.equal(task.verify('<think> 12 + 5 = 17 </think> The answer is \\boxed{17}.', example).correct, true);
  assert.equal(task.verify('<think> \\boxed{17} </think> The answer is \\boxed{16}.', example).correct, false);
  assert.equal(task.verify('<think> \\boxed{17} </think> no box', example).correct, false);
  assert.equal(task.verify('<think> x </think> <answer> 17 </answer>', example).correct, false);
  assert.throws(() => task.verify('x', { id: 'c', question: 'q', reference: { target: 3 } }), /structured reference/);
});
