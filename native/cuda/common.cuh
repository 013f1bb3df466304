// Shared by every file of the CUDA backend: the process's one stream, error recording, launch sizes, block
// reductions and the library's persistent scratch buffers. Kernels follow r1.h's contracts exactly; the CPU
// core (native/cpu, same file names) and src/tensor/backends/reference.ts define them.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "r1.h"
#include "r1_cuda.h"

namespace r1cuda {

// The stream every kernel, copy and GEMM is queued on (initialising device 0 on first use).
cudaStream_t stream();

// Records the first failure not yet read by r1_cuda_last_error ("<where>: <CUDA message>").
void record_error(const char* where, cudaError_t err);
void record_message(const char* where, const char* message);

// After a launch: a bad configuration (too many threads, too much shared memory) is reported here.
inline void check_launch(const char* kernel) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) record_error(kernel, err);
}

// Grids for grid-stride loops: enough blocks to fill the GPU several times over, never more than needed.
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65536) blocks = 65536;
  return static_cast<unsigned>(blocks);
}

// A persistent device buffer of at least `bytes`, one per slot, for work space inside one call (bf16 operands,
// partial sums). It is not taken from the caching allocator: a CUDA graph that captured a call keeps using the
// same buffer at replay, so it must never be handed to anything else. Growing retires the old buffer.
enum ScratchSlot { kScratchGemmA = 0, kScratchGemmB, kScratchPartials, kScratchAttention, kScratchAttentionBf16,
                  kScratchAttentionParts, kScratchSample, kScratchSkinnyGemm, kScratchGemmOut, kScratchSlots };
void* scratch(ScratchSlot slot, size_t bytes);

// bf16 shadows of the weights registered with r1_cuda_register_weight (bf16_weights.cu).
// weight_shadow: a current bf16 copy of [p, p + count) when that range lies inside one registered weight (a
// stale copy is refreshed first, on the stream), else nullptr. weight_shadow_for_update: where r1_adamw writes
// the bf16 copy of [p, p + n) beside p, or nullptr. weights_written: a write the library made to device memory
// (upload, copy, fill) or a kernel made to device memory in place (r1_binary into its input, r1_matmul's float32
// output), which makes the copies it overlaps stale, drops a copy kept inside the floats (r1_cuda_bf16_only_output),
// and gives a bf16-only range it covers whole its floats back. weights_freed: a freed block, whose registrations
// are dropped.
const __nv_bfloat16* weight_shadow(const float* p, int64_t count);
__nv_bfloat16* weight_shadow_for_update(const float* p, int64_t n);
void weights_written(const void* p, int64_t bytes);
void weights_freed(const void* block, int64_t bytes);

// Zeroed counters (at least `count`) for kernels whose last block to arrive finishes the work (a split GEMM's sums,
// a split attention's merge): each kernel leaves the counters it used at zero, so all share one buffer (kernels
// run one after another; an overlapped one waits before touching memory). *zeroed_now: the buffer was just made
// and its zeroing queued (a memset, not a kernel, is then the previous work on the stream).
unsigned* arrival_counters(int64_t count, bool* zeroed_now);

// Where a producer kernel writes the bf16 copy of its float32 output y [0, n) beside y itself, so that the GEMMs
// reading y find a current copy instead of rounding it (r1_cuda.h, "bf16 copies written by their producers"):
// in bf16 precision, outside graph capture, for a y that starts a block of the caching allocator. The copy is
// marked current at once (the kernel writing it is queued before any reader). nullptr: write y alone.
// *copy_only (a producer that can skip y passes it): y was promised to its copy alone (r1_cuda_bf16_only_output),
// so write the copy and not y. A producer passing nullptr always writes y.
__nv_bfloat16* output_copy(const float* y, int64_t n, bool* copy_only);
// Writes back as floats every bf16-only output overlapping [p, p + bytes) (r1_cuda_widen_bf16_only), before a
// kernel that reads the floats: r1_matmul calls it for an operand it rounds itself.
void widen_pending(const void* p, int64_t bytes);
// The current bf16 copy of [p, p + count) if one is registered and current, else nullptr (never rounds).
const __nv_bfloat16* current_copy(const float* p, int64_t count);
// The bf16 copy holding the values of [p, p + count) when that range lies inside a bf16-only buffer whose floats
// are pending (r1_cuda_bf16_only_output), else nullptr: for kernels that read such an input as bf16.
const __nv_bfloat16* pending_copy(const float* p, int64_t count);
// Where r1_matmul writes its output y [0, n) as bf16 alone: y's copy when y was promised to it whole
// (r1_cuda_bf16_only_output), marked current; else nullptr (write the floats).
__nv_bfloat16* bf16_only_target(const float* y, int64_t n);

// Whether p is the start of a live block of the caching allocator of at least `bytes` (runtime.cu).
bool allocation_starts_at(const void* p, int64_t bytes);

// The profile timeline (runtime.cu, r1_cuda_profile_*): profile_enter marks `tag` when profiling is on and
// returns the tag it interrupts, for profile_leave to mark again after the work.
int profile_enter(int tag);
void profile_leave(int previous);

// r1_cuda_set_matmul_precision's code (gemm.cu): 0 f32, 1 tf32, 2 bf16.
int matmul_precision();

// y[m, n] = x[m, k] w[n, k]^T (+ bias) for few rows on tensor cores, weights streamed once over the whole GPU
// (skinny_gemm.cu): false, having queued nothing, when the shape is not one it covers (m above the threshold of
// r1_cuda_set_skinny_gemm_rows, n not a multiple of 16, k not a multiple of 32, operands not 16-byte aligned).
bool skinny_linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m, int64_t n,
                   int64_t k);

// The same for gate and up, y bf16 [m, n / 2] = swiglu of the products, w's rows in groups of 16 (8 gate rows,
// then their 8 up rows): r1_cuda_linear_swiglu's fused epilogue. False, having queued nothing, as skinny_linear.
bool skinny_linear_swiglu(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int64_t m, int64_t n,
                          int64_t k);
// The decode step's q|k|v GEMM with RoPE and the cache writes as its epilogue (r1_cuda_linear_rope_kv): each head's
// D weight rows permuted into tiles of 8 rotation pairs (tile u: the first elements of pairs 8u..8u+7, then their
// second elements; RoPE over the whole head). False, having queued nothing, as skinny_linear (or D not a multiple
// of 16).
struct RopeKvArgs {
  const int32_t* positions;  // [m]
  const float* cos;          // [positions, D / 2]
  const float* sin;
  const int32_t* column;     // [m]: the cache column written (out of range: skipped)
  float* q;                  // [m, Hq, D]
  void* k_cache;             // [m, capacity, Hkv, D], float or (cache_bf16) bf16
  void* v_cache;
  int Hq, Hkv, D, interleaved, cache_bf16;
  int64_t capacity;
};
bool skinny_linear_rope_kv(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, int64_t m, int64_t n, int64_t k,
                           const RopeKvArgs& rope);
// r1_cuda_rope_write_kv over a GEMM's output in that permuted layout (decode.cu).
void rope_write_kv_permuted(const float* qkv, const RopeKvArgs& rope, int64_t B);

// y[r, i] = bf16(silu(gate) * up) over a GEMM's output [rows, 2 inter] in that grouped layout (decode.cu).
void swiglu_grouped_rows(const float* gate_up, __nv_bfloat16* y, int64_t rows, int64_t inter);

// Queues dst[b * count + i] = bf16(src[b * stride + i]) for b < batch, i < count (round to nearest even; gemm.cu).
void round_to_bf16(const float* src, __nv_bfloat16* dst, int64_t batch, int64_t count, int64_t stride);

// The tensor-core attention of attention_bf16.cu, with r1_attention's and r1_attention_backward's arguments
// (delta: FlashAttention-2's D_i = dO_i . O_i, [B, Hq, Tq]). Each returns false, having queued nothing, when it
// does not cover the call (precision not bf16, D != Dv, D not 64 or 128, misaligned buffers): the caller then
// runs the float32 kernel.
bool attention_forward_bf16(const float* q, const float* k, const float* v, float* out, float* lse,
                            const int32_t* kv_start, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv,
                            int64_t D, int64_t Dv, int64_t kv_batch_stride, int64_t v_batch_stride, float scale,
                            int causal);
bool attention_backward_bf16(const float* q, const float* k, const float* v, const float* lse, const float* dout,
                             const float* delta, float* dq, float* dk, float* dv, const int32_t* kv_start, int64_t B,
                             int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, float scale,
                             int causal);

// ---- programmatic dependent launch (sm_90) inside CUDA graphs ----
// While a graph is recorded (r1_cuda_graph_begin .. _end) on a device of compute capability 9 or more, the kernels
// launched through launch_kernel may start before the kernel queued before them has ended, overlapping their
// launch with its tail: a decode step's graph is ~250 kernels of a few microseconds each. Such a kernel calls
// wait_for_previous_grid() before it reads or writes any memory that earlier work touches (only an L2 prefetch
// may come before: L2 is coherent), and may call allow_next_grid() to let the next one start early in turn.
// R1_CUDA_PDL=0 in the environment turns it off.
__device__ inline void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ inline void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
// Whether launch_kernel lets kernels overlap now (recording a graph, sm_90 or later, not turned off).
bool overlapped_launches();
// kernel<<<grid, block, shared, stream()>>>(args...), overlapping the previous kernel when overlapped_launches()
// and `overlap` (false where the previous work on the stream is not a kernel, e.g. a memset just queued).
template <typename... Params, typename... Args>
inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, Args... args) {
  if (!overlapped_launches()) {
    kernel<<<grid, block, shared, stream()>>>(args...);
    return;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream();
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  cudaError_t err = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  if (err != cudaSuccess) record_error("cudaLaunchKernelEx", err);
}

// An input of an elementwise or row kernel that may be a bf16-only buffer (pending_copy): h, when not null, holds
// the values as bf16 and f's floats are not written. input_of looks the range up on the host; a range that only
// partly lies in a bf16-only buffer has that buffer's floats written back first, so f is always readable.
struct Input {
  const float* f;
  const __nv_bfloat16* h;
};
inline Input input_of(const float* p, int64_t count) {
  if (count <= 0) return Input{p, nullptr};
  const __nv_bfloat16* h = pending_copy(p, count);
  if (!h) widen_pending(p, count * static_cast<int64_t>(sizeof(float)));
  return Input{p, h};
}
__device__ inline float read(Input x, int64_t i) { return x.h ? __bfloat162float(x.h[i]) : x.f[i]; }
// Four elements from index 4 * i4 (16-byte aligned floats, 8-byte aligned bf16).
__device__ inline float4 read4(Input x, int64_t i4) {
  if (!x.h) return reinterpret_cast<const float4*>(x.f)[i4];
  const uint2 w = reinterpret_cast<const uint2*>(x.h)[i4];
  return make_float4(__uint_as_float(w.x << 16), __uint_as_float(w.x & 0xffff0000u), __uint_as_float(w.y << 16),
                     __uint_as_float(w.y & 0xffff0000u));
}

// A float stored into a float or a bf16 element (rounded to nearest even): kernels that write either format.
__device__ inline void store_as(float* p, float x) { *p = x; }
__device__ inline void store_as(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

// Sum / max over a block (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
template <class T, class Op>
__device__ inline T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
template <class T, class Op>
__device__ inline T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  __shared__ T total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : identity;
    w = warp_reduce(w, op);
    if (lane == 0) total = w;
  }
  __syncthreads();
  return total;
}
struct Add {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// The online softmax state (running max m, sum of exp(x - m)) and its merge, used by the softmax family,
// cross-entropy and attention: merging is exact in any order, so rows can be split over threads freely.
struct MaxSum {
  float max;
  float sum;
};
__device__ inline MaxSum merge(MaxSum a, MaxSum b) {
  float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return {m, 0.0f};
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}
__device__ inline MaxSum block_max_sum(MaxSum v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    MaxSum o{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = merge(v, o);
  }
  __shared__ MaxSum partial[32];
  __shared__ MaxSum total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    MaxSum w = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : MaxSum{-INFINITY, 0.0f};
    for (int offset = 16; offset > 0; offset >>= 1) {
      MaxSum o{__shfl_xor_sync(0xffffffffu, w.max, offset), __shfl_xor_sync(0xffffffffu, w.sum, offset)};
      w = merge(w, o);
    }
    if (lane == 0) total = w;
  }
  __syncthreads();
  return total;
}

}  // namespace r1cuda
