// The native core's thread pool (native/cpu/parallel.cpp): every task of a run is done once and the run returns
// only when all are done, on more threads than cores (workers then join late, or a run's last task is still going
// when the next run starts), and runs of one task or too little work go serially in between; and the elementwise
// kernels' split of one long row into segments (native/cpu/elementwise.cpp).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeBackend, nativeThreads, setNativeThreads } from '../../../src/tensor/backends/native.ts';

const { sumSquares, binary } = nativeBackend().kernels;

test('runs of the pool do every task once, back to back, on 3 and 16 threads', () => {
  // r1_sum_squares sums chunks of 65,536 values, one task each, in a fixed order: any thread count gives the same
  // bits, and a task skipped, or one still running when its run returns, changes the sum.
  const chunk = 65536;
  const x = new Float32Array(37 * chunk + 123);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 500 - 1;
  const lengths = [x.length, 2 * chunk, chunk + 1, 1000, 5 * chunk];
  const previous = nativeThreads();
  try {
    setNativeThreads(1);
    const serial = lengths.map((n) => sumSquares(x, n));
    for (const threads of [3, 16]) {
      setNativeThreads(threads);
      for (let round = 0; round < 150; round++) {
        lengths.forEach((n, i) => assert.equal(sumSquares(x, n), serial[i], `${threads} threads, round ${round}, n = ${n}`));
      }
    }
  } finally {
    setNativeThreads(previous);
  }
});

test('an elementwise op on a contiguous tensor longer than one segment is split over the threads with the same values', () => {
  // A contiguous operand is one long row after the strided iteration merges its dimensions; it runs in segments
  // of 32,768 elements (the last one short), each at its own offset into every operand, a broadcast one included.
  const n = 3 * 32768 + 13;
  const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
  const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.7));
  const scalar = Float32Array.of(0.375);
  const previous = nativeThreads();
  try {
    for (const threads of [1, 3, 16]) {
      setNativeThreads(threads);
      const sum = new Float32Array(n), scaled = new Float32Array(n);
      binary('add', a, [1], b, [1], sum, [n]);
      binary('mul', a, [1], scalar, [0], scaled, [n]);
      for (let i = 0; i < n; i++) {
        if (sum[i] !== Math.fround(a[i] + b[i])) assert.fail(`${threads} threads: add at ${i}: ${sum[i]}`);
        if (scaled[i] !== Math.fround(a[i] * 0.375)) assert.fail(`${threads} threads: mul at ${i}: ${scaled[i]}`);
      }
    }
  } finally {
    setNativeThreads(previous);
  }
});
