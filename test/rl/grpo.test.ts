// GRPO's pieces on batches small enough to work by hand (STYLE 16): advantages, clipping, the k3 KL, and each
// loss aggregation, plus the gradients that decide what the policy learns.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clipFraction, flatGroups, groupAdvantages, lossVariants, overlongPenalty, tokenTerms, type AggregationContext,
} from '../../src/rl/grpo.ts';
import { tensor } from '../../src/tensor/index.ts';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);
const f64 = (values: number[][]) => tensor(values.flat(), [values.length, values[0].length], 'f64');

describe('group advantages', () => {
  it('centres and scales each group by its own std', () => {
    // group 1: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt((4 * 0.25) / 3) = 0.57735
    // group 2: all 1 -> advantages 0 (no signal), not NaN
    const a = groupAdvantages([1, 0, 0, 1, 1, 1, 1, 1], 4, { scaleByStd: true, epsStd: 0, std: 'unbiased' });
    const s = Math.sqrt(1 / 3);
    [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s].forEach((v, i) => close(a[i], v));
    assert.deepEqual(a.slice(4), [0, 0, 0, 0]);
  });

  it('population std and no scaling (Dr. GRPO)', () => {
    // rewards 2, 0: mean 1, population std 1 -> +1, -1; unscaled -> +1, -1 too; rewards 4, 0 unscaled -> +2, -2
    const p = groupAdvantages([2, 0], 2, { scaleByStd: true, epsStd: 0, std: 'population' });
    close(p[0], 1);
    close(p[1], -1);
    assert.deepEqual(groupAdvantages([4, 0], 2, { scaleByStd: false, epsStd: 1e-4, std: 'unbiased' }), [2, -2]);
  });

  it('flat groups are found for dynamic sampling', () => {
    assert.deepEqual(flatGroups([1, 1, 0, 1, 0, 0], 2), [true, false, true]);
  });

  it('overlong shaping follows DAPO eq. 13', () => {
    // L_max 100, L_cache 20: no penalty up to 80, linear to -1 at 100, -1 beyond
    assert.equal(overlongPenalty(80, 100, 20), 0);
    close(overlongPenalty(90, 100, 20), -0.5);
    close(overlongPenalty(100, 100, 20), -1);
    assert.equal(overlongPenalty(101, 100, 20), -1);
  });
});

describe('clipped objective and k3 KL', () => {
  const options = { epsLow: 0.2, epsHigh: 0.28, beta: 0 };

  it('with pi_old = pi_theta the loss is -A per token and its gradient is -A d logp', () => {
    const logp = f64([[-1, -2]]);
    logp.requiresGrad = true;
    const { loss } = tokenTerms({ logpNew: logp, logpOld: f64([[-1, -2]]), logpRef: null, advantages: [0.5], mask: f64([[1, 1]]) }, options);
    assert.deepEqual(Array.from(loss.toArray()), [-0.5, -0.5]);
    lossVariants.dapo.aggregate(loss, f64([[1, 1]]), { sequences: 1, tokens: 2, microBatches: 1, maxCompletionLength: 2 }).backward();
    // d/dlogp of -(rho A)/2 at rho = 1 is -A/2 per token
    assert.deepEqual(Array.from(logp.grad!.toArray()), [-0.25, -0.25]);
  });

  it('clips above 1 + epsHigh for positive advantages and below 1 - epsLow for negative ones', () => {
    // ratios e^{ln 1.5} = 1.5 (clipped to 1.28 with A > 0) and e^{ln 0.5} = 0.5 (clipped to 0.8 with A < 0)
    const logpNew = f64([[Math.log(1.5)], [Math.log(0.5)]]);
    logpNew.requiresGrad = true;
    const mask = f64([[1], [1]]);
    const terms = tokenTerms({ logpNew, logpOld: f64([[0], [0]]), logpRef: null, advantages: [1, -1], mask }, options);
    // min(1.5 * 1, 1.28 * 1) = 1.28 -> loss -1.28; min(0.5 * -1, 0.8 * -1) = -0.8 -> loss 0.8
    close(terms.loss.toArray()[0], -1.28);
    close(terms.loss.toArray()[1], 0.8);
    assert.equal(clipFraction(terms.ratio, [1, -1], mask, options), 1);
    // the clipped branch carries no gradient
    lossVariants.bnpo.aggregate(terms.loss, mask, { sequences: 2, tokens: 2, microBatches: 1, maxCompletionLength: 1 }).backward();
    assert.deepEqual(Array.from(logpNew.grad!.toArray(), (g) => g + 0 /* -0 is 0 */), [0, 0]);
  });

  it('inside the clip range the ratio is not clipped (pessimistic min picks the unclipped term)', () => {
    // rho = 1.1 with A = 2: min(2.2, 2.2) -> loss -2.2; rho = 0.5 with A = +1: min(0.5, 0.8) = 0.5 -> -0.5
    const terms = tokenTerms({ logpNew: f64([[Math.log(1.1)], [Math.log(0.5)]]), logpOld: f64([[0], [0]]), logpRef: null, advantages: [2, 1], mask: f64([[1], [1]]) }, options);
    close(terms.loss.toArray()[0], -2.2);
    close(terms.loss.toArray()[1], -0.5);
    assert.equal(clipFraction(terms.ratio, [2, 1], f64([[1], [1]]), options), 0);
  });

  it('k3 KL: pi_ref/pi - log(pi_ref/pi) - 1, zero when the policies agree', () => {
    // log pi_ref - log pi = ln 2: 2 - ln 2 - 1 = 0.30685; equal: 0
    const terms = tokenTerms({
      logpNew: f64([[0, -1]]), logpOld: f64([[0, -1]]), logpRef: f64([[Math.log(2), -1]]), advantages: [0], mask: f64([[1, 1]]),
    }, { ...options, beta: 0.1 });
    close(terms.kl!.toArray()[0], 1 - Math.log(2));
    close(terms.kl!.toArray()[1], 0);
    // A = 0: loss = beta * KL
    close(terms.loss.toArray()[0], 0.1 * (1 - Math.log(2)));
  });
});

describe('loss aggregations (SPEC.md 1)', () => {
  // Two sequences: lengths 1 and 3 (mask), token losses [[2, x, x], [1, 1, 4]].
  const loss = f64([[2, 9, 9], [1, 1, 4]]);
  const mask = f64([[1, 0, 0], [1, 1, 1]]);
  const context: AggregationContext = { sequences: 2, tokens: 4, microBatches: 1, maxCompletionLength: 4 };

  it('grpo: mean per sequence, then over sequences: (2/1 + 6/3) / 2 = 2', () => {
    close(lossVariants.grpo.aggregate(loss, mask, context).item(), 2);
  });
  it('bnpo: all counted tokens of the micro-batch / their number: 8 / 4 = 2', () => {
    close(lossVariants.bnpo.aggregate(loss, mask, context).item(), 8 / 4);
  });
  it('dr_grpo: sum / (sequences x max length) = 8 / (2 x 4) = 1', () => {
    close(lossVariants.dr_grpo.aggregate(loss, mask, context).item(), 1);
  });
  it('dapo: sum / tokens of the whole step: 8 / 4 = 2; split in two micro-batches the parts add up', () => {
    close(lossVariants.dapo.aggregate(loss, mask, context).item(), 2);
    const first = lossVariants.dapo.aggregate(f64([[2, 9, 9]]), f64([[1, 0, 0]]), { ...context, microBatches: 2 }).item();
    const second = lossVariants.dapo.aggregate(f64([[1, 1, 4]]), f64([[1, 1, 1]]), { ...context, microBatches: 2 }).item();
    close(first + second, 2);
    // grpo splits the same way: 2/1/2 + 6/3/2 = 2
    const g1 = lossVariants.grpo.aggregate(f64([[2, 9, 9]]), f64([[1, 0, 0]]), { ...context, microBatches: 2 }).item();
    const g2 = lossVariants.grpo.aggregate(f64([[1, 1, 4]]), f64([[1, 1, 1]]), { ...context, microBatches: 2 }).item();
    close(g1 + g2, 2);
  });
  it('only Dr. GRPO leaves advantages unscaled', () => {
    assert.deepEqual(Object.entries(lossVariants).filter(([, v]) => !v.scaleByStd).map(([k]) => k), ['dr_grpo']);
  });
});
