// A persistent pool of worker threads and parallel_for, shared by every CPU kernel.
// Why a pool: a kernel call is often tens of microseconds, far less than starting a thread.
// Why spinning: waking a thread blocked on a condition variable costs a system call and 5-50 us before it runs,
// paid by every worker on every kernel call. A training step makes thousands of calls microseconds to milliseconds
// of TypeScript apart, so workers spin for a while after each job before they block (longer while calls keep
// coming), and so does the calling thread while it waits for the last workers to finish (OpenMP runtimes do the
// same). Why no lock in a run: with 16 threads, each worker took the pool's mutex to join a run and again to leave
// it, 30 hand-offs of one lock per kernel call (parallel.cpp says how the atomics replace them).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace r1 {

class ThreadPool {
 public:
  static ThreadPool& get();
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void resize(int n);
  // Runs fn(task) for task in [0, tasks), the calling thread taking part; returns when all are done.
  void run(int64_t tasks, const std::function<void(int64_t)>& fn);
  ~ThreadPool();

 private:
  ThreadPool();
  void stop_workers();
  void worker_loop(int index);
  std::vector<std::thread> workers_;
  // Only for blocking and waking idle workers: a run's hand-out, joining and completion are atomics (below), so
  // that 15 workers waking at once do not queue on one lock (with 16 threads, 30 lock hand-offs a kernel call).
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  // The run in progress: job_ is null between runs; tasks_ and next_ are written before job_ is published.
  std::atomic<const std::function<void(int64_t)>*> job_{nullptr};
  std::atomic<int64_t> tasks_{0};
  std::atomic<int64_t> next_{0};
  // Workers between joining a run (before they read job_) and finishing their tasks; a run returns at 0.
  std::atomic<int> active_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> busy_{false};  // a nested (or concurrent) run executes serially instead of deadlocking
};

// CPUs in this process's affinity mask (what `taskset` allows): the pool's default size.
int usable_cpus();

// Splits [0, n) into chunks of at least `grain` items, up to four per thread, and calls fn(begin, end).
// Small problems run on the calling thread alone.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace r1
