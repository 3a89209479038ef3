#ifndef GRADWATCH_SERVER_JOB_HISTORY_H_
#define GRADWATCH_SERVER_JOB_HISTORY_H_

#include <grpcpp/support/slice.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gradwatch/v1/events.pb.h"

namespace gradwatch::server {

/// Told when a history has grown or closed. Called on the appending thread
/// (a training thread): implementations only note the news and return.
class HistoryListener {
 public:
  virtual ~HistoryListener() = default;
  virtual void OnHistoryChanged() = 0;
};

/// One stored event as streams write it: the serialized JobEvent in a
/// reference-counted slice that every stream shares, and its step.
struct SerializedEvent {
  uint64_t step = 0;
  grpc::Slice bytes;
};

/// Every event of one job, in order: the record that WatchJob replays and
/// follows. Each event is serialized once, when it is appended, and only
/// its bytes are kept: every stream writes the same immutable slice, so a
/// watcher costs no serialization and a slow stream never holds up the
/// writer. Readers that need the message parse it (Read).
///
/// Thread-safe. Appends serialize under their own lock, so that readers
/// only ever wait for a push onto the list, never for a serialization.
class JobHistory {
 public:
  using EventPtr = std::shared_ptr<const gradwatch::v1::JobEvent>;

  /// `max_listeners` bounds the streams following this job at once.
  JobHistory(std::string job_id, int64_t max_listeners);

  const std::string& job_id() const { return job_id_; }

  /// Appends `event` with job_id, sequence and time filled in, then tells
  /// the listeners. Returns the completed event (the history keeps only
  /// its bytes). Ignored, returning null, once closed.
  EventPtr Append(gradwatch::v1::JobEvent event);

  /// Puts back an event read from a JobStore, as it was stored.
  /// FAILED_PRECONDITION unless it is the next in sequence.
  absl::Status Restore(const gradwatch::v1::JobEvent& event);

  /// Marks the history complete (the job has ended) and tells the
  /// listeners; nothing is appended afterwards.
  void Close();

  /// Appends to `out` up to `max_events` events starting at `from_sequence`,
  /// parsed from their bytes. Returns true when the history is closed and
  /// nothing follows them.
  bool Read(uint64_t from_sequence, size_t max_events,
            std::deque<EventPtr>* out) const;

  /// As Read, but the events as stored: no parsing, no copy of the bytes.
  bool ReadSerialized(uint64_t from_sequence, size_t max_events,
                      std::deque<SerializedEvent>* out) const;

  /// Sequence of the first event whose step is >= `step` (steps never
  /// decrease along a history), or size() if none is yet.
  uint64_t FirstSequenceAtStep(uint64_t step) const;

  uint64_t size() const;
  bool closed() const;
  /// Bytes of the serialized events held.
  uint64_t serialized_bytes() const;
  /// Streams currently registered.
  int64_t listener_count() const;

  /// Registers a listener, held weakly so that it can go away at any time.
  /// RESOURCE_EXHAUSTED when max_listeners are already registered.
  absl::Status AddListener(const std::shared_ptr<HistoryListener>& listener);
  void RemoveListener(const HistoryListener* listener);

 private:
  void NotifyListeners();

  const std::string job_id_;
  const int64_t max_listeners_;
  // Orders appends, restores and Close; taken before mu_.
  absl::Mutex append_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  // A deque, so that growing it never moves the stored slices.
  std::deque<SerializedEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  struct Listener {
    const HistoryListener* address;  // identity, never dereferenced
    std::weak_ptr<HistoryListener> weak;
  };
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_JOB_HISTORY_H_
