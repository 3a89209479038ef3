#include "client/interrupt.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <utility>

namespace gradwatch::client {
namespace {

// The write end of the active watcher's pipe; the handler may only do
// async-signal-safe things: a write(2), and resetting the disposition.
std::atomic<int> g_interrupt_fd{-1};

constexpr char kInterrupted = 'i';
constexpr char kStop = 's';

extern "C" void OnSigint(int /*signal*/) {
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process
  const int fd = g_interrupt_fd.load();
  if (fd >= 0) {
    const char byte = kInterrupted;
    [[maybe_unused]] ssize_t written = write(fd, &byte, 1);
  }
}

}  // namespace

InterruptWatcher::InterruptWatcher(std::function<void()> on_interrupt)
    : on_interrupt_(std::move(on_interrupt)) {
  if (pipe(pipe_) != 0) return;  // without a pipe, Ctrl-C keeps its default
  fcntl(pipe_[0], F_SETFD, FD_CLOEXEC);
  fcntl(pipe_[1], F_SETFD, FD_CLOEXEC);
  g_interrupt_fd.store(pipe_[1]);
  thread_ = std::thread([this] {
    char byte = 0;
    while (read(pipe_[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (byte == kInterrupted) on_interrupt_();
  });
  previous_ = std::signal(SIGINT, OnSigint);
}

InterruptWatcher::~InterruptWatcher() {
  if (!thread_.joinable()) return;
  std::signal(SIGINT, previous_ == SIG_ERR ? SIG_DFL : previous_);
  g_interrupt_fd.store(-1);
  const char byte = kStop;
  [[maybe_unused]] ssize_t written = write(pipe_[1], &byte, 1);
  thread_.join();
  close(pipe_[0]);
  close(pipe_[1]);
}

}  // namespace gradwatch::client
