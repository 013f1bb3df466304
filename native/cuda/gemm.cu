// r1_matmul through cuBLASLt, loaded at run time with dlopen: CI compiles this file with the CUDA runtime
// headers only (no cuBLAS headers), so the few cuBLASLt types, functions and enum values used here are declared
// below with the values of the public cuBLASLt API (cublasLt.h, CUDA 12 and 13).
//
// Row-major to column-major: a row-major m x n matrix is the column-major n x m matrix of its transpose, so
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: cuBLASLt's "A" is our B, its "B" is
// our A, each read in place with the transpose flag it was given. Batches map to strided batches (stride 0
// broadcasts), and a weight shared by a batch of contiguous activations folds the batch into m (one large GEMM).
//
// Precision: float32 by default (CUBLAS_COMPUTE_32F: exact IEEE products, no TF32), TF32 tensor cores, or bf16:
// both operands rounded to bfloat16 into scratch buffers, then a bf16 x bf16 -> fp32 GEMM with fp32 accumulation;
// an operand inside a weight registered with r1_cuda_register_weight is read from its bf16 copy instead
// (bf16_weights.cu), rounded once per optimizer step by r1_adamw.
#include <dlfcn.h>
#include <cuda_bf16.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common.cuh"

namespace {

// ---- the cuBLASLt API, as declared in cublasLt.h ----
typedef int cublasStatus_t;  // CUBLAS_STATUS_SUCCESS = 0
typedef void* cublasLtHandle_t;
typedef void* cublasLtMatmulDesc_t;
typedef void* cublasLtMatrixLayout_t;
typedef void* cublasLtMatmulPreference_t;
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};
enum : int { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };          // cublasComputeType_t
enum : int { R_32F = 0, R_16BF = 14 };                                                // cudaDataType_t
enum : int { DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8,
             DESC_BIAS_DATA_TYPE = 26 };                                              // cublasLtMatmulDescAttributes_t
enum : int { EPILOGUE_BIAS = 4 };                                                     // cublasLtEpilogue_t
enum : int { OP_N = 0, OP_T = 1 };                                                    // cublasOperation_t
enum : int { LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6 };               // cublasLtMatrixLayoutAttribute_t
enum : int { PREF_MAX_WORKSPACE_BYTES = 1, PREF_MIN_ALIGNMENT_A_BYTES = 5, PREF_MIN_ALIGNMENT_B_BYTES = 6,
             PREF_MIN_ALIGNMENT_C_BYTES = 7, PREF_MIN_ALIGNMENT_D_BYTES = 8 };       // cublasLtMatmulPreferenceAttributes_t

struct CublasLt {
  cublasStatus_t (*create)(cublasLtHandle_t*);
  cublasStatus_t (*desc_create)(cublasLtMatmulDesc_t*, int compute_type, int scale_type);
  cublasStatus_t (*desc_set)(cublasLtMatmulDesc_t, int attribute, const void* value, size_t size);
  cublasStatus_t (*layout_create)(cublasLtMatrixLayout_t*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  cublasStatus_t (*layout_set)(cublasLtMatrixLayout_t, int attribute, const void* value, size_t size);
  cublasStatus_t (*pref_create)(cublasLtMatmulPreference_t*);
  cublasStatus_t (*pref_destroy)(cublasLtMatmulPreference_t);
  cublasStatus_t (*pref_set)(cublasLtMatmulPreference_t, int attribute, const void* value, size_t size);
  cublasStatus_t (*heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int requested,
                              cublasLtMatmulHeuristicResult_t* results, int* returned);
  cublasStatus_t (*matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void* alpha, const void* a,
                           cublasLtMatrixLayout_t, const void* b, cublasLtMatrixLayout_t, const void* beta,
                           const void* c, cublasLtMatrixLayout_t, void* d, cublasLtMatrixLayout_t,
                           const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes, cudaStream_t);
};

CublasLt lt;
cublasLtHandle_t handle = nullptr;
void* workspace = nullptr;
constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what NVIDIA recommends for Hopper
int precision = 0;                                    // r1_cuda_set_matmul_precision's code

// One planned GEMM shape: descriptors and the algorithm the heuristic chose, reused by every later call of the
// same shape (the heuristic query costs tens of microseconds; training repeats a few dozen shapes).
struct PlanKey {
  int64_t m, n, k, batch, stride_a, stride_b, stride_c;
  int trans_a, trans_b, precision, align_a, align_b, align_c;
  int bias;      // the epilogue adds a bias per output column (cuBLASLt's rows of D: r1_cuda_linear): 0 none,
                 // 1 float32, 2 bf16 (a registered bias's copy)
  int out_bf16;  // D is written as bf16 (a bf16-only output); also keeps the key free of padding bytes (it is
                 // compared and hashed bytewise)
  bool operator==(const PlanKey& o) const { return std::memcmp(this, &o, sizeof(PlanKey)) == 0; }
};
struct PlanKeyHash {
  size_t operator()(const PlanKey& key) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&key);
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(PlanKey); ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }
};
struct Plan {
  bool usable = false;  // false: no cuBLASLt algorithm for this shape; the fallback kernel runs it
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo;
};
std::mutex plans_mutex;
std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;

template <class T>
bool load_symbol(void* lib, const char* name, T* fn, std::string* error) {
  *fn = reinterpret_cast<T>(dlsym(lib, name));
  if (!*fn) *error = std::string("cuBLASLt lacks ") + name;
  return *fn != nullptr;
}

// The largest power of two (at most 256) dividing the address and, over a batch, the batch stride in bytes:
// cuBLASLt assumes 256-byte alignment unless told otherwise, and tensor views start anywhere.
int alignment(const void* ptr, int64_t stride_bytes) {
  uint64_t bits = reinterpret_cast<uint64_t>(ptr) | static_cast<uint64_t>(stride_bytes) | 256;
  return static_cast<int>(bits & (~bits + 1));
}

Plan make_plan(const PlanKey& key) {
  Plan plan;
  const bool bf16 = key.precision == 2;
  const int compute = key.precision == 1 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const int operand_type = bf16 ? R_16BF : R_32F;
  if (lt.desc_create(&plan.desc, compute, R_32F) != 0) return plan;
  // cuBLASLt's A is our B and its B is our A (see the top of this file).
  int op_a = key.trans_b ? OP_T : OP_N, op_b = key.trans_a ? OP_T : OP_N;
  lt.desc_set(plan.desc, DESC_TRANSA, &op_a, sizeof op_a);
  lt.desc_set(plan.desc, DESC_TRANSB, &op_b, sizeof op_b);
  if (key.bias) {
    // The bias vector has one float32 per row of cuBLASLt's D, which are our output columns; its pointer is set
    // before each call. A bias type left unset is D's (float32).
    int epilogue = EPILOGUE_BIAS;
    lt.desc_set(plan.desc, DESC_EPILOGUE, &epilogue, sizeof epilogue);
    // The bias's type, where it is not D's.
    int bias_type = key.bias == 2 ? R_16BF : R_32F;
    if (key.out_bf16 || key.bias == 2) lt.desc_set(plan.desc, DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type);
  }
  const int64_t m = key.m, n = key.n, k = key.k;
  bool ok = lt.layout_create(&plan.a, operand_type, key.trans_b ? k : n, key.trans_b ? n : k, key.trans_b ? k : n) == 0 &&
            lt.layout_create(&plan.b, operand_type, key.trans_a ? m : k, key.trans_a ? k : m, key.trans_a ? m : k) == 0 &&
            lt.layout_create(&plan.c, key.out_bf16 ? R_16BF : R_32F, n, m, n) == 0;
  if (!ok) return plan;
  if (key.batch > 1) {
    int32_t count = static_cast<int32_t>(key.batch);
    for (auto [layout, stride] : {std::pair{plan.a, key.stride_b}, std::pair{plan.b, key.stride_a}, std::pair{plan.c, key.stride_c}}) {
      lt.layout_set(layout, LAYOUT_BATCH_COUNT, &count, sizeof count);
      lt.layout_set(layout, LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
    }
  }
  cublasLtMatmulPreference_t pref = nullptr;
  if (lt.pref_create(&pref) != 0) return plan;
  uint64_t workspace_bytes = kWorkspaceBytes;
  uint32_t align_a = key.align_b, align_b = key.align_a, align_c = key.align_c;
  lt.pref_set(pref, PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof workspace_bytes);
  lt.pref_set(pref, PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a);
  lt.pref_set(pref, PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b);
  lt.pref_set(pref, PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c);
  lt.pref_set(pref, PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c);
  cublasLtMatmulHeuristicResult_t result;
  int returned = 0;
  if (lt.heuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &returned) == 0 && returned > 0) {
    plan.algo = result.algo;
    plan.usable = true;
  }
  lt.pref_destroy(pref);
  return plan;
}

// Rounds `batch` row-major matrices of `count` floats (batch b at src + b * stride) to packed bf16.
__global__ void to_bf16_kernel(const float* src, __nv_bfloat16* dst, int64_t batch, int64_t count, int64_t stride) {
  r1cuda::wait_for_previous_grid();
  r1cuda::allow_next_grid();
  int64_t total = batch * count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / count, r = i - b * count;
    dst[i] = __float2bfloat16_rn(src[b * stride + r]);
  }
}

// The same for matrices whose count and stride are multiples of 4 at a 16-byte aligned address: one float4 in,
// 8 bytes out per thread and step (the conversion is bound by reading the float32 operand).
__global__ void to_bf16_vector_kernel(const float4* src, uint2* dst, int64_t batch, int64_t count4, int64_t stride4) {
  r1cuda::wait_for_previous_grid();
  r1cuda::allow_next_grid();
  int64_t total = batch * count4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / count4, r = i - b * count4;
    const float4 v = src[b * stride4 + r];
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    dst[i] = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
  }
}

// Rounds an operand into its scratch slot; nullptr when the slot cannot grow.
const __nv_bfloat16* to_bf16(r1cuda::ScratchSlot slot, const float* src, int64_t batch, int64_t count, int64_t stride) {
  auto* dst = static_cast<__nv_bfloat16*>(r1cuda::scratch(slot, batch * count * sizeof(__nv_bfloat16)));
  r1cuda::widen_pending(src, ((batch - 1) * stride + count) * static_cast<int64_t>(sizeof(float)));
  if (dst) r1cuda::round_to_bf16(src, dst, batch, count, stride);
  return dst;
}

// C = beta C when k = 0 (an empty sum): zero the matrices for beta 0.
__global__ void zero_matrices_kernel(float* c, int64_t batch, int64_t count, int64_t stride) {
  int64_t total = batch * count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / count, r = i - b * count;
    c[b * stride + r] = 0.0f;
  }
}

// The fallback for shapes cuBLASLt declines: 16 x 16 output tiles through shared memory, fp32 throughout.
template <class T>
__device__ inline float load_float(const T* p) { return static_cast<float>(*p); }
template <>
__device__ inline float load_float(const __nv_bfloat16* p) { return __bfloat162float(*p); }

template <class T, class Out>
__global__ void tiled_gemm_kernel(const T* a, const T* b, Out* c, int64_t m, int64_t n, int64_t k, int trans_a,
                                  int trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float beta,
                                  const float* bias) {
  __shared__ float as[16][17], bs[16][17];
  const int64_t batch = blockIdx.z;
  a += batch * stride_a;
  b += batch * stride_b;
  c += batch * stride_c;
  const int64_t row = blockIdx.y * 16 + threadIdx.y, col = blockIdx.x * 16 + threadIdx.x;
  float sum = 0.0f;
  for (int64_t p0 = 0; p0 < k; p0 += 16) {
    int64_t ra = blockIdx.y * 16 + threadIdx.y, pa = p0 + threadIdx.x;  // A element (ra, pa)
    as[threadIdx.y][threadIdx.x] = ra < m && pa < k ? load_float(a + (trans_a ? pa * m + ra : ra * k + pa)) : 0.0f;
    int64_t pb = p0 + threadIdx.y, cb = blockIdx.x * 16 + threadIdx.x;  // B element (pb, cb)
    bs[threadIdx.y][threadIdx.x] = pb < k && cb < n ? load_float(b + (trans_b ? cb * k + pb : pb * n + cb)) : 0.0f;
    __syncthreads();
    for (int p = 0; p < 16; ++p) sum = fmaf(as[threadIdx.y][p], bs[p][threadIdx.x], sum);
    __syncthreads();
  }
  if (bias && col < n) sum += bias[col];
  if (row < m && col < n) r1cuda::store_as(c + row * n + col, beta != 0.0f ? sum + load_float(c + row * n + col) : sum);
}


// C = op(A) op(B) (+ bias per column of C) for operands already in the precision's element type (bf16 in bf16
// precision): the planned cuBLASLt call, or the tiled kernel for shapes cuBLASLt declines. A bias (float32, or
// bf16 with bias_bf16) needs batch 1 and beta 0. c16 (bf16 precision, beta 0): C is written there as bf16 instead
// of into c. With fallback false, returns false having queued nothing where cuBLASLt has no algorithm.
bool run_gemm(const void* a_op, const void* b_op, float* c, __nv_bfloat16* c16, const void* bias, int64_t batch,
              int64_t m, int64_t n, int64_t k, int trans_a, int trans_b, int64_t sa, int64_t sb, int64_t stride_c,
              float beta, const char* caller, bool bias_bf16 = false, bool fallback = true) {
  cudaStream_t s = r1cuda::stream();
  const int64_t element = precision == 2 ? 2 : 4;
  void* d = c16 ? static_cast<void*>(c16) : static_cast<void*>(c);
  PlanKey key{m, n, k, batch, sa, sb, stride_c, trans_a, trans_b, precision,
              alignment(a_op, sa * element), alignment(b_op, sb * element), alignment(d, stride_c * (c16 ? 2 : 4)),
              bias ? (bias_bf16 ? 2 : 1) : 0, c16 != nullptr};
  Plan* plan;
  {
    std::lock_guard<std::mutex> lock(plans_mutex);
    auto it = plans.find(key);
    if (it == plans.end()) it = plans.emplace(key, make_plan(key)).first;
    plan = &it->second;
  }
  if (plan->usable) {
    const float alpha = 1.0f;
    if (bias) lt.desc_set(plan->desc, DESC_BIAS_POINTER, &bias, sizeof bias);
    // cuBLASLt's A is our B, its B our A.
    int status = lt.matmul(handle, plan->desc, &alpha, b_op, plan->a, a_op, plan->b, &beta, d, plan->c, d, plan->c,
                           &plan->algo, workspace, kWorkspaceBytes, s);
    if (status == 0) return true;
    std::string message = "cublasLtMatmul failed with status " + std::to_string(status);
    r1cuda::record_message(caller, message.c_str());
    return true;
  }
  if (!fallback) return false;
  const float* bias32 = static_cast<const float*>(bias);  // the fallback's callers pass float32 biases
  dim3 grid(static_cast<unsigned>((n + 15) / 16), static_cast<unsigned>((m + 15) / 16), 1);
  for (int64_t b0 = 0; b0 < batch; b0 += 65535) {
    grid.z = static_cast<unsigned>(batch - b0 < 65535 ? batch - b0 : 65535);
    if (precision == 2) {
      auto* a16 = static_cast<const __nv_bfloat16*>(a_op) + b0 * sa;
      auto* b16 = static_cast<const __nv_bfloat16*>(b_op) + b0 * sb;
      if (c16) {
        tiled_gemm_kernel<<<grid, dim3(16, 16), 0, s>>>(a16, b16, c16 + b0 * stride_c, m, n, k, trans_a, trans_b, sa,
                                                        sb, stride_c, beta, bias32);
      } else {
        tiled_gemm_kernel<<<grid, dim3(16, 16), 0, s>>>(a16, b16, c + b0 * stride_c, m, n, k, trans_a, trans_b, sa, sb,
                                                        stride_c, beta, bias32);
      }
    } else {
      auto* a32 = static_cast<const float*>(a_op) + b0 * sa;
      auto* b32 = static_cast<const float*>(b_op) + b0 * sb;
      tiled_gemm_kernel<<<grid, dim3(16, 16), 0, s>>>(a32, b32, c + b0 * stride_c, m, n, k, trans_a, trans_b, sa, sb,
                                                      stride_c, beta, bias32);
    }
  }
  r1cuda::check_launch(caller);
  return true;
}

}  // namespace

namespace r1cuda {

bool gemm_init(std::string* error) {
  void* lib = nullptr;
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) {
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  }
  if (!lib) {
    *error = "cannot load cuBLASLt (tried libcublasLt.so.13, .so.12, .so): install the CUDA toolkit's cuBLAS or add "
             "its lib64 folder to LD_LIBRARY_PATH";
    return false;
  }
  bool ok = load_symbol(lib, "cublasLtCreate", &lt.create, error) &&
            load_symbol(lib, "cublasLtMatmulDescCreate", &lt.desc_create, error) &&
            load_symbol(lib, "cublasLtMatmulDescSetAttribute", &lt.desc_set, error) &&
            load_symbol(lib, "cublasLtMatrixLayoutCreate", &lt.layout_create, error) &&
            load_symbol(lib, "cublasLtMatrixLayoutSetAttribute", &lt.layout_set, error) &&
            load_symbol(lib, "cublasLtMatmulPreferenceCreate", &lt.pref_create, error) &&
            load_symbol(lib, "cublasLtMatmulPreferenceDestroy", &lt.pref_destroy, error) &&
            load_symbol(lib, "cublasLtMatmulPreferenceSetAttribute", &lt.pref_set, error) &&
            load_symbol(lib, "cublasLtMatmulAlgoGetHeuristic", &lt.heuristic, error) &&
            load_symbol(lib, "cublasLtMatmul", &lt.matmul, error);
  if (!ok) return false;
  int status = lt.create(&handle);
  if (status != 0) {
    *error = "cublasLtCreate failed with status " + std::to_string(status);
    return false;
  }
  cudaError_t err = cudaMalloc(&workspace, kWorkspaceBytes);
  if (err != cudaSuccess) {
    *error = std::string("cannot allocate the cuBLASLt workspace: ") + cudaGetErrorString(err);
    return false;
  }
  return true;
}

int matmul_precision() { return precision; }

void round_to_bf16(const float* src, __nv_bfloat16* dst, int64_t batch, int64_t count, int64_t stride) {
  if (batch <= 0 || count <= 0) return;
  const int interrupted = profile_enter(R1_PROFILE_ROUNDING);
  if (count % 4 == 0 && stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(dst) % 8 == 0) {
    launch_kernel(to_bf16_vector_kernel, grid_for(batch * count / 4), kThreads, 0, reinterpret_cast<const float4*>(src),
                  reinterpret_cast<uint2*>(dst), batch, count / 4, stride / 4);
  } else {
    launch_kernel(to_bf16_kernel, grid_for(batch * count), kThreads, 0, src, dst, batch, count, stride);
  }
  check_launch("bf16 rounding");
  profile_leave(interrupted);
}

}  // namespace r1cuda

using namespace r1cuda;

extern "C" {

R1_API int r1_cuda_set_matmul_precision(int p) {
  if (p < 0 || p > 2) {
    record_message("r1_cuda_set_matmul_precision", "precision must be 0 (f32), 1 (tf32) or 2 (bf16)");
    return 1;
  }
  precision = p;
  return 0;
}

R1_API void r1_matmul(const float* a, const float* b, float* c, int64_t batch, int64_t m, int64_t n, int64_t k,
                      int trans_a, int trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float beta) {
  cudaStream_t s = stream();
  if (!s || batch <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == 0.0f) zero_matrices_kernel<<<grid_for(batch * m * n), kThreads, 0, s>>>(c, batch, m * n, stride_c);
    else widen_pending(c, ((batch - 1) * stride_c + m * n) * static_cast<int64_t>(sizeof(float)));
    check_launch("r1_matmul");
    weights_written(c, ((batch - 1) * stride_c + m * n) * static_cast<int64_t>(sizeof(float)));
    return;
  }
  trans_a = trans_a != 0;
  trans_b = trans_b != 0;
  // A weight shared by a batch of contiguous row-major activations: one GEMM with batch * m rows.
  if (batch > 1 && stride_b == 0 && !trans_a && stride_a == m * k && stride_c == m * n) {
    m *= batch;
    batch = 1;
  }
  if (batch == 1) stride_a = stride_b = stride_c = 0;

  const void* a_op = a;
  const void* b_op = b;
  __nv_bfloat16* c16 = nullptr;
  int64_t sa = stride_a, sb = stride_b;
  if (precision == 2) {
    const int64_t batch_a = stride_a == 0 ? 1 : batch, batch_b = stride_b == 0 ? 1 : batch;
    // A registered weight (one matrix, not a batch of them) is read from its bf16 copy; others are rounded here.
    const __nv_bfloat16* a16 = batch_a == 1 ? weight_shadow(a, m * k) : nullptr;
    const __nv_bfloat16* b16 = batch_b == 1 ? weight_shadow(b, k * n) : nullptr;
    if (!a16) a16 = to_bf16(kScratchGemmA, a, batch_a, m * k, stride_a);
    if (!b16) b16 = to_bf16(kScratchGemmB, b, batch_b, k * n, stride_b);
    if (!a16 || !b16) return;
    a_op = a16;
    b_op = b16;
    sa = stride_a == 0 ? 0 : m * k;
    sb = stride_b == 0 ? 0 : k * n;
    // An output promised to its bf16 copy alone (ops.matmul: a product with a weight) is written there as bf16.
    if (beta == 0.0f && (batch == 1 || stride_c == m * n)) c16 = bf16_only_target(c, batch * m * n);
  } else {
    // Float operands: a bf16-only output among them is written back as floats first.
    widen_pending(a, ((batch - 1) * stride_a + m * k) * static_cast<int64_t>(sizeof(float)));
    widen_pending(b, ((batch - 1) * stride_b + k * n) * static_cast<int64_t>(sizeof(float)));
  }
  const int64_t c_bytes = ((batch - 1) * stride_c + m * n) * static_cast<int64_t>(sizeof(float));
  if (!c16 && beta != 0.0f) widen_pending(c, c_bytes);
  run_gemm(a_op, b_op, c, c16, nullptr, batch, m, n, k, trans_a, trans_b, sa, sb, stride_c, beta, "r1_matmul");
  if (!c16) weights_written(c, c_bytes);
}

// y[m, n] = x[m, k] w[n, k]^T (+ bias[n]) with the bias added in the GEMM's epilogue: the decode step's
// projections (src/models/dense-decode.ts). In bf16 precision an operand given as bf16 (x_bf16, w_bf16: packed
// two to a float32 word, as ops.packBf16 makes them) is read as it is, a float32 one from its registered bf16
// copy or rounded as r1_matmul rounds it; in float32 or tf32 precision both must be float32.
R1_API void r1_cuda_linear(const void* x, int x_bf16, const void* w, int w_bf16, const float* bias, float* y, int64_t m,
                           int64_t n, int64_t k) {
  if (!stream() || m <= 0 || n <= 0 || k <= 0) return;
  if (precision != 2 && (x_bf16 || w_bf16)) {
    record_message("r1_cuda_linear", "bf16 operands need bf16 matmul precision");
    return;
  }
  const void* x_op = x;
  const void* w_op = w;
  __nv_bfloat16* y16 = nullptr;
  if (precision == 2) {
    const auto* xf = static_cast<const float*>(x);
    const auto* wf = static_cast<const float*>(w);
    const __nv_bfloat16* x16 = x_bf16 ? static_cast<const __nv_bfloat16*>(x) : weight_shadow(xf, m * k);
    const __nv_bfloat16* w16 = w_bf16 ? static_cast<const __nv_bfloat16*>(w) : weight_shadow(wf, n * k);
    if (!x16) x16 = to_bf16(kScratchGemmA, xf, 1, m * k, 0);
    if (!w16) w16 = to_bf16(kScratchGemmB, wf, 1, n * k, 0);
    if (!x16 || !w16) return;
    // A bf16-only y (ops.linear in training: a projection with a bias) is written as bf16, the bias added first;
    // a float32 one by the skinny kernel where it covers the shape.
    y16 = bf16_only_target(y, m * n);
    if (!y16 && skinny_linear(x16, w16, bias, y, m, n, k)) return weights_written(y, m * n * static_cast<int64_t>(sizeof(float)));
    x_op = x16;
    w_op = w16;
  } else {
    widen_pending(x, m * k * static_cast<int64_t>(sizeof(float)));
    widen_pending(w, n * k * static_cast<int64_t>(sizeof(float)));
  }
  if (y16) {
    // bf16 D with a float32 bias, else with the bias's registered bf16 copy (as autocast adds it), where cuBLASLt
    // has an algorithm for either; else float32 y, which ends the promise.
    if (run_gemm(x_op, w_op, y, y16, bias, 1, m, n, k, 0, 1, 0, 0, 0, 0.0f, "r1_cuda_linear", false, false)) return;
    const __nv_bfloat16* bias16 = bias ? weight_shadow(bias, n) : nullptr;
    if (bias16 && run_gemm(x_op, w_op, y, y16, bias16, 1, m, n, k, 0, 1, 0, 0, 0, 0.0f, "r1_cuda_linear", true, false)) return;
  }
  run_gemm(x_op, w_op, y, nullptr, bias, 1, m, n, k, 0, 1, 0, 0, 0, 0.0f, "r1_cuda_linear");
  weights_written(y, m * n * static_cast<int64_t>(sizeof(float)));
}

// The decode step's q|k|v projection with RoPE and the cache writes (r1_cuda.h): on the skinny GEMM's epilogue,
// or cuBLASLt into scratch and the RoPE kernel reading that layout.
R1_API void r1_cuda_linear_rope_kv(const void* x, const void* w, const float* bias, const int32_t* positions,
                                   const float* cos, const float* sin, const int32_t* column, float* q, void* k_cache,
                                   void* v_cache, int64_t B, int64_t Hq, int64_t Hkv, int64_t D, int interleaved,
                                   int64_t capacity, int cache_bf16, int64_t k) {
  if (!stream() || B <= 0 || k <= 0) return;
  if (precision != 2 || D % 16 != 0) {
    record_message("r1_cuda_linear_rope_kv", "needs bf16 matmul precision and a head size that is a multiple of 16");
    return;
  }
  const auto* x16 = static_cast<const __nv_bfloat16*>(x);
  const auto* w16 = static_cast<const __nv_bfloat16*>(w);
  const RopeKvArgs rope{positions, cos, sin, column, q, k_cache, v_cache, int(Hq), int(Hkv), int(D), interleaved, cache_bf16, capacity};
  const int64_t n = (Hq + 2 * Hkv) * D;
  if (skinny_linear_rope_kv(x16, w16, bias, B, n, k, rope)) return;
  auto* qkv = static_cast<float*>(scratch(kScratchGemmOut, size_t(B * n) * sizeof(float)));
  if (!qkv) return;
  run_gemm(x16, w16, qkv, nullptr, bias, 1, B, n, k, 0, 1, 0, 0, 0, 0.0f, "r1_cuda_linear_rope_kv");
  rope_write_kv_permuted(qkv, rope, B);
}

// y[m, inter] (bf16) = silu(gate) * up of x[m, k] w[2 inter, k]^T, w's rows in groups of 16 (8 gate rows, then
// their 8 up rows), both operands bf16: on the skinny GEMM's epilogue, or cuBLASLt into scratch and a SwiGLU kernel.
R1_API void r1_cuda_linear_swiglu(const void* x, const void* w, void* y, int64_t m, int64_t inter, int64_t k) {
  if (!stream() || m <= 0 || inter <= 0 || k <= 0) return;
  if (precision != 2 || inter % 8 != 0) {
    record_message("r1_cuda_linear_swiglu", "needs bf16 matmul precision and an intermediate size that is a multiple of 8");
    return;
  }
  const auto* x16 = static_cast<const __nv_bfloat16*>(x);
  const auto* w16 = static_cast<const __nv_bfloat16*>(w);
  auto* y16 = static_cast<__nv_bfloat16*>(y);
  if (skinny_linear_swiglu(x16, w16, y16, m, 2 * inter, k)) return;
  auto* gate_up = static_cast<float*>(scratch(kScratchGemmOut, size_t(m * 2 * inter) * sizeof(float)));
  if (!gate_up) return;
  run_gemm(x16, w16, gate_up, nullptr, nullptr, 1, m, 2 * inter, k, 0, 1, 0, 0, 0, 0.0f, "r1_cuda_linear_swiglu");
  swiglu_grouped_rows(gate_up, y16, m, inter);
}

}  // extern "C"
