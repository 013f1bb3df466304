// pass@1, unbiased pass@k and majority voting on correctness tables worked by hand (SPEC.md 5).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { majorityAnswer, passAt1, passAtK } from '../../src/eval/estimators.ts';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

/** 1 - C(n-c, k) / C(n, k) with exact binomials, for small n. */
function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

describe('pass@k', () => {
  it('matches hand-worked cases', () => {
    // n = 4, c = 1, k = 2: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5
    close(passAtK(4, 1, 2), 0.5);
    // k = 1 is the fraction correct; c = 0 gives 0; fewer than k wrong samples gives 1
    close(passAtK(8, 3, 1), 3 / 8);
    assert.equal(passAtK(8, 0, 4), 0);
    assert.equal(passAtK(8, 6, 4), 1);
    // n = 5, c = 2, k = 3: 1 - C(3,3)/C(5,3) = 1 - 1/10
    close(passAtK(5, 2, 3), 0.9);
  });

  it('equals the binomial formula and stays finite where the binomials overflow', () => {
    for (let n = 1; n <= 12; n++) for (let c = 0; c <= n; c++) for (let k = 1; k <= n; k++) {
      close(passAtK(n, c, k), 1 - binomial(n - c, k) / binomial(n, k), 1e-12);
    }
    // C(2000, 1000) overflows a double; the product form does not.
    const p = passAtK(2000, 1, 1000);
    close(p, 0.5, 1e-9);
  });

  it('rejects impossible tables', () => {
    assert.throws(() => passAtK(4, 5, 2), /0 <= c <= n/);
    assert.throws(() => passAtK(4, 1, 5), /1 <= k <= n/);
  });

  it('pass@1 is the mean correctness', () => {
    close(passAt1([true, false, false, true]), 0.5);
  });
});

describe('majority vote', () => {
  it('picks the most frequent answer, ignoring missing ones', () => {
    assert.equal(majorityAnswer(['3', null, '4', '4', null, null]), '4');
    assert.equal(majorityAnswer([null, null]), null);
  });

  it('breaks ties toward the answer seen first', () => {
    assert.equal(majorityAnswer(['a', 'b', 'b', 'a']), 'a');
  });
});
