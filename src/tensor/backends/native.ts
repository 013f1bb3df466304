// The native backend: the C++ core (native/cpu, one C function per kernel of native/r1.h) loaded with koffi.
// A Float32Array (or a subarray of one) passed to a `float *` parameter goes by pointer, without a copy; a call
// costs about 150 ns. The core is float32 only: a kernel called with Float64Array data (the float64 gradient
// checks) runs on the reference backend instead, so every op works in both precisions on this backend.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { registerBackend, type Backend, type FloatArray } from '../backend.ts';
import { BinaryOp, checkDims, ReduceOp, UnaryOp, type Kernels } from '../kernels.ts';
import { bindFunctions, DimsBuffer } from './ffi.ts';
import { referenceBackend } from './reference.ts';

type F = FloatArray;
type I = Int32Array;

/** build/libr1cpu.so (or .dylib, .dll) at the package root, from src/tensor/backends or dist/tensor/backends. */
export function nativeLibraryPath(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const file = process.platform === 'darwin' ? 'libr1cpu.dylib' : process.platform === 'win32' ? 'r1cpu.dll' : 'libr1cpu.so';
  return join(root, 'build', file);
}

// The C declarations, copied from native/r1.h (enums as int, the GEMM's beta as float).
const declarations = {
  r1_num_threads: 'int r1_num_threads()',
  r1_set_num_threads: 'void r1_set_num_threads(int n)',
  r1_matmul: 'void r1_matmul(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n, int64_t k, int trans_a, int trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float beta)',
  r1_unary: 'void r1_unary(int op, const float *x, float *y, int64_t n)',
  r1_unary_backward: 'void r1_unary_backward(int op, const float *x, const float *y, const float *dy, float *dx, int64_t n)',
  r1_binary: 'void r1_binary(int op, const float *a, const int64_t *a_strides, const float *b, const int64_t *b_strides, float *out, const int64_t *shape, int ndim)',
  r1_where: 'void r1_where(const float *cond, const int64_t *cond_strides, const float *a, const int64_t *a_strides, const float *b, const int64_t *b_strides, float *out, const int64_t *shape, int ndim)',
  r1_copy: 'void r1_copy(const float *src, const int64_t *src_strides, float *dst, const int64_t *dst_strides, const int64_t *shape, int ndim)',
  r1_swiglu: 'void r1_swiglu(const float *gate, const float *up, float *y, int64_t n)',
  r1_swiglu_backward: 'void r1_swiglu_backward(const float *gate, const float *up, const float *dy, float *dgate, float *dup, int64_t n)',
  r1_reduce: 'void r1_reduce(int op, const float *x, float *out, int64_t outer, int64_t len, int64_t inner)',
  r1_sum_squares: 'double r1_sum_squares(const float *x, int64_t n)',
  r1_softmax: 'void r1_softmax(const float *x, float *y, int64_t rows, int64_t cols)',
  r1_softmax_backward: 'void r1_softmax_backward(const float *y, const float *dy, float *dx, int64_t rows, int64_t cols)',
  r1_log_softmax: 'void r1_log_softmax(const float *x, float *y, int64_t rows, int64_t cols)',
  r1_log_softmax_backward: 'void r1_log_softmax_backward(const float *y, const float *dy, float *dx, int64_t rows, int64_t cols)',
  r1_cross_entropy: 'void r1_cross_entropy(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t rows, int64_t vocab, int32_t ignore_index)',
  r1_cross_entropy_backward: 'void r1_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, const float *dloss, float *dlogits, int64_t rows, int64_t vocab, int32_t ignore_index)',
  r1_embedding: 'void r1_embedding(const float *table, const int32_t *ids, float *out, int64_t n, int64_t dim)',
  r1_embedding_backward: 'void r1_embedding_backward(const int32_t *ids, const float *dout, float *dtable, int64_t n, int64_t dim)',
  r1_gather: 'void r1_gather(const float *x, const int32_t *idx, float *out, int64_t outer, int64_t len, int64_t inner, int64_t k)',
  r1_scatter_add: 'void r1_scatter_add(const int32_t *idx, const float *dout, float *dx, int64_t outer, int64_t len, int64_t inner, int64_t k)',
  r1_rmsnorm: 'void r1_rmsnorm(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t dim, float eps)',
  r1_rmsnorm_backward: 'void r1_rmsnorm_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx, float *dw, int64_t rows, int64_t dim)',
  r1_rope: 'void r1_rope(const float *x, float *y, const int32_t *positions, const float *cos, const float *sin, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse)',
  r1_attention: 'void r1_attention(const float *q, const float *k, const float *v, float *out, float *lse, const int32_t *kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale, int causal)',
  r1_attention_backward: 'void r1_attention_backward(const float *q, const float *k, const float *v, const float *out, const float *lse, const float *dout, float *dq, float *dk, float *dv, const int32_t *kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, float scale, int causal)',
  r1_adamw: 'void r1_adamw(float *p, const float *g, float *m, float *v, int64_t n, double lr, double beta1, double beta2, double eps, double weight_decay, double bias1, double bias2)',
  r1_random_normal: 'void r1_random_normal(float *x, int64_t n, uint32_t key0, uint32_t key1, double std_dev)',
  r1_sample: 'void r1_sample(const float *logits, int64_t rows, int64_t vocab, int64_t sample_vocab, const double *params, int32_t *ids, float *logprobs)',
} as const;

type NativeFunctions = ReturnType<typeof bindFunctions<typeof declarations>>;

function loadLibrary(): NativeFunctions {
  const path = nativeLibraryPath();
  if (!existsSync(path)) {
    throw new Error(`the native CPU core is not built (${path} is missing): run \`npm install\` or \`node scripts/build-native.mjs\``);
  }
  return bindFunctions(koffi.load(path), path, declarations, 'node scripts/build-native.mjs');
}

const dimsBuffers = [new DimsBuffer(), new DimsBuffer(), new DimsBuffer(), new DimsBuffer()];

const isF64 = (x: F | null): boolean => x instanceof Float64Array;

function makeKernels(c: NativeFunctions): Kernels<F, I> {
  const ref = referenceBackend.kernels;
  const [dims0, dims1, dims2, dims3] = dimsBuffers;
  return {
    matmul(a, b, out, batch, m, n, k, transA, transB, strideA, strideB, strideC, beta) {
      if (isF64(a) || isF64(b) || isF64(out)) return ref.matmul(a, b, out, batch, m, n, k, transA, transB, strideA, strideB, strideC, beta);
      c.r1_matmul(a, b, out, batch, m, n, k, transA ? 1 : 0, transB ? 1 : 0, strideA, strideB, strideC, beta);
    },

    unary(op, x, y, n) {
      if (isF64(x) || isF64(y)) return ref.unary(op, x, y, n);
      c.r1_unary(UnaryOp[op], x, y, n);
    },
    unaryBackward(op, x, y, dy, dx, n) {
      if (isF64(x) || isF64(dx)) return ref.unaryBackward(op, x, y, dy, dx, n);
      c.r1_unary_backward(UnaryOp[op], x, y, dy, dx, n);
    },
    binary(op, a, aStrides, b, bStrides, out, shape) {
      if (isF64(a) || isF64(b) || isF64(out)) return ref.binary(op, a, aStrides, b, bStrides, out, shape);
      checkDims('binary', shape, aStrides, bStrides);
      c.r1_binary(BinaryOp[op], a, dims0.fill(aStrides), b, dims1.fill(bStrides), out, dims2.fill(shape), shape.length);
    },
    where(cond, condStrides, a, aStrides, b, bStrides, out, shape) {
      if (isF64(cond) || isF64(a) || isF64(b) || isF64(out)) return ref.where(cond, condStrides, a, aStrides, b, bStrides, out, shape);
      checkDims('where', shape, condStrides, aStrides, bStrides);
      c.r1_where(cond, dims0.fill(condStrides), a, dims1.fill(aStrides), b, dims2.fill(bStrides), out, dims3.fill(shape), shape.length);
    },
    copy(src, srcStrides, dst, dstStrides, shape) {
      if (isF64(src) || isF64(dst)) return ref.copy(src, srcStrides, dst, dstStrides, shape);
      checkDims('copy', shape, srcStrides, dstStrides);
      c.r1_copy(src, dims0.fill(srcStrides), dst, dims1.fill(dstStrides), dims2.fill(shape), shape.length);
    },
    swiglu(gate, up, y, n) {
      if (isF64(gate) || isF64(y)) return ref.swiglu(gate, up, y, n);
      c.r1_swiglu(gate, up, y, n);
    },
    swigluBackward(gate, up, dy, dgate, dup, n) {
      if (isF64(gate) || isF64(dgate)) return ref.swigluBackward(gate, up, dy, dgate, dup, n);
      c.r1_swiglu_backward(gate, up, dy, dgate, dup, n);
    },

    reduce(op, x, out, outer, len, inner) {
      if (isF64(x) || isF64(out)) return ref.reduce(op, x, out, outer, len, inner);
      c.r1_reduce(ReduceOp[op], x, out, outer, len, inner);
    },
    sumSquares(x, n) {
      if (isF64(x)) return ref.sumSquares(x, n);
      return c.r1_sum_squares(x, n) as number;
    },

    softmax(x, y, rows, cols) {
      if (isF64(x) || isF64(y)) return ref.softmax(x, y, rows, cols);
      c.r1_softmax(x, y, rows, cols);
    },
    softmaxBackward(y, dy, dx, rows, cols) {
      if (isF64(y) || isF64(dx)) return ref.softmaxBackward(y, dy, dx, rows, cols);
      c.r1_softmax_backward(y, dy, dx, rows, cols);
    },
    logSoftmax(x, y, rows, cols) {
      if (isF64(x) || isF64(y)) return ref.logSoftmax(x, y, rows, cols);
      c.r1_log_softmax(x, y, rows, cols);
    },
    logSoftmaxBackward(y, dy, dx, rows, cols) {
      if (isF64(y) || isF64(dx)) return ref.logSoftmaxBackward(y, dy, dx, rows, cols);
      c.r1_log_softmax_backward(y, dy, dx, rows, cols);
    },
    crossEntropy(logits, targets, loss, lse, rows, vocab, ignoreIndex) {
      if (isF64(logits) || isF64(loss)) return ref.crossEntropy(logits, targets, loss, lse, rows, vocab, ignoreIndex);
      c.r1_cross_entropy(logits, targets, loss, lse, rows, vocab, ignoreIndex);
    },
    crossEntropyBackward(logits, targets, lse, dloss, dlogits, rows, vocab, ignoreIndex) {
      if (isF64(logits) || isF64(dlogits)) return ref.crossEntropyBackward(logits, targets, lse, dloss, dlogits, rows, vocab, ignoreIndex);
      c.r1_cross_entropy_backward(logits, targets, lse, dloss, dlogits, rows, vocab, ignoreIndex);
    },

    embedding(table, ids, out, n, dim) {
      if (isF64(table) || isF64(out)) return ref.embedding(table, ids, out, n, dim);
      c.r1_embedding(table, ids, out, n, dim);
    },
    embeddingBackward(ids, dout, dtable, n, dim) {
      if (isF64(dout) || isF64(dtable)) return ref.embeddingBackward(ids, dout, dtable, n, dim);
      c.r1_embedding_backward(ids, dout, dtable, n, dim);
    },
    gather(x, idx, out, outer, len, inner, k) {
      if (isF64(x) || isF64(out)) return ref.gather(x, idx, out, outer, len, inner, k);
      c.r1_gather(x, idx, out, outer, len, inner, k);
    },
    scatterAdd(idx, dout, dx, outer, len, inner, k) {
      if (isF64(dout) || isF64(dx)) return ref.scatterAdd(idx, dout, dx, outer, len, inner, k);
      c.r1_scatter_add(idx, dout, dx, outer, len, inner, k);
    },

    rmsnorm(x, w, y, rstd, rows, dim, eps) {
      if (isF64(x) || isF64(y)) return ref.rmsnorm(x, w, y, rstd, rows, dim, eps);
      c.r1_rmsnorm(x, w, y, rstd, rows, dim, eps);
    },
    rmsnormBackward(x, w, rstd, dy, dx, dw, rows, dim) {
      if (isF64(x) || isF64(dx)) return ref.rmsnormBackward(x, w, rstd, dy, dx, dw, rows, dim);
      c.r1_rmsnorm_backward(x, w, rstd, dy, dx, dw, rows, dim);
    },

    rope(x, y, positions, cos, sin, tokens, heads, headDim, rotDim, interleaved, inverse) {
      if (isF64(x) || isF64(y) || isF64(cos)) return ref.rope(x, y, positions, cos, sin, tokens, heads, headDim, rotDim, interleaved, inverse);
      c.r1_rope(x, y, positions, cos, sin, tokens, heads, headDim, rotDim, interleaved ? 1 : 0, inverse ? 1 : 0);
    },

    attention(q, k, v, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, kvBatchStride, vBatchStride, scale, causal) {
      if (isF64(q) || isF64(k) || isF64(out)) {
        return ref.attention(q, k, v, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, kvBatchStride, vBatchStride, scale, causal);
      }
      if (Hkv <= 0 || Hq % Hkv !== 0) throw new Error(`attention: ${Hq} query heads is not a multiple of ${Hkv} kv heads`);
      c.r1_attention(q, k, v, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, kvBatchStride, vBatchStride, scale, causal ? 1 : 0);
    },
    attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal) {
      if (isF64(q) || isF64(k) || isF64(dq)) {
        return ref.attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal);
      }
      if (Hkv <= 0 || Hq % Hkv !== 0) throw new Error(`attentionBackward: ${Hq} query heads is not a multiple of ${Hkv} kv heads`);
      c.r1_attention_backward(q, k, v, out, lse, dout, dq, dk, dv, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal ? 1 : 0);
    },

    adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bias1, bias2) {
      if (isF64(p) || isF64(g)) return ref.adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bias1, bias2);
      c.r1_adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bias1, bias2);
    },

    randomNormal(x, n, key0, key1, std) {
      if (isF64(x)) return ref.randomNormal(x, n, key0, key1, std);
      c.r1_random_normal(x, n, key0, key1, std);
    },
  };
}

let native: { backend: Backend; fns: NativeFunctions } | undefined;

function load(): { backend: Backend; fns: NativeFunctions } {
  if (!native) {
    const fns = loadLibrary();
    native = {
      fns,
      backend: {
        name: 'native', device: 'cpu', kernels: makeKernels(fns),
        sample(logits, rows, vocab, sampleVocab, params, ids, logprobs) {
          if (params.length !== 5 * rows || ids.length < rows || logprobs.length < rows || logits.length < rows * vocab) throw new Error(`sample: arrays do not fit ${rows} rows of ${vocab} logits`);
          if (!(sampleVocab >= 1 && sampleVocab <= vocab)) throw new Error(`sample: sampleVocab ${sampleVocab} is not in [1, ${vocab}]`);
          fns.r1_sample(logits, rows, vocab, sampleVocab, params, ids, logprobs);
        },
      },
    };
  }
  return native;
}

/** The native backend; throws (saying how to build the core) when build/libr1cpu.so is missing. */
export function nativeBackend(): Backend {
  return load().backend;
}

/** Threads the native core runs kernels on (one per CPU of the affinity mask unless set). */
export function nativeThreads(): number {
  return load().fns.r1_num_threads() as number;
}

/** Sets the native core's thread count; n <= 0 means one per CPU this process may run on (its affinity mask). */
export function setNativeThreads(n: number): void {
  load().fns.r1_set_num_threads(n);
}

registerBackend('native', nativeBackend);
