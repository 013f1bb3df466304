// The r1ts kernel ABI: one C function per kernel, the same names and shapes in native/cpu and native/cuda.
// The TypeScript op layer (src/tensor) calls these through a backend table (src/tensor/kernels.ts mirrors
// this file); the slow, obviously correct definition of every kernel is src/tensor/backends/reference.ts.
//
// Conventions
// - Float tensors are float32; sizes and strides are int64 counts of elements (not bytes).
// - Unless a stride argument says otherwise, arrays are contiguous and row-major.
// - Outputs never alias inputs, except `out` of r1_unary and r1_binary, which may alias a contiguous input of
//   the same shape (used for in-place accumulation).
// - Kernels whose name ends in _backward and take a gradient output named d<w> for a parameter w ACCUMULATE
//   into it (dw += ...); every other output is overwritten.
// - Index arrays (token ids, targets, positions) are int32.
#ifndef R1_H
#define R1_H
#include <stdint.h>

#ifdef _WIN32
#define R1_API __declspec(dllexport)
#else
#define R1_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

// ---- runtime ----
R1_API int r1_num_threads(void);
R1_API void r1_set_num_threads(int n);  // n <= 0: one per CPU of the affinity mask (what taskset allows)

// ---- GEMM ----
// For each b < batch: C_b = op(A_b) @ op(B_b) + beta * C_b, with op(A_b) m x k and op(B_b) k x n.
// A_b starts at a + b * stride_a; it is stored m x k row-major, or k x m row-major when trans_a != 0.
// B_b starts at b + b * stride_b; it is stored k x n row-major, or n x k row-major when trans_b != 0.
// C_b starts at c + b * stride_c and is m x n row-major. A stride of 0 broadcasts that operand over the batch.
// beta is 0 (overwrite; C may hold garbage, even NaN) or 1 (accumulate).
R1_API void r1_matmul(const float* a, const float* b, float* c, int64_t batch, int64_t m, int64_t n, int64_t k,
                      int trans_a, int trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float beta);

// ---- elementwise ----
enum r1_unary_op {
  R1_NEG = 0, R1_EXP = 1, R1_LOG = 2, R1_SQRT = 3, R1_RSQRT = 4, R1_TANH = 5, R1_SIGMOID = 6, R1_SILU = 7,
  R1_GELU_TANH = 8,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  R1_RELU = 9, R1_ABS = 10, R1_RECIP = 11, R1_SQUARE = 12, R1_SIN = 13, R1_COS = 14
};
// y = f(x), n elements.
R1_API void r1_unary(int op, const float* x, float* y, int64_t n);
// dx = dy * f'(x); y = f(x) is given too, since some derivatives are cheapest from it (exp, tanh, sigmoid).
R1_API void r1_unary_backward(int op, const float* x, const float* y, const float* dy, float* dx, int64_t n);

enum r1_binary_op {
  R1_ADD = 0, R1_SUB = 1, R1_MUL = 2, R1_DIV = 3, R1_MAX = 4, R1_MIN = 5, R1_POW = 6,
  R1_EQ = 7, R1_NE = 8, R1_LT = 9, R1_LE = 10, R1_GT = 11, R1_GE = 12  // comparisons give 1.0 or 0.0
};
// out[i] = f(a[i], b[i]) over an ndim-dimensional shape; a and b are read through their own strides
// (a stride of 0 broadcasts), out is contiguous. ndim <= 8.
R1_API void r1_binary(int op, const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides,
                      float* out, const int64_t* shape, int ndim);
// out[i] = cond[i] != 0 ? a[i] : b[i], each input read through its own strides, out contiguous. ndim <= 8.
R1_API void r1_where(const float* cond, const int64_t* cond_strides, const float* a, const int64_t* a_strides,
                     const float* b, const int64_t* b_strides, float* out, const int64_t* shape, int ndim);
// dst[i] = src[i], both read/written through their own strides (for contiguous copies, concat, slicing). ndim <= 8.
R1_API void r1_copy(const float* src, const int64_t* src_strides, float* dst, const int64_t* dst_strides,
                    const int64_t* shape, int ndim);
// y = silu(gate) * up, n elements (the SwiGLU MLP's activation); backward gives dgate and dup (overwritten).
R1_API void r1_swiglu(const float* gate, const float* up, float* y, int64_t n);
R1_API void r1_swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n);

// ---- reductions over one axis: x is viewed as [outer, len, inner], out as [outer, inner] ----
enum r1_reduce_op { R1_SUM = 0, R1_MAX_REDUCE = 1, R1_MIN_REDUCE = 2 };
R1_API void r1_reduce(int op, const float* x, float* out, int64_t outer, int64_t len, int64_t inner);
// Sum of squares of n elements, accumulated in double (gradient-norm clipping).
R1_API double r1_sum_squares(const float* x, int64_t n);

// ---- softmax family over the last axis of [rows, cols] ----
R1_API void r1_softmax(const float* x, float* y, int64_t rows, int64_t cols);
R1_API void r1_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);
R1_API void r1_log_softmax(const float* x, float* y, int64_t rows, int64_t cols);
R1_API void r1_log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);
// loss[r] = logsumexp(logits[r]) - logits[r, targets[r]], and lse[r] = logsumexp(logits[r]);
// rows whose target equals ignore_index get loss 0 (lse is still written). Targets outside [0, vocab) other than
// ignore_index are the caller's error (checked in TypeScript).
R1_API void r1_cross_entropy(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows,
                             int64_t vocab, int32_t ignore_index);
// dlogits[r] = dloss[r] * (softmax(logits[r]) - onehot(targets[r])), 0 for ignored rows (overwritten).
R1_API void r1_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                                      const float* dloss, float* dlogits, int64_t rows, int64_t vocab,
                                      int32_t ignore_index);

// ---- indexing ----
// out[i, :] = table[ids[i], :], n ids, rows of dim.
R1_API void r1_embedding(const float* table, const int32_t* ids, float* out, int64_t n, int64_t dim);
// dtable[ids[i], :] += dout[i, :] (accumulates; repeated ids add up).
R1_API void r1_embedding_backward(const int32_t* ids, const float* dout, float* dtable, int64_t n, int64_t dim);
// torch.gather along the middle axis: x is [outer, len, inner], idx and out are [outer, k, inner],
// out[o, j, i] = x[o, idx[o, j, i], i].
R1_API void r1_gather(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t len, int64_t inner,
                      int64_t k);
// The adjoint of r1_gather: dx[o, idx[o, j, i], i] += dout[o, j, i] (accumulates).
R1_API void r1_scatter_add(const int32_t* idx, const float* dout, float* dx, int64_t outer, int64_t len,
                           int64_t inner, int64_t k);

// ---- normalisation ----
// y[r] = w * x[r] / sqrt(mean(x[r]^2) + eps); rstd[r] = 1 / sqrt(mean(x[r]^2) + eps) is saved for backward.
R1_API void r1_rmsnorm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t dim, float eps);
// dx is overwritten, dw accumulates.
R1_API void r1_rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                float* dw, int64_t rows, int64_t dim);

// ---- rotary position embedding ----
// x and y are [tokens, heads, head_dim]; token t has position positions[t]; cos and sin are tables
// [max_position, rot_dim / 2] (row p holds cos(p * inv_freq_i)). The first rot_dim dims of each head rotate,
// the rest pass through. Pairs are (i, i + rot_dim/2) (Llama/Qwen "rotate_half") or, when interleaved != 0,
// (2i, 2i + 1) (DeepSeek-V3's released weights). inverse != 0 rotates by -angle (the backward).
R1_API void r1_rope(const float* x, float* y, const int32_t* positions, const float* cos, const float* sin,
                    int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse);

// ---- attention ----
// Fused scaled-dot-product attention with grouped-query heads (Hq a multiple of Hkv; query head h reads kv
// head h / (Hq / Hkv)), numerically stable (online softmax), never materialising [Tq, Tk] for all heads.
// q: [B, Tq, Hq, D]; k: [B, Tk, Hkv, D] and v: [B, Tk, Hkv, Dv], each batch row b starting at
// k + b * kv_batch_stride (v likewise), so a KV cache of capacity C >= Tk is read in place with
// kv_batch_stride = C * Hkv * D (for v: C * Hkv * Dv is passed as v_batch_stride).
// out: [B, Tq, Hq, Dv]; lse: [B, Hq, Tq] (log-sum-exp of the scaled scores, for backward; may be null).
// Query i sits at absolute position Tk - Tq + i. With causal != 0 it sees keys j <= Tk - Tq + i. Keys
// j < kv_start[b] are masked (left padding of batched prompts); kv_start null means 0. A query that sees no key
// gets out = 0 and lse = -inf.
R1_API void r1_attention(const float* q, const float* k, const float* v, float* out, float* lse,
                         const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv,
                         int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                         int causal);
// Gradients of r1_attention for contiguous k, v (kv_batch_stride = Tk * Hkv * D). dq, dk, dv are overwritten.
R1_API void r1_attention_backward(const float* q, const float* k, const float* v, const float* out,
                                  const float* lse, const float* dout, float* dq, float* dk, float* dv,
                                  const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq,
                                  int64_t Hkv, int64_t D, int64_t Dv, float scale, int causal);

// ---- optimizer ----
// One AdamW step (decoupled weight decay, Loshchilov & Hutter) over n parameters, in place:
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / bias1 / (sqrt(v / bias2) + eps) + wd p),
// with bias1 = 1 - b1^t and bias2 = 1 - b2^t given by the caller. Scalars are double so that coefficients such
// as 1 - b2 are formed exactly before rounding to the float32 of the update.
R1_API void r1_adamw(float* p, const float* g, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double bias1, double bias2);

// ---- sampling ----
// One token per row of logits [rows, vocab], drawn among ids < sample_vocab, exactly as src/generate/sampler.ts
// draws it (sample.cpp says how): params holds 5 doubles a row, temperature (0: the argmax, lowest id on ties),
// top_p (1: off), min_p (0: off), top_k (0: off) and the row's uniform in [0, 1). ids[r] gets the token and
// logprobs[r] its log_softmax(logits) entry at temperature 1 over the whole vocabulary.
R1_API void r1_sample(const float* logits, int64_t rows, int64_t vocab, int64_t sample_vocab, const double* params,
                      int32_t* ids, float* logprobs);

// ---- random numbers ----
// x[0, n) = normal draws times std: elements 2p and 2p + 1 are the Box-Muller pair (cos, sin) of the Philox4x32-10
// words at counter (p mod 2^32, p / 2^32, 0, 0) under key (key0, key1) (native/philox.h), computed in double
// and rounded to float once; a value depends on (key, index) only, never on how the work is split.
R1_API void r1_random_normal(float* x, int64_t n, uint32_t key0, uint32_t key1, double std_dev);

#ifdef __cplusplus
}
#endif
#endif
