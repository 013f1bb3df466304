// The CUDA backend's runtime (build/libr1cuda.so, built by `npm run build:cuda`): device selection, memory,
// copies, precision and CUDA graphs. The same library exports every kernel of r1.h under the same name and
// contract, with its float and int32 arrays in device memory; the small host arrays of r1.h (strides, shapes)
// stay in host memory. All work is queued on one stream per process, in call order, so kernels never need a
// synchronisation between them; copies to the host and r1_sum_squares wait for the stream.
//
// Errors: functions returning int give 0 on success and a non-zero code on failure; kernels (void) record a
// failed launch. r1_cuda_last_error() returns the message of the first failure not yet read (and clears it),
// or "" when there is none, so the TypeScript side checks it after each call that can fail.
#ifndef R1_CUDA_H
#define R1_CUDA_H
#include "r1.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- device ----
R1_API int r1_cuda_device_count(void);            // 0 when there is no driver or no GPU (never an error)
R1_API int r1_cuda_init(int device);              // selects the device, creates the stream and library handles
R1_API const char* r1_cuda_device_name(void);     // of the initialised device
R1_API const char* r1_cuda_last_error(void);
R1_API int r1_cuda_synchronize(void);             // waits for every queued kernel; reports asynchronous faults

// ---- memory: a caching allocator (freed blocks are reused by later allocations of a similar size) ----
R1_API void* r1_cuda_alloc(int64_t bytes);        // NULL on failure (after emptying the cache and retrying once)
R1_API void r1_cuda_free(void* ptr);              // stream-ordered: the block is reused only by later work
R1_API void r1_cuda_empty_cache(void);            // returns every cached, unused block to the driver
// stats[0] bytes in use, stats[1] bytes reserved from the driver, stats[2] peak bytes in use, stats[3] live blocks
R1_API void r1_cuda_memory_stats(int64_t* stats);

// ---- copies (bytes) ----
R1_API int r1_cuda_upload(void* dst, const void* host_src, int64_t bytes);    // returns once host_src may be reused
R1_API int r1_cuda_download(void* host_dst, const void* src, int64_t bytes);  // waits for the stream first
R1_API int r1_cuda_copy(void* dst, const void* src, int64_t bytes);           // device to device, queued
// A download that waits only for the work queued before it, not for work queued after (the sampling engine reads a
// step's tokens while the next steps run): begin queues the copy into a pinned staging slot and returns the slot
// (-1 on failure); end waits for that copy and copies it to host_dst (NULL: discarded), freeing the slot. At most
// two downloads are begun and not ended at a time; each begin is ended once, with the same byte count.
R1_API int r1_cuda_download_begin(const void* src, int64_t bytes);
R1_API int r1_cuda_download_end(int slot, void* host_dst, int64_t bytes);

// ---- device-only helpers the op layer needs besides r1.h ----
R1_API void r1_cuda_fill(float* x, float value, int64_t n);
R1_API void r1_cuda_fill_i32(int32_t* x, int32_t value, int64_t n);
R1_API void r1_cuda_f32_to_i32(const float* x, int32_t* y, int64_t n);   // truncation toward zero, as a C cast
R1_API void r1_cuda_i32_to_f32(const int32_t* x, float* y, int64_t n);

// ---- GEMM precision of r1_matmul ----
// 0: float32 (exact IEEE products; the tests' mode and the default), 1: TF32 tensor cores, 2: bfloat16 tensor
// cores (operands rounded to bf16, float32 accumulation and output: autocast-style mixed precision).
R1_API int r1_cuda_set_matmul_precision(int precision);
// r1_cuda_linear in bf16 precision with at most `rows` rows (default 0: never) runs on the skinny tensor-core
// GEMM (skinny_gemm.cu: weights streamed once over the whole GPU, k split over blocks and summed in a fixed
// order) instead of cuBLASLt, where the shape allows (n a multiple of 16, k of 32, 16-byte aligned operands).
// Returns the previous setting.
R1_API int64_t r1_cuda_set_skinny_gemm_rows(int64_t rows);

// ---- CUDA graphs: record a fixed sequence of kernel calls once, replay it with one launch ----
// Between begin and end, calls are recorded, not run; allocations made while recording must stay alive as
// long as the graph does. end returns the graph handle (NULL on failure).
R1_API int r1_cuda_graph_begin(void);
R1_API void* r1_cuda_graph_end(void);
R1_API int r1_cuda_graph_launch(void* graph);
R1_API void r1_cuda_graph_destroy(void* graph);

// ---- appended after the first release (existing declarations above never change) ----
// 1 when a failure is recorded and not yet read by r1_cuda_last_error: a check cheap enough to follow every call.
R1_API int r1_cuda_error_pending(void);

// ---- bf16 copies of weights, for r1_matmul in bf16 precision ----
// In bf16 precision r1_matmul rounds its float32 operands to bf16 on every call. A float32 buffer registered
// here instead gets a bf16 copy (n * 2 bytes, from the caching allocator), rounded once and then kept current by
// r1_adamw, which writes the new weight and its copy in one pass. r1_matmul reads the copy for an operand that
// is one matrix (not a batch with a stride) lying inside a registered range.
// When the copy is read and when it is refreshed:
// - r1_adamw over the whole registered range makes the copy current; over part of it, updates that part.
// - r1_cuda_upload, r1_cuda_copy and r1_cuda_fill into any part of the range mark the copy stale; the next
//   r1_matmul that reads it rounds the whole weight again first.
// - Any other kernel that writes into the range (r1_binary, r1_matmul's output, ...) is NOT seen: after one,
//   call r1_cuda_register_weight(ptr, n) again with the same ptr and n, which marks the copy stale.
// - r1_cuda_free of the block holding the range drops the registration and frees the copy.
// - A CUDA graph replays what was recorded: reads of the copy if it was current while capturing (then a graph
//   stays correct across r1_adamw steps, not across other writes: record it again after those), or a fresh
//   rounding before each read if it was stale.
// Registering with the same ptr and another n replaces the registration; a range that overlaps another
// registered range is an error. Returns 0 on success.
R1_API int r1_cuda_register_weight(const float* ptr, int64_t n);

// ---- bf16 copies of activations ----
// The same registry for a float32 activation that several bf16 GEMMs read (the backward reads it again):
// registered, it is rounded once for all of them. Unlike r1_cuda_register_weight, calling this for a range
// that is already registered with the same n leaves its copy as it is (current stays current). Returns 0 on
// success.
R1_API int r1_cuda_share_bf16_operand(const float* ptr, int64_t n);
// bf16 copies written by their producers: in bf16 precision (outside graph capture) r1_rmsnorm, r1_swiglu,
// r1_swiglu_backward, r1_rope, r1_cross_entropy_backward and the tensor-core r1_attention write the bf16 copy of
// each float32 output in the same pass (each output that starts a block of the caching allocator: a whole
// buffer), register it and mark it current, so that the GEMMs that read the output (QKV, gate/up, down, o_proj
// and the LM head's backward) find it instead of rounding the output in a pass of their own; the tensor-core
// attention likewise reads the copies of q, k and v that are current. The float32 outputs are unchanged. The
// rules above apply to these copies as to a weight's: an unwatched write into such an output afterwards needs
// r1_cuda_register_weight again.
// bf16-only outputs: r1_cuda_bf16_only_output(ptr, n), called for a whole block of the caching allocator before
// the producer runs, makes that producer write the bf16 values of [ptr, ptr + n) and not the floats. The copy
// lies in the block's own first n * 2 bytes (no allocation), so the activation takes half its float32 bytes of
// traffic. Producers: r1_matmul (bf16 precision, beta 0: cuBLASLt writes D as bf16), r1_rmsnorm, r1_swiglu and
// its backward, r1_rope, r1_cross_entropy_backward and the tensor-core r1_attention. Readers of the copy:
// r1_matmul (one matrix), r1_binary, r1_swiglu and its backward, r1_rope, r1_cross_entropy and its backward, the
// attention's v, out and dout. r1_matmul writes the floats back from it first where it rounds or reads floats
// itself; any other reader must call r1_cuda_widen_bf16_only(ptr, n) first, which writes the floats (the copy's
// values, widened, through a moved copy) and ends the promise and the registration. A kernel that writes the
// floats instead (a producer without a bf16 path, r1_binary in place) ends them too. Returns 0, or 1 when ptr
// does not start a block of at least n floats or the range overlaps another registration (then the producer
// writes the floats as usual).
R1_API int r1_cuda_bf16_only_output(const float* ptr, int64_t n);
R1_API void r1_cuda_widen_bf16_only(const float* ptr, int64_t n);

// ---- collectives between processes (one GPU each) through NCCL, loaded with dlopen on first use ----
// NCCL 2 is found as libnccl.so.2 on the loader's path, or at R1_NCCL_LIBRARY. Buffers are float32 device
// arrays; collectives are queued on the stream like kernels. A communicator joins `world_size` processes that
// each call r1_nccl_comm_init with the same unique id (made by one of them, handed to the others out of band).
#define R1_NCCL_UNIQUE_ID_BYTES 128
R1_API int r1_nccl_unique_id(uint8_t* id);                                    // writes R1_NCCL_UNIQUE_ID_BYTES bytes
R1_API void* r1_nccl_comm_init(const uint8_t* id, int world_size, int rank);  // NULL on failure; blocks for all ranks
// recv = sum (average != 0: mean) over ranks of send; send == recv works in place.
R1_API int r1_nccl_all_reduce(void* comm, const float* send, float* recv, int64_t n, int average);
R1_API int r1_nccl_broadcast(void* comm, const float* send, float* recv, int64_t n, int root);  // root's send to every recv
R1_API int r1_nccl_comm_destroy(void* comm);

// ---- token sampling (sample.cu): the decode step's draw without sending [rows, vocab] to the host ----
// For each row r of logits [rows, vocab], with params[r] = {float temperature, float top_p, float min_p,
// int32 top_k, uint32 key0, uint32 key1, uint32 step, int32 unused} (32 bytes, device memory):
//   out[r] (int32): the token, among ids < sample_vocab: the argmax (lowest id on ties) when temperature is 0,
//     else a draw from softmax(logits / T) restricted by top-k (0 off), then top-p (1 off), then min-p (0 off),
//     with the uniform of Philox4x32-10 at counter (step, 0, 0, 0) under key (key0, key1) (native/philox.h);
//   out[rows + r] (float bits): log_softmax(logits)[token] over the whole vocab at temperature 1;
//   out[2 rows + r] (float bits): log of the token's probability in the distribution drawn from (0 if greedy).
// selects: whether some row has top-k or top-p on (then one block draws each row; otherwise the rows are split
// into chunks over the whole GPU). src/generate/sampler.ts defines the same sampling; sample.cu says where the
// two may differ.
R1_API void r1_cuda_sample(const float* logits, int64_t rows, int64_t vocab, int64_t sample_vocab, const void* params,
                           int32_t* out, int selects);

// ---- a decode step with no host-side length (what a CUDA graph of the step replays at any column) ----
// cache [B, capacity, width]: cache[b, column[b], :] = src[b, :] (column in device memory; out of range: skipped).
// bf16 != 0: the cache holds bf16 elements (src rounded to nearest even), else float.
R1_API void r1_cuda_write_columns(void* cache, const float* src, const int32_t* column, int64_t B, int64_t capacity,
                                  int64_t width, int bf16);
// r1_attention for Tq = 1 over a cache of `capacity` columns read in place (batch strides as r1_attention's, in
// elements), row b seeing keys [kv_start[b], kv_end[b]) (device memory), not causal; out [B, Hq, D]. Head size 64
// or 128. bf16 != 0: k and v hold bf16 elements (widened to float as they are read), else float. out_bf16 != 0:
// out holds bf16 elements (rounded to nearest even: the next GEMM's operand), else float.
R1_API void r1_cuda_decode_attention(const float* q, const void* k, const void* v, float* out, const int32_t* kv_start,
                                     const int32_t* kv_end, int64_t B, int64_t Hq, int64_t Hkv, int64_t D,
                                     int64_t capacity, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                                     int bf16, int out_bf16);
// dst[i] = src[i] rounded to bf16 (nearest even), i < n: a float32 KV cache's prefill moved into a bf16 one.
R1_API void r1_cuda_to_bf16(const float* src, void* dst, int64_t n);

// ---- the fused kernels of a dense model's decode step (decode.cu, gemm.cu; src/models/dense-decode.ts) ----
// "bf16" buffers hold bf16 elements (two to a float32 word, element 2i in the low half), rounded to nearest even.
// y[m, n] = x[m, k] w[n, k]^T + bias[n] (bias may be NULL), the bias added in cuBLASLt's epilogue. In bf16 matmul
// precision x_bf16 / w_bf16 != 0 mark operands already in bf16; a float32 operand is read from its registered
// bf16 copy or rounded, as r1_matmul does. In float32 or tf32 precision both must be float32.
R1_API void r1_cuda_linear(const void* x, int x_bf16, const void* w, int w_bf16, const float* bias, float* y, int64_t m,
                           int64_t n, int64_t k);
// Rows of x [rows, dim]: s = x + residual (residual NULL: s = x), written to sum unless sum is NULL, and
// y = w * s / sqrt(mean(s^2) + eps), float32 or (bf16 != 0) bf16: a residual add, r1_rmsnorm and the rounding of
// the next GEMM's operand in one pass.
R1_API void r1_cuda_add_rmsnorm(const float* x, const float* residual, const float* w, float* sum, void* y, int64_t rows,
                                int64_t dim, float eps, int bf16);
// qkv [B, (Hq + 2 Hkv) * D] (q heads, then k heads, then v heads): q [B, Hq, D] = r1_rope of the q heads at
// positions[b]; the k heads rotated and the v heads as they are go to cache column column[b] of k_cache and
// v_cache [B, capacity, Hkv, D] (float, or bf16 != 0: bf16), as r1_cuda_write_columns writes them.
R1_API void r1_cuda_rope_write_kv(const float* qkv, const int32_t* positions, const float* cos, const float* sin,
                                  const int32_t* column, float* q, void* k_cache, void* v_cache, int64_t B, int64_t Hq,
                                  int64_t Hkv, int64_t D, int64_t rot_dim, int interleaved, int64_t capacity, int bf16);
// y[r, i] = silu(gate_up[r, i]) * gate_up[r, inter + i] for gate_up [rows, 2 inter]: r1_swiglu over the output of
// one GEMM for gate and up, into float32 or (bf16 != 0) bf16.
R1_API void r1_cuda_swiglu_rows(const float* gate_up, void* y, int64_t rows, int64_t inter, int bf16);
// y[m, inter] (bf16) = silu(gate) * up of the products x[m, k] w[2 inter, k]^T (both bf16; bf16 matmul precision),
// w's rows in groups of 16: 8 gate rows, then the same 8 up rows (inter a multiple of 8). Up to the skinny GEMM's
// row count SwiGLU is its epilogue (one kernel); above it, cuBLASLt and a SwiGLU kernel.
R1_API void r1_cuda_linear_swiglu(const void* x, const void* w, void* y, int64_t m, int64_t inter, int64_t k);
// r1_cuda_rope_write_kv of qkv = x[B, k] w[(Hq + 2 Hkv) D, k]^T + bias (x and w bf16, bias float or NULL; bf16
// matmul precision; RoPE over the whole head, D a multiple of 16), w's and bias's rows permuted within each head
// into tiles of 8 rotation pairs (16 rows: the first elements of pairs 8u..8u+7, then their second elements; pairs
// (i, i + D/2), or (2i, 2i + 1) when interleaved). Up to the skinny GEMM's row count RoPE and the cache writes are
// its epilogue (one kernel); above it, cuBLASLt and the RoPE kernel.
R1_API void r1_cuda_linear_rope_kv(const void* x, const void* w, const float* bias, const int32_t* positions,
                                   const float* cos, const float* sin, const int32_t* column, float* q, void* k_cache,
                                   void* v_cache, int64_t B, int64_t Hq, int64_t Hkv, int64_t D, int interleaved,
                                   int64_t capacity, int cache_bf16, int64_t k);

// ---- DeepSeekMoE and MLA on the device (moe.cu, mla.cu; src/tensor/moe.ts): no [tokens, experts] download ----
// experts [n, K] (int32): for scores [n, E] (sigmoid affinities) and the selection bias [E], each token's K experts
// in increasing id order, chosen as src/nn/moe.ts's selectExperts chooses them in float32 (groups <= 64, K <= 32).
R1_API void r1_cuda_moe_route(const float* scores, const float* bias, int32_t* experts, int64_t n, int64_t E, int64_t K,
                              int64_t groups, int64_t topk_group);
// counts[(t / tokens_per_segment) * E + e] += 1 for each expert e chosen for token t (experts [n, K]); counts is
// float [n / tokens_per_segment, E], zeroed by the caller.
R1_API void r1_cuda_expert_counts(const int32_t* experts, float* counts, int64_t n, int64_t K, int64_t E, int64_t tokens_per_segment);
// The n * K (token, slot) pairs of experts [n, K] sorted by expert, stably: offsets [E + 1] (expert e's rows are
// [offsets[e], offsets[e + 1])), token_of_row and slot_of_row [n * K] (slot = t * K + k). E <= R1_MOE_MAX_EXPERTS.
#define R1_MOE_MAX_EXPERTS 256
R1_API void r1_cuda_moe_dispatch(const int32_t* experts, int64_t n, int64_t K, int64_t E, int32_t* offsets, int32_t* token_of_row,
                                 int32_t* slot_of_row);
// Grouped GEMM over expert row ranges: for each expert e and row r in [offsets[e], offsets[e + 1]) of a [rows, Kd],
// out[r, j] = sum_k a[r, k] W_e[j, k] (transposed_w = 0: W_e [J, Kd]) or sum_k a[r, k] W_e[k, j] (transposed_w = 1:
// W_e [Kd, J]). weights: a HOST array of E device addresses. Float32, sums in increasing k.
R1_API void r1_cuda_grouped_linear(const float* a, const uint64_t* weights, const int32_t* offsets, float* out, int64_t rows,
                                   int64_t E, int64_t J, int64_t Kd, int transposed_w);
// dW_e [N, C] = sum over expert e's rows r of dy[r, n] x[r, c] (zeros for an expert without rows); grads: a HOST
// array of E device addresses, each overwritten.
R1_API void r1_cuda_grouped_weight_grad(const float* dy, const float* x, const int32_t* offsets, const uint64_t* grads, int64_t E,
                                        int64_t N, int64_t C);
// The absorbed MLA attention of one query per row: q [B, H, D] (float), cache [B, capacity, D] (float, or bf16 != 0:
// bf16) whose rows are each head's key and whose first Dv columns are its value; row b sees keys
// [kv_start[b], kv_end[b]); out [B, H, Dv] = softmax(scale * q k^T) v. Dv <= 1024.
R1_API void r1_cuda_mla_decode_attention(const float* q, const void* cache, float* out, const int32_t* kv_start, const int32_t* kv_end,
                                         int64_t B, int64_t H, int64_t D, int64_t Dv, int64_t capacity, float scale, int bf16);

// ---- gradient-norm clipping without a host round trip ----
// acc[0] += sum of x[i]^2 over i < n (summed in double, added to the float32 acc[0]), queued like a kernel:
// r1_sum_squares's sum without waiting for the stream.
R1_API void r1_cuda_sum_squares_add(const float* x, int64_t n, float* acc);

// ---- a timeline of one stretch of work, for profiles (bench/cuda_models.ts --profile) ----
// While on, r1_cuda_profile_mark(tag) records a CUDA event tagged `tag` on the stream: the time from one mark to
// the next is spent in what the earlier mark names. Callers mark with tags >= 0 before each kernel and
// R1_PROFILE_BETWEEN after it; the library marks R1_PROFILE_ROUNDING around the bf16 rounding of GEMM and
// attention operands and returns to the tag it interrupted. Marks past `capacity` are dropped (counted).
// stop waits for the stream and writes, for marks i < count - 1, tags[i] and ms[i] (milliseconds to mark i + 1);
// it returns count (the marks kept) and turns profiling off. Not for use while recording a CUDA graph.
#define R1_PROFILE_BETWEEN (-1)
#define R1_PROFILE_ROUNDING (-2)
R1_API int r1_cuda_profile_start(int capacity);
R1_API void r1_cuda_profile_mark(int tag);
R1_API int r1_cuda_profile_stop(int32_t* tags, float* ms, int capacity);

#ifdef __cplusplus
}
#endif
#endif
