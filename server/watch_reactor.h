#ifndef GRADWATCH_SERVER_WATCH_REACTOR_H_
#define GRADWATCH_SERVER_WATCH_REACTOR_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/job_history.h"
#include "server/job_observer.h"

namespace gradwatch::server {

/// How a stream puts events into messages.
enum class StreamFraming {
  /// One gradwatch.v1.JobEvent per message (WatchJob, Train).
  kEventPerMessage,
  /// One gradwatch.v1.JobEventBatch per message (WatchJobBatches): every
  /// event at hand when the previous write completed, up to
  /// kMaxBatchEvents events or kMaxBatchBytes bytes.
  kBatched,
};

/// Caps of one batched message; a single larger event travels alone.
inline constexpr size_t kMaxBatchEvents = 512;
inline constexpr size_t kMaxBatchBytes = size_t{1} << 20;

/// Appends to `slices` one `events` entry of a gradwatch.v1.JobEventBatch
/// holding the serialized JobEvent `event`: a small slice with the field's
/// tag and the event's length, then `event` itself, shared rather than
/// copied. Concatenated, such entries are a JobEventBatch. Returns the
/// bytes appended.
size_t AppendBatchEntry(const grpc::Slice& event,
                        std::vector<grpc::Slice>* slices);

/// One WatchJob, WatchJobBatches or Train stream: writes a job's events with
/// step >= from_step from its history, then follows the history live until it
/// closes. The stream reads the history, never the trainer, so a slow
/// client only falls behind; it catches up from the history and costs the
/// job nothing but a notification per event.
///
/// The stream is a raw one (grpc::ByteBuffer messages): it writes the
/// bytes the history serialized once per event, shared by every stream,
/// so that a watcher costs no serialization. On the wire each message is
/// a gradwatch.v1.JobEvent, as the typed client stub reads it, or with
/// StreamFraming::kBatched a gradwatch.v1.JobEventBatch whose entries refer
/// to the same slices: a batch costs a few header bytes per event, and
/// one write, one system call and one client wake-up per batch.
///
/// gRPC rules kept here: one write in flight; the buffer being written is
/// kept alive until OnWriteDone; Finish is called exactly once. Nothing
/// blocks: callbacks and notifications only move references. A
/// notification on a training thread starts no write itself: a busy
/// stream's next write is started by the completion of its write in
/// flight, an idle one's by a server-wide pump thread, which lets appends
/// gather for a millisecond first so that a job of very short steps wakes
/// it once per batch of events rather than once per event.
///
/// Thread-safe. Owns itself: it is freed after gRPC's OnDone and after the
/// last notification that holds it has returned.
class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                           public HistoryListener,
                           public std::enable_shared_from_this<WatchReactor> {
 public:
  /// Starts a stream over `history`. `on_cancel`, if set, runs once when
  /// the client cancels the call (Train cancels its job there).
  /// `observer`, if set, is told when the stream starts and ends and of
  /// the events written; it must outlive the stream.
  static grpc::ServerWriteReactor<grpc::ByteBuffer>* Start(
      std::shared_ptr<JobHistory> history, uint64_t from_step,
      std::function<void()> on_cancel, JobObserver* observer = nullptr,
      StreamFraming framing = StreamFraming::kEventPerMessage);

  /// A stream that ends at once with `status`.
  static grpc::ServerWriteReactor<grpc::ByteBuffer>* Fail(
      const grpc::Status& status);

  /// Parses the request of a raw streaming method into `message`.
  /// INVALID_ARGUMENT if the bytes are not a valid message of its type.
  static absl::Status ParseRequest(const grpc::ByteBuffer& request,
                                   google::protobuf::MessageLite* message);

  WatchReactor(std::shared_ptr<JobHistory> history, uint64_t from_step,
               std::function<void()> on_cancel, JobObserver* observer,
               StreamFraming framing);

  void OnHistoryChanged() override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write, or finishes the stream, if nothing is in flight.
  void Advance();
  // Runs Advance on the write pump, after its delay; wake_posted_ is set.
  void PostAdvance();

  const std::shared_ptr<JobHistory> history_;
  const uint64_t from_step_;
  const StreamFraming framing_;
  std::function<void()> on_cancel_;
  JobObserver* const observer_;

  absl::Mutex mu_;
  std::shared_ptr<WatchReactor> self_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_);
  std::deque<SerializedEvent> pending_ ABSL_GUARDED_BY(mu_);
  // The message in flight; gRPC reads it until OnWriteDone.
  grpc::ByteBuffer in_flight_ ABSL_GUARDED_BY(mu_);
  // Events in in_flight_, for the observer.
  uint64_t in_flight_events_ ABSL_GUARDED_BY(mu_) = 0;
  // in_flight_ took every event the history held (not cut by a limit).
  bool in_flight_caught_up_ ABSL_GUARDED_BY(mu_) = false;
  // Reused for each batch, so that a stream allocates its list once.
  std::vector<grpc::Slice> batch_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // A task to start the next write is queued on the write pump.
  bool wake_posted_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_WATCH_REACTOR_H_
