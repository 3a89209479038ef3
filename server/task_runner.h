#ifndef GRADWATCH_SERVER_TASK_RUNNER_H_
#define GRADWATCH_SERVER_TASK_RUNNER_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace gradwatch::server {

/// A few threads that run tasks in FIFO order: where RPC handlers send
/// work that may take a while (a forward pass for Predict, a copy of a
/// model's weights) so that gRPC's own callback threads never wait on it.
/// Thread-safe. The destructor runs the tasks already posted, then joins.
class TaskRunner {
 public:
  explicit TaskRunner(int threads);
  ~TaskRunner();
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  void Post(std::function<void()> task);

 private:
  void Loop();
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_TASK_RUNNER_H_
