#include "engine/spare_thread.h"

#include <omp.h>
#ifdef __linux__
#include <sched.h>
#endif

#include <chrono>
#include <utility>

#if defined(__x86_64__) || defined(__SSE__)
#include <immintrin.h>
#define GRADWATCH_HAS_MXCSR 1
#endif

namespace gradwatch::engine {
namespace {

// Polls between clock readings: a reading costs a few tens of cycles, a
// pause about as many, so the clock is read every few microseconds.
constexpr int kPollsPerClock = 64;
// Polls after which a waiting caller yields its CPU instead.
constexpr int kPollsBeforeYield = 4096;

inline void Pause() {
#ifdef GRADWATCH_HAS_MXCSR
  _mm_pause();
#endif
}

}  // namespace

int SpareThread::AvailableCpus() {
#ifdef __linux__
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    return CPU_COUNT(&mask);
  }
#endif
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus == 0 ? 1 : static_cast<int>(cpus);
}

SpareThread::SpareThread(std::function<void()> work)
    : work_(std::move(work)), thread_([this] { Loop(); }) {}

SpareThread::~SpareThread() {
  Wait();
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_one();
  }
  thread_.join();
}

void SpareThread::Start() {
#ifdef GRADWATCH_HAS_MXCSR
  control_word_ = _mm_getcsr();
#endif
  // Sequentially consistent with the thread's "sleeping, then check
  // requested_": either it sees this request or this sees it asleep.
  requested_.fetch_add(1);
  if (sleeping_.load()) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_one();
  }
}

void SpareThread::Wait() {
  const uint64_t target = requested_.load(std::memory_order_relaxed);
  for (int polls = 0; finished_.load(std::memory_order_acquire) != target;
       ++polls) {
    // The work is sized to finish before the caller waits: a long wait
    // means the thread was descheduled, and the caller's core is better
    // given to it.
    if (polls >= kPollsBeforeYield) {
      std::this_thread::yield();
    } else {
      Pause();
    }
  }
}

void SpareThread::Loop() {
  omp_set_num_threads(1);
  uint64_t done = 0;
  for (;;) {
    auto idle_since = std::chrono::steady_clock::now();
    for (int polls = 1; requested_.load(std::memory_order_acquire) == done;
         ++polls) {
      if (stop_.load(std::memory_order_relaxed)) return;
      Pause();
      if (polls % kPollsPerClock != 0) continue;
      if (std::chrono::steady_clock::now() - idle_since <
          std::chrono::microseconds(kSpinMicroseconds)) {
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      sleeping_.store(true);
      wake_.wait(lock, [&] { return requested_.load() != done || stop_; });
      sleeping_.store(false);
      idle_since = std::chrono::steady_clock::now();
    }
#ifdef GRADWATCH_HAS_MXCSR
    _mm_setcsr(control_word_);
#endif
    work_();
    ++done;
    finished_.store(done, std::memory_order_release);
  }
}

}  // namespace gradwatch::engine
