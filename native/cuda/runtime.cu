// The runtime of native/r1_cuda.h: device selection, the one stream, error recording, the caching allocator,
// copies, fills and casts, persistent scratch buffers and CUDA graphs.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.cuh"

namespace r1cuda {
bool gemm_init(std::string* error);  // gemm.cu: loads cuBLASLt and creates its handle

namespace {

std::mutex error_mutex;
std::string pending_error;    // the first failure not yet read
std::string returned_error;   // the text last handed out by r1_cuda_last_error (must outlive the call)
bool error_pending = false;

int current_device = -1;
cudaStream_t the_stream = nullptr;
char device_name[256] = "";

}  // namespace

void record_message(const char* where, const char* message) {
  std::lock_guard<std::mutex> lock(error_mutex);
  if (error_pending) return;
  pending_error = std::string(where) + ": " + message;
  error_pending = true;
}

void record_error(const char* where, cudaError_t err) {
  std::string message = std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
  record_message(where, message.c_str());
}

static int init_device(int device) {
  if (current_device == device) return 0;
  if (current_device >= 0) {
    record_message("r1_cuda_init", "a device is already initialised in this process (one device per process)");
    return 1;
  }
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    record_message("r1_cuda_init", err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device");
    return 1;
  }
  if (device < 0 || device >= count) {
    std::string message = "device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " visible)";
    record_message("r1_cuda_init", message.c_str());
    return 1;
  }
  if ((err = cudaSetDevice(device)) != cudaSuccess) return record_error("cudaSetDevice", err), 1;
  if ((err = cudaStreamCreateWithFlags(&the_stream, cudaStreamNonBlocking)) != cudaSuccess) {
    return record_error("cudaStreamCreate", err), 1;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    std::snprintf(device_name, sizeof device_name, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                  prop.totalGlobalMem / 1073741824.0);
  }
  current_device = device;
  std::string error;
  if (!gemm_init(&error)) {
    record_message("r1_cuda_init", error.c_str());
    return 1;
  }
  return 0;
}

cudaStream_t stream() {
  if (current_device < 0) init_device(0);
  return the_stream;
}

// ---- the caching allocator ----
// Sizes are rounded up (512 B under 1 MiB, 2 MiB above) so that freed blocks fit later requests of similar size.
// All work runs on one stream in call order, so a block freed by the host can be handed to the next request at
// once: any kernel that used it was queued earlier and finishes before the new owner's kernels start.
namespace {

std::mutex alloc_mutex;
std::multimap<size_t, void*> free_blocks;        // size -> block
std::unordered_map<void*, size_t> live_blocks;   // block -> size
int64_t bytes_in_use = 0, bytes_reserved = 0, peak_in_use = 0;

size_t round_size(int64_t bytes) {
  const size_t small = 512, large = size_t(2) << 20;
  size_t b = bytes < 1 ? 1 : static_cast<size_t>(bytes);
  return b < (size_t(1) << 20) ? (b + small - 1) / small * small : (b + large - 1) / large * large;
}

void release_cached() {
  for (auto& [size, ptr] : free_blocks) {
    cudaFree(ptr);
    bytes_reserved -= static_cast<int64_t>(size);
  }
  free_blocks.clear();
}

}  // namespace

bool allocation_starts_at(const void* p, int64_t bytes) {
  std::lock_guard<std::mutex> lock(alloc_mutex);
  auto it = live_blocks.find(const_cast<void*>(p));
  return it != live_blocks.end() && static_cast<int64_t>(it->second) >= bytes;
}

// ---- scratch ----
namespace {
void* scratch_ptr[kScratchSlots] = {};
size_t scratch_size[kScratchSlots] = {};
}  // namespace

void* scratch(ScratchSlot slot, size_t bytes) {
  if (scratch_size[slot] >= bytes) return scratch_ptr[slot];
  size_t size = bytes < (size_t(1) << 20) ? (size_t(1) << 20) : bytes + bytes / 2;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(stream(), &capturing);
  // The old buffer is retired for the life of the process, never freed: a graph captured earlier may still
  // use it (and cudaFree is not allowed while capturing). Growth is geometric, so the waste is bounded.
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    std::lock_guard<std::mutex> lock(alloc_mutex);
    if (capturing == cudaStreamCaptureStatusNone) {
      cudaStreamSynchronize(stream());
      release_cached();
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      record_error("scratch buffer", err);
      return nullptr;
    }
  }
  scratch_ptr[slot] = ptr;
  scratch_size[slot] = size;
  return ptr;
}

unsigned* arrival_counters(int64_t count, bool* zeroed_now) {
  static unsigned* buffer = nullptr;
  static int64_t size = 0;
  *zeroed_now = false;
  if (count <= size) return buffer;
  // Grown geometrically; the old buffer is retired like scratch()'s (a graph may still use it). The zeroing is
  // queued on the stream, so while recording a graph it is recorded too, rewriting zeros the counters then hold.
  const int64_t grown = count < 4096 ? 4096 : count + count / 2;
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size_t(grown) * sizeof(unsigned));
  if (err == cudaSuccess) err = cudaMemsetAsync(ptr, 0, size_t(grown) * sizeof(unsigned), stream());
  if (err != cudaSuccess) {
    record_error("arrival counters", err);
    return nullptr;
  }
  buffer = static_cast<unsigned*>(ptr);
  size = grown;
  *zeroed_now = true;
  return buffer;
}

// ---- the profile timeline ----
namespace {
std::vector<cudaEvent_t> profile_events;
std::vector<int32_t> profile_tags;
int profile_count = 0, profile_dropped = 0, profile_tag = R1_PROFILE_BETWEEN;
bool profiling = false;

void profile_record(int tag) {
  profile_tag = tag;
  if (profile_count >= static_cast<int>(profile_events.size())) {
    ++profile_dropped;
    return;
  }
  cudaError_t err = cudaEventRecord(profile_events[profile_count], stream());
  if (err != cudaSuccess) return record_error("r1_cuda_profile_mark", err);
  profile_tags[profile_count++] = tag;
}
}  // namespace

int profile_enter(int tag) {
  if (!profiling) return tag;
  const int previous = profile_tag;
  profile_record(tag);
  return previous;
}

void profile_leave(int previous) {
  if (profiling) profile_record(previous);
}

}  // namespace r1cuda

using namespace r1cuda;

extern "C" {

R1_API int r1_cuda_profile_start(int capacity) {
  if (capacity < 2) {
    record_message("r1_cuda_profile_start", "capacity must be at least 2 marks");
    return 1;
  }
  stream();
  while (static_cast<int>(profile_events.size()) < capacity) {
    cudaEvent_t event;
    cudaError_t err = cudaEventCreate(&event);
    if (err != cudaSuccess) return record_error("r1_cuda_profile_start: cudaEventCreate", err), 1;
    profile_events.push_back(event);
  }
  profile_tags.resize(profile_events.size());
  profile_count = profile_dropped = 0;
  profile_tag = R1_PROFILE_BETWEEN;
  profiling = true;
  profile_record(R1_PROFILE_BETWEEN);
  return 0;
}

R1_API void r1_cuda_profile_mark(int tag) {
  if (profiling) profile_record(tag);
}

R1_API int r1_cuda_profile_stop(int32_t* tags, float* ms, int capacity) {
  if (!profiling) {
    record_message("r1_cuda_profile_stop", "profiling is not on (call r1_cuda_profile_start first)");
    return -1;
  }
  profile_record(R1_PROFILE_BETWEEN);
  profiling = false;
  cudaError_t err = cudaStreamSynchronize(stream());
  if (err != cudaSuccess) return record_error("r1_cuda_profile_stop", err), -1;
  const int count = profile_count < capacity ? profile_count : capacity;
  for (int i = 0; i + 1 < count; ++i) {
    tags[i] = profile_tags[i];
    err = cudaEventElapsedTime(&ms[i], profile_events[i], profile_events[i + 1]);
    if (err != cudaSuccess) return record_error("r1_cuda_profile_stop: cudaEventElapsedTime", err), -1;
  }
  if (profile_dropped > 0) {
    std::string message = std::to_string(profile_dropped) + " marks past the capacity of " +
                          std::to_string(profile_events.size()) + " were dropped";
    record_message("r1_cuda_profile_stop", message.c_str());
    return -1;
  }
  return count;
}

}  // extern "C"

// ---- elementwise helpers of r1_cuda.h ----
static __global__ void fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] = value;
}
static __global__ void fill_i32_kernel(int32_t* x, int32_t value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] = value;
}
static __global__ void f32_to_i32_kernel(const float* x, int32_t* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = static_cast<int32_t>(x[i]);
  }
}
static __global__ void i32_to_f32_kernel(const int32_t* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = static_cast<float>(x[i]);
  }
}

extern "C" {

R1_API int r1_cuda_device_count(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

R1_API int r1_cuda_init(int device) { return init_device(device); }

R1_API const char* r1_cuda_device_name(void) {
  stream();
  return device_name;
}

R1_API const char* r1_cuda_last_error(void) {
  std::lock_guard<std::mutex> lock(error_mutex);
  returned_error = error_pending ? pending_error : std::string();
  error_pending = false;
  pending_error.clear();
  return returned_error.c_str();
}

R1_API int r1_cuda_error_pending(void) { return error_pending ? 1 : 0; }

R1_API int r1_cuda_synchronize(void) {
  cudaError_t err = cudaStreamSynchronize(stream());
  if (err != cudaSuccess) return record_error("asynchronous fault found by r1_cuda_synchronize", err), 1;
  return error_pending ? 1 : 0;
}

R1_API void* r1_cuda_alloc(int64_t bytes) {
  cudaStream_t s = stream();
  if (!s) return nullptr;
  size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(alloc_mutex);
  // Small blocks must match their size exactly; a large request may take a cached block up to 1/8 larger.
  auto it = free_blocks.lower_bound(size);
  if (it != free_blocks.end() && it->first <= size + size / 8) {
    size = it->first;
    void* ptr = it->second;
    free_blocks.erase(it);
    live_blocks[ptr] = size;
    bytes_in_use += static_cast<int64_t>(size);
    if (bytes_in_use > peak_in_use) peak_in_use = bytes_in_use;
    return ptr;
  }
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // cudaErrorMemoryAllocation is not sticky; clear it
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(s, &capturing);
    if (capturing == cudaStreamCaptureStatusNone) {
      cudaStreamSynchronize(s);
      release_cached();
      err = cudaMalloc(&ptr, size);
      if (err != cudaSuccess) (void)cudaGetLastError();
    }
    if (err != cudaSuccess) {
      record_error("r1_cuda_alloc", err);
      return nullptr;
    }
  }
  bytes_reserved += static_cast<int64_t>(size);
  live_blocks[ptr] = size;
  bytes_in_use += static_cast<int64_t>(size);
  if (bytes_in_use > peak_in_use) peak_in_use = bytes_in_use;
  return ptr;
}

R1_API void r1_cuda_free(void* ptr) {
  if (!ptr) return;
  size_t size = 0;
  {
    std::lock_guard<std::mutex> lock(alloc_mutex);
    auto it = live_blocks.find(ptr);
    if (it == live_blocks.end()) {
      record_message("r1_cuda_free", "pointer was not allocated by r1_cuda_alloc, or was freed twice");
      return;
    }
    size = it->second;
    free_blocks.emplace(it->second, ptr);
    bytes_in_use -= static_cast<int64_t>(it->second);
    live_blocks.erase(it);
  }
  weights_freed(ptr, static_cast<int64_t>(size));  // frees their bf16 copies: outside the allocator's lock
}

R1_API void r1_cuda_empty_cache(void) {
  cudaStreamSynchronize(stream());
  std::lock_guard<std::mutex> lock(alloc_mutex);
  release_cached();
}

R1_API void r1_cuda_memory_stats(int64_t* stats) {
  std::lock_guard<std::mutex> lock(alloc_mutex);
  stats[0] = bytes_in_use;
  stats[1] = bytes_reserved;
  stats[2] = peak_in_use;
  stats[3] = static_cast<int64_t>(live_blocks.size());
}

R1_API int r1_cuda_upload(void* dst, const void* host_src, int64_t bytes) {
  if (bytes <= 0) return 0;
  weights_written(dst, bytes);
  // From pageable memory the driver stages host_src before returning, so the caller may reuse it at once.
  cudaError_t err = cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream());
  if (err != cudaSuccess) return record_error("r1_cuda_upload", err), 1;
  return 0;
}

R1_API int r1_cuda_download(void* host_dst, const void* src, int64_t bytes) {
  if (bytes <= 0) return 0;
  cudaError_t err = cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream());
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream());
  if (err != cudaSuccess) return record_error("r1_cuda_download (or an earlier kernel)", err), 1;
  return error_pending ? 1 : 0;
}

// The staging slots of r1_cuda_download_begin/_end: pinned buffers (so that a copy is queued, not waited for),
// the event after each slot's copy, and the byte count of the download begun in it (-1: the slot is free). Two,
// so that a second download can be begun before the first is ended (the sampling engine queues step t + 1 with
// its draw's download before it reads step t's).
namespace {
struct Staging {
  void* buffer = nullptr;
  int64_t capacity = 0;
  cudaEvent_t event = nullptr;
  int64_t bytes = -1;
};
Staging staging[2];
}  // namespace

R1_API int r1_cuda_download_begin(const void* src, int64_t bytes) {
  int slot = staging[0].bytes < 0 ? 0 : staging[1].bytes < 0 ? 1 : -1;
  if (slot < 0) {
    record_message("r1_cuda_download_begin", "two downloads are begun and not ended (r1_cuda_download_end one first)");
    return -1;
  }
  Staging& s = staging[slot];
  cudaError_t err = cudaSuccess;
  if (bytes > s.capacity) {
    // The slot is free: its last copy has been waited for, so its buffer can go.
    if (s.buffer) cudaFreeHost(s.buffer);
    s.buffer = nullptr;
    s.capacity = 0;
    if ((err = cudaMallocHost(&s.buffer, bytes)) != cudaSuccess) return record_error("r1_cuda_download_begin (pinned buffer)", err), -1;
    s.capacity = bytes;
  }
  if (!s.event && (err = cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming)) != cudaSuccess) {
    return record_error("r1_cuda_download_begin (event)", err), -1;
  }
  if (bytes > 0 && (err = cudaMemcpyAsync(s.buffer, src, bytes, cudaMemcpyDeviceToHost, stream())) != cudaSuccess) {
    return record_error("r1_cuda_download_begin", err), -1;
  }
  if ((err = cudaEventRecord(s.event, stream())) != cudaSuccess) return record_error("r1_cuda_download_begin (event)", err), -1;
  s.bytes = bytes;
  return slot;
}

R1_API int r1_cuda_download_end(int slot, void* host_dst, int64_t bytes) {
  if (slot < 0 || slot > 1 || staging[slot].bytes < 0 || bytes != staging[slot].bytes) {
    record_message("r1_cuda_download_end", "no download of this size was begun in this slot (r1_cuda_download_begin's result)");
    return 1;
  }
  Staging& s = staging[slot];
  s.bytes = -1;
  cudaError_t err = cudaEventSynchronize(s.event);
  if (err != cudaSuccess) return record_error("r1_cuda_download_end (or an earlier kernel)", err), 1;
  if (bytes > 0 && host_dst) std::memcpy(host_dst, s.buffer, static_cast<size_t>(bytes));
  return error_pending ? 1 : 0;
}

R1_API int r1_cuda_copy(void* dst, const void* src, int64_t bytes) {
  if (bytes <= 0) return 0;
  weights_written(dst, bytes);
  cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream());
  if (err != cudaSuccess) return record_error("r1_cuda_copy", err), 1;
  return 0;
}

R1_API void r1_cuda_fill(float* x, float value, int64_t n) {
  if (n <= 0) return;
  weights_written(x, n * static_cast<int64_t>(sizeof(float)));
  fill_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, value, n);
  check_launch("r1_cuda_fill");
}

R1_API void r1_cuda_fill_i32(int32_t* x, int32_t value, int64_t n) {
  if (n <= 0) return;
  fill_i32_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, value, n);
  check_launch("r1_cuda_fill_i32");
}

R1_API void r1_cuda_f32_to_i32(const float* x, int32_t* y, int64_t n) {
  if (n <= 0) return;
  f32_to_i32_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, n);
  check_launch("r1_cuda_f32_to_i32");
}

R1_API void r1_cuda_i32_to_f32(const int32_t* x, float* y, int64_t n) {
  if (n <= 0) return;
  i32_to_f32_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, y, n);
  check_launch("r1_cuda_i32_to_f32");
}

}  // extern "C"

// ---- graphs ----
namespace r1cuda {
namespace {
bool recording_graph = false;
// Programmatic dependent launch: compute capability 9 or more, and not turned off by R1_CUDA_PDL=0.
bool device_overlaps() {
  static const int allowed = [] {
    const char* env = std::getenv("R1_CUDA_PDL");
    if (env && std::strcmp(env, "0") == 0) return 0;
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, current_device < 0 ? 0 : current_device) != cudaSuccess) return 0;
    return major >= 9 ? 1 : 0;
  }();
  return allowed != 0;
}
}  // namespace

bool overlapped_launches() { return recording_graph && device_overlaps(); }

}  // namespace r1cuda

extern "C" {

// Relaxed capture mode: allocations (cudaMalloc on a cache miss) are allowed while recording.
R1_API int r1_cuda_graph_begin(void) {
  cudaError_t err = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) return record_error("r1_cuda_graph_begin", err), 1;
  recording_graph = true;
  return 0;
}

R1_API void* r1_cuda_graph_end(void) {
  recording_graph = false;
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(stream(), &graph);
  if (err != cudaSuccess) return record_error("r1_cuda_graph_end (a call while recording was not capturable)", err), nullptr;
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) return record_error("r1_cuda_graph_end: cudaGraphInstantiate", err), nullptr;
  return exec;
}

R1_API int r1_cuda_graph_launch(void* graph) {
  cudaError_t err = cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), stream());
  if (err != cudaSuccess) return record_error("r1_cuda_graph_launch", err), 1;
  return 0;
}

R1_API void r1_cuda_graph_destroy(void* graph) {
  if (!graph) return;
  cudaStreamSynchronize(stream());
  cudaError_t err = cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
  if (err != cudaSuccess) record_error("r1_cuda_graph_destroy", err);
}

// r1.h's thread-count calls concern the CPU core; the GPU library accepts them so that it exports all of r1.h.
R1_API int r1_num_threads(void) { return 1; }
R1_API void r1_set_num_threads(int) {}

}  // extern "C"
