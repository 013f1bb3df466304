// Thread-pool builds of the native core side by side (native/cpu/parallel.cpp): the time of one parallel kernel
// call of elementwise size, where the pool's hand-out and join are a large part (a training step makes ~600 kernel
// calls; on 16 threads each spreads 32-64k floats per thread). The kernel is r1_sum_squares over THREADS chunks of
// 65,536 floats (one task per thread). Libraries load privately (RTLD_LOCAL: their own pools) and take turns in
// blocks of calls with pauses between, so one library's spinning workers are not timed against the next.
//   c++ -O2 -pthread bench/pool_builds.cpp -o build/pool_builds -ldl
//   build/pool_builds THREADS LIB [LIB...]
// Libraries: c++ -std=c++17 -O3 -march=native -fPIC -shared -pthread -Inative native/cpu/parallel.cpp
//   native/cpu/reduce.cpp -o /tmp/variant.so   (with a variant's parallel.cpp and parallel.h)
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

typedef double (*SumSquares)(const float*, long);
typedef void (*SetThreads)(int);

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pool_builds THREADS LIB [LIB...]\n");
    return 2;
  }
  const int threads = std::atoi(argv[1]);
  std::vector<SumSquares> libs;
  for (int i = 2; i < argc; ++i) {
    void* h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) return std::fprintf(stderr, "%s\n", dlerror()), 1;
    reinterpret_cast<SetThreads>(dlsym(h, "r1_set_num_threads"))(threads);
    libs.push_back(reinterpret_cast<SumSquares>(dlsym(h, "r1_sum_squares")));
  }
  const long n = threads * 65536L;
  std::vector<float> x(n, 0.5f);
  std::vector<std::vector<double>> times(libs.size());
  for (int round = 0; round < 20; ++round) {
    for (size_t l = 0; l < libs.size(); ++l) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the other library's workers stop spinning
      for (int i = 0; i < 200; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        volatile double s = libs[l](x.data(), n);
        (void)s;
        times[l].push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
    }
  }
  for (size_t l = 0; l < libs.size(); ++l) {
    auto& t = times[l];
    std::sort(t.begin(), t.end());
    std::printf("{\"kind\": \"pool\", \"lib\": \"%s\", \"threads\": %d, \"floats\": %ld, \"us_p10\": %.2f, \"us_median\": %.2f, \"us_p90\": %.2f}\n",
                argv[2 + l], threads, n, t[t.size() / 10], t[t.size() / 2], t[t.size() * 9 / 10]);
  }
}
