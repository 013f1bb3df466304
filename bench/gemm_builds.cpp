// Several builds of the native core side by side on the matrix products of a training step: the A/B tool for
// GEMM changes where one run on a machine is all there is (the GPU machine's Xeon). Each library is loaded
// privately (RTLD_LOCAL: its own thread pool), and they take turns in 60 ms blocks with 20 ms pauses between
// (so that one library's spinning threads are not timed against the next), six rounds per shape (ROUNDS=3
// BLOCK_MS=40 for a shorter run).
//   c++ -O2 -pthread bench/gemm_builds.cpp -o build/gemm_builds -ldl
//   build/gemm_builds THREADS LIB [LIB...] [--only SUBSTRING]
//   CPUTIME=1 build/gemm_builds 1 ...   (one thread: time the calling thread's CPU time, not the wall clock, so
//                                        other processes on a shared core count less)
// Per shape, each library's fastest and median GFLOP/s and its median time against the first library's; at the
// end, each library's sum over a 1m, 5m and 20m training step's products (median times x calls per step).
// Libraries built for a variant: c++ -std=c++17 -O3 -march=native -fPIC -shared -pthread -Inative
//   native/cpu/gemm.cpp native/cpu/parallel.cpp -o /tmp/variant.so [-DR1_GEMM_KC=192]
#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

typedef void (*Matmul)(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, int, int, int64_t,
                       int64_t, int64_t, float);
typedef void (*SetThreads)(int);

static bool cpu_time = std::getenv("CPUTIME") != nullptr;

static double now() {
  if (cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Shape {
  std::string name;
  int64_t m, n, k;
  int trans_a, trans_b;
  int calls;  // per training step
};

// A dense preset (src/models/dense.ts) at 16 x 128 tokens: each Linear's forward X W^T, dX = dY W and
// dW = dY^T X, with the calls per step (layers x Linears of that shape).
static void add_preset(std::vector<Shape>& shapes, const char* label, int64_t h, int64_t f, int64_t kv, int layers) {
  const int64_t T = 2048, V = 2048;
  struct Linear {
    const char* what;
    int64_t in, out;
    int calls;
  } linears[] = {{"gate/up", h, f, 2 * layers}, {"down", f, h, layers}, {"q/o", h, h, 2 * layers},
                 {"k/v", h, kv, 2 * layers},    {"vocab", h, V, 1}};
  for (const Linear& l : linears) {
    const std::string base = std::string(label) + " " + l.what;
    shapes.push_back({base + " fwd NT", T, l.out, l.in, 0, 1, l.calls});
    shapes.push_back({base + " dX NN", T, l.in, l.out, 0, 0, l.calls});
    shapes.push_back({base + " dW TN", l.out, l.in, T, 1, 0, l.calls});
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s THREADS LIB [LIB...] [--only SUBSTRING]\n", argv[0]);
    return 2;
  }
  const int threads = std::atoi(argv[1]);
  std::vector<std::string> names;
  std::vector<Matmul> libs;
  const char* only = nullptr;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
      continue;
    }
    void* handle = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      std::fprintf(stderr, "%s\n", dlerror());
      return 1;
    }
    libs.push_back(reinterpret_cast<Matmul>(dlsym(handle, "r1_matmul")));
    reinterpret_cast<SetThreads>(dlsym(handle, "r1_set_num_threads"))(threads);
    names.push_back(argv[i]);
  }
  const int rounds = std::getenv("ROUNDS") ? std::atoi(std::getenv("ROUNDS")) : 6;
  const double block = (std::getenv("BLOCK_MS") ? std::atof(std::getenv("BLOCK_MS")) : 60.0) / 1e3;
  std::vector<Shape> shapes;
  add_preset(shapes, "1m", 128, 352, 64, 4);
  add_preset(shapes, "5m", 256, 688, 128, 6);
  add_preset(shapes, "20m", 512, 1376, 256, 6);

  std::printf("threads %d%s; libraries:", threads, cpu_time ? " (thread CPU time)" : "");
  for (size_t l = 0; l < libs.size(); ++l) std::printf(" [%zu] %s", l, names[l].c_str());
  std::printf("\n%-22s", "shape (m x n x k)");
  for (size_t l = 0; l < libs.size(); ++l) std::printf("   [%zu] best   median  vs[0]", l);
  std::printf("\n");
  std::vector<std::vector<double>> step_seconds(3, std::vector<double>(libs.size(), 0.0));
  for (const Shape& s : shapes) {
    if (only != nullptr && s.name.find(only) == std::string::npos) continue;
    std::vector<float> a(s.m * s.k), b(s.k * s.n), c(s.m * s.n);
    for (float& x : a) x = std::rand() / float(RAND_MAX) - 0.5f;
    for (float& x : b) x = std::rand() / float(RAND_MAX) - 0.5f;
    std::vector<std::vector<double>> times(libs.size());
    for (int round = 0; round < rounds; ++round)
      for (size_t l = 0; l < libs.size(); ++l) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const double start = now();
        for (int calls = 0; calls < 2 || now() - start < block; ++calls) {
          const double t = now();
          libs[l](a.data(), b.data(), c.data(), 1, s.m, s.n, s.k, s.trans_a, s.trans_b, 0, 0, 0, 0.0f);
          times[l].push_back(now() - t);
        }
      }
    const double flops = 2.0 * s.m * s.n * s.k;
    std::printf("%-22s", (s.name + " " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k)).c_str());
    double median0 = 0;
    for (size_t l = 0; l < libs.size(); ++l) {
      std::sort(times[l].begin(), times[l].end());
      const double median = times[l][times[l].size() / 2];
      if (l == 0) median0 = median;
      std::printf("   %8.1f %8.1f  %5.2f", flops / times[l][0] / 1e9, flops / median / 1e9, median0 / median);
      step_seconds[s.name[0] == '1' ? 0 : s.name[0] == '5' ? 1 : 2][l] += median * s.calls;
    }
    std::printf("\n");
  }
  const char* presets[] = {"1m", "5m", "20m"};
  for (int p = 0; p < 3; ++p) {
    if (step_seconds[p][0] == 0) continue;
    std::printf("%s step's products, ms (median x calls):", presets[p]);
    for (size_t l = 0; l < libs.size(); ++l)
      std::printf("  [%zu] %.1f (%.2fx)", l, step_seconds[p][l] * 1e3, step_seconds[p][0] / step_seconds[p][l]);
    std::printf("\n");
  }
  return 0;
}
