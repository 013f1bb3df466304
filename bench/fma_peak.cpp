// The machine's measured single-precision FMA peak, for bench/gemm.ts's "% peak" column: one thread per CPU of
// the affinity mask (what `taskset` allows), each issuing independent FMAs on the widest vectors the compiler
// targets (zmm with AVX-512, ymm with AVX2) for `seconds`, all at once. A clock read from /proc/cpuinfo says
// neither the turbo or AVX-512 clock a core really runs at, nor whether two "cores" of a virtual machine are
// one physical core's two hyperthreads; this measures what the cores deliver together.
//   c++ -O2 -march=native -pthread bench/fma_peak.cpp -o build/fma_peak && build/fma_peak [seconds]
// Prints one JSON line: {"lanes", "threads", "gflops" (all threads), "perThread" (each thread's GFLOP/s)}.
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <immintrin.h>

#if defined(__AVX512F__)
typedef __m512 Vec;
constexpr int kLanes = 16;
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#define VADD _mm512_add_ps
#define VLANE0(v) _mm512_cvtss_f32(v)
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 Vec;
constexpr int kLanes = 8;
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VADD _mm256_add_ps
#define VLANE0(v) _mm256_cvtss_f32(v)
#else
#error "fma_peak measures AVX2 or AVX-512 FMA throughput"
#endif

// 12 independent accumulator chains: more than FMA latency (4 cycles) x FMA pipes (2), so the pipes, not the
// chains, set the pace. Named variables, not an array: an array read after the loop is kept in memory and
// stored on every step. Returns multiply-adds done.
static double run(double seconds, float* sink) {
  Vec a0 = VSET1(0.0f), a1 = VSET1(0.001f), a2 = VSET1(0.002f), a3 = VSET1(0.003f), a4 = VSET1(0.004f),
      a5 = VSET1(0.005f), a6 = VSET1(0.006f), a7 = VSET1(0.007f), a8 = VSET1(0.008f), a9 = VSET1(0.009f),
      a10 = VSET1(0.01f), a11 = VSET1(0.011f);
  const Vec x = VSET1(0.999999f), y = VSET1(1e-7f);
  double fmas = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    for (int r = 0; r < 100000; ++r) {
      a0 = VFMA(a0, x, y), a1 = VFMA(a1, x, y), a2 = VFMA(a2, x, y), a3 = VFMA(a3, x, y);
      a4 = VFMA(a4, x, y), a5 = VFMA(a5, x, y), a6 = VFMA(a6, x, y), a7 = VFMA(a7, x, y);
      a8 = VFMA(a8, x, y), a9 = VFMA(a9, x, y), a10 = VFMA(a10, x, y), a11 = VFMA(a11, x, y);
      // Keeps the loop from being folded away.
      asm volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8),
                   "+x"(a9), "+x"(a10), "+x"(a11));
    }
    fmas += 100000.0 * 12 * kLanes;
  }
  const Vec total = VADD(VADD(VADD(VADD(a0, a1), VADD(a2, a3)), VADD(VADD(a4, a5), VADD(a6, a7))),
                         VADD(VADD(a8, a9), VADD(a10, a11)));
  *sink = VLANE0(total);
  return fmas;
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  cpu_set_t allowed;
  sched_getaffinity(0, sizeof allowed, &allowed);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  std::vector<double> gflops(cpus.size());
  std::vector<float> sinks(cpus.size());
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < cpus.size(); ++t)
    threads.emplace_back([&, t] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[t], &one);
      sched_setaffinity(0, sizeof one, &one);  // one thread per CPU, as a GEMM's threads would be spread
      ready.fetch_add(1);
      while (ready.load() < static_cast<int>(cpus.size())) {
      }
      const auto start = std::chrono::steady_clock::now();
      const double fmas = run(seconds, &sinks[t]);
      gflops[t] = 2 * fmas / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 1e9;
    });
  for (auto& th : threads) th.join();
  double total = 0;
  std::printf("{\"lanes\": %d, \"threads\": %zu, \"perThread\": [", kLanes, cpus.size());
  for (size_t t = 0; t < cpus.size(); ++t) std::printf("%s%.1f", t ? ", " : "", gflops[t]), total += gflops[t];
  std::printf("], \"gflops\": %.1f, \"sink\": %g}\n", total, static_cast<double>(sinks[0]) * 0);
  return 0;
}
