// The before/after table r1 zero and r1 rl print: one row per figure, named by the evaluation's k.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EvalReport } from '../../src/eval/evaluate.ts';
import { comparisonTable } from '../../src/pipeline/report.ts';

const report = (k: number, passAt1: number, passAtK: number): EvalReport => ({
  task: 'arithmetic', questions: 10, k, temperature: 0.6, topP: 0.95, maxNewTokens: 16, passAt1, passAtK, consAtK: passAt1,
  formatRate: 1, meanLength: 12, details: [],
});

test('the table has pass@1, pass@k and cons@k rows, and no second pass@1 row when k is 1', () => {
  const labels = (k: number) => comparisonTable(report(k, 0.2, 0.5), report(k, 0.6, 0.9)).split('\n').slice(2).map((row) => row.split(/ {2,}/)[0]);
  assert.deepEqual(labels(4), ['pass@1', 'pass@4', 'cons@4', 'format rate', 'mean response length (tokens)']);
  assert.deepEqual(labels(1), ['pass@1', 'cons@1', 'format rate', 'mean response length (tokens)']);
  assert.match(comparisonTable(report(4, 0.2, 0.5), report(4, 0.6, 0.9)), /\npass@1 +20\.0% +60\.0% +\+40\.0 pts\n/);
});
