#include "engine/spare_thread.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace gradwatch::engine {
namespace {

TEST(SpareThreadTest, RunsTheWorkOncePerStartOnItsOwnThread) {
  int runs = 0;  // written by the spare thread, read after Wait
  std::thread::id ran_on;
  SpareThread spare([&] {
    ++runs;
    ran_on = std::this_thread::get_id();
  });
  for (int i = 1; i <= 1000; ++i) {
    spare.Start();
    spare.Wait();
    ASSERT_EQ(runs, i);
  }
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(SpareThreadTest, WaitReturnsOnlyOnceTheWorkHasRun) {
  std::atomic<bool> release{false};
  std::atomic<int> runs{0};
  SpareThread spare([&] {
    while (!release.load()) std::this_thread::yield();
    runs.fetch_add(1);
  });
  spare.Start();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    release.store(true);
  });
  spare.Wait();
  EXPECT_EQ(runs.load(), 1);
  releaser.join();
}

// After kSpinMicroseconds without work the thread sleeps; a Start must
// still wake it (a lost wake-up hangs the test).
TEST(SpareThreadTest, WakesFromSleepForTheNextStart) {
  int runs = 0;
  SpareThread spare([&] { ++runs; });
  for (int i = 1; i <= 5; ++i) {
    std::this_thread::sleep_for(
        std::chrono::microseconds(20 * SpareThread::kSpinMicroseconds));
    spare.Start();
    spare.Wait();
    ASSERT_EQ(runs, i);
  }
}

TEST(SpareThreadTest, DestructionWaitsForStartedWork) {
  std::atomic<int> runs{0};
  {
    SpareThread spare([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      runs.fetch_add(1);
    });
    spare.Start();
  }
  EXPECT_EQ(runs.load(), 1);
}

TEST(SpareThreadTest, WorkRunsWithOneOpenMPThread) {
  omp_set_num_threads(2);
  int threads = 0;
  SpareThread spare([&] { threads = omp_get_max_threads(); });
  spare.Start();
  spare.Wait();
  EXPECT_EQ(threads, 1);
}

#if defined(__x86_64__)
// The statistics count subnormal gradients with the arithmetic of the
// training thread: flush-to-zero and denormals-are-zero must carry over.
TEST(SpareThreadTest, WorkRunsWithTheCallersFloatingPointMode) {
  constexpr unsigned kFtzDaz = 0x8040;
  const unsigned saved = _mm_getcsr();
  volatile float tiny = 1e-39f;  // subnormal
  float product = 1;
  unsigned seen = 0;
  SpareThread spare([&] {
    seen = _mm_getcsr();
    product = tiny * 1.0f;
  });
  _mm_setcsr(saved | kFtzDaz);
  spare.Start();
  spare.Wait();
  EXPECT_EQ(seen & kFtzDaz, kFtzDaz);
  EXPECT_EQ(product, 0.0f);  // DAZ: the subnormal input reads as zero

  _mm_setcsr(saved & ~kFtzDaz);
  spare.Start();
  spare.Wait();
  EXPECT_EQ(seen & kFtzDaz, 0u);
  EXPECT_EQ(product, 1e-39f);
  _mm_setcsr(saved);
}
#endif

}  // namespace
}  // namespace gradwatch::engine
