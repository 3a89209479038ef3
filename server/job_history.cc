#include "server/job_history.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/proto_time.h"

namespace gradwatch::server {

JobHistory::JobHistory(std::string job_id, int64_t max_listeners)
    : job_id_(std::move(job_id)), max_listeners_(max_listeners) {}

JobHistory::EventPtr JobHistory::Append(gradwatch::v1::JobEvent event) {
  EventPtr stored;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return nullptr;
    event.set_job_id(job_id_);
    event.set_sequence(events_.size());
    *event.mutable_time() = ToTimestamp(absl::Now());
    stored = std::make_shared<const gradwatch::v1::JobEvent>(std::move(event));
    events_.push_back(stored);
  }
  NotifyListeners();
  return stored;
}

absl::Status JobHistory::Restore(gradwatch::v1::JobEvent event) {
  absl::MutexLock lock(&mu_);
  if (closed_ || event.sequence() != events_.size() ||
      event.job_id() != job_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stored event ", event.sequence(), " of job ", event.job_id(),
        " does not follow the ", events_.size(), " events of job ", job_id_));
  }
  events_.push_back(
      std::make_shared<const gradwatch::v1::JobEvent>(std::move(event)));
  return absl::OkStatus();
}

void JobHistory::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
  }
  NotifyListeners();
}

bool JobHistory::Read(uint64_t from_sequence, size_t max_events,
                      std::deque<EventPtr>* out) const {
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
      [](const EventPtr& event, uint64_t s) { return event->step() < s; });
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
  std::vector<std::shared_ptr<HistoryListener>> listeners;
  {
    absl::MutexLock lock(&mu_);
    listeners.reserve(listeners_.size());
    for (const Listener& l : listeners_) {
      if (auto strong = l.weak.lock()) listeners.push_back(std::move(strong));
    }
  }
  // Outside the lock: a listener reads the history from its callback.
  for (const auto& listener : listeners) listener->OnHistoryChanged();
}

}  // namespace gradwatch::server
