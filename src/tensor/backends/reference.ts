// The reference backend: every kernel of native/r1.h in plain TypeScript, the living definition of the ops
// (STYLE.md 13). Slow on purpose and written to be checked by eye: the native C++ and CUDA kernels are tested
// against it, and the float64 finite-difference gradient checks of every op run on it.
//
// Conventions (those of r1.h, restated where they shape the code):
// - Float arrays arrive as Float32Array or Float64Array already positioned at the tensor's offset; a kernel never
//   assumes which. Every intermediate, sums included, is a JS number (a double) and is rounded only when stored
//   in an output, so the float64 path is exact to double precision and the float32 path rounds once per output.
// - Sizes and strides are element counts. Only the strided kernels (binary, where, copy) take strides; every
//   other array is contiguous and row-major.
// - A `...Backward` kernel accumulates into the gradient of a parameter (dw += ...: embeddingBackward's dtable,
//   scatterAdd's dx, rmsnormBackward's dw); every other output is overwritten. attentionBackward overwrites dq,
//   dk and dv (r1.h says so explicitly).
// The file follows r1.h's order: GEMM, elementwise, reductions, softmax family, indexing, normalisation, rotary
// embedding, attention, optimizer.
import { registerBackend, type Backend, type FloatArray } from '../backend.ts';
import { checkDims, type BinaryOpName, type Dims, type Kernels, type ReduceOpName, type UnaryOpName } from '../kernels.ts';
import { fillNormal } from '../philox.ts';

type F = FloatArray;
type I = Int32Array;

// ---- GEMM -------------------------------------------------------------------------------------------------

/**
 * C_b = op(A_b) @ op(B_b) + beta * C_b for each batch entry b. A_b is stored m x k (or k x m when transA),
 * B_b is stored k x n (or n x k when transB), C_b is m x n; a stride of 0 shares an operand across the batch.
 * Loop order i, p, j: the innermost loop walks a row of B and a row of the accumulator, and each row of C is
 * summed in doubles before it is stored. With beta 0 the old C is never read (it may hold NaN).
 */
function matmul(a: F, b: F, c: F, batch: number, m: number, n: number, k: number, transA: boolean,
  transB: boolean, strideA: number, strideB: number, strideC: number, beta: 0 | 1): void {
  const rowSum = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const a0 = bi * strideA, b0 = bi * strideB, c0 = bi * strideC;
    for (let i = 0; i < m; i++) {
      rowSum.fill(0);
      for (let p = 0; p < k; p++) {
        const aip = transA ? a[a0 + p * m + i] : a[a0 + i * k + p];
        for (let j = 0; j < n; j++) {
          const bpj = transB ? b[b0 + j * k + p] : b[b0 + p * n + j];
          rowSum[j] += aip * bpj;
        }
      }
      for (let j = 0; j < n; j++) {
        const ci = c0 + i * n + j;
        c[ci] = beta === 1 ? rowSum[j] + c[ci] : rowSum[j];
      }
    }
  }
}

// ---- elementwise ------------------------------------------------------------------------------------------

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_CUBIC = 0.044715;

function sigmoid(x: number): number {
  // 1 / (1 + e^-x) is stable in doubles: for very negative x, e^-x overflows to Infinity and the result is 0.
  return 1 / (1 + Math.exp(-x));
}

function silu(x: number): number {
  return x * sigmoid(x);
}

/** d silu / dx = s + x s (1 - s), with s = sigmoid(x). */
function siluDerivative(x: number): number {
  const s = sigmoid(x);
  return s * (1 + x * (1 - s));
}

/** f(x) for each unary op of r1.h. */
const unaryForward: { [op in UnaryOpName]: (x: number) => number } = {
  neg: (x) => -x,
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
  sqrt: (x) => Math.sqrt(x),
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: (x) => Math.tanh(x),
  sigmoid,
  silu,
  // The tanh approximation of GELU (Hendrycks & Gimpel 2016, eq. in section 2), as GPT-2 and gelu_pytorch_tanh.
  geluTanh: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x))),
  relu: (x) => (x > 0 ? x : 0),
  abs: (x) => Math.abs(x),
  recip: (x) => 1 / x,
  square: (x) => x * x,
  sin: (x) => Math.sin(x),
  cos: (x) => Math.cos(x),
};

/**
 * f'(x) for each unary op, given x and y = f(x) (r1.h passes both; exp, tanh and sigmoid read y). At the kinks
 * of relu and abs the derivative is taken as 0, as PyTorch does.
 */
const unaryDerivative: { [op in UnaryOpName]: (x: number, y: number) => number } = {
  neg: () => -1,
  exp: (_x, y) => y,
  log: (x) => 1 / x,
  sqrt: (_x, y) => 0.5 / y,
  rsqrt: (_x, y) => -0.5 * y * y * y,  // d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  tanh: (_x, y) => 1 - y * y,
  sigmoid: (_x, y) => y * (1 - y),
  silu: (x) => siluDerivative(x),
  geluTanh: (x) => {
    // y = 0.5 x (1 + t), t = tanh(u), u = c (x + a x^3): y' = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2).
    const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x);
  },
  relu: (x) => (x > 0 ? 1 : 0),
  abs: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  recip: (_x, y) => -y * y,  // d 1/x = -1/x^2 = -y^2
  square: (x) => 2 * x,
  sin: (x) => Math.cos(x),
  cos: (x) => -Math.sin(x),
};

function unary(op: UnaryOpName, x: F, y: F, n: number): void {
  const f = unaryForward[op];
  for (let i = 0; i < n; i++) y[i] = f(x[i]);
}

function unaryBackward(op: UnaryOpName, x: F, y: F, dy: F, dx: F, n: number): void {
  const df = unaryDerivative[op];
  for (let i = 0; i < n; i++) dx[i] = dy[i] * df(x[i], y[i]);
}

/** f(a, b) for each binary op; comparisons give 1 or 0. max and min propagate NaN (as torch.maximum does). */
const binaryFunctions: { [op in BinaryOpName]: (a: number, b: number) => number } = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: (a, b) => Math.max(a, b),
  min: (a, b) => Math.min(a, b),
  pow: (a, b) => Math.pow(a, b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

function numel(shape: Dims): number {
  let count = 1;
  for (const size of shape) count *= size;
  return count;
}

/**
 * The element offset, through `strides`, of the element whose row-major position in `shape` is `linear`: the
 * multi-index is peeled off from the last dimension. A 0-dimensional shape is one element at offset 0.
 */
function stridedOffset(linear: number, shape: Dims, strides: Dims): number {
  let offset = 0;
  for (let d = shape.length - 1; d >= 0; d--) {
    const index = linear % shape[d];
    linear = (linear - index) / shape[d];
    offset += index * strides[d];
  }
  return offset;
}

function binary(op: BinaryOpName, a: F, aStrides: Dims, b: F, bStrides: Dims, out: F, shape: Dims): void {
  checkDims('binary', shape, aStrides, bStrides);
  const f = binaryFunctions[op];
  const count = numel(shape);
  // out may alias a contiguous input of the same shape: element i reads that input only at i, before writing i.
  for (let i = 0; i < count; i++) {
    out[i] = f(a[stridedOffset(i, shape, aStrides)], b[stridedOffset(i, shape, bStrides)]);
  }
}

function where(cond: F, condStrides: Dims, a: F, aStrides: Dims, b: F, bStrides: Dims, out: F, shape: Dims): void {
  checkDims('where', shape, condStrides, aStrides, bStrides);
  const count = numel(shape);
  for (let i = 0; i < count; i++) {
    out[i] = cond[stridedOffset(i, shape, condStrides)] !== 0
      ? a[stridedOffset(i, shape, aStrides)]
      : b[stridedOffset(i, shape, bStrides)];
  }
}

function copy(src: F, srcStrides: Dims, dst: F, dstStrides: Dims, shape: Dims): void {
  checkDims('copy', shape, srcStrides, dstStrides);
  const count = numel(shape);
  for (let i = 0; i < count; i++) {
    dst[stridedOffset(i, shape, dstStrides)] = src[stridedOffset(i, shape, srcStrides)];
  }
}

/** SwiGLU's activation (Shazeer 2020, "GLU Variants Improve Transformer", eq. 6): y = silu(gate) * up. */
function swiglu(gate: F, up: F, y: F, n: number): void {
  for (let i = 0; i < n; i++) y[i] = silu(gate[i]) * up[i];
}

function swigluBackward(gate: F, up: F, dy: F, dgate: F, dup: F, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i], u = up[i], d = dy[i];
    dgate[i] = d * u * siluDerivative(g);
    dup[i] = d * silu(g);
  }
}

// ---- reductions over one axis: x viewed as [outer, len, inner], out as [outer, inner] -----------------------

const reduceStart: { [op in ReduceOpName]: number } = { sum: 0, max: -Infinity, min: Infinity };
const reduceStep: { [op in ReduceOpName]: (acc: number, x: number) => number } = {
  sum: (acc, x) => acc + x,
  max: (acc, x) => Math.max(acc, x),
  min: (acc, x) => Math.min(acc, x),
};

function reduce(op: ReduceOpName, x: F, out: F, outer: number, len: number, inner: number): void {
  const step = reduceStep[op];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = reduceStart[op];
      for (let l = 0; l < len; l++) acc = step(acc, x[(o * len + l) * inner + i]);
      out[o * inner + i] = acc;
    }
  }
}

function sumSquares(x: F, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i] * x[i];
  return sum;
}

// ---- softmax family over the last axis of [rows, cols] ------------------------------------------------------

/** max_j x[row0 + j] and log sum_j exp(x[row0 + j] - max): the stable log-sum-exp is max + the second. */
function rowMaxAndLogSum(x: F, row0: number, cols: number): { max: number; logSum: number } {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) max = Math.max(max, x[row0 + j]);
  let sum = 0;
  for (let j = 0; j < cols; j++) sum += Math.exp(x[row0 + j] - max);
  return { max, logSum: Math.log(sum) };
}

function softmax(x: F, y: F, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * cols;
    const { max, logSum } = rowMaxAndLogSum(x, row0, cols);
    for (let j = 0; j < cols; j++) y[row0 + j] = Math.exp(x[row0 + j] - max - logSum);
  }
}

/** With y = softmax(x): dx_j = y_j (dy_j - sum_i dy_i y_i). */
function softmaxBackward(y: F, dy: F, dx: F, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += dy[row0 + j] * y[row0 + j];
    for (let j = 0; j < cols; j++) dx[row0 + j] = y[row0 + j] * (dy[row0 + j] - dot);
  }
}

function logSoftmax(x: F, y: F, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * cols;
    const { max, logSum } = rowMaxAndLogSum(x, row0, cols);
    for (let j = 0; j < cols; j++) y[row0 + j] = x[row0 + j] - max - logSum;
  }
}

/** With y = log_softmax(x): dx_j = dy_j - exp(y_j) sum_i dy_i. */
function logSoftmaxBackward(y: F, dy: F, dx: F, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * cols;
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += dy[row0 + j];
    for (let j = 0; j < cols; j++) dx[row0 + j] = dy[row0 + j] - Math.exp(y[row0 + j]) * sum;
  }
}

/** loss[r] = logsumexp(logits[r]) - logits[r, target[r]]; ignored rows give 0; lse is written for every row. */
function crossEntropy(logits: F, targets: I, loss: F, lse: F, rows: number, vocab: number,
  ignoreIndex: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * vocab;
    const { max, logSum } = rowMaxAndLogSum(logits, row0, vocab);
    const rowLse = max + logSum;
    lse[r] = rowLse;
    const target = targets[r];
    loss[r] = target === ignoreIndex ? 0 : rowLse - logits[row0 + target];
  }
}

/** dlogits[r] = dloss[r] (softmax(logits[r]) - onehot(target[r])), with softmax = exp(logit - lse). */
function crossEntropyBackward(logits: F, targets: I, lse: F, dloss: F, dlogits: F, rows: number, vocab: number,
  ignoreIndex: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * vocab;
    const target = targets[r];
    if (target === ignoreIndex) {
      dlogits.fill(0, row0, row0 + vocab);
      continue;
    }
    const d = dloss[r], rowLse = lse[r];
    for (let j = 0; j < vocab; j++) {
      const p = Math.exp(logits[row0 + j] - rowLse);
      dlogits[row0 + j] = d * (j === target ? p - 1 : p);
    }
  }
}

// ---- indexing -----------------------------------------------------------------------------------------------

function embedding(table: F, ids: I, out: F, n: number, dim: number): void {
  for (let i = 0; i < n; i++) {
    const from = ids[i] * dim;
    for (let d = 0; d < dim; d++) out[i * dim + d] = table[from + d];
  }
}

/** Accumulates: a token id that appears twice receives both rows of dout. */
function embeddingBackward(ids: I, dout: F, dtable: F, n: number, dim: number): void {
  for (let i = 0; i < n; i++) {
    const to = ids[i] * dim;
    for (let d = 0; d < dim; d++) dtable[to + d] += dout[i * dim + d];
  }
}

/** torch.gather along the middle axis: out[o, j, i] = x[o, idx[o, j, i], i], x [outer, len, inner]. */
function gather(x: F, idx: I, out: F, outer: number, len: number, inner: number, k: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const at = (o * k + j) * inner + i;
        out[at] = x[(o * len + idx[at]) * inner + i];
      }
    }
  }
}

/** The adjoint of gather: dx[o, idx[o, j, i], i] += dout[o, j, i] (accumulates; repeated indices add up). */
function scatterAdd(idx: I, dout: F, dx: F, outer: number, len: number, inner: number, k: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const at = (o * k + j) * inner + i;
        dx[(o * len + idx[at]) * inner + i] += dout[at];
      }
    }
  }
}

// ---- normalisation ------------------------------------------------------------------------------------------

/** RMSNorm (Zhang & Sennrich 2019, eq. 4): y = w * x * rstd with rstd = 1 / sqrt(mean(x^2) + eps), saved. */
function rmsnorm(x: F, w: F, y: F, rstd: F, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const row0 = r * dim;
    let sumSq = 0;
    for (let d = 0; d < dim; d++) sumSq += x[row0 + d] * x[row0 + d];
    const rowRstd = 1 / Math.sqrt(sumSq / dim + eps);
    rstd[r] = rowRstd;
    for (let d = 0; d < dim; d++) y[row0 + d] = w[d] * x[row0 + d] * rowRstd;
  }
}

/**
 * With y_k = w_k x_k s and s = (mean(x^2) + eps)^-1/2, so that ds/dx_k = -s^3 x_k / dim:
 *   dx_k = s (w_k dy_k - x_k s^2 / dim * sum_j w_j dy_j x_j)   (overwritten)
 *   dw_k += sum over rows of dy_k x_k s                         (accumulated)
 * s is read from the saved rstd.
 */
function rmsnormBackward(x: F, w: F, rstd: F, dy: F, dx: F, dw: F, rows: number, dim: number): void {
  const dwSum = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const row0 = r * dim;
    const s = rstd[r];
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += w[d] * dy[row0 + d] * x[row0 + d];
    const coefficient = (s * s * dot) / dim;
    for (let d = 0; d < dim; d++) {
      dx[row0 + d] = s * (w[d] * dy[row0 + d] - x[row0 + d] * coefficient);
      dwSum[d] += dy[row0 + d] * x[row0 + d] * s;
    }
  }
  for (let d = 0; d < dim; d++) dw[d] += dwSum[d];
}

// ---- rotary position embedding ------------------------------------------------------------------------------

/**
 * RoFormer (Su et al. 2021, eq. 34): each pair (x1, x2) of the first rotDim dims of a head is rotated by the
 * angle of its frequency at the token's position,
 *   y1 = x1 cos - x2 sin,   y2 = x2 cos + x1 sin,
 * pairing dims (i, i + rotDim/2) (Hugging Face's rotate_half, Llama/Qwen) or (2i, 2i + 1) when interleaved
 * (DeepSeek-V3's released weights); pair i uses column i of the cos/sin tables. inverse rotates by -angle, which
 * is the backward since a rotation's transpose is its inverse. Dims from rotDim on are copied.
 */
function rope(x: F, y: F, positions: I, cos: F, sin: F, tokens: number, heads: number, headDim: number,
  rotDim: number, interleaved: boolean, inverse: boolean): void {
  const half = rotDim / 2;
  const sign = inverse ? -1 : 1;
  for (let t = 0; t < tokens; t++) {
    const table0 = positions[t] * half;
    for (let h = 0; h < heads; h++) {
      const head0 = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[table0 + i], s = sign * sin[table0 + i];
        const i1 = head0 + (interleaved ? 2 * i : i);
        const i2 = head0 + (interleaved ? 2 * i + 1 : i + half);
        const x1 = x[i1], x2 = x[i2];
        y[i1] = x1 * c - x2 * s;
        y[i2] = x2 * c + x1 * s;
      }
      for (let d = rotDim; d < headDim; d++) y[head0 + d] = x[head0 + d];
    }
  }
}

// ---- attention ----------------------------------------------------------------------------------------------

/**
 * The keys query i of batch row b may see: j in [first, last]. Query i sits at absolute position Tk - Tq + i
 * (the new tokens come after Tk - Tq cached ones); causal attention sees keys up to that position, and keys
 * before kvStart[b] are left padding. An empty range (first > last) means no visible key.
 */
function visibleKeys(b: number, i: number, Tq: number, Tk: number, kvStart: I | null,
  causal: boolean): { first: number; last: number } {
  const first = kvStart ? Math.max(0, kvStart[b]) : 0;
  const last = causal ? Math.min(Tk - 1, Tk - Tq + i) : Tk - 1;
  return { first, last };
}

/**
 * Scaled scores s_j = scale * q . k_j of one query row against its visible keys j = first..last, and their
 * log-sum-exp. q at q[q0 ..], key j of kv head hk at k[k0 + (j * Hkv + hk) * D ..].
 */
function queryScores(q: F, q0: number, k: F, k0: number, hk: number, Hkv: number, D: number, scale: number,
  first: number, last: number): { scores: Float64Array; lse: number } {
  const scores = new Float64Array(Math.max(0, last - first + 1));
  let max = -Infinity;
  for (let j = first; j <= last; j++) {
    const key0 = k0 + (j * Hkv + hk) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[q0 + d] * k[key0 + d];
    scores[j - first] = scale * dot;
    max = Math.max(max, scale * dot);
  }
  if (scores.length === 0) return { scores, lse: -Infinity };
  let sum = 0;
  for (const s of scores) sum += Math.exp(s - max);
  return { scores, lse: max + Math.log(sum) };
}

/**
 * Scaled dot-product attention (Vaswani et al. 2017, eq. 1) with grouped-query heads (Ainslie et al. 2023):
 * query head h reads kv head floor(h / (Hq / Hkv)). For each (b, h, i): p_j = exp(s_j - lse) over the visible
 * keys, out = sum_j p_j v_j. Layouts: q [B, Tq, Hq, D], k row b at k[b * kvBatchStride] as [Tk, Hkv, D], v row
 * b at v[b * vBatchStride] as [Tk, Hkv, Dv], out [B, Tq, Hq, Dv], lse [B, Hq, Tq]. A query with no visible key
 * gets out = 0 and lse = -Infinity. This reference materialises one query row's scores at a time; the fused
 * kernels compute the same numbers with an online softmax.
 */
function attention(q: F, k: F, v: F, out: F, lse: F | null, kvStart: I | null, B: number, Tq: number,
  Tk: number, Hq: number, Hkv: number, D: number, Dv: number, kvBatchStride: number, vBatchStride: number,
  scale: number, causal: boolean): void {
  const group = Hq / Hkv;
  const weighted = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    const k0 = b * kvBatchStride, v0 = b * vBatchStride;
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const q0 = ((b * Tq + i) * Hq + h) * D;
        const { first, last } = visibleKeys(b, i, Tq, Tk, kvStart, causal);
        const { scores, lse: rowLse } = queryScores(q, q0, k, k0, hk, Hkv, D, scale, first, last);
        weighted.fill(0);
        for (let j = first; j <= last; j++) {
          const p = Math.exp(scores[j - first] - rowLse);
          const value0 = v0 + (j * Hkv + hk) * Dv;
          for (let e = 0; e < Dv; e++) weighted[e] += p * v[value0 + e];
        }
        const out0 = ((b * Tq + i) * Hq + h) * Dv;
        for (let e = 0; e < Dv; e++) out[out0 + e] = weighted[e];
        if (lse) lse[(b * Hq + h) * Tq + i] = rowLse;
      }
    }
  }
}

/**
 * Gradients of attention, derived from its definition for one query row (p_j = softmax_j(s), s_j = scale q.k_j,
 * o = sum_j p_j v_j, do the incoming gradient):
 *   dv_j += p_j do
 *   dp_j  = do . v_j
 *   ds_j  = p_j (dp_j - sum_l p_l dp_l)        (the softmax backward)
 *   dq   += scale sum_j ds_j k_j
 *   dk_j += scale ds_j q
 * k and v are contiguous ([B, Tk, Hkv, D] and [B, Tk, Hkv, Dv]); dk and dv sum over the query heads that share a
 * kv head. dq, dk, dv are overwritten. The reference recomputes p from q and k in doubles rather than trusting
 * the saved out and lse (which the fused kernels use), so that it is the exact gradient of `attention` in float64;
 * rows without a visible key contribute nothing.
 */
function attentionBackward(q: F, k: F, v: F, _out: F, _lse: F, dout: F, dq: F, dk: F, dv: F, kvStart: I | null,
  B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number, scale: number,
  causal: boolean): void {
  // Sums over keys, query rows and heads are kept in doubles and stored at the end.
  const dqSum = new Float64Array(B * Tq * Hq * D);
  const dkSum = new Float64Array(B * Tk * Hkv * D);
  const dvSum = new Float64Array(B * Tk * Hkv * Dv);
  const group = Hq / Hkv;
  for (let b = 0; b < B; b++) {
    const k0 = b * Tk * Hkv * D, v0 = b * Tk * Hkv * Dv;
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const q0 = ((b * Tq + i) * Hq + h) * D;
        const do0 = ((b * Tq + i) * Hq + h) * Dv;
        const { first, last } = visibleKeys(b, i, Tq, Tk, kvStart, causal);
        if (first > last) continue;
        const { scores, lse: rowLse } = queryScores(q, q0, k, k0, hk, Hkv, D, scale, first, last);
        const p = scores.map((s) => Math.exp(s - rowLse));
        const dp = new Float64Array(p.length);
        let pDotDp = 0;
        for (let j = first; j <= last; j++) {
          const value0 = v0 + (j * Hkv + hk) * Dv;
          let dot = 0;
          for (let e = 0; e < Dv; e++) dot += dout[do0 + e] * v[value0 + e];
          dp[j - first] = dot;
          pDotDp += p[j - first] * dot;
        }
        for (let j = first; j <= last; j++) {
          const pj = p[j - first];
          const ds = pj * (dp[j - first] - pDotDp);
          const key0 = k0 + (j * Hkv + hk) * D, value0 = v0 + (j * Hkv + hk) * Dv;
          for (let e = 0; e < Dv; e++) dvSum[value0 + e] += pj * dout[do0 + e];
          for (let d = 0; d < D; d++) {
            dqSum[q0 + d] += scale * ds * k[key0 + d];
            dkSum[key0 + d] += scale * ds * q[q0 + d];
          }
        }
      }
    }
  }
  dq.set(dqSum);
  dk.set(dkSum);
  dv.set(dvSum);
}

// ---- optimizer ----------------------------------------------------------------------------------------------

/**
 * One AdamW step (Loshchilov & Hutter 2019, Algorithm 2), decoupled weight decay, in place:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr (m / bias1 / (sqrt(v / bias2) + eps) + wd p)
 * with bias1 = 1 - b1^t and bias2 = 1 - b2^t from the caller. The decay reads p before this step's update.
 */
function adamw(p: F, g: F, m: F, v: F, n: number, lr: number, beta1: number, beta2: number, eps: number,
  weightDecay: number, bias1: number, bias2: number): void {
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = beta1 * m[i] + (1 - beta1) * gi;
    const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi / bias1 / (Math.sqrt(vi / bias2) + eps) + weightDecay * p[i]);
  }
}

// ---- the table ----------------------------------------------------------------------------------------------

const kernels = {
  matmul,
  unary, unaryBackward, binary, where, copy, swiglu, swigluBackward,
  reduce, sumSquares,
  softmax, softmaxBackward, logSoftmax, logSoftmaxBackward, crossEntropy, crossEntropyBackward,
  embedding, embeddingBackward, gather, scatterAdd,
  rmsnorm, rmsnormBackward,
  rope,
  attention, attentionBackward,
  adamw,
  randomNormal: fillNormal,
} satisfies Kernels<FloatArray, Int32Array>;

export const referenceBackend: Backend = { name: 'reference', device: 'cpu', kernels };

registerBackend('reference', () => referenceBackend);
