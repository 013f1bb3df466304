import assert from 'node:assert/strict';
import { test } from 'node:test';
import { learningRate, type ScheduleConfig } from '../../src/train/schedule.ts';

// Warmup over updates 0..9, decay over 10..110 (100 intervals), floor 0.1 of a peak of 1.
const base: ScheduleConfig = { shape: 'cosine', peakLr: 1, warmupSteps: 10, totalSteps: 111, minLrRatio: 0.1 };
const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test('warmup rises linearly to the peak', () => {
  near(learningRate(0, base), 0.1);
  near(learningRate(4, base), 0.5);
  near(learningRate(9, base), 1);
});

test('cosine decay: peak after warmup, 0.1 + 0.9 (1 + cos(pi p)) / 2 between, the floor at the last update and after', () => {
  near(learningRate(10, base), 1);
  near(learningRate(35, base), 0.1 + 0.9 * 0.5 * (1 + Math.SQRT1_2)); // progress 1/4
  near(learningRate(60, base), 0.55); // progress 1/2
  near(learningRate(110, base), 0.1);
  near(learningRate(500, base), 0.1);
});

test('linear decay and constant', () => {
  near(learningRate(35, { ...base, shape: 'linear' }), 0.1 + 0.9 * 0.75);
  near(learningRate(110, { ...base, shape: 'linear' }), 0.1);
  near(learningRate(5, { ...base, shape: 'constant' }), 0.6);
  near(learningRate(80, { ...base, shape: 'constant' }), 1);
});

test('no warmup starts at the peak', () => {
  near(learningRate(0, { ...base, warmupSteps: 0 }), 1);
});
