// The CUDA kernel library (build/libr1cuda.so, from native/cuda by `npm run build:cuda`) loaded with koffi:
// every kernel of native/r1.h on device buffers, plus the runtime of native/r1_cuda.h (device, caching
// allocator, copies, matmul precision, CUDA graphs). Device addresses are plain JS numbers (user-space GPU
// addresses fit in 48 bits, far below 2^53), declared as uint64_t so that koffi passes them as integers;
// 0 is NULL. The small host arrays of r1.h (strides, shapes) stay host pointers (BigInt64Array).
//
// Errors: the library records the first failure of a call (a bad launch, an asynchronous fault found by a
// copy or a synchronize); every call here checks the cheap r1_cuda_error_pending flag after it and throws a JS
// Error naming the call and the CUDA message, so a failed kernel surfaces at once, not at some later call.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { BinaryOp, checkDims, ReduceOp, UnaryOp, type Kernels } from '../kernels.ts';
import { bindFunctions, DimsBuffer } from './ffi.ts';

export type DevicePtr = number; // a device address; 0 means none (NULL)
export interface CudaMemoryStats { inUse: number; reserved: number; peak: number; blocks: number }
export type MatmulPrecision = 'f32' | 'tf32' | 'bf16';
export interface CudaLibrary {
  readonly path: string;                   // the .so that was loaded
  deviceCount(): number;
  init(device: number): void;              // throws with the CUDA message
  deviceName(): string;
  synchronize(): void;                     // throws on an asynchronous fault, naming it
  alloc(bytes: number): DevicePtr;         // throws "CUDA out of memory: asked for N bytes, M in use, R reserved"
  free(ptr: DevicePtr): void;
  emptyCache(): void;
  memoryStats(): CudaMemoryStats;
  upload(dst: DevicePtr, src: ArrayBufferView): void;
  download(dst: ArrayBufferView, src: DevicePtr): void;
  copy(dst: DevicePtr, src: DevicePtr, bytes: number): void;
  /** r1_cuda_download_begin/_end: a download that waits for the work queued before it only (two at a time); begin returns its slot. */
  downloadBegin(src: DevicePtr, bytes: number): number;
  downloadEnd(slot: number, dst: ArrayBufferView): void;
  fill(x: DevicePtr, value: number, n: number): void;
  fillI32(x: DevicePtr, value: number, n: number): void;
  f32ToI32(x: DevicePtr, y: DevicePtr, n: number): void;
  i32ToF32(x: DevicePtr, y: DevicePtr, n: number): void;
  setMatmulPrecision(precision: MatmulPrecision): void;
  /** r1_cuda_set_skinny_gemm_rows: the most rows a bf16 linear runs on the skinny GEMM (0: cuBLASLt always); the previous setting. */
  setSkinnyGemmRows(rows: number): number;
  graphBegin(): void;
  graphEnd(): DevicePtr;                   // the graph handle
  graphLaunch(graph: DevicePtr): void;
  graphDestroy(graph: DevicePtr): void;
  /** Every kernel of native/r1.h on device buffers (F and I are device addresses positioned at the data). */
  readonly kernels: Kernels<DevicePtr, DevicePtr>;
  /**
   * Gives the float32 weight [ptr, ptr + 4n) a bf16 copy that bf16 GEMMs read instead of rounding it per call,
   * kept current by adamw and marked stale by upload, copy and fill into it (r1_cuda.h states the rules). After
   * writing the weight with any other kernel, call it again with the same ptr and n. Freed with its block.
   */
  registerWeight(ptr: DevicePtr, n: number): void;
  /**
   * Gives the float32 activation [ptr, ptr + 4n) that several bf16 GEMMs read a bf16 copy, rounded once for all
   * of them; a copy already registered for the range (one its producer kernel wrote) is kept as it is.
   */
  shareBf16Operand(ptr: DevicePtr, n: number): void;
  /** r1_cuda_bf16_only_output: whether [ptr, ptr + 4n)'s next producer writes only its bf16 copy. */
  bf16OnlyOutput(ptr: DevicePtr, n: number): boolean;
  /** r1_cuda_widen_bf16_only: writes a bf16-only output's floats from its copy. */
  widenBf16Only(ptr: DevicePtr, n: number): void;
  /** r1_cuda_sum_squares_add: acc[0] += sum of x[i]^2 over i < n, queued (no wait for the stream). */
  sumSquaresAdd(x: DevicePtr, n: number, acc: DevicePtr): void;
  /**
   * Starts a profile timeline (r1_cuda_profile_* in native/r1_cuda.h): from now on every kernel of `kernels`,
   * fill and copy is bracketed by CUDA events, at most `capacity` of them. Not while recording a graph.
   */
  profileStart(capacity: number): void;
  /** Waits for the stream and ends the timeline: each stretch of device time between two marks and what it was spent in. */
  profileStop(): ProfileSpan[];
  /** NCCL (loaded on first use; r1_cuda.h): a new unique id of NCCL_UNIQUE_ID_BYTES bytes, for rank 0 to hand out. */
  ncclUniqueId(): Uint8Array;
  /** Joins the communicator of `worldSize` processes sharing `id`; blocks until every rank has joined. */
  ncclCommInit(id: Uint8Array, worldSize: number, rank: number): DevicePtr;
  /** recv = sum (or mean) over ranks of send, n float32 values; send === recv reduces in place. Queued on the stream. */
  ncclAllReduce(comm: DevicePtr, send: DevicePtr, recv: DevicePtr, n: number, average: boolean): void;
  ncclBroadcast(comm: DevicePtr, send: DevicePtr, recv: DevicePtr, n: number, root: number): void;
  ncclCommDestroy(comm: DevicePtr): void;
  /** r1_cuda_sample (native/r1_cuda.h): per-row tokens and log-probabilities into out [3 * rows] words. */
  sample(logits: DevicePtr, rows: number, vocab: number, sampleVocab: number, params: DevicePtr, out: DevicePtr, selects: boolean): void;
  /** r1_cuda_write_columns: cache[b, column[b], :] = src[b, :] for cache [B, capacity, width] of float or (bf16) bf16. */
  writeColumns(cache: DevicePtr, src: DevicePtr, column: DevicePtr, B: number, capacity: number, width: number, bf16: boolean): void;
  /** r1_cuda_decode_attention: one query per row over keys [kvStart[b], kvEnd[b]) of a cache of `capacity` columns. */
  decodeAttention(q: DevicePtr, k: DevicePtr, v: DevicePtr, out: DevicePtr, kvStart: DevicePtr, kvEnd: DevicePtr, B: number, Hq: number, Hkv: number, D: number,
    capacity: number, kvBatchStride: number, vBatchStride: number, scale: number, bf16: boolean, outBf16: boolean): void;
  /** r1_cuda_to_bf16: n floats rounded to n bf16 at dst. */
  toBf16(src: DevicePtr, dst: DevicePtr, n: number): void;
  /** r1_cuda_linear: y[m, n] = x[m, k] w[n, k]^T + bias[n] (bias 0: none), operands float32 or (flagged) bf16. */
  linear(x: DevicePtr, xBf16: boolean, w: DevicePtr, wBf16: boolean, bias: DevicePtr, y: DevicePtr, m: number, n: number, k: number): void;
  /** r1_cuda_add_rmsnorm: sum = x + residual (residual 0: x; sum 0: not written), y = rmsnorm(sum) as float32 or bf16. */
  addRmsNorm(x: DevicePtr, residual: DevicePtr, w: DevicePtr, sum: DevicePtr, y: DevicePtr, rows: number, dim: number, eps: number, bf16: boolean): void;
  /** r1_cuda_rope_write_kv: q heads of qkv rotated into q, k heads rotated and v heads copied into cache column column[b]. */
  ropeWriteKv(qkv: DevicePtr, positions: DevicePtr, cos: DevicePtr, sin: DevicePtr, column: DevicePtr, q: DevicePtr, kCache: DevicePtr, vCache: DevicePtr,
    B: number, Hq: number, Hkv: number, D: number, rotDim: number, interleaved: boolean, capacity: number, bf16: boolean): void;
  /** r1_cuda_swiglu_rows: y[r, i] = silu(gateUp[r, i]) * gateUp[r, inter + i], float32 or bf16. */
  swigluRows(gateUp: DevicePtr, y: DevicePtr, rows: number, inter: number, bf16: boolean): void;
  /** r1_cuda_linear_swiglu: y[m, inter] bf16 = swiglu of x[m, k] w[2 inter, k]^T, w's rows grouped 8 gates, 8 ups. */
  linearSwiglu(x: DevicePtr, w: DevicePtr, y: DevicePtr, m: number, inter: number, k: number): void;
  /** r1_cuda_moe_route: each token's K experts [n, K] from scores [n, E] and the bias [E], as selectExperts picks them. */
  moeRoute(scores: DevicePtr, bias: DevicePtr, experts: DevicePtr, n: number, E: number, K: number, groups: number, topkGroup: number): void;
  /** r1_cuda_expert_counts: counts[(t / tokensPerSegment) * E + e] += 1 for each expert e of token t. */
  expertCounts(experts: DevicePtr, counts: DevicePtr, n: number, K: number, E: number, tokensPerSegment: number): void;
  /** r1_cuda_moe_dispatch: the (token, slot) pairs sorted by expert, stably: offsets [E + 1], tokenOfRow and slotOfRow [n K]. */
  moeDispatch(experts: DevicePtr, n: number, K: number, E: number, offsets: DevicePtr, tokenOfRow: DevicePtr, slotOfRow: DevicePtr): void;
  /** r1_cuda_grouped_linear: out[r] = a[r] W_e^T (or a[r] W_e when transposedW) for the rows r of expert e. */
  groupedLinear(a: DevicePtr, weights: readonly DevicePtr[], offsets: DevicePtr, out: DevicePtr, rows: number, J: number, Kd: number, transposedW: boolean): void;
  /** r1_cuda_grouped_weight_grad: grads[e] = dy_e^T x_e over expert e's rows (zeros without rows). */
  groupedWeightGrad(dy: DevicePtr, x: DevicePtr, offsets: DevicePtr, grads: readonly DevicePtr[], N: number, C: number): void;
  /** r1_cuda_mla_decode_attention: absorbed MLA attention of q [B, H, D] over the latent cache [B, capacity, D], values its first Dv columns. */
  mlaDecodeAttention(q: DevicePtr, cache: DevicePtr, out: DevicePtr, kvStart: DevicePtr, kvEnd: DevicePtr, B: number, H: number, D: number, Dv: number,
    capacity: number, scale: number, bf16: boolean): void;
  /** r1_cuda_linear_rope_kv: the q|k|v GEMM (rows paired for RoPE) with RoPE and the cache writes. */
  linearRopeKv(x: DevicePtr, w: DevicePtr, bias: DevicePtr, positions: DevicePtr, cos: DevicePtr, sin: DevicePtr, column: DevicePtr, q: DevicePtr, kCache: DevicePtr,
    vCache: DevicePtr, B: number, Hq: number, Hkv: number, D: number, interleaved: boolean, capacity: number, cacheBf16: boolean, k: number): void;
}

/**
 * One stretch of a profile timeline: `what` is a kernel name of the table (or 'fill', 'copy'), BETWEEN_CALLS (the
 * device waited for the host's next call, or ran an unmarked call) or BF16_ROUNDING (operands of a bf16 GEMM or
 * attention being rounded, inside the call that precedes it); `opens` says whether it starts a call.
 */
export interface ProfileSpan { what: string; ms: number; opens: boolean }
export const BETWEEN_CALLS = 'between calls';
export const BF16_ROUNDING = 'bf16 rounding of operands';

/** The size of NCCL's ncclUniqueId (R1_NCCL_UNIQUE_ID_BYTES of r1_cuda.h). */
export const NCCL_UNIQUE_ID_BYTES = 128;

/** build/libr1cuda.so at the package root (from src/tensor/backends or dist/tensor/backends); R1_CUDA_LIBRARY overrides it. */
export function cudaLibraryPath(): string {
  if (process.env.R1_CUDA_LIBRARY) return process.env.R1_CUDA_LIBRARY;
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'libr1cuda.so');
}

// The C declarations of native/r1.h and native/r1_cuda.h with every device pointer written as uint64_t.
const declarations = {
  r1_cuda_device_count: 'int r1_cuda_device_count()',
  r1_cuda_init: 'int r1_cuda_init(int device)',
  r1_cuda_device_name: 'const char *r1_cuda_device_name()',
  r1_cuda_last_error: 'const char *r1_cuda_last_error()',
  r1_cuda_error_pending: 'int r1_cuda_error_pending()',
  r1_cuda_synchronize: 'int r1_cuda_synchronize()',
  r1_cuda_alloc: 'uint64_t r1_cuda_alloc(int64_t bytes)',
  r1_cuda_free: 'void r1_cuda_free(uint64_t ptr)',
  r1_cuda_empty_cache: 'void r1_cuda_empty_cache()',
  r1_cuda_memory_stats: 'void r1_cuda_memory_stats(int64_t *stats)',
  r1_cuda_upload: 'int r1_cuda_upload(uint64_t dst, const void *host_src, int64_t bytes)',
  r1_cuda_download: 'int r1_cuda_download(void *host_dst, uint64_t src, int64_t bytes)',
  r1_cuda_copy: 'int r1_cuda_copy(uint64_t dst, uint64_t src, int64_t bytes)',
  r1_cuda_download_begin: 'int r1_cuda_download_begin(uint64_t src, int64_t bytes)',
  r1_cuda_download_end: 'int r1_cuda_download_end(int slot, void *host_dst, int64_t bytes)',
  r1_cuda_fill: 'void r1_cuda_fill(uint64_t x, float value, int64_t n)',
  r1_cuda_fill_i32: 'void r1_cuda_fill_i32(uint64_t x, int32_t value, int64_t n)',
  r1_cuda_f32_to_i32: 'void r1_cuda_f32_to_i32(uint64_t x, uint64_t y, int64_t n)',
  r1_cuda_i32_to_f32: 'void r1_cuda_i32_to_f32(uint64_t x, uint64_t y, int64_t n)',
  r1_cuda_set_matmul_precision: 'int r1_cuda_set_matmul_precision(int precision)',
  r1_cuda_set_skinny_gemm_rows: 'int64_t r1_cuda_set_skinny_gemm_rows(int64_t rows)',
  r1_cuda_graph_begin: 'int r1_cuda_graph_begin()',
  r1_cuda_graph_end: 'uint64_t r1_cuda_graph_end()',
  r1_cuda_graph_launch: 'int r1_cuda_graph_launch(uint64_t graph)',
  r1_cuda_graph_destroy: 'void r1_cuda_graph_destroy(uint64_t graph)',

  r1_matmul: 'void r1_matmul(uint64_t a, uint64_t b, uint64_t c, int64_t batch, int64_t m, int64_t n, int64_t k, int trans_a, int trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float beta)',
  r1_unary: 'void r1_unary(int op, uint64_t x, uint64_t y, int64_t n)',
  r1_unary_backward: 'void r1_unary_backward(int op, uint64_t x, uint64_t y, uint64_t dy, uint64_t dx, int64_t n)',
  r1_binary: 'void r1_binary(int op, uint64_t a, const int64_t *a_strides, uint64_t b, const int64_t *b_strides, uint64_t out, const int64_t *shape, int ndim)',
  r1_where: 'void r1_where(uint64_t cond, const int64_t *cond_strides, uint64_t a, const int64_t *a_strides, uint64_t b, const int64_t *b_strides, uint64_t out, const int64_t *shape, int ndim)',
  r1_copy: 'void r1_copy(uint64_t src, const int64_t *src_strides, uint64_t dst, const int64_t *dst_strides, const int64_t *shape, int ndim)',
  r1_swiglu: 'void r1_swiglu(uint64_t gate, uint64_t up, uint64_t y, int64_t n)',
  r1_swiglu_backward: 'void r1_swiglu_backward(uint64_t gate, uint64_t up, uint64_t dy, uint64_t dgate, uint64_t dup, int64_t n)',
  r1_reduce: 'void r1_reduce(int op, uint64_t x, uint64_t out, int64_t outer, int64_t len, int64_t inner)',
  r1_sum_squares: 'double r1_sum_squares(uint64_t x, int64_t n)',
  r1_softmax: 'void r1_softmax(uint64_t x, uint64_t y, int64_t rows, int64_t cols)',
  r1_softmax_backward: 'void r1_softmax_backward(uint64_t y, uint64_t dy, uint64_t dx, int64_t rows, int64_t cols)',
  r1_log_softmax: 'void r1_log_softmax(uint64_t x, uint64_t y, int64_t rows, int64_t cols)',
  r1_log_softmax_backward: 'void r1_log_softmax_backward(uint64_t y, uint64_t dy, uint64_t dx, int64_t rows, int64_t cols)',
  r1_cross_entropy: 'void r1_cross_entropy(uint64_t logits, uint64_t targets, uint64_t loss, uint64_t lse, int64_t rows, int64_t vocab, int32_t ignore_index)',
  r1_cross_entropy_backward: 'void r1_cross_entropy_backward(uint64_t logits, uint64_t targets, uint64_t lse, uint64_t dloss, uint64_t dlogits, int64_t rows, int64_t vocab, int32_t ignore_index)',
  r1_embedding: 'void r1_embedding(uint64_t table, uint64_t ids, uint64_t out, int64_t n, int64_t dim)',
  r1_embedding_backward: 'void r1_embedding_backward(uint64_t ids, uint64_t dout, uint64_t dtable, int64_t n, int64_t dim)',
  r1_gather: 'void r1_gather(uint64_t x, uint64_t idx, uint64_t out, int64_t outer, int64_t len, int64_t inner, int64_t k)',
  r1_scatter_add: 'void r1_scatter_add(uint64_t idx, uint64_t dout, uint64_t dx, int64_t outer, int64_t len, int64_t inner, int64_t k)',
  r1_rmsnorm: 'void r1_rmsnorm(uint64_t x, uint64_t w, uint64_t y, uint64_t rstd, int64_t rows, int64_t dim, float eps)',
  r1_rmsnorm_backward: 'void r1_rmsnorm_backward(uint64_t x, uint64_t w, uint64_t rstd, uint64_t dy, uint64_t dx, uint64_t dw, int64_t rows, int64_t dim)',
  r1_rope: 'void r1_rope(uint64_t x, uint64_t y, uint64_t positions, uint64_t cos, uint64_t sin, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int interleaved, int inverse)',
  r1_attention: 'void r1_attention(uint64_t q, uint64_t k, uint64_t v, uint64_t out, uint64_t lse, uint64_t kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale, int causal)',
  r1_attention_backward: 'void r1_attention_backward(uint64_t q, uint64_t k, uint64_t v, uint64_t out, uint64_t lse, uint64_t dout, uint64_t dq, uint64_t dk, uint64_t dv, uint64_t kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, float scale, int causal)',
  r1_adamw: 'void r1_adamw(uint64_t p, uint64_t g, uint64_t m, uint64_t v, int64_t n, double lr, double beta1, double beta2, double eps, double weight_decay, double bias1, double bias2)',
  r1_random_normal: 'void r1_random_normal(uint64_t x, int64_t n, uint32_t key0, uint32_t key1, double std_dev)',
  r1_cuda_sample: 'void r1_cuda_sample(uint64_t logits, int64_t rows, int64_t vocab, int64_t sample_vocab, uint64_t params, uint64_t out, int selects)',
  r1_cuda_write_columns: 'void r1_cuda_write_columns(uint64_t cache, uint64_t src, uint64_t column, int64_t B, int64_t capacity, int64_t width, int bf16)',
  r1_cuda_decode_attention: 'void r1_cuda_decode_attention(uint64_t q, uint64_t k, uint64_t v, uint64_t out, uint64_t kv_start, uint64_t kv_end, int64_t B, int64_t Hq, int64_t Hkv, int64_t D, int64_t capacity, int64_t kv_batch_stride, int64_t v_batch_stride, float scale, int bf16, int out_bf16)',
  r1_cuda_to_bf16: 'void r1_cuda_to_bf16(uint64_t src, uint64_t dst, int64_t n)',
  r1_cuda_linear: 'void r1_cuda_linear(uint64_t x, int x_bf16, uint64_t w, int w_bf16, uint64_t bias, uint64_t y, int64_t m, int64_t n, int64_t k)',
  r1_cuda_add_rmsnorm: 'void r1_cuda_add_rmsnorm(uint64_t x, uint64_t residual, uint64_t w, uint64_t sum, uint64_t y, int64_t rows, int64_t dim, float eps, int bf16)',
  r1_cuda_rope_write_kv: 'void r1_cuda_rope_write_kv(uint64_t qkv, uint64_t positions, uint64_t cos, uint64_t sin, uint64_t column, uint64_t q, uint64_t k_cache, uint64_t v_cache, int64_t B, int64_t Hq, int64_t Hkv, int64_t D, int64_t rot_dim, int interleaved, int64_t capacity, int bf16)',
  r1_cuda_swiglu_rows: 'void r1_cuda_swiglu_rows(uint64_t gate_up, uint64_t y, int64_t rows, int64_t inter, int bf16)',
  r1_cuda_linear_swiglu: 'void r1_cuda_linear_swiglu(uint64_t x, uint64_t w, uint64_t y, int64_t m, int64_t inter, int64_t k)',
  r1_cuda_moe_route: 'void r1_cuda_moe_route(uint64_t scores, uint64_t bias, uint64_t experts, int64_t n, int64_t E, int64_t K, int64_t groups, int64_t topk_group)',
  r1_cuda_expert_counts: 'void r1_cuda_expert_counts(uint64_t experts, uint64_t counts, int64_t n, int64_t K, int64_t E, int64_t tokens_per_segment)',
  r1_cuda_moe_dispatch: 'void r1_cuda_moe_dispatch(uint64_t experts, int64_t n, int64_t K, int64_t E, uint64_t offsets, uint64_t token_of_row, uint64_t slot_of_row)',
  r1_cuda_grouped_linear: 'void r1_cuda_grouped_linear(uint64_t a, const uint64_t *weights, uint64_t offsets, uint64_t out, int64_t rows, int64_t E, int64_t J, int64_t Kd, int transposed_w)',
  r1_cuda_grouped_weight_grad: 'void r1_cuda_grouped_weight_grad(uint64_t dy, uint64_t x, uint64_t offsets, const uint64_t *grads, int64_t E, int64_t N, int64_t C)',
  r1_cuda_mla_decode_attention: 'void r1_cuda_mla_decode_attention(uint64_t q, uint64_t cache, uint64_t out, uint64_t kv_start, uint64_t kv_end, int64_t B, int64_t H, int64_t D, int64_t Dv, int64_t capacity, float scale, int bf16)',
  r1_cuda_linear_rope_kv: 'void r1_cuda_linear_rope_kv(uint64_t x, uint64_t w, uint64_t bias, uint64_t positions, uint64_t cos, uint64_t sin, uint64_t column, uint64_t q, uint64_t k_cache, uint64_t v_cache, int64_t B, int64_t Hq, int64_t Hkv, int64_t D, int interleaved, int64_t capacity, int cache_bf16, int64_t k)',
  r1_cuda_register_weight: 'int r1_cuda_register_weight(uint64_t ptr, int64_t n)',
  r1_cuda_share_bf16_operand: 'int r1_cuda_share_bf16_operand(uint64_t ptr, int64_t n)',
  r1_cuda_bf16_only_output: 'int r1_cuda_bf16_only_output(uint64_t ptr, int64_t n)',
  r1_cuda_widen_bf16_only: 'void r1_cuda_widen_bf16_only(uint64_t ptr, int64_t n)',
  r1_cuda_sum_squares_add: 'void r1_cuda_sum_squares_add(uint64_t x, int64_t n, uint64_t acc)',
  r1_cuda_profile_start: 'int r1_cuda_profile_start(int capacity)',
  r1_cuda_profile_mark: 'void r1_cuda_profile_mark(int tag)',
  r1_cuda_profile_stop: 'int r1_cuda_profile_stop(int32_t *tags, float *ms, int capacity)',

  r1_nccl_unique_id: 'int r1_nccl_unique_id(uint8_t *id)',
  r1_nccl_comm_init: 'uint64_t r1_nccl_comm_init(const uint8_t *id, int world_size, int rank)',
  r1_nccl_all_reduce: 'int r1_nccl_all_reduce(uint64_t comm, uint64_t send, uint64_t recv, int64_t n, int average)',
  r1_nccl_broadcast: 'int r1_nccl_broadcast(uint64_t comm, uint64_t send, uint64_t recv, int64_t n, int root)',
  r1_nccl_comm_destroy: 'int r1_nccl_comm_destroy(uint64_t comm)',
} as const;

type CudaFunctions = ReturnType<typeof bindFunctions<typeof declarations>>;

function loadFunctions(path: string): CudaFunctions {
  if (!existsSync(path)) {
    throw new Error(`the CUDA library is not built (${path} is missing): run \`npm run build:cuda\` on a machine with nvcc`);
  }
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(path);
  } catch (err) {
    throw new Error(`cannot load the CUDA library ${path}: ${(err as Error).message} (is the NVIDIA driver installed?)`);
  }
  return bindFunctions(lib, path, declarations, 'npm run build:cuda');
}

// Device addresses as the host array of uint64_t that the grouped GEMMs read (each launch copies it into its parameters).
const addressArray = (addresses: readonly DevicePtr[]) => BigUint64Array.from(addresses, (a) => BigInt(a));

const precisionCodes: Record<MatmulPrecision, number> = { f32: 0, tf32: 1, bf16: 2 };

function makeLibrary(path: string, c: CudaFunctions): CudaLibrary {
  // Throws the recorded failure, if any, naming the call that found it.
  const check = (call: string): void => {
    if (c.r1_cuda_error_pending() !== 0) throw new Error(`CUDA ${call} failed: ${c.r1_cuda_last_error() as string}`);
  };
  const checkStatus = (call: string, status: number): void => {
    if (status !== 0) throw new Error(`CUDA ${call} failed: ${(c.r1_cuda_last_error() as string) || `status ${status}`}`);
  };
  const stats = new BigInt64Array(4);
  const memoryStats = (): CudaMemoryStats => {
    c.r1_cuda_memory_stats(stats);
    return { inUse: Number(stats[0]), reserved: Number(stats[1]), peak: Number(stats[2]), blocks: Number(stats[3]) };
  };
  const [dims0, dims1, dims2, dims3] = [new DimsBuffer(), new DimsBuffer(), new DimsBuffer(), new DimsBuffer()];

  const kernels: Kernels<DevicePtr, DevicePtr> = {
    matmul(a, b, out, batch, m, n, k, transA, transB, strideA, strideB, strideC, beta) {
      c.r1_matmul(a, b, out, batch, m, n, k, transA ? 1 : 0, transB ? 1 : 0, strideA, strideB, strideC, beta);
      check('matmul');
    },

    unary(op, x, y, n) {
      c.r1_unary(UnaryOp[op], x, y, n);
      check(`unary ${op}`);
    },
    unaryBackward(op, x, y, dy, dx, n) {
      c.r1_unary_backward(UnaryOp[op], x, y, dy, dx, n);
      check(`unaryBackward ${op}`);
    },
    binary(op, a, aStrides, b, bStrides, out, shape) {
      checkDims('binary', shape, aStrides, bStrides);
      c.r1_binary(BinaryOp[op], a, dims0.fill(aStrides), b, dims1.fill(bStrides), out, dims2.fill(shape), shape.length);
      check(`binary ${op}`);
    },
    where(cond, condStrides, a, aStrides, b, bStrides, out, shape) {
      checkDims('where', shape, condStrides, aStrides, bStrides);
      c.r1_where(cond, dims0.fill(condStrides), a, dims1.fill(aStrides), b, dims2.fill(bStrides), out, dims3.fill(shape), shape.length);
      check('where');
    },
    copy(src, srcStrides, dst, dstStrides, shape) {
      checkDims('copy', shape, srcStrides, dstStrides);
      c.r1_copy(src, dims0.fill(srcStrides), dst, dims1.fill(dstStrides), dims2.fill(shape), shape.length);
      check('copy');
    },
    swiglu(gate, up, y, n) {
      c.r1_swiglu(gate, up, y, n);
      check('swiglu');
    },
    swigluBackward(gate, up, dy, dgate, dup, n) {
      c.r1_swiglu_backward(gate, up, dy, dgate, dup, n);
      check('swigluBackward');
    },

    reduce(op, x, out, outer, len, inner) {
      c.r1_reduce(ReduceOp[op], x, out, outer, len, inner);
      check(`reduce ${op}`);
    },
    sumSquares(x, n) {
      const result = c.r1_sum_squares(x, n) as number;
      check('sumSquares');
      return result;
    },

    softmax(x, y, rows, cols) {
      c.r1_softmax(x, y, rows, cols);
      check('softmax');
    },
    softmaxBackward(y, dy, dx, rows, cols) {
      c.r1_softmax_backward(y, dy, dx, rows, cols);
      check('softmaxBackward');
    },
    logSoftmax(x, y, rows, cols) {
      c.r1_log_softmax(x, y, rows, cols);
      check('logSoftmax');
    },
    logSoftmaxBackward(y, dy, dx, rows, cols) {
      c.r1_log_softmax_backward(y, dy, dx, rows, cols);
      check('logSoftmaxBackward');
    },
    crossEntropy(logits, targets, loss, lse, rows, vocab, ignoreIndex) {
      c.r1_cross_entropy(logits, targets, loss, lse, rows, vocab, ignoreIndex);
      check('crossEntropy');
    },
    crossEntropyBackward(logits, targets, lse, dloss, dlogits, rows, vocab, ignoreIndex) {
      c.r1_cross_entropy_backward(logits, targets, lse, dloss, dlogits, rows, vocab, ignoreIndex);
      check('crossEntropyBackward');
    },

    embedding(table, ids, out, n, dim) {
      c.r1_embedding(table, ids, out, n, dim);
      check('embedding');
    },
    embeddingBackward(ids, dout, dtable, n, dim) {
      c.r1_embedding_backward(ids, dout, dtable, n, dim);
      check('embeddingBackward');
    },
    gather(x, idx, out, outer, len, inner, k) {
      c.r1_gather(x, idx, out, outer, len, inner, k);
      check('gather');
    },
    scatterAdd(idx, dout, dx, outer, len, inner, k) {
      c.r1_scatter_add(idx, dout, dx, outer, len, inner, k);
      check('scatterAdd');
    },

    rmsnorm(x, w, y, rstd, rows, dim, eps) {
      c.r1_rmsnorm(x, w, y, rstd, rows, dim, eps);
      check('rmsnorm');
    },
    rmsnormBackward(x, w, rstd, dy, dx, dw, rows, dim) {
      c.r1_rmsnorm_backward(x, w, rstd, dy, dx, dw, rows, dim);
      check('rmsnormBackward');
    },

    rope(x, y, positions, cos, sin, tokens, heads, headDim, rotDim, interleaved, inverse) {
      c.r1_rope(x, y, positions, cos, sin, tokens, heads, headDim, rotDim, interleaved ? 1 : 0, inverse ? 1 : 0);
      check('rope');
    },

    attention(q, k, v, out, lse, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, kvBatchStride, vBatchStride, scale, causal) {
      if (Hkv <= 0 || Hq % Hkv !== 0) throw new Error(`attention: ${Hq} query heads is not a multiple of ${Hkv} kv heads`);
      c.r1_attention(q, k, v, out, lse ?? 0, kvStart ?? 0, B, Tq, Tk, Hq, Hkv, D, Dv, kvBatchStride, vBatchStride, scale, causal ? 1 : 0);
      check('attention');
    },
    attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, kvStart, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal) {
      if (Hkv <= 0 || Hq % Hkv !== 0) throw new Error(`attentionBackward: ${Hq} query heads is not a multiple of ${Hkv} kv heads`);
      c.r1_attention_backward(q, k, v, out, lse, dout, dq, dk, dv, kvStart ?? 0, B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal ? 1 : 0);
      check('attentionBackward');
    },

    adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bias1, bias2) {
      c.r1_adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bias1, bias2);
      check('adamw');
    },

    randomNormal(x, n, key0, key1, std) {
      c.r1_random_normal(x, n, key0, key1, std);
      check('randomNormal');
    },
  };

  // The profile timeline: tags >= 0 index `marked`; the library's own tags are negative (r1_cuda.h).
  const marked: string[] = [];
  let profiling = false;
  let profileCapacity = 0;
  const between = -1;
  const tagNames = new Map<number, string>([[between, BETWEEN_CALLS], [-2, BF16_ROUNDING]]);
  function bracket<A extends unknown[], R>(name: string, fn: (...args: A) => R): (...args: A) => R {
    const tag = marked.push(name) - 1;
    tagNames.set(tag, name);
    return (...args: A): R => {
      if (!profiling) return fn(...args);
      c.r1_cuda_profile_mark(tag);
      try {
        return fn(...args);
      } finally {
        c.r1_cuda_profile_mark(between);
      }
    };
  }
  const table = kernels as unknown as Record<string, (...args: unknown[]) => unknown>;
  const bracketed = Object.fromEntries(Object.entries(table).map(([name, fn]) => [name, bracket(name, fn)])) as unknown as Kernels<DevicePtr, DevicePtr>;

  return {
    path,
    kernels: bracketed,
    sumSquaresAdd: bracket('sumSquaresAdd', (x: DevicePtr, n: number, acc: DevicePtr) => {
      c.r1_cuda_sum_squares_add(x, n, acc);
      check('sumSquaresAdd');
    }),
    profileStart(capacity) {
      checkStatus('profileStart', c.r1_cuda_profile_start(capacity) as number);
      profileCapacity = capacity;
      profiling = true;
    },
    profileStop() {
      profiling = false;
      const tags = new Int32Array(profileCapacity);
      const ms = new Float32Array(profileCapacity);
      const count = c.r1_cuda_profile_stop(tags, ms, profileCapacity) as number;
      if (count < 0) throw new Error(`CUDA profileStop failed: ${c.r1_cuda_last_error() as string}`);
      const spans: ProfileSpan[] = [];
      for (let i = 0; i + 1 < count; i++) {
        spans.push({ what: tagNames.get(tags[i]) ?? `tag ${tags[i]}`, ms: ms[i], opens: tags[i] === between || i === 0 || tags[i - 1] === between || tags[i] === -2 });
      }
      return spans;
    },
    deviceCount: () => c.r1_cuda_device_count() as number,
    init(device) {
      checkStatus(`init(${device})`, c.r1_cuda_init(device) as number);
    },
    deviceName: () => c.r1_cuda_device_name() as string,
    synchronize() {
      checkStatus('synchronize', c.r1_cuda_synchronize() as number);
    },
    alloc(bytes) {
      if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`CUDA alloc: ${bytes} is not a byte count`);
      const ptr = Number(c.r1_cuda_alloc(bytes));
      if (ptr === 0) {
        const message = c.r1_cuda_last_error() as string;
        const s = memoryStats();
        throw new Error(`CUDA out of memory: asked for ${bytes} bytes, ${s.inUse} in use, ${s.reserved} reserved (${message})`);
      }
      return ptr;
    },
    free(ptr) {
      c.r1_cuda_free(ptr);
      check('free');
    },
    emptyCache() {
      c.r1_cuda_empty_cache();
      check('emptyCache');
    },
    memoryStats,
    upload(dst, src) {
      checkStatus('upload', c.r1_cuda_upload(dst, src, src.byteLength) as number);
    },
    download(dst, src) {
      checkStatus('download', c.r1_cuda_download(dst, src, dst.byteLength) as number);
    },
    downloadBegin(src, bytes) {
      const slot = c.r1_cuda_download_begin(src, bytes) as number;
      if (slot < 0) throw new Error(`CUDA downloadBegin failed: ${c.r1_cuda_last_error() as string}`);
      return slot;
    },
    downloadEnd(slot, dst) {
      checkStatus('downloadEnd', c.r1_cuda_download_end(slot, dst, dst.byteLength) as number);
    },
    copy: bracket('copy', (dst: DevicePtr, src: DevicePtr, bytes: number) => {
      checkStatus('copy', c.r1_cuda_copy(dst, src, bytes) as number);
    }),
    fill: bracket('fill', (x: DevicePtr, value: number, n: number) => {
      c.r1_cuda_fill(x, value, n);
      check('fill');
    }),
    fillI32(x, value, n) {
      c.r1_cuda_fill_i32(x, value, n);
      check('fillI32');
    },
    f32ToI32(x, y, n) {
      c.r1_cuda_f32_to_i32(x, y, n);
      check('f32ToI32');
    },
    i32ToF32(x, y, n) {
      c.r1_cuda_i32_to_f32(x, y, n);
      check('i32ToF32');
    },
    setMatmulPrecision(precision) {
      const code = precisionCodes[precision];
      if (code === undefined) throw new Error(`unknown matmul precision '${precision}' (known: f32, tf32, bf16)`);
      checkStatus(`setMatmulPrecision(${precision})`, c.r1_cuda_set_matmul_precision(code) as number);
    },
    setSkinnyGemmRows(rows) {
      return Number(c.r1_cuda_set_skinny_gemm_rows(rows));
    },
    graphBegin() {
      checkStatus('graphBegin', c.r1_cuda_graph_begin() as number);
    },
    graphEnd() {
      const graph = Number(c.r1_cuda_graph_end());
      if (graph === 0) throw new Error(`CUDA graphEnd failed: ${c.r1_cuda_last_error() as string}`);
      return graph;
    },
    graphLaunch(graph) {
      checkStatus('graphLaunch', c.r1_cuda_graph_launch(graph) as number);
    },
    graphDestroy(graph) {
      c.r1_cuda_graph_destroy(graph);
      check('graphDestroy');
    },
    registerWeight(ptr, n) {
      checkStatus(`registerWeight(${n})`, c.r1_cuda_register_weight(ptr, n) as number);
    },
    shareBf16Operand(ptr, n) {
      checkStatus(`shareBf16Operand(${n})`, c.r1_cuda_share_bf16_operand(ptr, n) as number);
    },
    bf16OnlyOutput(ptr, n) {
      const status = c.r1_cuda_bf16_only_output(ptr, n) as number;
      check('bf16OnlyOutput');  // its copy's allocation may fail
      return status === 0;
    },
    widenBf16Only(ptr, n) {
      c.r1_cuda_widen_bf16_only(ptr, n);
      check('widenBf16Only');
    },
    ncclUniqueId() {
      const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES);
      checkStatus('ncclUniqueId', c.r1_nccl_unique_id(id) as number);
      return id;
    },
    ncclCommInit(id, worldSize, rank) {
      if (id.length !== NCCL_UNIQUE_ID_BYTES) throw new Error(`NCCL unique id has ${id.length} bytes, not ${NCCL_UNIQUE_ID_BYTES}`);
      const comm = Number(c.r1_nccl_comm_init(id, worldSize, rank));
      if (comm === 0) throw new Error(`NCCL ncclCommInit(rank ${rank} of ${worldSize}) failed: ${c.r1_cuda_last_error() as string}`);
      return comm;
    },
    ncclAllReduce(comm, send, recv, n, average) {
      checkStatus(`ncclAllReduce(${n})`, c.r1_nccl_all_reduce(comm, send, recv, n, average ? 1 : 0) as number);
    },
    ncclBroadcast(comm, send, recv, n, root) {
      checkStatus(`ncclBroadcast(${n}, root ${root})`, c.r1_nccl_broadcast(comm, send, recv, n, root) as number);
    },
    ncclCommDestroy(comm) {
      checkStatus('ncclCommDestroy', c.r1_nccl_comm_destroy(comm) as number);
    },
    sample(logits, rows, vocab, sampleVocab, params, out, selects) {
      c.r1_cuda_sample(logits, rows, vocab, sampleVocab, params, out, selects ? 1 : 0);
      check('sample');
    },
    writeColumns: bracket('writeColumns', (cache: DevicePtr, src: DevicePtr, column: DevicePtr, B: number, capacity: number, width: number, bf16: boolean) => {
      c.r1_cuda_write_columns(cache, src, column, B, capacity, width, bf16 ? 1 : 0);
      check('writeColumns');
    }),
    decodeAttention: bracket('decodeAttention', (q: DevicePtr, k: DevicePtr, v: DevicePtr, out: DevicePtr, kvStart: DevicePtr, kvEnd: DevicePtr, B: number, Hq: number,
      Hkv: number, D: number, capacity: number, kvBatchStride: number, vBatchStride: number, scale: number, bf16: boolean, outBf16: boolean) => {
      c.r1_cuda_decode_attention(q, k, v, out, kvStart, kvEnd, B, Hq, Hkv, D, capacity, kvBatchStride, vBatchStride, scale, bf16 ? 1 : 0, outBf16 ? 1 : 0);
      check('decodeAttention');
    }),
    toBf16: bracket('toBf16', (src: DevicePtr, dst: DevicePtr, n: number) => {
      c.r1_cuda_to_bf16(src, dst, n);
      check('toBf16');
    }),
    linear: bracket('linear', (x: DevicePtr, xBf16: boolean, w: DevicePtr, wBf16: boolean, bias: DevicePtr, y: DevicePtr, m: number, n: number, k: number) => {
      c.r1_cuda_linear(x, xBf16 ? 1 : 0, w, wBf16 ? 1 : 0, bias, y, m, n, k);
      check('linear');
    }),
    addRmsNorm: bracket('addRmsNorm', (x: DevicePtr, residual: DevicePtr, w: DevicePtr, sum: DevicePtr, y: DevicePtr, rows: number, dim: number, eps: number, bf16: boolean) => {
      c.r1_cuda_add_rmsnorm(x, residual, w, sum, y, rows, dim, eps, bf16 ? 1 : 0);
      check('addRmsNorm');
    }),
    ropeWriteKv: bracket('ropeWriteKv', (qkv: DevicePtr, positions: DevicePtr, cos: DevicePtr, sin: DevicePtr, column: DevicePtr, q: DevicePtr, kCache: DevicePtr,
      vCache: DevicePtr, B: number, Hq: number, Hkv: number, D: number, rotDim: number, interleaved: boolean, capacity: number, bf16: boolean) => {
      c.r1_cuda_rope_write_kv(qkv, positions, cos, sin, column, q, kCache, vCache, B, Hq, Hkv, D, rotDim, interleaved ? 1 : 0, capacity, bf16 ? 1 : 0);
      check('ropeWriteKv');
    }),
    swigluRows: bracket('swigluRows', (gateUp: DevicePtr, y: DevicePtr, rows: number, inter: number, bf16: boolean) => {
      c.r1_cuda_swiglu_rows(gateUp, y, rows, inter, bf16 ? 1 : 0);
      check('swigluRows');
    }),
    linearSwiglu: bracket('linearSwiglu', (x: DevicePtr, w: DevicePtr, y: DevicePtr, m: number, inter: number, k: number) => {
      c.r1_cuda_linear_swiglu(x, w, y, m, inter, k);
      check('linearSwiglu');
    }),
    moeRoute: bracket('moeRoute', (scores: DevicePtr, bias: DevicePtr, experts: DevicePtr, n: number, E: number, K: number, groups: number, topkGroup: number) => {
      c.r1_cuda_moe_route(scores, bias, experts, n, E, K, groups, topkGroup);
      check('moeRoute');
    }),
    expertCounts: bracket('expertCounts', (experts: DevicePtr, counts: DevicePtr, n: number, K: number, E: number, tokensPerSegment: number) => {
      c.r1_cuda_expert_counts(experts, counts, n, K, E, tokensPerSegment);
      check('expertCounts');
    }),
    moeDispatch: bracket('moeDispatch', (experts: DevicePtr, n: number, K: number, E: number, offsets: DevicePtr, tokenOfRow: DevicePtr, slotOfRow: DevicePtr) => {
      c.r1_cuda_moe_dispatch(experts, n, K, E, offsets, tokenOfRow, slotOfRow);
      check('moeDispatch');
    }),
    groupedLinear: bracket('groupedLinear', (a: DevicePtr, weights: readonly DevicePtr[], offsets: DevicePtr, out: DevicePtr, rows: number, J: number, Kd: number,
      transposedW: boolean) => {
      c.r1_cuda_grouped_linear(a, addressArray(weights), offsets, out, rows, weights.length, J, Kd, transposedW ? 1 : 0);
      check('groupedLinear');
    }),
    groupedWeightGrad: bracket('groupedWeightGrad', (dy: DevicePtr, x: DevicePtr, offsets: DevicePtr, grads: readonly DevicePtr[], N: number, C: number) => {
      c.r1_cuda_grouped_weight_grad(dy, x, offsets, addressArray(grads), grads.length, N, C);
      check('groupedWeightGrad');
    }),
    mlaDecodeAttention: bracket('mlaDecodeAttention', (q: DevicePtr, cache: DevicePtr, out: DevicePtr, kvStart: DevicePtr, kvEnd: DevicePtr, B: number, H: number, D: number,
      Dv: number, capacity: number, scale: number, bf16: boolean) => {
      c.r1_cuda_mla_decode_attention(q, cache, out, kvStart, kvEnd, B, H, D, Dv, capacity, scale, bf16 ? 1 : 0);
      check('mlaDecodeAttention');
    }),
    linearRopeKv: bracket('linearRopeKv', (x: DevicePtr, w: DevicePtr, bias: DevicePtr, positions: DevicePtr, cos: DevicePtr, sin: DevicePtr, column: DevicePtr, q: DevicePtr,
      kCache: DevicePtr, vCache: DevicePtr, B: number, Hq: number, Hkv: number, D: number, interleaved: boolean, capacity: number, cacheBf16: boolean, k: number) => {
      c.r1_cuda_linear_rope_kv(x, w, bias, positions, cos, sin, column, q, kCache, vCache, B, Hq, Hkv, D, interleaved ? 1 : 0, capacity, cacheBf16 ? 1 : 0, k);
      check('linearRopeKv');
    }),
  };
}

let opened: CudaLibrary | undefined;

/** Loads build/libr1cuda.so once (R1_CUDA_LIBRARY overrides the path); throws a clear error naming what is missing: the library not built ("run npm run build:cuda"), or no GPU/driver. */
export function openCudaLibrary(): CudaLibrary {
  if (opened) return opened;
  const path = cudaLibraryPath();
  const fns = loadFunctions(path);
  if ((fns.r1_cuda_device_count() as number) === 0) {
    throw new Error(`no CUDA GPU found by ${path} (no NVIDIA driver, or no visible device: check nvidia-smi and CUDA_VISIBLE_DEVICES)`);
  }
  opened = makeLibrary(path, fns);
  return opened;
}
