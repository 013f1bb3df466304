// One table of kernel comparisons against the reference backend (STYLE.md 4, 13), shared by every backend's
// test: test/tensor/backends/native.test.ts (the C++ core) and test/native/cuda-kernels.test.ts (CUDA, through a
// host adapter that uploads each typed array and downloads it back). Fresh seeded inputs, odd sizes that leave
// vector tails and partial tiles, broadcasting and permuted strides, sizes large enough to split over threads or
// blocks, and the edge cases a model hits (ignored targets, decoding against a KV cache, left padding, queries
// that see no key, MLA head sizes, long split-key decodes). The table is typed over KernelName, so a kernel added
// to kernels.ts without a comparison fails `tsc`.
//
// Tolerances. The reference keeps every intermediate in double and rounds once per output; the backends work in
// float32 (2^-24 = 6e-8 relative per rounding) with exp/tanh accurate to ~2 ulp. Each tolerance is
// |backend - reference| <= abs + rel * |reference|; the comment at each case says where its error comes from.
import assert from 'node:assert/strict';
import type { FloatArray } from '../../../src/tensor/backend.ts';
import { referenceBackend } from '../../../src/tensor/backends/reference.ts';
import { BinaryOp, UnaryOp, type BinaryOpName, type KernelName, type Kernels, type UnaryOpName } from '../../../src/tensor/kernels.ts';
import { Rng } from '../../../src/tensor/random.ts';
import { contiguousStrides, shapeSize } from '../../../src/tensor/tensor.ts';

export type K = Kernels<FloatArray, Int32Array>;
type Buffers = Record<string, Float32Array | Int32Array | null>;
export type Tol = { rel: number; abs: number };

export interface KernelSubject {
  /** The backend's name in failure messages. */
  name: string;
  /** Its kernels on host arrays (called only inside the cases, so a skipped test never reaches them). */
  kernels: () => K;
  seed: number;
  /** Tolerance of sums whose order the backend does not fix (repeated indices): exact on the CPU, atomics on a GPU. */
  unorderedSums: Tol;
  /** Called with every compared buffer (the CUDA test reports the largest errors). */
  onCompared?: (kernel: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol) => void;
}

export interface AttentionCase {
  name: string;
  B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; Dv: number; causal: boolean;
  capacity?: number;  // KV cache capacity >= Tk, read in place through the batch stride
  kvStart?: number[];
}

const ref = referenceBackend.kernels;

/** The comparison of every kernel for one backend, and the seeded input makers its own extra tests use. */
export function kernelCases(subject: KernelSubject) {
  const rng = new Rng(subject.seed);
  const normal = (n: number, scale = 1, shift = 0): Float32Array => Float32Array.from({ length: n }, () => shift + scale * rng.normal());
  const uniform = (n: number, lo: number, hi: number): Float32Array => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());
  const ints = (n: number, bound: number): Int32Array => Int32Array.from({ length: n }, () => rng.int(bound));
  /** Values from a small set, so that comparisons meet ties and where() meets zeros. */
  const coarse = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.int(5) - 2);


  // ---- comparison -----------------------------------------------------------------------------------------------

  function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): void {
    assert.equal(actual.length, expected.length, `${what}: length`);
    let worst = 0, worstAt = -1;
    for (let i = 0; i < expected.length; i++) {
      const a = actual[i], e = expected[i];
      if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e))) continue;
      const excess = Math.abs(a - e) - (tol.abs + tol.rel * Math.abs(e));
      if (!(excess <= worst)) {
        worst = Number.isNaN(excess) ? Infinity : excess;
        worstAt = i;
      }
    }
    if (worstAt >= 0) {
      assert.fail(`${what}[${worstAt}]: ${subject.name} ${actual[worstAt]}, reference ${expected[worstAt]} (tolerance abs ${tol.abs} + rel ${tol.rel}; seed ${subject.seed})`);
    }
  }


  /**
   * Runs `call` on both backends, each on its own copy of `inputs`, then compares every float buffer (outputs,
   * and accumulated or in-place inputs) and the return value. `tols` overrides the tolerance per buffer.
   */
  function compare<B extends Buffers>(what: string, inputs: B, call: (k: K, b: B) => number | void, tol: Tol,
    tols: Partial<Record<keyof B, Tol>> = {}): void {
    const copy = (): B => Object.fromEntries(Object.entries(inputs).map(([key, v]) => [key, v && v.slice()])) as B;
    const cb = copy(), rb = copy();
    const cr = call(subject.kernels(), cb), rr = call(ref, rb);
    const kernel = what.split(' ')[0];
    if (typeof rr === 'number') {
      assertClose(`${what} result`, [cr as number], [rr], tol);
      subject.onCompared?.(kernel, [cr as number], [rr], tol);
    }
    for (const key of Object.keys(inputs)) {
      const c = cb[key], r = rb[key];
      if (c instanceof Float32Array && r instanceof Float32Array) {
        assertClose(`${what} ${key}`, c, r, tols[key] ?? tol);
        subject.onCompared?.(kernel, c, r, tols[key] ?? tol);
      }
    }
  }


  // Elementwise float32 results differ from the once-rounded double reference by a few roundings of intermediates
  // (sigmoid inside silu, the exp polynomial): well under 1e-6 relative. 1e-5 relative with 1e-6 absolute (for
  // results near zero, where the relative error of a cancelling difference such as 1 + tanh(u) grows) leaves room
  // and still catches any wrong term or constant.
  const ELEMENTWISE: Tol = { rel: 1e-5, abs: 1e-6 };
  // +, -, *, /, max, min, comparisons, copies, gathers: a float32 op on float32 inputs rounds exactly like the
  // double op rounded to float32 (double has more than 2 * 24 + 2 bits), so these must agree bit for bit.
  const EXACT: Tol = { rel: 0, abs: 0 };

  function unaryInput(op: UnaryOpName, n: number): Float32Array {
    switch (op) {
      case 'log': case 'sqrt': case 'rsqrt': return uniform(n, 0.05, 20);
      case 'recip': return Float32Array.from(uniform(n, 0.1, 5), (v, i) => (i % 2 ? v : -v));
      case 'exp': return normal(n, 4);  // e^+-12: the range of scores after the max is subtracted, and more
      case 'sigmoid': case 'silu': case 'tanh': case 'geluTanh': return normal(n, 5);
      default: return normal(n, 2);
    }
  }

  // Sizes: odd (a vector tail of 1..7) and one above the threading grain (2^15 elements), so both paths run.
  const ELEMENT_COUNTS = [1, 13, 1003, 70001];

  /** One test per case, each a list of sub-comparisons. */
  const cases: { [name in KernelName]: () => void } = {
    matmul() {
      // The GEMM sums k products in float32 in blocks; with inputs ~N(0, 1) the error of one output is ~sqrt(k) ulps
      // of the partial sums (|sum| ~ sqrt(k)): 2e-6 * k absolute is ~20x that and far below any wrong product.
      const shapes = [
        { batch: 1, m: 7, n: 13, k: 5, transA: false, transB: false },
        { batch: 3, m: 33, n: 65, k: 17, transA: true, transB: false },
        { batch: 2, m: 9, n: 31, k: 70, transA: false, transB: true },
        { batch: 1, m: 1, n: 257, k: 96, transA: false, transB: true },  // decode: a row times a weight matrix
        { batch: 1, m: 130, n: 70, k: 200, transA: true, transB: true },
        { batch: 1, m: 515, n: 257, k: 129, transA: false, transB: true },  // x @ W^T with odd sizes
        { batch: 4, m: 77, n: 45, k: 300, transA: true, transB: false },  // a weight gradient per batch entry
      ];
      for (const s of shapes) {
        for (const beta of [0, 1] as const) {
          const sa = s.m * s.k, sb = s.batch > 1 && s.m % 2 === 1 ? 0 : s.k * s.n;  // odd m: B broadcast over the batch
          compare(`matmul ${JSON.stringify(s)} beta=${beta}`,
            { a: normal(s.batch * sa), b: normal(Math.max(sb * s.batch, s.k * s.n)), c: normal(s.batch * s.m * s.n) },
            (k, x) => k.matmul(x.a!, x.b!, x.c!, s.batch, s.m, s.n, s.k, s.transA, s.transB, sa, sb, s.m * s.n, beta),
            { rel: 1e-5, abs: 2e-6 * s.k });
        }
      }
    },

    unary() {
      for (const op of Object.keys(UnaryOp) as UnaryOpName[]) {
        for (const n of ELEMENT_COUNTS) {
          compare(`unary ${op} n=${n}`, { x: unaryInput(op, n), y: new Float32Array(n) },
            (k, b) => k.unary(op, b.x!, b.y!, n), ELEMENTWISE);
        }
        // In place (r1.h lets out alias its input): the op layer uses this for accumulation.
        compare(`unary ${op} in place`, { x: unaryInput(op, 1003) }, (k, b) => k.unary(op, b.x!, b.x!, 1003), ELEMENTWISE);
      }
    },

    unaryBackward() {
      for (const op of Object.keys(UnaryOp) as UnaryOpName[]) {
        for (const n of ELEMENT_COUNTS) {
          const x = unaryInput(op, n), y = new Float32Array(n);
          ref.unary(op, x, y, n);
          compare(`unaryBackward ${op} n=${n}`, { x, y, dy: normal(n), dx: new Float32Array(n) },
            (k, b) => k.unaryBackward(op, b.x!, b.y!, b.dy!, b.dx!, n), ELEMENTWISE);
        }
      }
    },

    binary() {
      // [shape, a strides, b strides, size of a, size of b]: contiguous, row and column broadcasts, a scalar, a
      // permuted (transposed) operand, 0-d, and one large enough to run on several threads.
      const layouts: { shape: number[]; a: number[]; b: number[]; an: number; bn: number }[] = [
        { shape: [37, 19], a: [19, 1], b: [19, 1], an: 703, bn: 703 },
        { shape: [37, 19], a: [19, 1], b: [0, 1], an: 703, bn: 19 },
        { shape: [37, 19], a: [0, 1], b: [1, 0], an: 19, bn: 37 },
        { shape: [5, 6, 7], a: [42, 7, 1], b: [0, 0, 0], an: 210, bn: 1 },
        { shape: [5, 6, 7], a: [1, 35, 5], b: [42, 7, 1], an: 210, bn: 210 },
        { shape: [], a: [], b: [], an: 1, bn: 1 },
        { shape: [3, 1, 300, 257], a: [77100, 77100, 257, 1], b: [0, 0, 257, 1], an: 231300, bn: 77100 },
        // Rows of a multiple of 4 (CUDA's four-wide path): whole operands, a row broadcast either side, a scalar.
        { shape: [64, 36], a: [36, 1], b: [36, 1], an: 2304, bn: 2304 },
        { shape: [4, 16, 36], a: [576, 36, 1], b: [0, 0, 1], an: 2304, bn: 36 },
        { shape: [64, 36], a: [0, 1], b: [36, 1], an: 36, bn: 2304 },
        { shape: [5, 8, 7], a: [56, 7, 1], b: [0, 0, 0], an: 280, bn: 1 },
        { shape: [3, 300, 256], a: [76800, 256, 1], b: [0, 256, 1], an: 230400, bn: 76800 },
      ];
      for (const op of Object.keys(BinaryOp) as BinaryOpName[]) {
        const comparison = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'max', 'min'].includes(op);
        const input = (n: number, second: boolean): Float32Array =>
          comparison ? coarse(n) : op === 'pow' ? (second ? uniform(n, -3, 3) : uniform(n, 0.1, 4))
            : op === 'div' && second ? uniform(n, 0.5, 2) : normal(n);
        // powf and Math.pow each round their own way: 1 ulp apart at most; 1e-6 relative.
        const tol = op === 'pow' ? { rel: 1e-6, abs: 0 } : EXACT;
        for (const l of layouts) {
          const n = shapeSize(l.shape);
          compare(`binary ${op} shape=[${l.shape}] a=[${l.a}] b=[${l.b}]`,
            { a: input(l.an, false), b: input(l.bn, true), out: new Float32Array(n) },
            (k, x) => k.binary(op, x.a!, l.a, x.b!, l.b, x.out!, l.shape), tol);
        }
        // out aliasing a contiguous input, b broadcast (gradient accumulation: grad += bias-shaped term).
        for (const shape of [[41, 23], [40, 24]]) {
          compare(`binary ${op} in place [${shape}]`, { a: input(shape[0] * shape[1], false), b: input(shape[1], true) },
            (k, x) => k.binary(op, x.a!, contiguousStrides(shape), x.b!, [0, 1], x.a!, shape), tol);
        }
      }
    },

    where() {
      const shape = [4, 33, 17];
      const full = contiguousStrides(shape), n = shapeSize(shape);
      const layouts = [
        { cond: full, a: full, b: full, cn: n, an: n, bn: n },
        { cond: [0, 17, 1], a: full, b: [0, 0, 0], cn: 33 * 17, an: n, bn: 1 },  // a causal-style mask, fill value
        { cond: [33, 1, 0], a: [1, 4, 0], b: full, cn: 4 * 33, an: 132, bn: n },
      ];
      for (const l of layouts) {
        compare(`where cond=[${l.cond}] a=[${l.a}] b=[${l.b}]`,
          { cond: coarse(l.cn).map((v) => (v > 0 ? 1 : 0)), a: normal(l.an), b: normal(l.bn), out: new Float32Array(n) },
          (k, x) => k.where(x.cond!, l.cond, x.a!, l.a, x.b!, l.b, x.out!, shape), EXACT);
      }
    },

    copy() {
      // A transpose [2, 3, 5, 7] -> [2, 5, 3, 7] (heads <-> time), a slice written into a larger buffer (concat),
      // a full reversal of the axis order, and a large contiguous copy.
      const shape = [2, 3, 5, 7], n = shapeSize(shape);
      const cases: { src: number[]; dst: number[]; dn: number; shape: number[] }[] = [
        { shape, src: contiguousStrides(shape), dst: [105, 7, 21, 1], dn: n },
        { shape, src: contiguousStrides(shape), dst: [3 * 5 * 10, 5 * 10, 10, 1], dn: 2 * 3 * 5 * 10 },
        { shape, src: contiguousStrides(shape), dst: [1, 2, 6, 30], dn: n },
        { shape: [400, 300], src: [300, 1], dst: [300, 1], dn: 120000 },
      ];
      for (const c of cases) {
        compare(`copy shape=[${c.shape}] dst=[${c.dst}]`, { src: normal(shapeSize(c.shape)), dst: normal(c.dn) },
          (k, x) => k.copy(x.src!, c.src, x.dst!, c.dst, c.shape), EXACT);
      }
    },

    swiglu() {
      // 70004: a multiple of 4 (CUDA's four-wide path).
      for (const n of [...ELEMENT_COUNTS, 70004]) {
        compare(`swiglu n=${n}`, { gate: normal(n, 4), up: normal(n), y: new Float32Array(n) },
          (k, b) => k.swiglu(b.gate!, b.up!, b.y!, n), ELEMENTWISE);
      }
    },

    swigluBackward() {
      for (const n of [...ELEMENT_COUNTS, 70004]) {
        compare(`swigluBackward n=${n}`,
          { gate: normal(n, 4), up: normal(n), dy: normal(n), dgate: new Float32Array(n), dup: new Float32Array(n) },
          (k, b) => k.swigluBackward(b.gate!, b.up!, b.dy!, b.dgate!, b.dup!, n), ELEMENTWISE);
      }
    },

    reduce() {
      // Sums accumulate in double on both sides (a GPU over a block tree) and round once: at most 1 ulp apart (the two orders of summation
      // may straddle a rounding boundary), so 2.5e-7 relative, plus 1e-7 absolute for sums that cancel to ~0.
      // max and min are exact. [1, 2001, 600] and [3, 4099, 37] take CUDA's split of a long axis over few columns
      // (a bias gradient), the second with a last stretch shorter than the others.
      const shapes = [[7, 13, 1], [5, 11, 9], [1, 1000, 1], [3, 1, 4], [1, 2001, 600], [3, 4099, 37], [600, 1, 1], [64, 700, 1]];
      for (const [outer, len, inner] of shapes) {
        for (const op of ['sum', 'max', 'min'] as const) {
          compare(`reduce ${op} [${outer}, ${len}, ${inner}]`, { x: normal(outer * len * inner), out: new Float32Array(outer * inner) },
            (k, b) => k.reduce(op, b.x!, b.out!, outer, len, inner), op === 'sum' ? { rel: 2.5e-7, abs: 1e-7 } : EXACT);
        }
      }
    },

    sumSquares() {
      // Both accumulate in double; only the order differs (chunks summed in parallel, or per GPU block).
      for (const n of [0, 1, 7, 100003, 300001]) {
        compare(`sumSquares n=${n}`, { x: normal(n) }, (k, b) => k.sumSquares(b.x!, n), { rel: 1e-12, abs: 0 });
      }
    },

    softmax() {
      // exp is ~2 ulp and the row sum is a float32 sum of up to 32000 positive terms in 16 lanes (relative error
      // ~ (cols / 16) * 6e-8 at worst, ~1e-6 in practice): 1e-5 relative; 1e-9 absolute for probabilities that
      // underflow differently near the float32 denormal range.
      for (const [rows, cols] of [[1, 1], [9, 7], [33, 1000], [3, 32003], [200, 300]]) {
        compare(`softmax [${rows}, ${cols}]`, { x: normal(rows * cols, 3, 50), y: new Float32Array(rows * cols) },
          (k, b) => k.softmax(b.x!, b.y!, rows, cols), { rel: 1e-5, abs: 1e-9 });
      }
    },

    softmaxBackward() {
      for (const [rows, cols] of [[9, 7], [33, 1000], [200, 300]]) {
        const y = new Float32Array(rows * cols);
        ref.softmax(normal(rows * cols, 2), y, rows, cols);
        // dx = y (dy - y.dy): the float32 dot over cols cancels; absolute error ~ 1e-7 * y.
        compare(`softmaxBackward [${rows}, ${cols}]`, { y, dy: normal(rows * cols), dx: new Float32Array(rows * cols) },
          (k, b) => k.softmaxBackward(b.y!, b.dy!, b.dx!, rows, cols), { rel: 1e-5, abs: 1e-7 });
      }
    },

    logSoftmax() {
      // y = x - lse: lse carries ~1e-6 relative error from the float32 sum, i.e. ~1e-6 absolute on y.
      for (const [rows, cols] of [[1, 1], [9, 7], [33, 1000], [3, 32003], [200, 300]]) {
        compare(`logSoftmax [${rows}, ${cols}]`, { x: normal(rows * cols, 3, -20), y: new Float32Array(rows * cols) },
          (k, b) => k.logSoftmax(b.x!, b.y!, rows, cols), { rel: 1e-5, abs: 2e-6 });
      }
    },

    logSoftmaxBackward() {
      for (const [rows, cols] of [[9, 7], [33, 1000], [200, 300]]) {
        const y = new Float32Array(rows * cols);
        ref.logSoftmax(normal(rows * cols, 2), y, rows, cols);
        // dx = dy - exp(y) sum(dy): sum(dy) over cols in float32 is ~1e-6 relative to sqrt(cols).
        compare(`logSoftmaxBackward [${rows}, ${cols}]`, { y, dy: normal(rows * cols), dx: new Float32Array(rows * cols) },
          (k, b) => k.logSoftmaxBackward(b.y!, b.dy!, b.dx!, rows, cols), { rel: 1e-5, abs: 2e-6 });
      }
    },

    crossEntropy() {
      // loss = lse - logit: the error of lse (see logSoftmax), ~1e-6 absolute on losses of ~10.
      for (const [rows, vocab] of [[1, 2], [37, 1001], [4, 32000], [130, 257]]) {
        const targets = ints(rows, vocab);
        for (let r = 0; r < rows; r += 3) targets[r] = -100;  // every third row ignored (padding, prompt tokens)
        compare(`crossEntropy [${rows}, ${vocab}]`,
          { logits: normal(rows * vocab, 3), targets, loss: new Float32Array(rows), lse: new Float32Array(rows) },
          (k, b) => k.crossEntropy(b.logits!, b.targets as Int32Array, b.loss!, b.lse!, rows, vocab, -100),
          { rel: 1e-5, abs: 2e-6 });
      }
    },

    crossEntropyBackward() {
      for (const [rows, vocab] of [[1, 2], [37, 1001], [4, 32000], [130, 257]]) {
        const logits = normal(rows * vocab, 3), targets = ints(rows, vocab), lse = new Float32Array(rows);
        for (let r = 1; r < rows; r += 3) targets[r] = -100;
        ref.crossEntropy(logits, targets, new Float32Array(rows), lse, rows, vocab, -100);
        // exp(logit - lse) * dloss: a few ulp of each probability. At the target, p - 1 cancels when p is near 1,
        // leaving a few ulp of 1 times dloss (|dloss| up to ~4): 6e-8 absolute was seen on a gradient of 6e-4
        // (CUDA's expf against glibc's exp), so 1e-6 absolute, still far below any wrong term.
        compare(`crossEntropyBackward [${rows}, ${vocab}]`,
          { logits, targets, lse, dloss: normal(rows), dlogits: normal(rows * vocab) },
          (k, b) => k.crossEntropyBackward(b.logits!, b.targets as Int32Array, b.lse!, b.dloss!, b.dlogits!, rows, vocab, -100),
          { rel: 1e-5, abs: 1e-6 });
      }
    },

    embedding() {
      for (const [n, vocab, dim] of [[1, 3, 1], [37, 50, 19], [2000, 300, 64]]) {
        compare(`embedding n=${n} dim=${dim}`, { table: normal(vocab * dim), ids: ints(n, vocab), out: new Float32Array(n * dim) },
          (k, b) => k.embedding(b.table!, b.ids as Int32Array, b.out!, n, dim), EXACT);
      }
    },

    embeddingBackward() {
      // Repeated ids (vocab smaller than n) add up: in id order on the CPU (bit-identical), by atomicAdd in any
      // order on a GPU (a few float32 roundings apart): the backend's unorderedSums tolerance.
      for (const [n, vocab, dim] of [[1, 3, 1], [37, 5, 19], [2000, 300, 200]]) {
        compare(`embeddingBackward n=${n} dim=${dim}`, { ids: ints(n, vocab), dout: normal(n * dim), dtable: normal(vocab * dim) },
          (k, b) => k.embeddingBackward(b.ids as Int32Array, b.dout!, b.dtable!, n, dim), subject.unorderedSums);
      }
    },

    gather() {
      // [outer, len, inner, k]; [64, 1000, 1, 1] picks each token's logprob from a [tokens, vocab] row.
      for (const [outer, len, inner, k] of [[3, 10, 4, 5], [64, 1000, 1, 1], [2, 7, 300, 9]]) {
        compare(`gather [${outer}, ${len}, ${inner}] k=${k}`,
          { x: normal(outer * len * inner), idx: ints(outer * k * inner, len), out: new Float32Array(outer * k * inner) },
          (kk, b) => kk.gather(b.x!, b.idx as Int32Array, b.out!, outer, len, inner, k), EXACT);
      }
    },

    scatterAdd() {
      // Repeated indices (k > len) add up: in j order on the CPU, in any order on a GPU (unorderedSums).
      for (const [outer, len, inner, k] of [[3, 4, 4, 9], [64, 1000, 1, 1], [2, 7, 300, 20]]) {
        compare(`scatterAdd [${outer}, ${len}, ${inner}] k=${k}`,
          { idx: ints(outer * k * inner, len), dout: normal(outer * k * inner), dx: normal(outer * len * inner) },
          (kk, b) => kk.scatterAdd(b.idx as Int32Array, b.dout!, b.dx!, outer, len, inner, k), subject.unorderedSums);
      }
    },

    rmsnorm() {
      // A float32 sum of squares over dim (~1e-7 relative) and two products. [1100, 96]: CUDA's warp per row.
      for (const [rows, dim] of [[1, 1], [33, 7], [65, 257], [300, 512], [1100, 96]]) {
        compare(`rmsnorm [${rows}, ${dim}]`,
          { x: normal(rows * dim, 3), w: normal(dim, 0.2, 1), y: new Float32Array(rows * dim), rstd: new Float32Array(rows) },
          (k, b) => k.rmsnorm(b.x!, b.w!, b.y!, b.rstd!, rows, dim, 1e-6), ELEMENTWISE);
      }
    },

    rmsnormBackward() {
      for (const [rows, dim] of [[1, 1], [33, 7], [65, 257], [300, 512], [1100, 96]]) {
        const x = normal(rows * dim, 3), w = normal(dim, 0.2, 1), rstd = new Float32Array(rows);
        ref.rmsnorm(x, w, new Float32Array(rows * dim), rstd, rows, dim, 1e-6);
        // dx = rstd (w dy - x rstd^2 c / dim) cancels: ~1e-6 absolute. dw sums dy x rstd over rows in double on
        // both sides (a GPU over slices of 64 rows, then the slices) and rounds once when added to dw: 1 ulp.
        compare(`rmsnormBackward [${rows}, ${dim}]`,
          { x, w, rstd, dy: normal(rows * dim), dx: new Float32Array(rows * dim), dw: normal(dim) },
          (k, b) => k.rmsnormBackward(b.x!, b.w!, b.rstd!, b.dy!, b.dx!, b.dw!, rows, dim),
          ELEMENTWISE, { dw: { rel: 2.5e-7, abs: 1e-7 } });
      }
    },

    rope() {
      // Two products and a sum per output, float32 with FMA: a few ulp of |x|, 1e-6 absolute for |x| ~ 1.
      const maxPosition = 100;
      // [9, 2, 128, 128] and [5, 3, 96, 16]: more pairs, and more passed-through dims, than CUDA's 32 lanes a row;
      // [40, 14, 64, 64]: Qwen2.5-0.5B's 14 heads, three whole groups of CUDA's 4 heads a row and one of 2.
      for (const [tokens, heads, headDim, rotDim] of [[1, 1, 2, 2], [13, 3, 10, 6], [70, 4, 64, 64], [300, 8, 32, 16], [9, 2, 128, 128], [5, 3, 96, 16], [40, 14, 64, 64]]) {
        const half = rotDim / 2, cos = new Float32Array(maxPosition * half), sin = new Float32Array(maxPosition * half);
        for (let p = 0; p < maxPosition; p++) {
          for (let i = 0; i < half; i++) {
            const angle = p * Math.pow(10000, (-2 * i) / rotDim);
            cos[p * half + i] = Math.cos(angle);
            sin[p * half + i] = Math.sin(angle);
          }
        }
        for (const interleaved of [false, true]) {
          for (const inverse of [false, true]) {
            const n = tokens * heads * headDim;
            compare(`rope [${tokens}, ${heads}, ${headDim}] rot=${rotDim} interleaved=${interleaved} inverse=${inverse}`,
              { x: normal(n), y: new Float32Array(n), positions: ints(tokens, maxPosition), cos, sin },
              (k, b) => k.rope(b.x!, b.y!, b.positions as Int32Array, b.cos!, b.sin!, tokens, heads, headDim, rotDim, interleaved, inverse),
              { rel: 1e-6, abs: 1e-6 });
          }
        }
      }
    },

    attention() {
      for (const c of ATTENTION_CASES) {
        const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = c;
        const capacity = c.capacity ?? Tk;
        const kvStart = c.kvStart ? Int32Array.from(c.kvStart) : null;
        // out is a convex combination of rows of v (|v| ~ 1): the float32 score dots (D terms), exp and the
        // online rescaling give ~1e-6 absolute; lse = max + log(sum) likewise. 5e-6 absolute + 1e-5 relative.
        for (const withLse of [true, false]) {
          compare(`attention ${c.name}${withLse ? '' : ' (lse null)'}`,
            {
              q: normal(B * Tq * Hq * D), k: normal(B * capacity * Hkv * D), v: normal(B * capacity * Hkv * Dv),
              out: new Float32Array(B * Tq * Hq * Dv), lse: withLse ? new Float32Array(B * Hq * Tq) : null, kvStart,
            },
            (kk, b) => kk.attention(b.q!, b.k!, b.v!, b.out!, b.lse as Float32Array | null, b.kvStart as Int32Array | null,
              B, Tq, Tk, Hq, Hkv, D, Dv, capacity * Hkv * D, capacity * Hkv * Dv, 1 / Math.sqrt(D), causal),
            { rel: 1e-5, abs: 5e-6 });
        }
      }
    },

    attentionBackward() {
      for (const c of ATTENTION_CASES) {
        if (c.capacity !== undefined) continue;  // the backward takes contiguous k and v
        const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = c;
        const kvStart = c.kvStart ? Int32Array.from(c.kvStart) : null;
        const scale = 1 / Math.sqrt(D);
        const q = normal(B * Tq * Hq * D), k = normal(B * Tk * Hkv * D), v = normal(B * Tk * Hkv * Dv);
        const out = new Float32Array(B * Tq * Hq * Dv), lse = new Float32Array(B * Hq * Tq);
        ref.attention(q, k, v, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, Tk * Hkv * D, Tk * Hkv * Dv, scale, causal);
        // The kernel recomputes P = exp(s - lse) from the float32 lse (~1e-6 absolute, so P is off by ~1e-6
        // relative) and uses D_i = dO . O from the float32 out, where the reference recomputes everything in double;
        // dq and dk then sum Tk (resp. G * Tq) such terms of size ~scale * |dS| |k|, dv G * Tq terms P dO. The
        // largest difference the native kernel showed is 7e-6 (dv, T = 150); 2e-5 absolute + 1e-4 relative leaves ~3x, while a wrong
        // mask, a missing scale or a dropped head is off by O(0.1).
        compare(`attentionBackward ${c.name}`,
          {
            q, k, v, out, lse, dout: normal(B * Tq * Hq * Dv), kvStart,
            dq: normal(B * Tq * Hq * D), dk: normal(B * Tk * Hkv * D), dv: normal(B * Tk * Hkv * Dv),  // overwritten
          },
          (kk, b) => kk.attentionBackward(b.q!, b.k!, b.v!, b.out!, b.lse!, b.dout!, b.dq!, b.dk!, b.dv!,
            b.kvStart as Int32Array | null, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal),
          { rel: 1e-4, abs: 2e-5 });
      }
    },

    adamw() {
      // Three steps; the update m / (sqrt(v) + eps) is O(1) and rounds a few times in float32, times lr.
      for (const n of [1, 1003, 100003, 100004]) {
        const state = { p: normal(n), g: normal(n), m: new Float32Array(n), v: new Float32Array(n) };
        compare(`adamw n=${n}`, state, (k, b) => {
          for (let t = 1; t <= 3; t++) {
            k.adamw(b.p!, b.g!, b.m!, b.v!, n, 1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** t, 1 - 0.95 ** t);
          }
        }, { rel: 1e-5, abs: 1e-7 });
      }
    },

    randomNormal() {
      // Philox words are integers and agree exactly; log, sqrt, cos and sin in double differ by an ulp of double
      // between libraries (and fused multiply-adds), which moves a float32 result by at most one ulp (6e-8
      // relative) on the rare value near a rounding boundary: any wrong word or pairing is off by O(1).
      for (const n of ELEMENT_COUNTS) {
        compare(`randomNormal n=${n}`, { x: new Float32Array(n) }, (k, b) => k.randomNormal(b.x!, n, 0x9e3779b9, n, 0.02), { rel: 2e-7, abs: 1e-12 });
      }
    },
  };

  const ATTENTION_CASES: AttentionCase[] = [
    { name: 'causal GQA 4/2, T=37', B: 2, Tq: 37, Tk: 37, Hq: 4, Hkv: 2, D: 16, Dv: 16, causal: true },
    { name: 'non-causal GQA 6/2, T=70 (two key blocks), D=20, Dv=12', B: 2, Tq: 70, Tk: 70, Hq: 6, Hkv: 2, D: 20, Dv: 12, causal: false },
    { name: 'causal MHA 3/3, D=5 (no full vector), left padding', B: 3, Tq: 19, Tk: 19, Hq: 3, Hkv: 3, D: 5, Dv: 7, causal: true, kvStart: [0, 4, 18] },
    { name: 'causal Tq=5 > Tk=3 (the first queries see no key)', B: 1, Tq: 5, Tk: 3, Hq: 2, Hkv: 1, D: 8, Dv: 8, causal: true },
    { name: 'padding covers every key of a row', B: 2, Tq: 4, Tk: 6, Hq: 2, Hkv: 2, D: 8, Dv: 8, causal: false, kvStart: [6, 2] },
    { name: 'chunked prefill Tq=9 < Tk=75, causal, left padding', B: 2, Tq: 9, Tk: 75, Hq: 8, Hkv: 2, D: 32, Dv: 32, causal: true, kvStart: [0, 11] },
    { name: 'decode Tq=1 from a cache of capacity 96 holding 45, padding', B: 3, Tq: 1, Tk: 45, Hq: 4, Hkv: 1, D: 24, Dv: 24, causal: true, capacity: 96, kvStart: [0, 5, 44] },
    { name: 'decode Tq=1, long cache (Tk=300 of 320), threaded', B: 2, Tq: 1, Tk: 300, Hq: 8, Hkv: 4, D: 64, Dv: 64, causal: true, capacity: 320 },
    { name: 'training shape, causal GQA 8/2, T=150, threaded', B: 2, Tq: 150, Tk: 150, Hq: 8, Hkv: 2, D: 32, Dv: 32, causal: true },
    // Larger shapes for the CUDA kernels' own paths (several 32-query and 64-key tiles with D = 64, the 128 and
    // 256 head-size templates, DeepSeek's MLA with D = 192, Dv = 128, decoding with the keys split over many
    // blocks), which the CPU kernels meet too.
    { name: 'causal GQA 14/2 (Qwen2.5-0.5B heads), T=203, D=64', B: 1, Tq: 203, Tk: 203, Hq: 14, Hkv: 2, D: 64, Dv: 64, causal: true, kvStart: undefined },
    { name: 'causal MHA, T=97, D=128, left padding', B: 2, Tq: 97, Tk: 97, Hq: 2, Hkv: 2, D: 128, Dv: 128, causal: true, kvStart: [0, 30] },
    { name: 'causal MLA shapes D=192, Dv=128, T=70', B: 1, Tq: 70, Tk: 70, Hq: 2, Hkv: 2, D: 192, Dv: 128, causal: true },
    { name: 'decode Tq=1, split keys (Tk=2500 of 2600), GQA 14/2, D=64, padding', B: 2, Tq: 1, Tk: 2500, Hq: 14, Hkv: 2, D: 64, Dv: 64, causal: true, capacity: 2600, kvStart: [0, 700] },
    { name: 'speculative decode Tq=4, Tk=900, GQA 8/2, D=128', B: 1, Tq: 4, Tk: 900, Hq: 8, Hkv: 2, D: 128, Dv: 128, causal: true, capacity: 1000 },
  ];

  return { cases, compare, ATTENTION_CASES, normal, uniform, ints };
}
