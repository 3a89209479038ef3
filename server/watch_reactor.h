#ifndef GRADWATCH_SERVER_WATCH_REACTOR_H_
#define GRADWATCH_SERVER_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gradwatch/v1/events.pb.h"
#include "server/job_history.h"
#include "server/job_observer.h"

namespace gradwatch::server {

/// One WatchJob or Train stream: writes a job's events with step >=
/// from_step from its history, then follows the history live until it
/// closes. The stream reads the history, never the trainer, so a slow
/// client only falls behind; it catches up from the history and costs the
/// job nothing but a notification per event.
///
/// gRPC rules kept here: one write in flight; the event being written is
/// kept alive (shared) until OnWriteDone; Finish is called exactly once.
/// Nothing blocks: callbacks and notifications only move pointers. A
/// notification on a training thread starts no write itself: an idle
/// stream's next write is started by a server-wide pump thread, and a busy
/// one's by the completion of its write in flight.
///
/// Thread-safe. Owns itself: it is freed after gRPC's OnDone and after the
/// last notification that holds it has returned.
class WatchReactor final
    : public grpc::ServerWriteReactor<gradwatch::v1::JobEvent>,
      public HistoryListener,
      public std::enable_shared_from_this<WatchReactor> {
 public:
  /// Starts a stream over `history`. `on_cancel`, if set, runs once when
  /// the client cancels the call (Train cancels its job there).
  /// `observer`, if set, is told when the stream starts and ends and of
  /// every event written; it must outlive the stream.
  static grpc::ServerWriteReactor<gradwatch::v1::JobEvent>* Start(
      std::shared_ptr<JobHistory> history, uint64_t from_step,
      std::function<void()> on_cancel, JobObserver* observer = nullptr);

  /// A stream that ends at once with `status`.
  static grpc::ServerWriteReactor<gradwatch::v1::JobEvent>* Fail(
      const grpc::Status& status);

  WatchReactor(std::shared_ptr<JobHistory> history, uint64_t from_step,
               std::function<void()> on_cancel, JobObserver* observer);

  void OnHistoryChanged() override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write, or finishes the stream, if nothing is in flight.
  void Advance();

  const std::shared_ptr<JobHistory> history_;
  const uint64_t from_step_;
  std::function<void()> on_cancel_;
  JobObserver* const observer_;

  absl::Mutex mu_;
  std::shared_ptr<WatchReactor> self_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_);
  std::deque<JobHistory::EventPtr> pending_ ABSL_GUARDED_BY(mu_);
  JobHistory::EventPtr in_flight_ ABSL_GUARDED_BY(mu_);
  // A task to start the next write is queued on the write pump.
  bool wake_posted_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_WATCH_REACTOR_H_
