// Collectives between processes, one GPU each, through NCCL loaded at run time with dlopen (as gemm.cu loads
// cuBLASLt): CI compiles this file with the CUDA runtime headers only, so the few NCCL types, functions and
// enum values used here are declared below with the values of the public NCCL 2 API (nccl.h). NCCL is opened
// on the first r1_nccl_* call, not by r1_cuda_init, so a single-GPU run never needs it installed.
//
// Every collective is queued on the library's one stream (common.cuh), after the kernels that produced its
// input and before those that read its output: no synchronisation is needed around it.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common.cuh"

namespace {

// ---- the NCCL API, as declared in nccl.h ----
typedef int ncclResult_t;  // ncclSuccess = 0
typedef void* ncclComm_t;
struct ncclUniqueId {
  char internal[R1_NCCL_UNIQUE_ID_BYTES];
};
enum : int { NCCL_FLOAT32 = 7 };            // ncclDataType_t
enum : int { NCCL_SUM = 0, NCCL_AVG = 4 };  // ncclRedOp_t (ncclAvg since NCCL 2.10)

struct Nccl {
  ncclResult_t (*get_unique_id)(ncclUniqueId*);
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int nranks, ncclUniqueId id, int rank);
  ncclResult_t (*comm_destroy)(ncclComm_t);
  ncclResult_t (*all_reduce)(const void* send, void* recv, size_t count, int datatype, int op, ncclComm_t, cudaStream_t);
  ncclResult_t (*broadcast)(const void* send, void* recv, size_t count, int datatype, int root, ncclComm_t, cudaStream_t);
  const char* (*error_string)(ncclResult_t);
};

Nccl nccl;
std::once_flag load_once;
std::string load_error;  // empty once NCCL is loaded

template <class T>
bool load_symbol(void* lib, const char* name, T* fn) {
  *fn = reinterpret_cast<T>(dlsym(lib, name));
  if (!*fn) load_error = std::string("NCCL lacks ") + name;
  return *fn != nullptr;
}

void load_nccl() {
  void* lib = nullptr;
  // R1_NCCL_LIBRARY names the file when NCCL lives outside the loader's path (a pip wheel's nvidia/nccl/lib).
  const char* configured = std::getenv("R1_NCCL_LIBRARY");
  if (configured && *configured) {
    lib = dlopen(configured, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      load_error = std::string("cannot load NCCL from R1_NCCL_LIBRARY=") + configured + ": " + dlerror();
      return;
    }
  } else {
    for (const char* name : {"libnccl.so.2", "libnccl.so"}) {
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    }
    if (!lib) {
      load_error = "cannot load NCCL (tried libnccl.so.2, libnccl.so): install NCCL 2 or set R1_NCCL_LIBRARY to its "
                   "libnccl.so.2";
      return;
    }
  }
  bool ok = load_symbol(lib, "ncclGetUniqueId", &nccl.get_unique_id) &&
            load_symbol(lib, "ncclCommInitRank", &nccl.comm_init_rank) &&
            load_symbol(lib, "ncclCommDestroy", &nccl.comm_destroy) &&
            load_symbol(lib, "ncclAllReduce", &nccl.all_reduce) &&
            load_symbol(lib, "ncclBroadcast", &nccl.broadcast) &&
            load_symbol(lib, "ncclGetErrorString", &nccl.error_string);
  if (ok) load_error.clear();
}

// Loads NCCL once; records the failure under `where` and returns false when it cannot be loaded.
bool ready(const char* where) {
  std::call_once(load_once, [] {
    load_error = "not loaded";
    load_nccl();
  });
  if (!load_error.empty()) r1cuda::record_message(where, load_error.c_str());
  return load_error.empty();
}

// 0 on success; otherwise records NCCL's message under `where` and returns 1.
int check(const char* where, ncclResult_t result) {
  if (result == 0) return 0;
  std::string message = std::string(nccl.error_string(result)) + " (NCCL status " + std::to_string(result) + ")";
  r1cuda::record_message(where, message.c_str());
  return 1;
}

}  // namespace

extern "C" {

R1_API int r1_nccl_unique_id(uint8_t* id) {
  if (!ready("r1_nccl_unique_id")) return 1;
  ncclUniqueId unique;
  if (check("ncclGetUniqueId", nccl.get_unique_id(&unique))) return 1;
  std::memcpy(id, unique.internal, sizeof unique.internal);
  return 0;
}

R1_API void* r1_nccl_comm_init(const uint8_t* id, int world_size, int rank) {
  if (!ready("r1_nccl_comm_init")) return nullptr;
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    std::string message = "rank " + std::to_string(rank) + " is not in a world of " + std::to_string(world_size);
    r1cuda::record_message("r1_nccl_comm_init", message.c_str());
    return nullptr;
  }
  r1cuda::stream();  // the device must be selected before NCCL binds the communicator to it
  ncclUniqueId unique;
  std::memcpy(unique.internal, id, sizeof unique.internal);
  ncclComm_t comm = nullptr;
  if (check("ncclCommInitRank", nccl.comm_init_rank(&comm, world_size, unique, rank))) return nullptr;
  return comm;
}

R1_API int r1_nccl_all_reduce(void* comm, const float* send, float* recv, int64_t n, int average) {
  if (!ready("r1_nccl_all_reduce")) return 1;
  if (n <= 0) return 0;
  return check("ncclAllReduce", nccl.all_reduce(send, recv, static_cast<size_t>(n), NCCL_FLOAT32,
                                                average ? NCCL_AVG : NCCL_SUM, comm, r1cuda::stream()));
}

R1_API int r1_nccl_broadcast(void* comm, const float* send, float* recv, int64_t n, int root) {
  if (!ready("r1_nccl_broadcast")) return 1;
  if (n <= 0) return 0;
  return check("ncclBroadcast", nccl.broadcast(send, recv, static_cast<size_t>(n), NCCL_FLOAT32, root, comm,
                                               r1cuda::stream()));
}

R1_API int r1_nccl_comm_destroy(void* comm) {
  if (!comm) return 0;
  if (!ready("r1_nccl_comm_destroy")) return 1;
  return check("ncclCommDestroy", nccl.comm_destroy(comm));
}

}  // extern "C"
