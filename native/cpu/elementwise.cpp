// Elementwise kernels: unary maps and their derivatives, strided binary ops with broadcasting, where, strided
// copy, and the fused SwiGLU activation. All are memory-bound: the aim is one pass, vectorised, and no threads
// for small tensors.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "parallel.h"
#include "r1.h"
#include "simd.h"

namespace r1 {
namespace {

// Applies a scalar f over n elements. y may alias x (r1.h allows it for r1_unary), so the in-place case gets its
// own loop with one restrict pointer: the compiler then vectorises both without a runtime overlap check.
template <class F>
void map_scalar(const float* x, float* y, int64_t n, F f) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    if (x == y) {
      float* __restrict p = y;
      for (int64_t i = b; i < e; ++i) p[i] = f(p[i]);
    } else {
      const float* __restrict xs = x;
      float* __restrict ys = y;
      for (int64_t i = b; i < e; ++i) ys[i] = f(xs[i]);
    }
  });
}

// Applies a vector f (f32x8 -> f32x8); in place is safe, see map8.
template <class F>
void map_vector(const float* x, float* y, int64_t n, F f) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) { map8(x + b, y + b, e - b, f); });
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

// ---- strided iteration shared by binary, where and copy ----
// Up to N operands share one shape, each with its own strides. Dimensions of size 1 are dropped and
// neighbours that are contiguous in every operand are merged, so the common cases (contiguous, a row vector
// broadcast over rows, a bias over the last axis) become one long inner loop.
template <int N>
struct Strided {
  int ndim = 0;
  int64_t shape[8];
  int64_t strides[N][8];
  int64_t total = 1;

  Strided(const int64_t* shape_in, int ndim_in, const int64_t* const* strides_in) {
    for (int d = 0; d < ndim_in; ++d) {
      total *= shape_in[d];
      if (shape_in[d] == 1) continue;
      if (ndim > 0) {
        bool mergeable = true;
        for (int o = 0; o < N; ++o) mergeable &= strides[o][ndim - 1] == strides_in[o][d] * shape_in[d];
        if (mergeable) {
          shape[ndim - 1] *= shape_in[d];
          for (int o = 0; o < N; ++o) strides[o][ndim - 1] = strides_in[o][d];
          continue;
        }
      }
      shape[ndim] = shape_in[d];
      for (int o = 0; o < N; ++o) strides[o][ndim] = strides_in[o][d];
      ++ndim;
    }
    if (ndim == 0) {  // a scalar (or every dimension 1)
      shape[0] = 1;
      for (int o = 0; o < N; ++o) strides[o][0] = 0;
      ndim = 1;
    }
  }
  int64_t inner() const { return shape[ndim - 1]; }
  int64_t rows() const { return total == 0 ? 0 : total / inner(); }
  // Element offsets of row `row` (an index over every dimension but the last) in each operand.
  void row_offsets(int64_t row, int64_t* offsets) const {
    for (int o = 0; o < N; ++o) offsets[o] = 0;
    for (int d = ndim - 2; d >= 0; --d) {
      int64_t i = row % shape[d];
      row /= shape[d];
      for (int o = 0; o < N; ++o) offsets[o] += i * strides[o][d];
    }
  }
  // Calls fn(offsets, inner_strides, length) for every row, in parallel over rows. Long rows go in segments of
  // kElementwiseGrain elements: a contiguous tensor is one row after merging, and as one task it ran on one thread
  // whatever the pool's size (`binary` took as long on 16 Xeon cores as on 2: 25 ms of a 5m step).
  template <class F>
  void for_each_row(F fn) const {
    const int64_t len = inner();
    const int64_t segment = len >= 2 * kElementwiseGrain ? kElementwiseGrain : len;
    const int64_t segments = len == 0 ? 1 : (len + segment - 1) / segment;
    parallel_for(rows() * segments, segments > 1 ? 1 : row_grain(len), [&](int64_t b, int64_t e) {
      int64_t offsets[N], inner_strides[N];
      for (int o = 0; o < N; ++o) inner_strides[o] = strides[o][ndim - 1];
      for (int64_t t = b; t < e; ++t) {
        const int64_t start = (t % segments) * segment;
        row_offsets(t / segments, offsets);
        for (int o = 0; o < N; ++o) offsets[o] += start * inner_strides[o];
        fn(offsets, inner_strides, std::min(segment, len - start));
      }
    });
  }
};

void contiguous_strides(const int64_t* shape, int ndim, int64_t* strides) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
}

// Binary ops, scalar and 8-wide. max/min propagate NaN like Math.max (the reference backend).
template <int OP>
inline float binary_scalar(float a, float b) {
  switch (OP) {
    case R1_ADD: return a + b;
    case R1_SUB: return a - b;
    case R1_MUL: return a * b;
    case R1_DIV: return a / b;
    case R1_MAX: return (a > b || a != a) ? a : b;
    case R1_MIN: return (a < b || a != a) ? a : b;
    case R1_POW: return std::pow(a, b);
    case R1_EQ: return a == b ? 1.0f : 0.0f;
    case R1_NE: return a != b ? 1.0f : 0.0f;
    case R1_LT: return a < b ? 1.0f : 0.0f;
    case R1_LE: return a <= b ? 1.0f : 0.0f;
    case R1_GT: return a > b ? 1.0f : 0.0f;
    case R1_GE: return a >= b ? 1.0f : 0.0f;
  }
  return 0.0f;
}

inline f32x8 mask_to_float(i32x8 m) { return (f32x8)(m & (i32x8)splat(1.0f)); }

template <int OP>
inline f32x8 binary_vector(f32x8 a, f32x8 b) {
  switch (OP) {
    case R1_ADD: return a + b;
    case R1_SUB: return a - b;
    case R1_MUL: return a * b;
    case R1_DIV: return a / b;
    case R1_MAX: return select((a > b) | (a != a), a, b);
    case R1_MIN: return select((a < b) | (a != a), a, b);
    case R1_POW: {
      f32x8 r;
      for (int l = 0; l < 8; ++l) r[l] = std::pow(a[l], b[l]);
      return r;
    }
    case R1_EQ: return mask_to_float(a == b);
    case R1_NE: return mask_to_float(a != b);
    case R1_LT: return mask_to_float(a < b);
    case R1_LE: return mask_to_float(a <= b);
    case R1_GT: return mask_to_float(a > b);
    case R1_GE: return mask_to_float(a >= b);
  }
  return a;
}

// One row of a binary op: out[i] = f(a[i * sa], b[i * sb]). The three layouts that matter (both contiguous,
// one operand a scalar broadcast along the row) are vectorised 8 at a time with explicit loads and stores,
// which stay correct when out aliases a or b at the same index.
template <int OP>
void binary_row(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  int64_t i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + 8 <= n; i += 8) store8(out + i, binary_vector<OP>(load8(a + i), load8(b + i)));
  } else if (sa == 1 && sb == 0) {
    f32x8 bv = splat(b[0]);
    for (; i + 8 <= n; i += 8) store8(out + i, binary_vector<OP>(load8(a + i), bv));
  } else if (sa == 0 && sb == 1) {
    f32x8 av = splat(a[0]);
    for (; i + 8 <= n; i += 8) store8(out + i, binary_vector<OP>(av, load8(b + i)));
  }
  for (; i < n; ++i) out[i] = binary_scalar<OP>(a[i * sa], b[i * sb]);
}

template <int OP>
void binary_impl(const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides, float* out,
                 const int64_t* shape, int ndim) {
  int64_t out_strides[8];
  contiguous_strides(shape, ndim, out_strides);
  const int64_t* strides[3] = {a_strides, b_strides, out_strides};
  Strided<3> it(shape, ndim, strides);
  it.for_each_row([&](const int64_t* off, const int64_t* s, int64_t n) {
    binary_row<OP>(a + off[0], s[0], b + off[1], s[1], out + off[2], n);
  });
}

}  // namespace
}  // namespace r1

using namespace r1;

extern "C" {

R1_API void r1_unary(int op, const float* x, float* y, int64_t n) {
  switch (op) {
    case R1_NEG: return map_scalar(x, y, n, [](float v) { return -v; });
    case R1_EXP: return map_vector(x, y, n, [](f32x8 v) { return exp8(v); });
    case R1_LOG: return map_scalar(x, y, n, [](float v) { return std::log(v); });
    case R1_SQRT: return map_scalar(x, y, n, [](float v) { return std::sqrt(v); });
    case R1_RSQRT: return map_scalar(x, y, n, [](float v) { return 1.0f / std::sqrt(v); });
    case R1_TANH: return map_scalar(x, y, n, [](float v) { return std::tanh(v); });
    case R1_SIGMOID: return map_vector(x, y, n, [](f32x8 v) { return sigmoid8(v); });
    case R1_SILU: return map_vector(x, y, n, [](f32x8 v) { return v * sigmoid8(v); });
    case R1_GELU_TANH:
      // 0.5 (1 + tanh(u)) = sigmoid(2u): the same function without the cancellation of 1 + tanh(u) for x << 0.
      return map_scalar(x, y, n, [](float v) {
        return v / (1.0f + std::exp(-2.0f * kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
      });
    case R1_RELU: return map_scalar(x, y, n, [](float v) { return v > 0.0f ? v : 0.0f; });
    case R1_ABS: return map_scalar(x, y, n, [](float v) { return std::fabs(v); });
    case R1_RECIP: return map_scalar(x, y, n, [](float v) { return 1.0f / v; });
    case R1_SQUARE: return map_scalar(x, y, n, [](float v) { return v * v; });
    case R1_SIN: return map_scalar(x, y, n, [](float v) { return std::sin(v); });
    case R1_COS: return map_scalar(x, y, n, [](float v) { return std::cos(v); });
  }
}

R1_API void r1_unary_backward(int op, const float* x_in, const float* y_in, const float* dy_in, float* dx_in,
                              int64_t n) {
  // Each case is a loop over restrict pointers with the derivative inline, so that it vectorises.
  auto run = [&](auto df) {
    parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
      const float* __restrict x = x_in;
      const float* __restrict y = y_in;
      const float* __restrict dy = dy_in;
      float* __restrict dx = dx_in;
      for (int64_t i = b; i < e; ++i) dx[i] = df(x[i], y[i], dy[i]);
    });
  };
  switch (op) {
    case R1_NEG: return run([](float, float, float g) { return -g; });
    case R1_EXP: return run([](float, float y, float g) { return g * y; });
    case R1_LOG: return run([](float x, float, float g) { return g / x; });
    case R1_SQRT: return run([](float, float y, float g) { return g * 0.5f / y; });
    case R1_RSQRT: return run([](float, float y, float g) { return g * -0.5f * y * y * y; });
    case R1_TANH: return run([](float, float y, float g) { return g * (1.0f - y * y); });
    case R1_SIGMOID: return run([](float, float y, float g) { return g * y * (1.0f - y); });
    case R1_SILU:
      // silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x), recomputed (y = x s gives s only as y / x).
      parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
        int64_t i = b;
        for (; i + 8 <= e; i += 8) {
          f32x8 x = load8(x_in + i), s = sigmoid8(x);
          store8(dx_in + i, load8(dy_in + i) * s * (splat(1.0f) + x * (splat(1.0f) - s)));
        }
        for (; i < e; ++i) {
          float s = 1.0f / (1.0f + std::exp(-x_in[i]));
          dx_in[i] = dy_in[i] * s * (1.0f + x_in[i] * (1.0f - s));
        }
      });
      return;
    case R1_GELU_TANH:
      // With s = sigmoid(2u) = 0.5 (1 + tanh u): y = x s and y' = s + 2 x s (1 - s) u'. 1 - s is computed as
      // sigmoid(-2u), not by subtraction, so that both tails keep their relative precision.
      return run([](float x, float, float g) {
        float u2 = 2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x);
        float s = 1.0f / (1.0f + std::exp(-u2)), one_minus_s = 1.0f / (1.0f + std::exp(u2));
        float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
        return g * (s + 2.0f * x * s * one_minus_s * du);
      });
    case R1_RELU: return run([](float x, float, float g) { return x > 0.0f ? g : 0.0f; });
    case R1_ABS: return run([](float x, float, float g) { return x > 0.0f ? g : x < 0.0f ? -g : 0.0f; });
    case R1_RECIP: return run([](float, float y, float g) { return -g * y * y; });
    case R1_SQUARE: return run([](float x, float, float g) { return 2.0f * x * g; });
    case R1_SIN: return run([](float x, float, float g) { return g * std::cos(x); });
    case R1_COS: return run([](float x, float, float g) { return -g * std::sin(x); });
  }
}

R1_API void r1_binary(int op, const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides,
                      float* out, const int64_t* shape, int ndim) {
  switch (op) {
#define R1_BINARY_CASE(OP) \
  case OP: return binary_impl<OP>(a, a_strides, b, b_strides, out, shape, ndim);
    R1_BINARY_CASE(R1_ADD) R1_BINARY_CASE(R1_SUB) R1_BINARY_CASE(R1_MUL) R1_BINARY_CASE(R1_DIV)
    R1_BINARY_CASE(R1_MAX) R1_BINARY_CASE(R1_MIN) R1_BINARY_CASE(R1_POW) R1_BINARY_CASE(R1_EQ)
    R1_BINARY_CASE(R1_NE) R1_BINARY_CASE(R1_LT) R1_BINARY_CASE(R1_LE) R1_BINARY_CASE(R1_GT)
    R1_BINARY_CASE(R1_GE)
#undef R1_BINARY_CASE
  }
}

R1_API void r1_where(const float* cond, const int64_t* cond_strides, const float* a, const int64_t* a_strides,
                     const float* b, const int64_t* b_strides, float* out, const int64_t* shape, int ndim) {
  int64_t out_strides[8];
  contiguous_strides(shape, ndim, out_strides);
  const int64_t* strides[4] = {cond_strides, a_strides, b_strides, out_strides};
  Strided<4> it(shape, ndim, strides);
  it.for_each_row([&](const int64_t* off, const int64_t* s, int64_t n) {
    const float* __restrict c = cond + off[0];
    const float* __restrict av = a + off[1];
    const float* __restrict bv = b + off[2];
    float* __restrict o = out + off[3];
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = c[i] != 0.0f ? av[i] : bv[i];
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = c[i * s[0]] != 0.0f ? av[i * s[1]] : bv[i * s[2]];
    }
  });
}

R1_API void r1_copy(const float* src, const int64_t* src_strides, float* dst, const int64_t* dst_strides,
                    const int64_t* shape, int ndim) {
  const int64_t* strides[2] = {src_strides, dst_strides};
  Strided<2> it(shape, ndim, strides);
  it.for_each_row([&](const int64_t* off, const int64_t* s, int64_t n) {
    const float* __restrict from = src + off[0];
    float* __restrict to = dst + off[1];
    if (s[0] == 1 && s[1] == 1) {
      std::memcpy(to, from, n * sizeof(float));
    } else {
      for (int64_t i = 0; i < n; ++i) to[i * s[1]] = from[i * s[0]];
    }
  });
}

// SwiGLU (Shazeer, "GLU Variants Improve Transformer", 2020): y = silu(gate) * up.
R1_API void r1_swiglu(const float* gate, const float* up, float* y, int64_t n) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
      f32x8 g = load8(gate + i);
      store8(y + i, g * sigmoid8(g) * load8(up + i));
    }
    if (i < e) {
      f32x8 g = load_partial(gate + i, e - i);
      store_partial(y + i, g * sigmoid8(g) * load_partial(up + i, e - i), e - i);
    }
  });
}

R1_API void r1_swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                               int64_t n) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    auto block = [](f32x8 g, f32x8 u, f32x8 d, f32x8& dg, f32x8& du) {
      f32x8 s = sigmoid8(g);
      dg = d * u * s * (splat(1.0f) + g * (splat(1.0f) - s));
      du = d * g * s;
    };
    int64_t i = b;
    f32x8 dg, du;
    for (; i + 8 <= e; i += 8) {
      block(load8(gate + i), load8(up + i), load8(dy + i), dg, du);
      store8(dgate + i, dg);
      store8(dup + i, du);
    }
    if (i < e) {
      int64_t r = e - i;
      block(load_partial(gate + i, r), load_partial(up + i, r), load_partial(dy + i, r), dg, du);
      store_partial(dgate + i, dg, r);
      store_partial(dup + i, du, r);
    }
  });
}

}  // extern "C"
