// Elementwise kernels: unary maps and their derivatives, strided binary ops with broadcasting, where, strided
// copy, and the fused SwiGLU activation. All are memory-bound: one pass, grid-stride loops, and the strided
// ones merge dimensions on the host first so that the common cases index one long contiguous run.
#include "common.cuh"

using namespace r1cuda;

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ inline float unary_forward(int op, float x) {
  switch (op) {
    case R1_NEG: return -x;
    case R1_EXP: return expf(x);
    case R1_LOG: return logf(x);
    case R1_SQRT: return sqrtf(x);
    case R1_RSQRT: return 1.0f / sqrtf(x);
    case R1_TANH: return tanhf(x);
    case R1_SIGMOID: return sigmoid(x);
    case R1_SILU: return x * sigmoid(x);
    // 0.5 (1 + tanh(u)) = sigmoid(2u): no cancellation where tanh(u) is near -1.
    case R1_GELU_TANH: return x * sigmoid(2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    case R1_RELU: return x > 0.0f ? x : 0.0f;
    case R1_ABS: return fabsf(x);
    case R1_RECIP: return 1.0f / x;
    case R1_SQUARE: return x * x;
    case R1_SIN: return sinf(x);
    case R1_COS: return cosf(x);
  }
  return NAN;
}

// f'(x) given x and y = f(x); at the kinks of relu and abs the derivative is 0, as in PyTorch.
__device__ inline float unary_derivative(int op, float x, float y) {
  switch (op) {
    case R1_NEG: return -1.0f;
    case R1_EXP: return y;
    case R1_LOG: return 1.0f / x;
    case R1_SQRT: return 0.5f / y;
    case R1_RSQRT: return -0.5f * y * y * y;
    case R1_TANH: return 1.0f - y * y;
    case R1_SIGMOID: return y * (1.0f - y);
    case R1_SILU: {
      float s = sigmoid(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case R1_GELU_TANH: {
      // y' = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2), t = tanh(u). Where |t| is near 1, 1 + t and 1 - t^2
      // cancel in float32, so they are formed as sigmoid(2u) and sech(u)^2 = 4 / (e^u + e^-u)^2 instead.
      float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
      float cosh2 = expf(u) + expf(-u);
      float sech2 = 4.0f / (cosh2 * cosh2);
      return sigmoid(2.0f * u) + 0.5f * x * sech2 * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
    }
    case R1_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case R1_ABS: return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f;
    case R1_RECIP: return -y * y;
    case R1_SQUARE: return 2.0f * x;
    case R1_SIN: return cosf(x);
    case R1_COS: return -sinf(x);
  }
  return NAN;
}

// max and min propagate NaN, like Math.max (the reference backend) and torch.maximum.
__device__ inline float binary_op(int op, float a, float b) {
  switch (op) {
    case R1_ADD: return a + b;
    case R1_SUB: return a - b;
    case R1_MUL: return a * b;
    case R1_DIV: return a / b;
    case R1_MAX: return (a > b || a != a) ? a : b;
    case R1_MIN: return (a < b || a != a) ? a : b;
    case R1_POW: return powf(a, b);
    case R1_EQ: return a == b ? 1.0f : 0.0f;
    case R1_NE: return a != b ? 1.0f : 0.0f;
    case R1_LT: return a < b ? 1.0f : 0.0f;
    case R1_LE: return a <= b ? 1.0f : 0.0f;
    case R1_GT: return a > b ? 1.0f : 0.0f;
    case R1_GE: return a >= b ? 1.0f : 0.0f;
  }
  return NAN;
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void unary_kernel(int op, const float* x, float* y, int64_t n) {
  GRID_STRIDE(i, n) y[i] = unary_forward(op, x[i]);
}

__global__ void unary_backward_kernel(int op, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  GRID_STRIDE(i, n) dx[i] = dy[i] * unary_derivative(op, x[i], y ? y[i] : 0.0f);
}

// ---- strided iteration shared by binary, where and copy ----
// N operands share one shape, each with its own strides, passed to the kernel by value. Dimensions of size 1
// are dropped and neighbours contiguous in every operand merged, as in native/cpu/elementwise.cpp.
template <int N>
struct Strided {
  int ndim;
  int64_t shape[8];
  int64_t strides[N][8];
  int64_t total;
  bool contiguous;  // one dimension, stride 1 in every operand: offsets are the linear index
};

template <int N>
Strided<N> make_strided(const int64_t* shape_in, int ndim_in, const int64_t* const* strides_in) {
  Strided<N> s{};
  s.total = 1;
  for (int d = 0; d < ndim_in; ++d) {
    s.total *= shape_in[d];
    if (shape_in[d] == 1) continue;
    if (s.ndim > 0) {
      bool mergeable = true;
      for (int o = 0; o < N; ++o) mergeable &= s.strides[o][s.ndim - 1] == strides_in[o][d] * shape_in[d];
      if (mergeable) {
        s.shape[s.ndim - 1] *= shape_in[d];
        for (int o = 0; o < N; ++o) s.strides[o][s.ndim - 1] = strides_in[o][d];
        continue;
      }
    }
    s.shape[s.ndim] = shape_in[d];
    for (int o = 0; o < N; ++o) s.strides[o][s.ndim] = strides_in[o][d];
    ++s.ndim;
  }
  if (s.ndim == 0) {
    s.shape[0] = 1;
    for (int o = 0; o < N; ++o) s.strides[o][0] = 0;
    s.ndim = 1;
  }
  s.contiguous = s.ndim == 1;
  for (int o = 0; o < N; ++o) s.contiguous &= s.strides[o][0] == 1;
  return s;
}

template <int N>
__device__ inline void offsets_of(const Strided<N>& s, int64_t linear, int64_t* offsets) {
  if (s.contiguous) {
    for (int o = 0; o < N; ++o) offsets[o] = linear;
    return;
  }
  for (int o = 0; o < N; ++o) offsets[o] = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    int64_t i = linear % s.shape[d];
    linear /= s.shape[d];
    for (int o = 0; o < N; ++o) offsets[o] += i * s.strides[o][d];
  }
}

// Operand order of Strided<3>: a, b, out.
__global__ void binary_kernel(int op, Input a, Input b, float* out, Strided<3> s) {
  GRID_STRIDE(i, s.total) {
    int64_t off[3];
    offsets_of(s, i, off);
    out[off[2]] = binary_op(op, read(a, off[0]), read(b, off[1]));
  }
}

// The common cases of binary, four elements per thread and step (16-byte loads and stores): operands that are
// whole ([rows, cols] like the output), one row broadcast over the rows (a bias), or one scalar (a clip factor).
// Needs cols % 4 == 0 and 16-byte aligned whole and row operands; Index is int32 when the size allows.
enum Broadcast : int { kWhole = 0, kRow = 1, kScalar = 2 };

template <class Index>
__device__ inline float4 load4(Input p, int mode, Index i4, Index col4) {
  if (mode == kScalar) {
    const float v = read(p, 0);
    return make_float4(v, v, v, v);
  }
  return read4(p, mode == kWhole ? i4 : col4);
}

template <class Index>
__global__ void binary4_kernel(int op, Input a, int a_mode, Input b, int b_mode, float4* out, Index n4, Index cols4) {
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < n4; i += Index(gridDim.x) * blockDim.x) {
    const Index col = i % cols4;
    const float4 x = load4(a, a_mode, i, col), y = load4(b, b_mode, i, col);
    out[i] = make_float4(binary_op(op, x.x, y.x), binary_op(op, x.y, y.y), binary_op(op, x.z, y.z), binary_op(op, x.w, y.w));
  }
}

// Operand order: cond, a, b, out.
__global__ void where_kernel(const float* cond, const float* a, const float* b, float* out, Strided<4> s) {
  GRID_STRIDE(i, s.total) {
    int64_t off[4];
    offsets_of(s, i, off);
    out[off[3]] = cond[off[0]] != 0.0f ? a[off[1]] : b[off[2]];
  }
}

// Operand order: src, dst.
__global__ void copy_kernel(const float* src, float* dst, Strided<2> s) {
  GRID_STRIDE(i, s.total) {
    int64_t off[2];
    offsets_of(s, i, off);
    dst[off[1]] = src[off[0]];
  }
}

// SwiGLU, silu(gate) * up, one element at a time or (n % 4 == 0, every buffer 16-byte aligned) four.
__device__ inline float swiglu_value(float g, float u) { return g * sigmoid(g) * u; }
__device__ inline void swiglu_grads(float g, float u, float d, float& dgate, float& dup) {
  const float s = sigmoid(g);
  dgate = d * u * (s * (1.0f + g * (1.0f - s)));
  dup = d * g * s;
}

// Four floats as four bf16 (8 bytes), for the bf16 copies that the kernels below write beside their outputs.
__device__ inline uint2 bf16x4(float4 v) {
  __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  return make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
}

// The *16 arguments (nullable) are bf16 copies of the outputs, written in the same pass (output_copy); in the
// backward, `only` says which gradients are bf16-only (their floats are not written).
struct GradientCopies {
  bool dgate = false, dup = false;
};

__global__ void swiglu4_kernel(Input gate, Input up, float4* y, uint2* y16, bool copy_only, int64_t n4) {
  GRID_STRIDE(i, n4) {
    const float4 g = read4(gate, i), u = read4(up, i);
    const float4 v = make_float4(swiglu_value(g.x, u.x), swiglu_value(g.y, u.y), swiglu_value(g.z, u.z), swiglu_value(g.w, u.w));
    if (!copy_only) y[i] = v;
    if (y16) y16[i] = bf16x4(v);
  }
}

__global__ void swiglu4_backward_kernel(Input gate, Input up, Input dy, float4* dgate, float4* dup, uint2* dgate16,
                                        uint2* dup16, GradientCopies only, int64_t n4) {
  GRID_STRIDE(i, n4) {
    const float4 g = read4(gate, i), u = read4(up, i), d = read4(dy, i);
    float4 dg, du;
    swiglu_grads(g.x, u.x, d.x, dg.x, du.x);
    swiglu_grads(g.y, u.y, d.y, dg.y, du.y);
    swiglu_grads(g.z, u.z, d.z, dg.z, du.z);
    swiglu_grads(g.w, u.w, d.w, dg.w, du.w);
    if (!only.dgate) dgate[i] = dg;
    if (!only.dup) dup[i] = du;
    if (dgate16) dgate16[i] = bf16x4(dg);
    if (dup16) dup16[i] = bf16x4(du);
  }
}

__global__ void swiglu_kernel(Input gate, Input up, float* y, __nv_bfloat16* y16, bool copy_only, int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = swiglu_value(read(gate, i), read(up, i));
    if (!copy_only) y[i] = v;
    if (y16) y16[i] = __float2bfloat16_rn(v);
  }
}

__global__ void swiglu_backward_kernel(Input gate, Input up, Input dy, float* dgate, float* dup, __nv_bfloat16* dgate16,
                                       __nv_bfloat16* dup16, GradientCopies only, int64_t n) {
  GRID_STRIDE(i, n) {
    float dg, du;
    swiglu_grads(read(gate, i), read(up, i), read(dy, i), dg, du);
    if (!only.dgate) dgate[i] = dg;
    if (!only.dup) dup[i] = du;
    if (dgate16) dgate16[i] = __float2bfloat16_rn(dg);
    if (dup16) dup16[i] = __float2bfloat16_rn(du);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void contiguous_strides(const int64_t* shape, int ndim, int64_t* strides) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
}

}  // namespace

extern "C" {

R1_API void r1_unary(int op, const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  unary_kernel<<<grid_for(n), kThreads, 0, stream()>>>(op, x, y, n);
  check_launch("r1_unary");
}

R1_API void r1_unary_backward(int op, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  if (n <= 0) return;
  unary_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(op, x, y, dy, dx, n);
  check_launch("r1_unary_backward");
}

R1_API void r1_binary(int op, const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides,
                      float* out, const int64_t* shape, int ndim) {
  int64_t out_strides[8];
  contiguous_strides(shape, ndim, out_strides);
  const int64_t* strides[3] = {a_strides, b_strides, out_strides};
  Strided<3> s = make_strided<3>(shape, ndim, strides);
  if (s.total <= 0) return;
  // After merging: one dimension (whole or scalar operands) or [rows, cols] with operands [cols, 1] or [0, 1].
  const int64_t cols = s.shape[s.ndim - 1];
  int modes[2] = {-1, -1};
  for (int o = 0; o < 2 && s.ndim <= 2; ++o) {
    const int64_t inner = s.strides[o][s.ndim - 1], outer = s.ndim == 2 ? s.strides[o][0] : 0;
    if (inner == 1 && (s.ndim == 1 || outer == cols)) modes[o] = kWhole;
    else if (inner == 1 && outer == 0) modes[o] = kRow;
    else if (inner == 0 && outer == 0) modes[o] = kScalar;
  }
  const float* operands[2] = {a, b};
  // In place into a bf16-only buffer: its floats are written back first (its copy may lie inside them).
  widen_pending(out, s.total * static_cast<int64_t>(sizeof(float)));
  // An operand that is a bf16-only buffer (a GEMM's output, ops.matmul) is read from its copy: its extent is the
  // range of elements the strides reach.
  Input inputs[2];
  for (int o = 0; o < 2; ++o) {
    int64_t extent = 1;
    for (int d = 0; d < s.ndim; ++d) extent += (s.shape[d] - 1) * s.strides[o][d];
    inputs[o] = input_of(operands[o], extent);
  }
  bool vectorizable = s.ndim <= 2 && cols % 4 == 0 && aligned16(out);
  for (int o = 0; o < 2; ++o) vectorizable &= modes[o] >= 0 && (modes[o] == kScalar || aligned16(operands[o]));
  if (vectorizable) {
    const int64_t n4 = s.total / 4, cols4 = cols / 4;
    auto* out4 = reinterpret_cast<float4*>(out);
    if (n4 < (int64_t(1) << 31)) {
      binary4_kernel<int32_t><<<grid_for(n4), kThreads, 0, stream()>>>(op, inputs[0], modes[0], inputs[1], modes[1], out4,
                                                                     static_cast<int32_t>(n4), static_cast<int32_t>(cols4));
    } else {
      binary4_kernel<int64_t><<<grid_for(n4), kThreads, 0, stream()>>>(op, inputs[0], modes[0], inputs[1], modes[1], out4, n4, cols4);
    }
  } else {
    binary_kernel<<<grid_for(s.total), kThreads, 0, stream()>>>(op, inputs[0], inputs[1], out, s);
  }
  check_launch("r1_binary");
  // In place (backward() adding into a gradient): the floats are the sum now, whatever copy the target had.
  weights_written(out, s.total * static_cast<int64_t>(sizeof(float)));
}

R1_API void r1_where(const float* cond, const int64_t* cond_strides, const float* a, const int64_t* a_strides,
                     const float* b, const int64_t* b_strides, float* out, const int64_t* shape, int ndim) {
  int64_t out_strides[8];
  contiguous_strides(shape, ndim, out_strides);
  const int64_t* strides[4] = {cond_strides, a_strides, b_strides, out_strides};
  Strided<4> s = make_strided<4>(shape, ndim, strides);
  if (s.total <= 0) return;
  where_kernel<<<grid_for(s.total), kThreads, 0, stream()>>>(cond, a, b, out, s);
  check_launch("r1_where");
}

R1_API void r1_copy(const float* src, const int64_t* src_strides, float* dst, const int64_t* dst_strides,
                    const int64_t* shape, int ndim) {
  const int64_t* strides[2] = {src_strides, dst_strides};
  Strided<2> s = make_strided<2>(shape, ndim, strides);
  if (s.total <= 0) return;
  copy_kernel<<<grid_for(s.total), kThreads, 0, stream()>>>(src, dst, s);
  check_launch("r1_copy");
}

R1_API void r1_swiglu(const float* gate, const float* up, float* y, int64_t n) {
  if (n <= 0) return;
  bool copy_only = false;
  __nv_bfloat16* y16 = output_copy(y, n, &copy_only);
  const Input g = input_of(gate, n), u = input_of(up, n);
  // The copies come from the caching allocator (512-byte aligned), so the four-float path writes 8-byte groups.
  if (n % 4 == 0 && aligned16(gate) && aligned16(up) && aligned16(y)) {
    swiglu4_kernel<<<grid_for(n / 4), kThreads, 0, stream()>>>(g, u, reinterpret_cast<float4*>(y),
                                                               reinterpret_cast<uint2*>(y16), copy_only, n / 4);
  } else {
    swiglu_kernel<<<grid_for(n), kThreads, 0, stream()>>>(g, u, y, y16, copy_only, n);
  }
  check_launch("r1_swiglu");
}

R1_API void r1_swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n) {
  if (n <= 0) return;
  GradientCopies only;
  __nv_bfloat16* dgate16 = output_copy(dgate, n, &only.dgate);
  __nv_bfloat16* dup16 = output_copy(dup, n, &only.dup);
  const Input g = input_of(gate, n), u = input_of(up, n), d = input_of(dy, n);
  if (n % 4 == 0 && aligned16(gate) && aligned16(up) && aligned16(dy) && aligned16(dgate) && aligned16(dup)) {
    swiglu4_backward_kernel<<<grid_for(n / 4), kThreads, 0, stream()>>>(
        g, u, d, reinterpret_cast<float4*>(dgate), reinterpret_cast<float4*>(dup), reinterpret_cast<uint2*>(dgate16),
        reinterpret_cast<uint2*>(dup16), only, n / 4);
  } else {
    swiglu_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(g, u, d, dgate, dup, dgate16, dup16, only, n);
  }
  check_launch("r1_swiglu_backward");
}

}  // extern "C"
