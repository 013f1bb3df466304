import assert from 'node:assert/strict';
import { test } from 'node:test';
import { epochBatch, RandomWindowBatcher, sequentialBatches, splitTokens, tokenizeDocuments } from '../../src/train/data.ts';

const encode = (text: string) => Array.from(text, (c) => c.charCodeAt(0) - 96); // 'a' -> 1

test('documents are packed into one stream, each followed by the end-of-text id', () => {
  assert.deepEqual(Array.from(tokenizeDocuments(['ab', 'c'], encode, 0)), [1, 2, 0, 3, 0]);
});

test('the validation split is the tail of the stream, at least one window long; a too-short corpus is named', () => {
  const tokens = Int32Array.from({ length: 100 }, (_, i) => i);
  const { train, validation } = splitTokens(tokens, 0.1, 4, 'c.txt');
  assert.deepEqual([train.length, validation[0]], [90, 90]);
  assert.equal(splitTokens(tokens, 0.01, 4, 'c.txt').validation.length, 5);
  assert.throws(() => splitTokens(tokens.subarray(0, 9), 0.1, 4, 'c.txt'), /c\.txt: the corpus has 9 tokens; training needs at least 10/);
});

test('batches are windows whose targets are the inputs shifted by one, and a restored state draws the same batches', () => {
  const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
  const a = new RandomWindowBatcher(tokens, 3, 8, 42);
  const first = a.next();
  assert.deepEqual(first.inputs.shape, [3, 8]);
  const x = Array.from(first.inputs.ints());
  const y = Array.from(first.targets.ints());
  for (let i = 0; i < x.length; i++) assert.equal(y[i], x[i] + 1);
  const saved = a.state();
  const next = [a.next(), a.next()].map((b) => Array.from(b.inputs.ints()));
  const b = new RandomWindowBatcher(tokens, 3, 8, 0);
  b.restore(saved);
  assert.deepEqual([b.next(), b.next()].map((batch) => Array.from(batch.inputs.ints())), next);
  assert.equal(b.batches, 3);
  assert.notDeepEqual(Array.from(new RandomWindowBatcher(tokens, 3, 8, 43).next().inputs.ints()), x);
});

test('validation batches are consecutive windows from the start, the last batch possibly smaller', () => {
  const tokens = Int32Array.from({ length: 26 }, (_, i) => i);
  const batches = [...sequentialBatches(tokens, 2, 8, 10)];
  assert.deepEqual(batches.map((b) => b.inputs.shape), [[2, 8], [1, 8]]);
  assert.deepEqual(Array.from(batches[1].inputs.ints()), [16, 17, 18, 19, 20, 21, 22, 23]);
  assert.deepEqual(Array.from(batches[1].targets.ints()), [17, 18, 19, 20, 21, 22, 23, 24]);
  assert.equal([...sequentialBatches(tokens, 2, 8, 1)].length, 1);
});

test('epoch batches: each epoch covers every item once in its own order, and a step always gives the same batch (exact resume)', () => {
  const items = Array.from({ length: 10 }, (_, i) => `item${i}`);
  const epoch = (e: number) => [0, 1, 2, 3].map((b) => epochBatch(items, 4 * e + b, 3, 7));
  for (const e of [0, 1]) {
    const batches = epoch(e);
    assert.deepEqual(batches.map((b) => b.length), [3, 3, 3, 1]);
    assert.deepEqual(batches.flat().sort(), [...items].sort());
  }
  assert.notDeepEqual(epoch(0).flat(), epoch(1).flat());
  assert.deepEqual(epochBatch(items, 5, 3, 7), epoch(1)[1]);
  assert.notDeepEqual(epochBatch(items, 0, 10, 8), epochBatch(items, 0, 10, 7));
});
