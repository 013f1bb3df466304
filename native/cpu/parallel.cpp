#include "parallel.h"

#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <chrono>

#include "r1.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace r1 {

#if defined(__GLIBC__)
// Tensor storage comes from malloc (Node's ArrayBuffer allocator) and is freed by the garbage collector in bursts.
// glibc returns large freed blocks to the kernel (munmap, or trimming the heap top), and the next step's tensors
// then page-fault fresh zeroed pages in: 3-5% of a training step in the kernel's clear_page, and page faults
// from many threads contend on one lock. Serving blocks up to 32 MiB from the heap and trimming only above
// 512 MiB of free heap keeps that memory for reuse (the process's peak memory is unchanged; it is just not
// handed back between steps). Runs when the library is loaded.
const bool kHeapKept = [] {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  return true;
}();
#endif

ThreadPool& ThreadPool::get() {
  static ThreadPool pool;
  return pool;
}

// The CPUs this process may run on. std::thread::hardware_concurrency() counts every online CPU and ignores the
// affinity mask, so under `taskset -c 0,1` on a 16-core machine it gave 16 threads time-sharing 2 cores.
int usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool::ThreadPool() { resize(usable_cpus()); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  stopping_.store(false);
}

void ThreadPool::resize(int n) {
  stop_workers();
  for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

namespace {

// How long an idle thread spins before it blocks. The kernel calls of a training step come 10 us to a few ms apart
// (the TypeScript work between them; a 5m step on the 2-core EPYC: 48% of the gaps under 100 us, 35% 100-500 us,
// 14% 0.5-5 ms), and a worker that has blocked costs the next call its wake-up: a system call, and on a virtual
// machine the wake of an idle vCPU, tens of microseconds or more, while the calling thread starts alone. So while
// calls keep coming (the worker's last wait was short) it spins up to kBusySpinMicros; after a longer quiet
// (between runs, or a program that calls a kernel now and then, as tests do) only kIdleSpinMicros, so that a pool
// left idle soon stops using its cores. OpenMP runtimes spin for similar times (libgomp's default spin count).
constexpr int64_t kBusySpinMicros = 1000;
constexpr int64_t kIdleSpinMicros = 100;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or `micros` have passed; returns done().
template <class Done>
bool spin_until(Done done, int64_t micros) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(micros)) return done();
  }
}

}  // namespace

// A run without locks: the caller publishes tasks_, next_ and then job_, and bumps generation_; a worker that sees
// the new generation joins (active_ + 1, then reads job_), takes tasks from next_ until none are left, and leaves
// (active_ - 1). The caller takes tasks too, then closes the run (job_ = null) and waits for active_ to reach 0.
// Why that is safe: joining counts before reading job_, and closing comes before the caller's last look at active_
// (all sequentially consistent), so a worker either is counted when the caller looks, and the caller waits for it,
// or reads the null job_ and takes nothing. A worker that joins late may find the next run's job_: it then takes
// part in that run, which is just as counted. next_ is reset only while no worker is active, and only before job_
// is published, so no worker can take a task of a run it did not read.
// Blocking: a worker about to sleep counts itself in sleepers_ under mu_ and checks the generation again; the
// caller bumps the generation before it reads sleepers_ and takes mu_ before notifying, so no wake-up is lost.
void ThreadPool::worker_loop(int) {
  uint64_t seen = generation_.load();
  int64_t spin_micros = kIdleSpinMicros;
  for (;;) {
    const auto idle_since = std::chrono::steady_clock::now();
    const auto changed = [&] { return stopping_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_relaxed) != seen; };
    if (!spin_until(changed, spin_micros)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return stopping_.load() || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = generation_.load();
    const bool busy = std::chrono::steady_clock::now() - idle_since <= std::chrono::microseconds(kBusySpinMicros);
    spin_micros = busy ? kBusySpinMicros : kIdleSpinMicros;
    active_.fetch_add(1);
    if (const auto* job = job_.load()) {
      const int64_t tasks = tasks_.load(std::memory_order_relaxed);
      for (int64_t t; (t = next_.fetch_add(1, std::memory_order_relaxed)) < tasks;) (*job)(t);
    }
    active_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::run(int64_t tasks, const std::function<void(int64_t)>& fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1 || busy_.exchange(true, std::memory_order_acquire)) {
    for (int64_t t = 0; t < tasks; ++t) fn(t);
    return;
  }
  tasks_.store(tasks, std::memory_order_relaxed);
  next_.store(0, std::memory_order_relaxed);
  job_.store(&fn);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    wake_.notify_all();
  }
  for (int64_t t; (t = next_.fetch_add(1, std::memory_order_relaxed)) < tasks;) fn(t);
  job_.store(nullptr);
  // The workers still inside run their last tasks: spin, then yield the core (a task can be long, a GEMM part).
  for (int i = 0; active_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < 4096) cpu_relax();
    else std::this_thread::yield();
  }
  busy_.store(false, std::memory_order_release);
}

// Up to four chunks per thread, handed out as threads come for them: with one each, a call waits for its slowest
// thread (a late start, a core shared with another process, or an unequal vCPU; gemm.cpp's parts say more).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::get();
  int64_t threads = pool.size();
  int64_t chunks = std::min<int64_t>(threads == 1 ? 1 : 4 * threads, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  int64_t step = (n + chunks - 1) / chunks;
  pool.run(chunks, [&](int64_t c) {
    int64_t begin = c * step, end = std::min(n, begin + step);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace r1

extern "C" {
R1_API int r1_num_threads(void) { return r1::ThreadPool::get().size(); }
R1_API void r1_set_num_threads(int n) {
  if (n <= 0) n = r1::usable_cpus();
  r1::ThreadPool::get().resize(n);
}
}
