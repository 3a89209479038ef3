#include "server/job_history.h"

#include <grpc/slice.h>

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/proto_time.h"

namespace gradwatch::server {
namespace {

// The event's bytes in a slice of their own: one allocation, written in
// place.
grpc::Slice Serialize(const gradwatch::v1::JobEvent& event) {
  grpc_slice slice = grpc_slice_malloc(event.ByteSizeLong());
  event.SerializeWithCachedSizesToArray(GRPC_SLICE_START_PTR(slice));
  return grpc::Slice(slice, grpc::Slice::STEAL_REF);
}

}  // namespace

JobHistory::JobHistory(std::string job_id, int64_t max_listeners)
    : job_id_(std::move(job_id)), max_listeners_(max_listeners) {}

JobHistory::EventPtr JobHistory::Append(gradwatch::v1::JobEvent event) {
  std::shared_ptr<gradwatch::v1::JobEvent> stored;
  {
    absl::MutexLock append_lock(&append_mu_);
    uint64_t sequence;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return nullptr;
      sequence = events_.size();
    }
    // Only appends and restores change the size, and both hold
    // append_mu_: the sequence stays free while the event is serialized
    // outside mu_, where readers never wait for it.
    event.set_job_id(job_id_);
    event.set_sequence(sequence);
    *event.mutable_time() = ToTimestamp(absl::Now());
    SerializedEvent serialized{event.step(), Serialize(event)};
    stored = std::make_shared<gradwatch::v1::JobEvent>(std::move(event));
    absl::MutexLock lock(&mu_);
    bytes_ += serialized.bytes.size();
    events_.push_back(std::move(serialized));
  }
  NotifyListeners();
  return stored;
}

absl::Status JobHistory::Restore(const gradwatch::v1::JobEvent& event) {
  absl::MutexLock append_lock(&append_mu_);
  SerializedEvent serialized{event.step(), Serialize(event)};
  absl::MutexLock lock(&mu_);
  if (closed_ || event.sequence() != events_.size() ||
      event.job_id() != job_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stored event ", event.sequence(), " of job ", event.job_id(),
        " does not follow the ", events_.size(), " events of job ", job_id_));
  }
  bytes_ += serialized.bytes.size();
  events_.push_back(std::move(serialized));
  return absl::OkStatus();
}

void JobHistory::Close() {
  {
    absl::MutexLock append_lock(&append_mu_);
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
  }
  NotifyListeners();
}

bool JobHistory::Read(uint64_t from_sequence, size_t max_events,
                      std::deque<EventPtr>* out) const {
  std::deque<SerializedEvent> serialized;
  const bool done = ReadSerialized(from_sequence, max_events, &serialized);
  for (const SerializedEvent& event : serialized) {
    auto parsed = std::make_shared<gradwatch::v1::JobEvent>();
    // Bytes this history serialized always parse.
    parsed->ParseFromArray(event.bytes.begin(),
                           static_cast<int>(event.bytes.size()));
    out->push_back(std::move(parsed));
  }
  return done;
}

bool JobHistory::ReadSerialized(uint64_t from_sequence, size_t max_events,
                                std::deque<SerializedEvent>* out) const {
  absl::MutexLock lock(&mu_);
  const uint64_t end =
      std::min<uint64_t>(events_.size(), from_sequence + max_events);
  for (uint64_t i = from_sequence; i < end; ++i) out->push_back(events_[i]);
  return closed_ && end >= events_.size();
}

uint64_t JobHistory::FirstSequenceAtStep(uint64_t step) const {
  absl::MutexLock lock(&mu_);
  auto first = std::lower_bound(
      events_.begin(), events_.end(), step,
      [](const SerializedEvent& event, uint64_t s) { return event.step < s; });
  return static_cast<uint64_t>(first - events_.begin());
}

uint64_t JobHistory::size() const {
  absl::MutexLock lock(&mu_);
  return events_.size();
}

bool JobHistory::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

uint64_t JobHistory::serialized_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int64_t JobHistory::listener_count() const {
  absl::MutexLock lock(&mu_);
  return std::count_if(listeners_.begin(), listeners_.end(),
                       [](const Listener& l) { return !l.weak.expired(); });
}

absl::Status JobHistory::AddListener(
    const std::shared_ptr<HistoryListener>& listener) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(
      std::remove_if(listeners_.begin(), listeners_.end(),
                     [](const Listener& l) { return l.weak.expired(); }),
      listeners_.end());
  if (static_cast<int64_t>(listeners_.size()) >= max_listeners_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("job ", job_id_, " already has ", listeners_.size(),
                     " watchers, the server's limit (--max_watchers_per_job)"));
  }
  listeners_.push_back({listener.get(), listener});
  return absl::OkStatus();
}

void JobHistory::RemoveListener(const HistoryListener* listener) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(),
                                  [listener](const Listener& l) {
                                    return l.address == listener;
                                  }),
                   listeners_.end());
}

void JobHistory::NotifyListeners() {
  // Inline: an append on a training thread allocates nothing here.
  absl::InlinedVector<std::shared_ptr<HistoryListener>, 4> listeners;
  {
    absl::MutexLock lock(&mu_);
    for (const Listener& l : listeners_) {
      if (auto strong = l.weak.lock()) listeners.push_back(std::move(strong));
    }
  }
  // Outside the lock: a listener reads the history from its callback.
  for (const auto& listener : listeners) listener->OnHistoryChanged();
}

}  // namespace gradwatch::server
