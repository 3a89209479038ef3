#ifndef GRADWATCH_CLIENT_INTERRUPT_H_
#define GRADWATCH_CLIENT_INTERRUPT_H_

#include <functional>
#include <thread>

namespace gradwatch::client {

/// Turns the first SIGINT (Ctrl-C) into a call of `on_interrupt` on a thread
/// of its own, where it may block (e.g. make an RPC); a second SIGINT ends
/// the process as usual. The previous SIGINT disposition is restored on
/// destruction. At most one instance may exist at a time; construct and
/// destroy it on one thread.
class InterruptWatcher {
 public:
  explicit InterruptWatcher(std::function<void()> on_interrupt);
  ~InterruptWatcher();
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

 private:
  std::function<void()> on_interrupt_;
  void (*previous_)(int) = nullptr;
  int pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_INTERRUPT_H_
