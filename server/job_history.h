#ifndef GRADWATCH_SERVER_JOB_HISTORY_H_
#define GRADWATCH_SERVER_JOB_HISTORY_H_

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

/// Every event of one job, in order: the record that WatchJob replays and
/// follows. Events are immutable once appended and shared with readers, so
/// a stream writes them without copying and a slow stream never holds up
/// the writer. Thread-safe.
class JobHistory {
 public:
  using EventPtr = std::shared_ptr<const gradwatch::v1::JobEvent>;

  /// `max_listeners` bounds the streams following this job at once.
  JobHistory(std::string job_id, int64_t max_listeners);

  const std::string& job_id() const { return job_id_; }

  /// Appends `event` with job_id, sequence and time filled in, then tells
  /// the listeners. Returns the stored event. Ignored once closed.
  EventPtr Append(gradwatch::v1::JobEvent event);

  /// Puts back an event read from a JobStore, as it was stored.
  /// FAILED_PRECONDITION unless it is the next in sequence.
  absl::Status Restore(gradwatch::v1::JobEvent event);

  /// Marks the history complete (the job has ended) and tells the
  /// listeners; nothing is appended afterwards.
  void Close();

  /// Appends to `out` up to `max_events` events starting at `from_sequence`.
  /// Returns true when the history is closed and nothing follows them.
  bool Read(uint64_t from_sequence, size_t max_events,
            std::deque<EventPtr>* out) const;

  /// Sequence of the first event whose step is >= `step` (steps never
  /// decrease along a history), or size() if none is yet.
  uint64_t FirstSequenceAtStep(uint64_t step) const;

  uint64_t size() const;
  bool closed() const;
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
  mutable absl::Mutex mu_;
  std::vector<EventPtr> events_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  struct Listener {
    const HistoryListener* address;  // identity, never dereferenced
    std::weak_ptr<HistoryListener> weak;
  };
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_JOB_HISTORY_H_
