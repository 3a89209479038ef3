#ifndef GRADWATCH_ENGINE_SPARE_THREAD_H_
#define GRADWATCH_ENGINE_SPARE_THREAD_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace gradwatch::engine {

/// A thread of a job's budget that its compute primitives leave idle,
/// running one fixed piece of work beside the job's thread: Start() hands
/// the work over, Wait() returns once it has run. The handoff is a pair of
/// counters that each side polls: the thread polls for about
/// kSpinMicroseconds after its last work before it sleeps, so that work
/// handed over every few microseconds costs the caller no system call
/// and no wake-up delay. The work runs with the caller's floating-point
/// control word (flush-to-zero and denormals-are-zero included) and with
/// one OpenMP thread.
///
/// Start and Wait are called from one thread only, alternately (Start,
/// Wait, Start, ...); the work must not touch what the caller changes
/// between the two.
class SpareThread {
 public:
  /// How long the idle thread polls before it sleeps.
  static constexpr int kSpinMicroseconds = 200;

  explicit SpareThread(std::function<void()> work);
  /// Waits for work in progress, then joins the thread.
  ~SpareThread();
  SpareThread(const SpareThread&) = delete;
  SpareThread& operator=(const SpareThread&) = delete;

  /// CPUs the calling thread may run on (its affinity mask, where the
  /// system has one; else the machine's count). A spare thread that has
  /// to share the caller's CPU makes both wait out each other's time
  /// slices: only worth starting when this exceeds the caller's threads.
  static int AvailableCpus();

  /// Runs the work once on the thread. Not while it runs (call Wait first).
  void Start();
  /// Returns once the work handed over by the last Start has run.
  void Wait();

 private:
  void Loop();

  const std::function<void()> work_;
  // Starts requested and works finished; each on its own cache line, as
  // each side writes one and polls the other.
  alignas(64) std::atomic<uint64_t> requested_{0};
  alignas(64) std::atomic<uint64_t> finished_{0};
  alignas(64) std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  uint32_t control_word_ = 0;  // the caller's MXCSR at Start
  std::mutex mu_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_SPARE_THREAD_H_
