// The kernel table: what a backend must supply, one entry per kernel of native/r1.h (same names in camelCase,
// same argument order, same semantics; read r1.h for the contract of each). Ops (src/tensor/ops.ts) are written
// once against this table; a backend never sees an op, a model never sees a kernel.
//
// `F` is the backend's float buffer: a Float32Array or Float64Array for CPU backends (already positioned at the
// tensor's offset), a device pointer for CUDA. `I` is its int32 index buffer. Sizes are element counts.

export const UnaryOp = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, tanh: 5, sigmoid: 6, silu: 7, geluTanh: 8, relu: 9, abs: 10,
  recip: 11, square: 12, sin: 13, cos: 14,
} as const;
export type UnaryOpName = keyof typeof UnaryOp;

export const BinaryOp = {
  add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5, pow: 6, eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12,
} as const;
export type BinaryOpName = keyof typeof BinaryOp;

export const ReduceOp = { sum: 0, max: 1, min: 2 } as const;
export type ReduceOpName = keyof typeof ReduceOp;

/** Strides and shapes for the strided kernels (binary, where, copy): at most MAX_DIMS dimensions. */
export type Dims = readonly number[];

/** The most dimensions a strided kernel takes (r1.h fixes it for the C kernels; every backend holds to it). */
export const MAX_DIMS = 8;

/** What every backend checks before a strided kernel: the rank limit, and one stride per dimension. */
export function checkDims(kernel: string, shape: Dims, ...strides: Dims[]): void {
  if (shape.length > MAX_DIMS) throw new Error(`${kernel}: ${shape.length} dimensions, at most ${MAX_DIMS}`);
  for (const s of strides) {
    if (s.length !== shape.length) throw new Error(`${kernel}: ${s.length} strides for a ${shape.length}-dimensional shape`);
  }
}

export interface Kernels<F, I> {
  matmul(a: F, b: F, c: F, batch: number, m: number, n: number, k: number, transA: boolean, transB: boolean,
    strideA: number, strideB: number, strideC: number, beta: 0 | 1): void;

  unary(op: UnaryOpName, x: F, y: F, n: number): void;
  unaryBackward(op: UnaryOpName, x: F, y: F, dy: F, dx: F, n: number): void;
  binary(op: BinaryOpName, a: F, aStrides: Dims, b: F, bStrides: Dims, out: F, shape: Dims): void;
  where(cond: F, condStrides: Dims, a: F, aStrides: Dims, b: F, bStrides: Dims, out: F, shape: Dims): void;
  copy(src: F, srcStrides: Dims, dst: F, dstStrides: Dims, shape: Dims): void;
  swiglu(gate: F, up: F, y: F, n: number): void;
  swigluBackward(gate: F, up: F, dy: F, dgate: F, dup: F, n: number): void;

  reduce(op: ReduceOpName, x: F, out: F, outer: number, len: number, inner: number): void;
  sumSquares(x: F, n: number): number;

  softmax(x: F, y: F, rows: number, cols: number): void;
  softmaxBackward(y: F, dy: F, dx: F, rows: number, cols: number): void;
  logSoftmax(x: F, y: F, rows: number, cols: number): void;
  logSoftmaxBackward(y: F, dy: F, dx: F, rows: number, cols: number): void;
  crossEntropy(logits: F, targets: I, loss: F, lse: F, rows: number, vocab: number, ignoreIndex: number): void;
  crossEntropyBackward(logits: F, targets: I, lse: F, dloss: F, dlogits: F, rows: number, vocab: number,
    ignoreIndex: number): void;

  embedding(table: F, ids: I, out: F, n: number, dim: number): void;
  embeddingBackward(ids: I, dout: F, dtable: F, n: number, dim: number): void;
  gather(x: F, idx: I, out: F, outer: number, len: number, inner: number, k: number): void;
  scatterAdd(idx: I, dout: F, dx: F, outer: number, len: number, inner: number, k: number): void;

  rmsnorm(x: F, w: F, y: F, rstd: F, rows: number, dim: number, eps: number): void;
  rmsnormBackward(x: F, w: F, rstd: F, dy: F, dx: F, dw: F, rows: number, dim: number): void;

  rope(x: F, y: F, positions: I, cos: F, sin: F, tokens: number, heads: number, headDim: number, rotDim: number,
    interleaved: boolean, inverse: boolean): void;

  attention(q: F, k: F, v: F, out: F, lse: F | null, kvStart: I | null, B: number, Tq: number, Tk: number,
    Hq: number, Hkv: number, D: number, Dv: number, kvBatchStride: number, vBatchStride: number, scale: number,
    causal: boolean): void;
  attentionBackward(q: F, k: F, v: F, out: F, lse: F, dout: F, dq: F, dk: F, dv: F, kvStart: I | null, B: number,
    Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number, scale: number, causal: boolean): void;

  adamw(p: F, g: F, m: F, v: F, n: number, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, bias1: number, bias2: number): void;

  /** x[0, n) = normal draws times std from Philox under key (key0, key1): src/tensor/philox.ts fillNormal. */
  randomNormal(x: F, n: number, key0: number, key1: number, std: number): void;
}

/** Every kernel name, for tests that run each kernel on every backend and for exhaustiveness checks. */
export type KernelName = keyof Kernels<unknown, unknown>;
