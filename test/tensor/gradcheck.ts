// Finite-difference gradient checking in float64 (on the reference backend, where every kernel is exact to
// float64 rounding): the analytic gradient of L = sum(f(x) * R), with R fixed random weights so that every output
// element matters differently, must match central differences (L(x + h) - L(x - h)) / 2h.
import assert from 'node:assert/strict';
import { mul, noGrad, randn, Rng, sum, tensor, type Tensor, withBackend } from '../../src/tensor/index.ts';

export interface GradcheckOptions {
  /** Step of the central difference: truncation error ~h^2, rounding error ~eps/h; 1e-6 balances them in f64. */
  h?: number;
  /** Allowed |analytic - numeric| / max(1, |numeric|): f64 central differences are good to ~1e-8 here. */
  tolerance?: number;
}

/** Checks d/dx of f at the given float64 inputs (every input with requiresGrad is checked). */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const h = options.h ?? 1e-6;
  const tolerance = options.tolerance ?? 1e-6;
  withBackend('reference', () => {
    for (const x of inputs) {
      if (x.dtype !== 'f64' && x.requiresGrad) throw new Error('gradcheck needs float64 inputs');
      x.grad = null;
    }
    const out0 = f(...inputs);
    const weights = randn(out0.shape, new Rng(1234), 1, 'f64');
    const loss = sum(mul(out0, weights));
    loss.backward();
    const objective = (): number => noGrad(() => sum(mul(f(...inputs), weights)).item());
    inputs.forEach((x, which) => {
      if (!x.requiresGrad) return;
      assert.ok(x.grad, `input ${which} got no gradient`);
      const analytic = x.grad.toArray();
      for (let i = 0; i < x.size; i++) {
        const data = x.floats();
        const saved = data[i];
        data[i] = saved + h;
        const plus = objective();
        data[i] = saved - h;
        const minus = objective();
        data[i] = saved;
        const numeric = (plus - minus) / (2 * h);
        const err = Math.abs(analytic[i] - numeric) / Math.max(1, Math.abs(numeric));
        assert.ok(err <= tolerance, `input ${which} element ${i}: analytic ${analytic[i]} vs numeric ${numeric} (error ${err.toExponential(2)})`);
      }
    });
  });
}

/** A float64 leaf with normal entries, shifted by `offset` (e.g. to keep log's argument positive). */
export function leaf(shape: number[], seed: number, offset = 0): Tensor {
  const rng = new Rng(seed);
  const t = tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() + offset), shape, 'f64');
  t.requiresGrad = true;
  return t;
}
