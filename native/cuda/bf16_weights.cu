// bf16 shadows of registered weights (r1_cuda_register_weight in r1_cuda.h): in bf16 matmul precision a weight
// is rounded to bf16 once per optimizer step, by r1_adamw in the same pass that writes it, instead of once per
// GEMM. The registry maps each registered range [ptr, ptr + n) to its bf16 copy and whether that copy is
// current; every write the library can see (r1_cuda_upload, r1_cuda_copy, r1_cuda_fill into the range) marks it
// stale, r1_cuda_free of the block holding it drops it, and r1_matmul refreshes a stale copy before reading it.
// Activations use the same registry: an operand shared by several GEMMs (r1_cuda_share_bf16_operand), and the
// outputs of the kernels that write their bf16 copy themselves (output_copy: RMSNorm, SwiGLU and its backward,
// RoPE, cross-entropy's backward, the tensor-core attention), so that no GEMM rounds them in a pass of its own.
#include <cuda_bf16.h>

#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace {

struct Shadow {
  int64_t n;
  __nv_bfloat16* copy;
  bool current;
  // The float32 range was not written: the copy holds the values (r1_cuda_bf16_only_output) until
  // r1_cuda_widen_bf16_only writes them back as floats.
  bool float_pending = false;
  // The copy is the first half of the float32 range itself (a bf16-only output made without a copy of its own:
  // its floats are never written while it holds the values, so the activation takes half its bytes and nothing
  // more). Writing the floats ends it: the registration is dropped, and nothing is freed with it.
  bool inside = false;
};
std::mutex registry_mutex;
std::map<uintptr_t, Shadow> registry;  // start address -> shadow

// The registered weight holding [p, p + count) entirely, or registry.end(). Caller holds registry_mutex.
std::map<uintptr_t, Shadow>::iterator holding(const float* p, int64_t count) {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + sizeof(float) * count;
  auto it = registry.upper_bound(lo);
  if (it == registry.begin()) return registry.end();
  --it;
  return hi <= it->first + sizeof(float) * it->second.n ? it : registry.end();
}

// Whether [lo, hi) overlaps a registered range. Caller holds registry_mutex.
bool overlaps_registered(uintptr_t lo, uintptr_t hi) {
  auto next = registry.lower_bound(lo);
  if (next != registry.end() && next->first < hi) return true;
  return next != registry.begin() && std::prev(next)->first + sizeof(float) * std::prev(next)->second.n > lo;
}

// r1_cuda_register_weight (keep_current false: the caller wrote the buffer behind the library's back, so an
// existing copy of the same range turns stale) and r1_cuda_share_bf16_operand (keep_current true: a copy that
// its producer wrote stays current).
int register_range(const char* where, const float* ptr, int64_t n, bool keep_current) {
  if (!ptr || n <= 0) {
    r1cuda::record_message(where, "needs a device pointer and n > 0");
    return 1;
  }
  const uintptr_t lo = reinterpret_cast<uintptr_t>(ptr), hi = lo + sizeof(float) * n;
  void* old_copy = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.find(lo);
    if (it != registry.end() && it->second.n == n) {
      if (!keep_current) it->second.current = false;
      return 0;
    }
    if (it != registry.end()) {
      if (!it->second.inside) old_copy = it->second.copy;
      registry.erase(it);
    }
    if (overlaps_registered(lo, hi)) {
      r1cuda::record_message(where, "the range overlaps another registered weight");
      if (old_copy) r1_cuda_free(old_copy);
      return 1;
    }
  }
  if (old_copy) r1_cuda_free(old_copy);
  auto* copy = static_cast<__nv_bfloat16*>(r1_cuda_alloc(n * static_cast<int64_t>(sizeof(__nv_bfloat16))));
  if (!copy) return 1;
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry[lo] = Shadow{n, copy, false};
  return 0;
}

}  // namespace

namespace r1cuda {

__nv_bfloat16* output_copy(const float* y, int64_t n, bool* copy_only) {
  if (copy_only) *copy_only = false;
  if (!y || n <= 0) return nullptr;
  {
    // An output promised to its copy alone (r1_cuda_bf16_only_output) gets it whatever the precision; a
    // producer that always writes y (copy_only nullptr) makes its floats valid again.
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.find(reinterpret_cast<uintptr_t>(y));
    if (it != registry.end() && it->second.n == n && it->second.float_pending) {
      if (copy_only) {
        *copy_only = true;
      } else if (it->second.inside) {
        // A producer that writes the floats would overwrite a copy kept inside them: the floats alone, then.
        registry.erase(it);
        return nullptr;
      } else {
        it->second.float_pending = false;
      }
      it->second.current = true;
      return it->second.copy;
    }
  }
  if (matmul_precision() != 2) return nullptr;
  // A graph must not bake in a copy (the buffer's next owner at replay may not be a producer's output).
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(), &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone) return nullptr;
  // A view into part of a larger buffer stays unregistered: registering it would make registering the whole
  // buffer later (r1_cuda_share_bf16_operand) an overlap.
  if (!allocation_starts_at(y, n * static_cast<int64_t>(sizeof(float)))) return nullptr;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(y), hi = lo + sizeof(float) * n;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.find(lo);
    if (it != registry.end() && it->second.n == n) {
      it->second.current = true;
      return it->second.copy;
    }
    if (overlaps_registered(lo, hi)) {
      // Another registration covers part of y: its copy turns stale, and y is written without one.
      for (auto o = registry.begin(); o != registry.end(); ++o) {
        if (o->first < hi && o->first + sizeof(float) * o->second.n > lo) o->second.current = false;
      }
      return nullptr;
    }
  }
  auto* copy = static_cast<__nv_bfloat16*>(r1_cuda_alloc(n * static_cast<int64_t>(sizeof(__nv_bfloat16))));
  if (!copy) return nullptr;
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry[lo] = Shadow{n, copy, true};
  return copy;
}

__global__ void widen_kernel(const __nv_bfloat16* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    dst[i] = __bfloat162float(src[i]);
  }
}

void widen_pending(const void* p, int64_t bytes) {
  if (bytes <= 0) return;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + static_cast<uintptr_t>(bytes);
  std::vector<std::pair<uintptr_t, Shadow>> pending;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.upper_bound(lo);
    if (it != registry.begin()) --it;
    while (it != registry.end() && it->first < hi) {
      if (it->second.float_pending && it->first + sizeof(float) * it->second.n > lo) {
        it->second.float_pending = false;
        pending.emplace_back(it->first, it->second);
        // A copy inside the floats is overwritten by them: the registration ends.
        if (it->second.inside) {
          it = registry.erase(it);
          continue;
        }
      }
      ++it;
    }
  }
  for (auto& [start, shadow] : pending) {
    const __nv_bfloat16* src = shadow.copy;
    void* moved = nullptr;
    if (shadow.inside) {
      // The floats overlap the copy they are widened from: move the copy out first (stream-ordered, so the
      // block goes back to the cache only after the widening has read it).
      moved = r1_cuda_alloc(shadow.n * static_cast<int64_t>(sizeof(__nv_bfloat16)));
      if (!moved) continue;  // the failure is recorded
      cudaMemcpyAsync(moved, src, shadow.n * sizeof(__nv_bfloat16), cudaMemcpyDeviceToDevice, stream());
      src = static_cast<const __nv_bfloat16*>(moved);
    }
    widen_kernel<<<grid_for(shadow.n), kThreads, 0, stream()>>>(src, reinterpret_cast<float*>(start), shadow.n);
    check_launch("widening a bf16-only output");
    if (moved) r1_cuda_free(moved);
  }
}

const __nv_bfloat16* current_copy(const float* p, int64_t count) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = holding(p, count);
  if (it == registry.end() || !it->second.current) return nullptr;
  return it->second.copy + (p - reinterpret_cast<const float*>(it->first));
}

const __nv_bfloat16* pending_copy(const float* p, int64_t count) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = holding(p, count);
  if (it == registry.end() || !it->second.float_pending) return nullptr;
  return it->second.copy + (p - reinterpret_cast<const float*>(it->first));
}

__nv_bfloat16* bf16_only_target(const float* y, int64_t n) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry.find(reinterpret_cast<uintptr_t>(y));
  if (it == registry.end() || it->second.n != n || !it->second.float_pending) return nullptr;
  it->second.current = true;
  return it->second.copy;
}

const __nv_bfloat16* weight_shadow(const float* p, int64_t count) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = holding(p, count);
  if (it == registry.end()) return nullptr;
  Shadow& shadow = it->second;
  if (shadow.inside && !shadow.current) return nullptr;  // promised but not written: nothing to read or round into
  if (!shadow.current) {
    round_to_bf16(reinterpret_cast<const float*>(it->first), shadow.copy, 1, shadow.n, 0);
    shadow.current = true;
  }
  return shadow.copy + (p - reinterpret_cast<const float*>(it->first));
}

__nv_bfloat16* weight_shadow_for_update(const float* p, int64_t n) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = holding(p, n);
  if (it == registry.end()) return nullptr;
  // An update of the whole weight makes its copy current; one of a part leaves a stale copy stale.
  if (reinterpret_cast<const float*>(it->first) == p && it->second.n == n) it->second.current = true;
  return it->second.copy + (p - reinterpret_cast<const float*>(it->first));
}

void weights_written(const void* p, int64_t bytes) {
  if (bytes <= 0) return;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + static_cast<uintptr_t>(bytes);
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry.upper_bound(lo);
  if (it != registry.begin()) --it;
  while (it != registry.end() && it->first < hi) {
    if (it->first + sizeof(float) * it->second.n > lo) {
      // A copy kept inside the floats is gone once they are written.
      if (it->second.inside) {
        it = registry.erase(it);
        continue;
      }
      it->second.current = false;
      // Floats written over the whole range are the values now (r1_binary in place into a bf16-only gradient).
      if (it->first >= lo && it->first + sizeof(float) * it->second.n <= hi) it->second.float_pending = false;
    }
    ++it;
  }
}

void weights_freed(const void* block, int64_t bytes) {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(block), hi = lo + static_cast<uintptr_t>(bytes);
  std::vector<void*> copies;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.lower_bound(lo);
    while (it != registry.end() && it->first < hi) {
      if (!it->second.inside) copies.push_back(it->second.copy);
      it = registry.erase(it);
    }
  }
  for (void* copy : copies) r1_cuda_free(copy);
}

}  // namespace r1cuda

using namespace r1cuda;

extern "C" {

R1_API int r1_cuda_register_weight(const float* ptr, int64_t n) {
  return register_range("r1_cuda_register_weight", ptr, n, false);
}

R1_API int r1_cuda_share_bf16_operand(const float* ptr, int64_t n) {
  return register_range("r1_cuda_share_bf16_operand", ptr, n, true);
}

R1_API int r1_cuda_bf16_only_output(const float* ptr, int64_t n) {
  if (!ptr || n <= 0 || !allocation_starts_at(ptr, n * static_cast<int64_t>(sizeof(float)))) return 1;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(ptr), hi = lo + sizeof(float) * n;
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry.find(lo);
  if (it != registry.end() && it->second.n == n) {
    it->second.float_pending = true;
    return 0;
  }
  if (overlaps_registered(lo, hi)) return 1;
  // A fresh output keeps its copy in the first half of its own floats (Shadow::inside): no allocation.
  Shadow shadow{n, reinterpret_cast<__nv_bfloat16*>(const_cast<float*>(ptr)), false};
  shadow.float_pending = true;
  shadow.inside = true;
  registry[lo] = shadow;
  return 0;
}

R1_API void r1_cuda_widen_bf16_only(const float* ptr, int64_t n) {
  widen_pending(ptr, n * static_cast<int64_t>(sizeof(float)));
}

}  // extern "C"
