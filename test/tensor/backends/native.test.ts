// The native backend (native/cpu through koffi) against the reference backend, kernel by kernel: the shared case
// table of kernel-cases.ts (its header says what the cases cover and how tolerances are set). Sums over repeated
// indices run in a fixed order here, so they must agree bit for bit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FloatArray } from '../../../src/tensor/backend.ts';
import { referenceBackend } from '../../../src/tensor/backends/reference.ts';
import type { Kernels } from '../../../src/tensor/kernels.ts';
import { kernelCases } from './kernel-cases.ts';

const ref = referenceBackend.kernels;
let nativeKernels: Kernels<FloatArray, Int32Array> | undefined;
let skipReason: string | false = false;
try {
  const { nativeBackend } = await import('../../../src/tensor/backends/native.ts');
  nativeKernels = nativeBackend().kernels;
} catch (err) {
  skipReason = `native backend unavailable: ${(err as Error).message}`;
}

const { cases, normal } = kernelCases({ name: 'native', kernels: () => nativeKernels!, seed: 20261123, unorderedSums: { rel: 0, abs: 0 } });

describe('native backend matches the reference backend', { skip: skipReason }, () => {
  it('has a comparison for every kernel it implements', () => {
    assert.deepEqual(Object.keys(nativeKernels!).sort(), Object.keys(cases).sort());
  });

  for (const [name, body] of Object.entries(cases)) it(name, body);

  it('runs float64 data on the reference kernels (for the float64 gradient checks)', () => {
    const x = Float64Array.from(normal(1001, 3)), yn = new Float64Array(1001), yr = new Float64Array(1001);
    nativeKernels!.softmax(x, yn, 7, 143);
    ref.softmax(x, yr, 7, 143);
    assert.deepEqual(yn, yr);
  });
});
