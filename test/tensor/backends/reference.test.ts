// The reference backend on examples small enough to work by hand (STYLE.md 16): the comments show the
// arithmetic. Every example runs in float32 and in float64, since the kernels must not assume either. A few
// float64 finite-difference checks guard the backward kernels whose formulas are easiest to get subtly wrong.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadBackend, type FloatArray } from '../../../src/tensor/backend.ts';
import { referenceBackend } from '../../../src/tensor/backends/reference.ts';
import { UnaryOp, type BinaryOpName, type UnaryOpName } from '../../../src/tensor/kernels.ts';

const K = referenceBackend.kernels;
const LN2 = Math.log(2), LN3 = Math.log(3);
const SQRT2 = Math.SQRT2;

type FloatCtor = Float32ArrayConstructor | Float64ArrayConstructor;
// float32 inputs such as ln 3 are rounded on entry (relative 6e-8) and outputs once more, and a few kernels
// amplify that by a small factor; 2e-6 leaves room for that and still catches any wrong term. float64 results
// differ from the worked values only by a few roundings of doubles.
const dtypes: { name: string; Float: FloatCtor; tol: number }[] = [
  { name: 'float32', Float: Float32Array, tol: 2e-6 },
  { name: 'float64', Float: Float64Array, tol: 1e-12 },
];

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tol: number, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (Object.is(a, e)) continue;  // exact, including +-Infinity
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: got ${a}, expected ${e}`);
  }
}

const ints = (values: number[]): Int32Array => Int32Array.from(values);

for (const { name, Float, tol } of dtypes) {
  const arr = (values: number[]): FloatArray => Float.from(values);
  const zeros = (n: number): FloatArray => new Float(n);
  const nans = (n: number): FloatArray => new Float(n).fill(NaN);

  describe(`reference backend (${name})`, () => {
    describe('matmul', () => {
      // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]
      const A = [1, 2, 3, 4], B = [5, 6, 7, 8];
      const cases: { transA: boolean; transB: boolean; expected: number[]; why: string }[] = [
        { transA: false, transB: false, expected: [19, 22, 43, 50], why: 'AB: [1*5+2*7, 1*6+2*8; 3*5+4*7, 3*6+4*8]' },
        { transA: true, transB: false, expected: [26, 30, 38, 44], why: 'A^T B: A^T = [1 3; 2 4], [1*5+3*7, ...]' },
        { transA: false, transB: true, expected: [17, 23, 39, 53], why: 'A B^T: B^T = [5 7; 6 8], [1*5+2*6, ...]' },
        { transA: true, transB: true, expected: [23, 31, 34, 46], why: 'A^T B^T = (BA)^T, BA = [23 34; 31 46]' },
      ];
      for (const { transA, transB, expected, why } of cases) {
        it(`2x2 with transA=${transA} transB=${transB} (${why})`, () => {
          const c = nans(4);  // beta 0 must not read C, even when it holds NaN
          K.matmul(arr(A), arr(B), c, 1, 2, 2, 2, transA, transB, 0, 0, 0, 0);
          assertClose(c, expected, tol);
        });
      }

      it('accumulates into C when beta is 1', () => {
        const c = arr([1, 1, 1, 1]);
        K.matmul(arr(A), arr(B), c, 1, 2, 2, 2, false, false, 0, 0, 0, 1);
        assertClose(c, [20, 23, 44, 51], tol);
      });

      it('handles non-square shapes and a batch that shares B (stride 0)', () => {
        // A_0 = [1 2], A_1 = [3 4] (1 x 2); B = [[1, 0, 1], [0, 1, 1]] (2 x 3), shared.
        // C_0 = [1, 2, 1+2] = [1, 2, 3]; C_1 = [3, 4, 7].
        const c = nans(6);
        K.matmul(arr([1, 2, 3, 4]), arr([1, 0, 1, 0, 1, 1]), c, 2, 1, 3, 2, false, false, 2, 0, 3, 0);
        assertClose(c, [1, 2, 3, 3, 4, 7], tol);
      });
    });

    describe('unary', () => {
      // f(x) at points where it is known exactly.
      const forward: [UnaryOpName, number, number][] = [
        ['neg', 2, -2],
        ['exp', LN2, 2],
        ['log', Math.E, 1],
        ['sqrt', 9, 3],
        ['rsqrt', 4, 0.5],
        ['tanh', LN2, 0.6],  // (2 - 1/2) / (2 + 1/2)
        ['sigmoid', LN3, 0.75],  // 1 / (1 + 1/3)
        ['silu', LN3, 0.75 * LN3],
        ['geluTanh', 0, 0],
        ['geluTanh', 1, 0.8411919906082768],  // 0.5 (1 + tanh(sqrt(2/pi) * 1.044715))
        ['relu', -1, 0],
        ['relu', 2, 2],
        ['abs', -3, 3],
        ['recip', 4, 0.25],
        ['square', -3, 9],
        ['sin', Math.PI / 6, 0.5],
        ['cos', Math.PI / 3, 0.5],
      ];
      for (const [op, x, y] of forward) {
        it(`${op}(${x.toFixed(4)}) = ${y.toFixed(4)}`, () => {
          const out = nans(1);
          K.unary(op, arr([x]), out, 1);
          assertClose(out, [y], tol);
        });
      }

      // f'(x), given dy = 2 so that the chain-rule factor is visible: dx = 2 f'(x).
      const derivative: [UnaryOpName, number, number][] = [
        ['neg', 2, -1],
        ['exp', LN2, 2],  // exp' = exp
        ['log', 2, 0.5],  // 1/x
        ['sqrt', 9, 1 / 6],  // 1 / (2 sqrt x)
        ['rsqrt', 4, -1 / 16],  // -1/2 x^-3/2 = -1/2 * 1/8
        ['tanh', LN2, 0.64],  // 1 - 0.6^2
        ['sigmoid', LN3, 0.1875],  // 0.75 * 0.25
        ['silu', LN3, 0.75 * (1 + LN3 * 0.25)],  // s (1 + x (1 - s))
        ['geluTanh', 0, 0.5],  // 0.5 (1 + tanh 0) + 0
        ['relu', -1, 0],
        ['relu', 0, 0],  // the kink counts as the flat side, as in PyTorch
        ['relu', 2, 1],
        ['abs', -3, -1],
        ['recip', 4, -1 / 16],  // -1/x^2
        ['square', -3, -6],
        ['sin', Math.PI / 3, 0.5],  // cos(pi/3)
        ['cos', Math.PI / 6, -0.5],  // -sin(pi/6)
      ];
      for (const [op, x, d] of derivative) {
        it(`${op}'(${x.toFixed(4)}) = ${d.toFixed(4)}`, () => {
          const xs = arr([x]), ys = nans(1), dx = nans(1);
          K.unary(op, xs, ys, 1);
          K.unaryBackward(op, xs, ys, arr([2]), dx, 1);
          assertClose(dx, [2 * d], tol);
        });
      }

      if (Float === Float64Array) {
        it('every derivative matches a central difference of its forward (float64)', () => {
          const h = 1e-6;
          for (const op of Object.keys(UnaryOp) as UnaryOpName[]) {
            for (const x of [0.3, 0.7, 1.9]) {  // positive and away from kinks, so log/sqrt/relu/abs are smooth
              const y = new Float64Array(1), up = new Float64Array(1), down = new Float64Array(1);
              const dx = new Float64Array(1);
              K.unary(op, Float64Array.of(x), y, 1);
              K.unary(op, Float64Array.of(x + h), up, 1);
              K.unary(op, Float64Array.of(x - h), down, 1);
              K.unaryBackward(op, Float64Array.of(x), y, Float64Array.of(1), dx, 1);
              const numeric = (up[0] - down[0]) / (2 * h);
              // Central differences are accurate to O(h^2) plus rounding ~1e-16/h: 1e-8 is generous for both.
              assert.ok(Math.abs(dx[0] - numeric) < 1e-8 * Math.max(1, Math.abs(numeric)),
                `${op}'(${x}): analytic ${dx[0]}, numeric ${numeric}`);
            }
          }
        });
      }
    });

    describe('binary, where, copy (strided)', () => {
      it('adds a row vector broadcast over rows (stride 0)', () => {
        // [[1, 2, 3], [4, 5, 6]] + [10, 20, 30] = [[11, 22, 33], [14, 25, 36]]
        const out = nans(6);
        K.binary('add', arr([1, 2, 3, 4, 5, 6]), [3, 1], arr([10, 20, 30]), [0, 1], out, [2, 3]);
        assertClose(out, [11, 22, 33, 14, 25, 36], tol);
      });

      it('subtracts a column broadcast over columns, reading a transposed operand', () => {
        // a is stored 3 x 2 as [[1, 4], [2, 5], [3, 6]] and read transposed (strides [1, 2]) as
        // [[1, 2, 3], [4, 5, 6]]; b = [[1], [2]] with strides [1, 0]: [[0, 1, 2], [2, 3, 4]].
        const out = nans(6);
        K.binary('sub', arr([1, 4, 2, 5, 3, 6]), [1, 2], arr([1, 2]), [1, 0], out, [2, 3]);
        assertClose(out, [0, 1, 2, 2, 3, 4], tol);
      });

      it('computes every op on one pair of rows, comparisons giving 1 or 0', () => {
        const a = arr([2, 3, 2]), b = arr([3, 3, 0.5]);
        const expected: Record<string, number[]> = {
          add: [5, 6, 2.5], sub: [-1, 0, 1.5], mul: [6, 9, 1], div: [2 / 3, 1, 4], max: [3, 3, 2], min: [2, 3, 0.5],
          pow: [8, 27, SQRT2],  // 2^3, 3^3, 2^0.5
          eq: [0, 1, 0], ne: [1, 0, 1], lt: [1, 0, 0], le: [1, 1, 0], gt: [0, 0, 1], ge: [0, 1, 1],
        };
        for (const [op, values] of Object.entries(expected)) {
          const out = nans(3);
          K.binary(op as BinaryOpName, a, [1], b, [1], out, [3]);
          assertClose(out, values, tol, op);
        }
      });

      it('accumulates in place when out aliases a contiguous input', () => {
        const acc = arr([1, 2, 3, 4]);
        K.binary('add', acc, [2, 1], arr([10, 100]), [1, 0], acc, [2, 2]);
        assertClose(acc, [11, 12, 103, 104], tol);  // [[1, 2], [3, 4]] + [[10], [100]]
      });

      it('treats a 0-dimensional shape as one element', () => {
        const out = nans(1);
        K.binary('mul', arr([3]), [], arr([4]), [], out, []);
        assertClose(out, [12], tol);
      });

      it('rejects more than 8 dimensions', () => {
        const nine = [1, 1, 1, 1, 1, 1, 1, 1, 1];
        assert.throws(() => K.binary('add', arr([1]), nine, arr([1]), nine, nans(1), nine), /at most 8/);
      });

      it('where picks a where cond is nonzero, with cond broadcast over rows', () => {
        // cond [1, 0] per column: [[a00, b01], [a10, b11]]
        const out = nans(4);
        K.where(arr([1, 0]), [0, 1], arr([1, 2, 3, 4]), [2, 1], arr([-1, -2, -3, -4]), [2, 1], out, [2, 2]);
        assertClose(out, [1, -2, 3, -4], tol);
      });

      it('copy transposes, and writes into a strided slice (concat)', () => {
        // [[1, 2, 3], [4, 5, 6]] written through dst strides [1, 2] gives the 3 x 2 [[1, 4], [2, 5], [3, 6]].
        const t = nans(6);
        K.copy(arr([1, 2, 3, 4, 5, 6]), [3, 1], t, [1, 2], [2, 3]);
        assertClose(t, [1, 4, 2, 5, 3, 6], tol);
        // Concatenating [[7], [8]] as column 2 of a 2 x 3 buffer: dst is positioned at element 2, strides [3, 1].
        const wide = arr([1, 2, 0, 4, 5, 0]);
        K.copy(arr([7, 8]), [1, 1], wide.subarray(2), [3, 1], [2, 1]);
        assertClose(wide, [1, 2, 7, 4, 5, 8], tol);
      });
    });

    describe('swiglu', () => {
      it('y = silu(gate) * up and its gradients', () => {
        // gate = ln 3: sigmoid = 3/4, silu = 3/4 ln 3, silu' = 3/4 (1 + ln 3 / 4). up = 2, dy = 1.
        const y = nans(1), dgate = nans(1), dup = nans(1);
        K.swiglu(arr([LN3]), arr([2]), y, 1);
        assertClose(y, [1.5 * LN3], tol);
        K.swigluBackward(arr([LN3]), arr([2]), arr([1]), dgate, dup, 1);
        assertClose(dgate, [2 * 0.75 * (1 + LN3 / 4)], tol, 'dgate');  // dy * up * silu'(gate)
        assertClose(dup, [0.75 * LN3], tol, 'dup');  // dy * silu(gate)
      });
    });

    describe('reductions', () => {
      // x viewed as [outer 2, len 3, inner 2]: outer 0 = [[1, 6], [2, 5], [3, 4]], outer 1 = [[-1, 0], [7, 0], [2, 9]]
      const x = [1, 6, 2, 5, 3, 4, -1, 0, 7, 0, 2, 9];
      it('sum over the middle axis', () => {
        const out = nans(4);
        K.reduce('sum', arr(x), out, 2, 3, 2);
        assertClose(out, [6, 15, 8, 9], tol);  // [1+2+3, 6+5+4; -1+7+2, 0+0+9]
      });
      it('max and min over the middle axis', () => {
        const max = nans(4), min = nans(4);
        K.reduce('max', arr(x), max, 2, 3, 2);
        K.reduce('min', arr(x), min, 2, 3, 2);
        assertClose(max, [3, 6, 7, 9], tol);
        assertClose(min, [1, 4, -1, 0], tol);
      });
      it('sumSquares of [3, 4] is 25', () => {
        assert.equal(K.sumSquares(arr([3, 4, 99]), 2), 25);
      });
    });

    describe('softmax family', () => {
      it('softmax of [0, ln 2, ln 3] is [1, 2, 3] / 6, also when shifted by 1000 (stable)', () => {
        // e^0 : e^ln2 : e^ln3 = 1 : 2 : 3
        const y = nans(6);
        K.softmax(arr([0, LN2, LN3, 1000, 1000 + LN2, 1000 + LN3]), y, 2, 3);
        // 1000 + ln 2 is itself rounded (to 1e-13 in doubles, 3e-5 in float32), so the shifted row is looser.
        assertClose(y.subarray(0, 3), [1 / 6, 2 / 6, 3 / 6], tol);
        assertClose(y.subarray(3), [1 / 6, 2 / 6, 3 / 6], Float === Float32Array ? 1e-4 : 1e-12);
      });

      it('softmaxBackward: dx = y (dy - y.dy)', () => {
        // y = [1, 2, 3] / 6, dy = [1, 0, 0]: y.dy = 1/6, dx = [1/6 * 5/6, 2/6 * -1/6, 3/6 * -1/6]
        const dx = nans(3);
        K.softmaxBackward(arr([1 / 6, 2 / 6, 3 / 6]), arr([1, 0, 0]), dx, 1, 3);
        assertClose(dx, [5 / 36, -2 / 36, -3 / 36], tol);
      });

      it('logSoftmax of [0, ln 2, ln 3] is ln([1, 2, 3] / 6)', () => {
        const y = nans(3);
        K.logSoftmax(arr([0, LN2, LN3]), y, 1, 3);
        assertClose(y, [-Math.log(6), LN2 - Math.log(6), LN3 - Math.log(6)], tol);
      });

      it('logSoftmaxBackward: dx = dy - softmax * sum(dy)', () => {
        // dy = [1, 0, 0], sum 1: dx = [1 - 1/6, -2/6, -3/6]
        const dx = nans(3);
        K.logSoftmaxBackward(arr([Math.log(1 / 6), Math.log(2 / 6), Math.log(3 / 6)]), arr([1, 0, 0]), dx, 1, 3);
        assertClose(dx, [5 / 6, -1 / 3, -1 / 2], tol);
      });

      it('crossEntropy: loss = lse - logit[target]; an ignored row gives 0 but still writes lse', () => {
        // Row 0: logits [0, ln 2, ln 3], target 2: lse = ln(1 + 2 + 3) = ln 6, loss = ln 6 - ln 3 = ln 2.
        // Row 1: logits [0, 0, 0], target -100 (ignored): lse = ln 3, loss 0.
        const loss = nans(2), lse = nans(2);
        const logits = arr([0, LN2, LN3, 0, 0, 0]);
        K.crossEntropy(logits, ints([2, -100]), loss, lse, 2, 3, -100);
        assertClose(loss, [LN2, 0], tol, 'loss');
        assertClose(lse, [Math.log(6), LN3], tol, 'lse');

        // dlogits = dloss (softmax - onehot): row 0 with dloss 2: 2 [1/6, 2/6, 3/6 - 1]; row 1 zeros.
        const dlogits = nans(6);
        K.crossEntropyBackward(logits, ints([2, -100]), lse, arr([2, 5]), dlogits, 2, 3, -100);
        assertClose(dlogits, [1 / 3, 2 / 3, -1, 0, 0, 0], tol);
      });
    });

    describe('indexing', () => {
      // table 3 x 2: row r = [10 r, 10 r + 1]
      const table = [0, 1, 10, 11, 20, 21];
      it('embedding copies rows, repeated ids included', () => {
        const out = nans(6);
        K.embedding(arr(table), ints([2, 0, 2]), out, 3, 2);
        assertClose(out, [20, 21, 0, 1, 20, 21], tol);
      });

      it('embeddingBackward accumulates, repeated ids adding up', () => {
        // dtable starts at 1; id 2 receives [1, 2] + [5, 6], id 0 receives [3, 4], id 1 nothing.
        const dtable = arr([1, 1, 1, 1, 1, 1]);
        K.embeddingBackward(ints([2, 0, 2]), arr([1, 2, 3, 4, 5, 6]), dtable, 3, 2);
        assertClose(dtable, [4, 5, 1, 1, 7, 9], tol);
      });

      it('gather picks along the middle axis and scatterAdd is its adjoint', () => {
        // x [outer 1, len 3, inner 2] = [[10, 11], [20, 21], [30, 31]]; idx [1, k 2, 2] = [[2, 0], [2, 1]]:
        // out[0, j, i] = x[0, idx[0, j, i], i] = [[x[2,0], x[0,1]], [x[2,0], x[1,1]]] = [[30, 11], [30, 21]].
        const idx = ints([2, 0, 2, 1]);
        const out = nans(4);
        K.gather(arr([10, 11, 20, 21, 30, 31]), idx, out, 1, 3, 2, 2);
        assertClose(out, [30, 11, 30, 21], tol);
        // dout = [[1, 2], [3, 4]]: dx[2,0] += 1 + 3, dx[0,1] += 2, dx[1,1] += 4, on top of dx = 1 everywhere.
        const dx = arr([1, 1, 1, 1, 1, 1]);
        K.scatterAdd(idx, arr([1, 2, 3, 4]), dx, 1, 3, 2, 2);
        assertClose(dx, [1, 3, 1, 5, 5, 1], tol);
      });

      it('gather offsets each outer slice', () => {
        // x [2, 3, 1] = [[1, 2, 3], [4, 5, 6]], idx [[2], [0]]: [x[0, 2], x[1, 0]] = [3, 4]
        const out = nans(2);
        K.gather(arr([1, 2, 3, 4, 5, 6]), ints([2, 0]), out, 2, 3, 1, 1);
        assertClose(out, [3, 4], tol);
      });
    });

    describe('rmsnorm', () => {
      // x = [3, 4]: mean(x^2) = (9 + 16) / 2 = 12.5, rstd = 1 / sqrt(12.5) = sqrt(2) / 5 (eps 0).
      const s = SQRT2 / 5;
      it('normalises [3, 4] and scales by w', () => {
        const y = nans(2), rstd = nans(1);
        K.rmsnorm(arr([3, 4]), arr([1, 2]), y, rstd, 1, 2, 0);
        assertClose(rstd, [s], tol, 'rstd');
        assertClose(y, [3 * s, 2 * 4 * s], tol, 'y');  // [3 sqrt2 / 5, 8 sqrt2 / 5]
      });

      it('eps is added to the mean square', () => {
        // [3, 4] with eps 3.5: 1 / sqrt(12.5 + 3.5) = 1/4
        const y = nans(2), rstd = nans(1);
        K.rmsnorm(arr([3, 4]), arr([1, 1]), y, rstd, 1, 2, 3.5);
        assertClose(y, [0.75, 1], tol);
      });

      it('backward: dx orthogonal to x (y is scale-invariant), dw accumulates', () => {
        // w = [1, 1], dy = [1, 0]: sum_j w_j dy_j x_j = 3, s^2 / dim * 3 = (2/25) * 3/2 = 3/25,
        // dx = s ([1, 0] - [3, 4] * 3/25) = s [16/25, -12/25]   (x . dx = 48 - 48 = 0)
        // dw = 1 + dy * x * s = [1 + 3 s, 1]
        const dx = nans(2), dw = arr([1, 1]);
        K.rmsnormBackward(arr([3, 4]), arr([1, 1]), arr([s]), arr([1, 0]), dx, dw, 1, 2);
        assertClose(dx, [s * 16 / 25, -s * 12 / 25], tol, 'dx');
        assertClose(dw, [1 + 3 * s, 1], tol, 'dw');
      });
    });

    describe('rope', () => {
      it('rotates a 2-d vector by pi/3 in both pairings, and back with inverse', () => {
        // Position 1 has angle pi/3: cos = 1/2, sin = sqrt(3)/2. [1, 0] -> [cos, sin] = [1/2, sqrt3/2].
        // With rotDim 2 both pairings name the same pair (0, 1).
        const cos = arr([1, 0.5]), sin = arr([0, Math.sqrt(3) / 2]);  // rows for positions 0 and 1
        for (const interleaved of [false, true]) {
          const y = nans(2), back = nans(2);
          K.rope(arr([1, 0]), y, ints([1]), cos, sin, 1, 1, 2, 2, interleaved, false);
          assertClose(y, [0.5, Math.sqrt(3) / 2], tol, `interleaved=${interleaved}`);
          K.rope(y, back, ints([1]), cos, sin, 1, 1, 2, 2, interleaved, true);
          assertClose(back, [1, 0], tol, `inverse, interleaved=${interleaved}`);
        }
      });

      // headDim 4 tells the pairings apart. Position 1: angle pi/2 for pair 0 (cos 0, sin 1), pi for pair 1
      // (cos -1, sin 0). A rotation by pi/2 maps (a, b) to (-b, a); by pi, (a, b) to (-a, -b).
      const cos = arr([1, 1, 0, -1]), sin = arr([0, 0, 1, 0]);
      it('rotate_half pairs (i, i + rotDim/2)', () => {
        // x = [1, 2, 3, 4]: pair 0 = (x0, x2) = (1, 3) -> (-3, 1); pair 1 = (x1, x3) = (2, 4) -> (-2, -4)
        const y = nans(4);
        K.rope(arr([1, 2, 3, 4]), y, ints([1]), cos, sin, 1, 1, 4, 4, false, false);
        assertClose(y, [-3, -2, 1, -4], tol);
      });

      it('interleaved pairs (2i, 2i + 1)', () => {
        // pair 0 = (x0, x1) = (1, 2) -> (-2, 1); pair 1 = (x2, x3) = (3, 4) -> (-3, -4)
        const y = nans(4);
        K.rope(arr([1, 2, 3, 4]), y, ints([1]), cos, sin, 1, 1, 4, 4, true, false);
        assertClose(y, [-2, 1, -3, -4], tol);
      });

      it('reads each token its own position, rotates every head alike, passes dims past rotDim through', () => {
        // tokens 2, heads 2, headDim 3, rotDim 2: token 0 at position 1 (pi/2 via the first table column),
        // token 1 at position 0 (identity). Dim 2 of each head is copied.
        const y = nans(12);
        const x = [1, 2, 9, 3, 4, 8, 5, 6, 7, 7, 8, 6];
        K.rope(arr(x), y, ints([1, 0]), arr([1, 0]), arr([0, 1]), 2, 2, 3, 2, false, false);
        assertClose(y, [-2, 1, 9, -4, 3, 8, 5, 6, 7, 7, 8, 6], tol);
      });
    });

    describe('attention', () => {
      // The running example: D = Dv = 1, scale 1, keys k = [0, 1], values v = [4, 8], query q = ln 3.
      // Scores [0, ln 3] -> softmax [1/4, 3/4] -> out = 4/4 + 3*8/4 = 7, lse = ln(1 + 3) = ln 4.
      // A query that sees only key 0: out 4, lse 0. Only key 1: out 8, lse ln 3.
      const k = [0, 1], v = [4, 8];
      const run = (q: number[], opts: { Tq: number; Tk?: number; causal: boolean; kvStart?: number[] }) => {
        const Tq = opts.Tq, Tk = opts.Tk ?? 2;
        const out = nans(Tq), lse = nans(Tq);
        K.attention(arr(q), arr(k), arr(v), out, lse, opts.kvStart ? ints(opts.kvStart) : null, 1, Tq, Tk, 1, 1, 1,
          1, Tk, Tk, 1, opts.causal);
        return { out, lse };
      };

      it('one query over two keys', () => {
        const { out, lse } = run([LN3], { Tq: 1, causal: false });
        assertClose(out, [7], tol);
        assertClose(lse, [Math.log(4)], tol);
      });

      it('causal: query 0 sees key 0 only, query 1 sees both', () => {
        const { out, lse } = run([LN3, LN3], { Tq: 2, causal: true });
        assertClose(out, [4, 7], tol);
        assertClose(lse, [0, Math.log(4)], tol);
      });

      it('causal with Tq < Tk: the one query sits at position Tk - Tq = 1 and sees both keys', () => {
        const { out } = run([LN3], { Tq: 1, causal: true });
        assertClose(out, [7], tol);  // not 4, which a query at position 0 would give
      });

      it('kvStart masks left padding; a query that sees no key gets out 0 and lse -Infinity', () => {
        assertClose(run([LN3], { Tq: 1, causal: false, kvStart: [1] }).out, [8], tol);
        // Causal and kvStart 1: query 0 sees keys j <= 0 and j >= 1, none; query 1 sees key 1.
        const { out, lse } = run([LN3, LN3], { Tq: 2, causal: true, kvStart: [1] });
        assertClose(out, [0, 8], tol);
        assertClose(lse, [-Infinity, LN3], tol);
      });

      it('scale multiplies the scores', () => {
        // q = 2 ln 3, scale 1/2: the same scores as the running example.
        const out = nans(1);
        K.attention(arr([2 * LN3]), arr(k), arr(v), out, null, null, 1, 1, 2, 1, 1, 1, 1, 2, 2, 0.5, false);
        assertClose(out, [7], tol);
      });

      it('GQA: query heads 0, 1 read kv head 0 and heads 2, 3 read kv head 1', () => {
        // Hq 4, Hkv 2, Tk 2, D = Dv = 1: k [Tk, Hkv] = [[0, 0], [1, 1]], v = [[4, 40], [8, 80]]. Every query is
        // ln 3, so heads on kv head 0 give 7 and heads on kv head 1 give 70 (h % Hkv would give 7, 70, 7, 70).
        const out = nans(4), lse = nans(4);
        K.attention(arr([LN3, LN3, LN3, LN3]), arr([0, 0, 1, 1]), arr([4, 40, 8, 80]), out, lse, null, 1, 1, 2, 4, 2,
          1, 1, 4, 4, 1, false);
        assertClose(out, [7, 7, 70, 70], tol);
      });

      it('reads a KV cache in place through the batch strides, with kvStart per batch row and Dv = 2', () => {
        // B 2, cache capacity 3 (kvBatchStride 3, vBatchStride 6), Tk 2 of it in use, Tq 1, Hq = Hkv = 1.
        // Row 0: keys [0, 1], values [[4, 1], [8, 2]] -> [1/4 * 4 + 3/4 * 8, 1/4 + 3/4 * 2] = [7, 1.75].
        // Row 1: keys [1, 0], values [[5, 6], [7, 9]], kvStart 1: only key 1 -> [7, 9], lse = ln 3 * 0 = 0.
        // Slot 2 of each cache row holds NaN: it must never be read.
        const kCache = arr([0, 1, NaN, 1, 0, NaN]);
        const vCache = arr([4, 1, 8, 2, NaN, NaN, 5, 6, 7, 9, NaN, NaN]);
        const out = nans(4), lse = nans(2);
        K.attention(arr([LN3, LN3]), kCache, vCache, out, lse, ints([0, 1]), 2, 1, 2, 1, 1, 1, 2, 3, 6, 1, true);
        assertClose(out, [7, 1.75, 7, 9], tol);
        assertClose(lse, [Math.log(4), 0], tol);
      });

      it('backward of the running example, worked by hand', () => {
        // p = [1/4, 3/4], do = 1: dv = p do = [1/4, 3/4]; dp = do v = [4, 8]; p.dp = 7;
        // ds = p (dp - 7) = [-3/4, 3/4]; dq = sum_j ds_j k_j = 3/4; dk = ds q = [-3/4 ln 3, 3/4 ln 3].
        const q = arr([LN3]), out = arr([7]), lse = arr([Math.log(4)]);
        const dq = nans(1), dk = nans(2), dv = nans(2);
        K.attentionBackward(q, arr(k), arr(v), out, lse, arr([1]), dq, dk, dv, null, 1, 1, 2, 1, 1, 1, 1, 1, false);
        assertClose(dq, [0.75], tol, 'dq');
        assertClose(dk, [-0.75 * LN3, 0.75 * LN3], tol, 'dk');
        assertClose(dv, [0.25, 0.75], tol, 'dv');
      });

      it('backward of a query that sees no key is 0, not NaN', () => {
        // Causal, kvStart 1: query 0 sees nothing; query 1 sees key 1 alone (p = 1, so ds = 0 and dv_1 = do_1).
        const dq = nans(2), dk = nans(2), dv = nans(2);
        K.attentionBackward(arr([LN3, LN3]), arr(k), arr(v), arr([0, 8]), arr([-Infinity, LN3]), arr([1, 2]), dq, dk,
          dv, ints([1]), 1, 2, 2, 1, 1, 1, 1, 1, true);
        assertClose(dq, [0, 0], tol, 'dq');
        assertClose(dk, [0, 0], tol, 'dk');
        assertClose(dv, [0, 2], tol, 'dv');
      });

      if (Float === Float64Array) {
        it('backward matches central differences with GQA, causal offset and kvStart (float64)', () => {
          const B = 2, Tq = 2, Tk = 3, Hq = 4, Hkv = 2, D = 3, Dv = 2, scale = 0.7;
          const kvStart = ints([0, 1]);
          // Fixed, irregular inputs (a tiny LCG) so that no symmetry hides a wrong index.
          let seed = 12345;
          const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
          const fill = (n: number) => Float64Array.from({ length: n }, next);
          const q = fill(B * Tq * Hq * D), kk = fill(B * Tk * Hkv * D), vv = fill(B * Tk * Hkv * Dv);
          const weights = fill(B * Tq * Hq * Dv);  // L = sum(weights * out), so dL/dout = weights
          const loss = () => {
            const out = new Float64Array(weights.length);
            K.attention(q, kk, vv, out, null, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, Tk * Hkv * D, Tk * Hkv * Dv, scale,
              true);
            return out.reduce((sum, o, i) => sum + o * weights[i], 0);
          };
          const out = new Float64Array(weights.length), lse = new Float64Array(B * Hq * Tq);
          K.attention(q, kk, vv, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, Tk * Hkv * D, Tk * Hkv * Dv, scale, true);
          const dq = new Float64Array(q.length), dk = new Float64Array(kk.length), dv = new Float64Array(vv.length);
          K.attentionBackward(q, kk, vv, out, lse, weights, dq, dk, dv, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, scale,
            true);
          const h = 1e-6;
          for (const [input, grad, label] of [[q, dq, 'dq'], [kk, dk, 'dk'], [vv, dv, 'dv']] as const) {
            for (let i = 0; i < input.length; i++) {
              const saved = input[i];
              input[i] = saved + h;
              const up = loss();
              input[i] = saved - h;
              const down = loss();
              input[i] = saved;
              // O(h^2) truncation plus ~1e-16/h rounding: 1e-8 absolute on gradients of size ~1.
              assert.ok(Math.abs(grad[i] - (up - down) / (2 * h)) < 1e-8,
                `${label}[${i}]: analytic ${grad[i]}, numeric ${(up - down) / (2 * h)}`);
            }
          }
          // Batch row 1, key 0 is left padding: it gets no gradient.
          const row1Key0 = Tk * Hkv * D;
          assert.deepEqual([...dk.subarray(row1Key0, row1Key0 + Hkv * D)], [0, 0, 0, 0, 0, 0]);
        });
      }
    });

    describe('adamw', () => {
      it('one step from zero moments, by hand', () => {
        // t = 1, b1 0.9, b2 0.999: bias1 = 0.1, bias2 = 0.001. lr 0.1, eps 0.5, wd 0.01, p = [1, 1].
        // g = 0.5: m = 0.05, v = 0.001 * 0.25 = 0.00025; mhat = 0.5, sqrt(vhat) = 0.5;
        //          p = 1 - 0.1 (0.5 / (0.5 + 0.5) + 0.01 * 1) = 1 - 0.051 = 0.949
        // g = -2:  m = -0.2, v = 0.004; mhat = -2, sqrt(vhat) = 2; p = 1 - 0.1 (-2 / 2.5 + 0.01) = 1.079
        const p = arr([1, 1]), m = zeros(2), v = zeros(2);
        K.adamw(p, arr([0.5, -2]), m, v, 2, 0.1, 0.9, 0.999, 0.5, 0.01, 0.1, 0.001);
        assertClose(m, [0.05, -0.2], tol, 'm');
        assertClose(v, [0.00025, 0.004], tol, 'v');
        assertClose(p, [0.949, 1.079], tol, 'p');
      });

      it('a second step uses the moments carried over', () => {
        // From m = 0.05, v = 0.00025, p = 0.949, with g = 0.5 again at t = 2: bias1 = 1 - 0.81 = 0.19,
        // bias2 = 1 - 0.998001 = 0.001999. m = 0.045 + 0.05 = 0.095, v = 0.00024975 + 0.00025 = 0.00049975;
        // mhat = 0.5, vhat = 0.25 (a constant gradient is recovered exactly), so
        // p = 0.949 - 0.1 (0.5 / 1 + 0.01 * 0.949) = 0.949 - 0.050949 = 0.898051
        const p = arr([0.949]), m = arr([0.05]), v = arr([0.00025]);
        K.adamw(p, arr([0.5]), m, v, 1, 0.1, 0.9, 0.999, 0.5, 0.01, 0.19, 1 - 0.999 * 0.999);
        assertClose(m, [0.095], tol, 'm');
        assertClose(v, [0.00049975], tol, 'v');
        assertClose(p, [0.898051], tol, 'p');
      });
    });
  });
}

describe('reference backend registration', () => {
  it("is what loadBackend('reference') returns, on the cpu device", () => {
    assert.equal(loadBackend('reference'), referenceBackend);
    assert.equal(referenceBackend.device, 'cpu');
  });
});
