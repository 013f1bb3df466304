#include "parallel.h"

#include <algorithm>

#include "r1.h"

namespace r1 {

ThreadPool& ThreadPool::get() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool() {
  unsigned hw = std::thread::hardware_concurrency();
  resize(hw == 0 ? 1 : static_cast<int>(hw));
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  stopping_ = false;
}

void ThreadPool::resize(int n) {
  stop_workers();
  for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t)>* job;
    int64_t tasks;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      // A worker that wakes after the run it was woken for has ended must not touch the next run's counter.
      if (job_ == nullptr) continue;
      job = job_;
      tasks = tasks_;
      ++active_;
    }
    for (int64_t t; (t = next_.fetch_add(1)) < tasks;) (*job)(t);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run(int64_t tasks, const std::function<void(int64_t)>& fn) {
  if (tasks <= 0) return;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (busy_ || workers_.empty() || tasks == 1) {
      lock.unlock();
      for (int64_t t = 0; t < tasks; ++t) fn(t);
      return;
    }
    busy_ = true;
    job_ = &fn;
    tasks_ = tasks;
    next_.store(0);
    ++generation_;
  }
  wake_.notify_all();
  for (int64_t t; (t = next_.fetch_add(1)) < tasks;) fn(t);
  std::unique_lock<std::mutex> lock(mu_);
  // Workers that woke late find no task left; wait until every worker that took part has finished.
  done_.wait(lock, [&] { return active_ == 0; });
  job_ = nullptr;
  busy_ = false;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::get();
  int64_t threads = pool.size();
  int64_t chunks = std::min<int64_t>(threads, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
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
  if (n <= 0) {
    unsigned hw = std::thread::hardware_concurrency();
    n = hw == 0 ? 1 : static_cast<int>(hw);
  }
  r1::ThreadPool::get().resize(n);
}
}
