#include "server/job_manager.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/trainer.h"
#include "server/proto_time.h"
#include "server/thread_name.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;
constexpr int kMaxPredictRows = 65536;

// One line per lifecycle event, with the job id, on stderr.
void LogJob(const std::string& job_id, const std::string& what) {
  std::fprintf(
      stderr, "%s gradwatch-server: job %s %s\n",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())
          .c_str(),
      job_id.c_str(), what.c_str());
}

std::string StateName(v1::JobState state) {
  return absl::AsciiStrToLower(v1::JobState_Name(state));
}

}  // namespace

struct JobManager::Entry {
  Entry(std::string job_id, uint64_t creation_index, std::string job_owner,
        v1::JobSpec job_spec, int64_t max_watchers)
      : id(std::move(job_id)),
        creation(creation_index),
        owner(std::move(job_owner)),
        spec(std::move(job_spec)),
        history(std::make_shared<JobHistory>(id, max_watchers)) {}

  const std::string id;
  const uint64_t creation;
  // Also in the record; kept here to check access without the entry's lock.
  const std::string owner;
  const v1::JobSpec spec;
  const std::shared_ptr<JobHistory> history;
  engine::CancellationToken cancel;
  // Set when the manager, not a client, stops the job.
  std::atomic<bool> interrupted{false};

  mutable absl::Mutex mu;
  // Everything but the spec, which is kept once above.
  v1::Job record ABSL_GUARDED_BY(mu);
  std::shared_ptr<engine::Trainer> trainer ABSL_GUARDED_BY(mu);
  // A recovered job's parameters, from the store.
  std::optional<v1::Model> stored_model ABSL_GUARDED_BY(mu);
};

JobManager::JobManager(const JobManagerOptions& options, JobStore* store)
    : options_(options), store_(store) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(
    const JobManagerOptions& options, JobStore* store) {
  std::unique_ptr<JobManager> manager(new JobManager(options, store));
  if (store != nullptr) {
    absl::Status recovered = manager->Recover();
    if (!recovered.ok()) return recovered;
  }
  for (int i = 0; i < std::max(1, options.workers); ++i) {
    manager->workers_.emplace_back([m = manager.get()] { m->WorkerLoop(); });
  }
  if (options.retention < absl::InfiniteDuration()) {
    manager->workers_.emplace_back([m = manager.get()] { m->SweepLoop(); });
  }
  return manager;
}

absl::Status JobManager::Recover() {
  absl::StatusOr<std::vector<JobStore::StoredJob>> stored = store_->LoadAll();
  if (!stored.ok()) return stored.status();
  for (JobStore::StoredJob& job : *stored) {
    v1::Job record = std::move(job.job);
    v1::JobSpec spec = std::move(*record.mutable_spec());
    record.clear_spec();
    std::shared_ptr<Entry> entry;
    {
      absl::MutexLock lock(&mu_);
      entry = std::make_shared<Entry>(record.id(), next_creation_++,
                                      record.owner(), std::move(spec),
                                      options_.max_watchers_per_job);
      jobs_[entry->id] = entry;
      by_creation_[entry->creation] = entry;
    }
    // Progress is written with each event, the record only at state
    // changes: take the latest figures from the history.
    for (v1::JobEvent& event : job.events) {
      record.set_steps_completed(
          std::max<uint64_t>(record.steps_completed(), event.step()));
      if (event.has_stats()) record.set_loss(event.stats().loss());
      absl::Status restored = entry->history->Restore(std::move(event));
      if (!restored.ok()) return restored;
    }
    const v1::JobState state = record.state();
    {
      absl::MutexLock lock(&entry->mu);
      entry->record = std::move(record);
      entry->stored_model = std::move(job.model);
    }
    if (state == v1::QUEUED || state == v1::RUNNING) {
      entry->interrupted = true;
      EndWithoutRun(entry, v1::INTERRUPTED,
                    absl::StrCat("the server stopped while the job was ",
                                 StateName(state)));
    } else {
      entry->history->Close();
    }
  }
  return absl::OkStatus();
}

void JobManager::Append(const std::shared_ptr<Entry>& entry,
                        v1::JobEvent event) {
  JobHistory::EventPtr stored = entry->history->Append(std::move(event));
  if (options_.observer != nullptr && stored != nullptr) {
    options_.observer->OnJobEvent(entry->id, *stored);
  }
  if (store_ != nullptr && stored != nullptr) {
    absl::Status written = store_->AppendEvent(*stored);
    if (!written.ok()) ReportStoreError(entry->id, written);
  }
}

void JobManager::EmitState(const std::shared_ptr<Entry>& entry,
                           v1::JobState state, const std::string& message) {
  v1::JobEvent event;
  {
    absl::MutexLock lock(&entry->mu);
    event.set_step(entry->record.steps_completed());
  }
  event.mutable_state_change()->set_state(state);
  event.mutable_state_change()->set_message(message);
  Append(entry, std::move(event));
}

void JobManager::PersistRecord(const Entry& entry) {
  if (store_ == nullptr) return;
  v1::Job job;
  {
    absl::MutexLock lock(&entry.mu);
    job = entry.record;
  }
  *job.mutable_spec() = entry.spec;
  absl::Status written = store_->PutJob(job);
  if (!written.ok()) ReportStoreError(entry.id, written);
}

// The job goes on without its durable copy: losing the store must not
// fail the training.
void JobManager::ReportStoreError(const std::string& job_id,
                                  const absl::Status& status) {
  LogJob(job_id, absl::StrCat("not stored: ", status.ToString()));
}

JobManager::~JobManager() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<v1::Job> JobManager::Submit(const v1::JobSpec& spec,
                                           const std::string& owner) {
  std::string id;
  uint64_t creation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the server is shutting down");
    }
    const int64_t waiting = static_cast<int64_t>(queue_.size()) + admitting_;
    if (waiting >= options_.max_queued_jobs) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the queue holds ", waiting,
                       " jobs, the server's limit (--max_queued_jobs)"));
    }
    ++admitting_;  // holds the job's place in the queue
    do {
      id = absl::StrFormat("j-%016x", absl::Uniform<uint64_t>(id_bits_));
    } while (jobs_.contains(id));
    creation = next_creation_++;
  }
  auto entry = std::make_shared<Entry>(id, creation, owner, spec,
                                       options_.max_watchers_per_job);
  {
    absl::MutexLock entry_lock(&entry->mu);
    entry->record.set_id(id);
    entry->record.set_owner(owner);
    entry->record.set_state(v1::QUEUED);
    *entry->record.mutable_create_time() = ToTimestamp(absl::Now());
  }
  // Stored and QUEUED before anyone can see the job: a worker cannot emit
  // RUNNING first, and no lock is held while the store writes.
  PersistRecord(*entry);
  EmitState(entry, v1::QUEUED, "accepted");
  // The name is the client's: escaped, so that it cannot forge log lines.
  std::string log_line =
      spec.name().empty()
          ? std::string("queued")
          : absl::StrCat("queued \"", absl::CHexEscape(spec.name()), "\"");
  if (!owner.empty()) absl::StrAppend(&log_line, " for ", owner);
  LogJob(id, log_line);
  bool queued = false;
  {
    absl::MutexLock lock(&mu_);
    --admitting_;
    jobs_[id] = entry;
    by_creation_[creation] = entry;
    if (!stopping_) {
      queue_.push_back(entry);
      queued = true;
    }
  }
  if (!queued) {
    entry->interrupted = true;
    EndWithoutRun(entry, v1::INTERRUPTED,
                  "the server shut down before the job started");
  }
  return Get(id, /*with_spec=*/false);
}

std::shared_ptr<JobManager::Entry> JobManager::Find(
    const std::string& job_id, const Principal& caller) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !caller.CanAccess(it->second->owner)) return nullptr;
  return it->second;
}

namespace {
// Also the answer for another principal's job: the same message, so that a
// caller cannot tell which ids exist.
absl::Status UnknownJob(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}
}  // namespace

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id,
                                        bool with_spec,
                                        const Principal& caller) const {
  std::shared_ptr<Entry> entry = Find(job_id, caller);
  if (entry == nullptr) return UnknownJob(job_id);
  v1::Job job;
  {
    absl::MutexLock lock(&entry->mu);
    job = entry->record;
  }
  if (with_spec) *job.mutable_spec() = entry->spec;
  return job;
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(
    const v1::ListJobsRequest& request, const Principal& caller) const {
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be in [0, ",
                                                   kMaxPageSize, "], got ",
                                                   request.page_size()));
  }
  const uint32_t page_size =
      request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  // A token is the creation index of the last job of the previous page.
  uint64_t before = std::numeric_limits<uint64_t>::max();
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &before) || before == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token \"", request.page_token(), "\" is not valid"));
  }

  v1::ListJobsResponse response;
  absl::MutexLock lock(&mu_);
  uint64_t last_creation = 0;
  auto it = by_creation_.lower_bound(before);
  while (it != by_creation_.begin()) {
    --it;
    const Entry& entry = *it->second;
    if (!caller.CanAccess(entry.owner)) continue;
    absl::MutexLock entry_lock(&entry.mu);
    if (request.state() != v1::JOB_STATE_UNSPECIFIED &&
        entry.record.state() != request.state()) {
      continue;
    }
    if (static_cast<uint32_t>(response.jobs_size()) == page_size) {
      response.set_next_page_token(absl::StrCat(last_creation));
      break;
    }
    *response.add_jobs() = entry.record;
    last_creation = entry.creation;
  }
  return response;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id,
                                           const Principal& caller) {
  std::shared_ptr<Entry> entry;
  bool was_queued = false;
  {
    absl::MutexLock lock(&mu_);
    auto found = jobs_.find(job_id);
    if (found == jobs_.end() || !caller.CanAccess(found->second->owner)) {
      return UnknownJob(job_id);
    }
    entry = found->second;
    auto queued = std::find(queue_.begin(), queue_.end(), entry);
    if (queued != queue_.end()) {
      queue_.erase(queued);
      was_queued = true;
    }
  }
  if (was_queued) {
    EndWithoutRun(entry, v1::CANCELLED, "cancelled while queued");
  } else if (!entry->history->closed() && !entry->cancel.cancelled()) {
    entry->cancel.Cancel();
    LogJob(entry->id, "cancellation requested");
  }
  return Get(job_id, /*with_spec=*/false);
}

absl::StatusOr<std::shared_ptr<JobHistory>> JobManager::History(
    const std::string& job_id, const Principal& caller) const {
  std::shared_ptr<Entry> entry = Find(job_id, caller);
  if (entry == nullptr) return UnknownJob(job_id);
  return entry->history;
}

absl::StatusOr<std::shared_ptr<engine::Trainer>> JobManager::TrainerFor(
    const std::shared_ptr<Entry>& entry) const {
  std::optional<v1::Model> stored_model;
  v1::JobState state;
  {
    absl::MutexLock lock(&entry->mu);
    if (entry->trainer != nullptr) return entry->trainer;
    stored_model = entry->stored_model;
    state = entry->record.state();
  }
  if (!stored_model.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", entry->id, " has no model (state ", StateName(state), ")"));
  }
  // A recovered job: rebuild its network from the stored parameters.
  v1::JobSpec spec = entry->spec;
  *spec.mutable_model()->mutable_initial_weights() = stored_model->layers();
  engine::TrainerOptions trainer_options;
  trainer_options.threads = options_.job_threads;
  absl::StatusOr<std::unique_ptr<engine::Trainer>> created;
  try {
    created = engine::Trainer::Create(spec, trainer_options);
  } catch (const std::exception& e) {
    created = absl::InternalError(e.what());
  }
  if (!created.ok()) return created.status();
  absl::MutexLock lock(&entry->mu);
  if (entry->trainer == nullptr) entry->trainer = std::move(*created);
  return entry->trainer;
}

absl::StatusOr<v1::PredictResponse> JobManager::Predict(
    const v1::PredictRequest& request, const Principal& caller) const {
  std::shared_ptr<Entry> entry = Find(request.job_id(), caller);
  if (entry == nullptr) return UnknownJob(request.job_id());
  if (request.inputs_size() < 1 || request.inputs_size() > kMaxPredictRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("inputs must hold [1, ", kMaxPredictRows, "] rows, got ",
                     request.inputs_size()));
  }
  absl::StatusOr<std::shared_ptr<engine::Trainer>> trainer = TrainerFor(entry);
  if (!trainer.ok()) return trainer.status();
  try {
    return (*trainer)->Predict(request.inputs());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("prediction failed: ", e.what()));
  }
}

absl::StatusOr<v1::Model> JobManager::GetModel(const std::string& job_id,
                                               const Principal& caller) const {
  std::shared_ptr<Entry> entry = Find(job_id, caller);
  if (entry == nullptr) return UnknownJob(job_id);
  {
    absl::MutexLock lock(&entry->mu);
    if (entry->trainer == nullptr && entry->stored_model.has_value()) {
      return *entry->stored_model;
    }
  }
  absl::StatusOr<std::shared_ptr<engine::Trainer>> found = TrainerFor(entry);
  if (!found.ok()) return found.status();
  try {
    absl::StatusOr<v1::Model> model = (*found)->GetModel();
    if (model.ok()) model->set_job_id(entry->id);
    return model;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("reading the model failed: ", e.what()));
  }
}

void JobManager::SweepLoop() {
  NameCurrentThread("gw-retention");
  // A few sweeps per retention period: a job outlives it by a quarter at
  // most, and a long retention costs one scan a minute.
  const absl::Duration period = std::clamp(
      options_.retention / 4, absl::Milliseconds(10), absl::Minutes(1));
  while (true) {
    RemoveEndedBefore(absl::Now() - options_.retention);
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
  }
}

void JobManager::RemoveEndedBefore(absl::Time cutoff) {
  std::vector<std::string> removed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = by_creation_.begin(); it != by_creation_.end();) {
      const Entry& entry = *it->second;
      bool expired = false;
      // A closed history: the job has ended and its end is stored.
      if (entry.history->closed()) {
        absl::MutexLock entry_lock(&entry.mu);
        const google::protobuf::Timestamp& end = entry.record.end_time();
        expired = absl::FromUnixSeconds(end.seconds()) +
                      absl::Nanoseconds(end.nanos()) <
                  cutoff;
      }
      if (!expired) {
        ++it;
        continue;
      }
      removed.push_back(entry.id);
      jobs_.erase(entry.id);
      it = by_creation_.erase(it);
    }
  }
  for (const std::string& id : removed) {
    if (store_ != nullptr) {
      absl::Status deleted = store_->DeleteJob(id);
      if (!deleted.ok()) ReportStoreError(id, deleted);
    }
    LogJob(id, "removed (ended longer than the retention ago)");
  }
}

bool JobManager::WorkAvailable() const { return stopping_ || !queue_.empty(); }

bool JobManager::NothingRunning() const { return running_ == 0; }

void JobManager::WorkerLoop() {
  NameCurrentThread("gw-job");
  while (true) {
    std::shared_ptr<Entry> entry;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &JobManager::WorkAvailable));
      if (queue_.empty()) return;
      entry = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    RunJob(entry);
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

void JobManager::RunJob(const std::shared_ptr<Entry>& entry) {
  {
    absl::MutexLock lock(&entry->mu);
    entry->record.set_state(v1::RUNNING);
    *entry->record.mutable_start_time() = ToTimestamp(absl::Now());
  }
  PersistRecord(*entry);
  EmitState(entry, v1::RUNNING, "started");
  LogJob(entry->id, "running");

  absl::StatusOr<std::unique_ptr<engine::Trainer>> created;
  try {
    engine::TrainerOptions trainer_options;
    trainer_options.threads = options_.job_threads;
    created = engine::Trainer::Create(entry->spec, trainer_options);
  } catch (const std::exception& e) {
    created = absl::InternalError(e.what());
  }
  if (!created.ok()) {
    EndWithoutRun(entry, v1::FAILED, std::string(created.status().message()));
    return;
  }
  std::shared_ptr<engine::Trainer> trainer = std::move(*created);
  {
    absl::MutexLock lock(&entry->mu);
    entry->trainer = trainer;
    *entry->record.mutable_run_info() = trainer->run_info();
    entry->record.set_steps_total(trainer->run_info().steps_total());
  }

  // The callback runs on this thread, between steps: it only updates the
  // record and appends to the history, whose readers never block it.
  bool summary_seen = false;
  v1::Summary summary;
  // Set once the history passes max_history_bytes: the job is cancelled,
  // and its summary says FAILED and why.
  std::string history_full;
  auto on_event = [&](const v1::JobEvent& event) {
    v1::JobEvent copy = event;
    {
      absl::MutexLock lock(&entry->mu);
      v1::Job& record = entry->record;
      record.set_steps_completed(
          std::max<uint64_t>(record.steps_completed(), copy.step()));
      if (copy.has_stats()) record.set_loss(copy.stats().loss());
      if (copy.has_started()) {
        *record.mutable_run_info() = copy.started();
        record.set_steps_total(copy.started().steps_total());
      }
    }
    if (copy.has_summary()) {
      if (entry->interrupted) {
        copy.mutable_summary()->set_state(v1::INTERRUPTED);
      } else if (!history_full.empty()) {
        copy.mutable_summary()->set_state(v1::FAILED);
        copy.mutable_summary()->set_error(history_full);
      }
      summary = copy.summary();
      summary_seen = true;
    }
    const uint64_t step = copy.step();
    Append(entry, std::move(copy));
    const uint64_t bytes = entry->history->serialized_bytes();
    if (history_full.empty() &&
        bytes > static_cast<uint64_t>(options_.max_history_bytes)) {
      history_full = absl::StrCat(
          "the job's event history reached ", bytes, " bytes at step ", step,
          ", over the server's limit of ", options_.max_history_bytes,
          " (--max_history_bytes): raise monitoring.stats_every or lower "
          "training.steps");
      entry->cancel.Cancel();
    }
  };
  try {
    v1::Summary returned = trainer->Run(on_event, entry->cancel);
    if (!summary_seen) summary = std::move(returned);
  } catch (const std::exception& e) {
    summary.set_state(v1::FAILED);
    summary.set_error(absl::StrCat("training failed: ", e.what()));
  }
  if (!summary_seen && !history_full.empty() && !entry->interrupted) {
    summary.set_state(v1::FAILED);
    summary.set_error(history_full);
  }
  if (summary.state() == v1::JOB_STATE_UNSPECIFIED ||
      (entry->interrupted && summary.state() == v1::CANCELLED)) {
    summary.set_state(entry->interrupted          ? v1::INTERRUPTED
                      : entry->cancel.cancelled() ? v1::CANCELLED
                                                  : v1::SUCCEEDED);
  }
  if (!summary_seen) {
    v1::JobEvent event;
    {
      absl::MutexLock lock(&entry->mu);
      event.set_step(entry->record.steps_completed());
    }
    *event.mutable_summary() = summary;
    Append(entry, std::move(event));
  }
  if (store_ != nullptr) {
    absl::StatusOr<v1::Model> model = trainer->GetModel();
    if (model.ok()) {
      model->set_job_id(entry->id);
      absl::Status written = store_->PutModel(*model);
      if (!written.ok()) ReportStoreError(entry->id, written);
    }
  }
  EndJob(entry, summary);
}

void JobManager::EndWithoutRun(const std::shared_ptr<Entry>& entry,
                               v1::JobState state, const std::string& reason) {
  v1::Summary summary;
  summary.set_state(state);
  if (state == v1::FAILED) summary.set_error(reason);
  summary.set_diagnosis_reason(reason);
  v1::JobEvent event;
  {
    absl::MutexLock lock(&entry->mu);
    summary.set_steps_completed(entry->record.steps_completed());
    event.set_step(entry->record.steps_completed());
  }
  *event.mutable_summary() = summary;
  Append(entry, std::move(event));
  EndJob(entry, summary);
}

void JobManager::EndJob(const std::shared_ptr<Entry>& entry,
                        const v1::Summary& summary) {
  std::string message;
  {
    absl::MutexLock lock(&entry->mu);
    v1::Job& record = entry->record;
    record.set_state(summary.state());
    *record.mutable_end_time() = ToTimestamp(absl::Now());
    record.set_diagnosis(summary.diagnosis());
    *record.mutable_summary() = summary;
    record.set_steps_completed(
        std::max(record.steps_completed(), summary.steps_completed()));
    message = absl::StrCat(StateName(summary.state()), " after ",
                           record.steps_completed(), " steps");
  }
  if (summary.diagnosis() != v1::DIAGNOSIS_UNSPECIFIED) {
    absl::StrAppend(&message, ", diagnosis ",
                    v1::Diagnosis_Name(summary.diagnosis()));
  }
  if (!summary.error().empty())
    absl::StrAppend(&message, ": ", summary.error());
  EmitState(entry, summary.state(), message);
  // Stored before the history closes: a closed history means a job whose
  // end is durable.
  PersistRecord(*entry);
  entry->history->Close();
  LogJob(entry->id, message);
}

void JobManager::AwaitStreamsDrained(absl::Duration timeout) const {
  std::vector<std::shared_ptr<JobHistory>> histories;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : jobs_) histories.push_back(entry->history);
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (const auto& history : histories) {
    // Streams end on their own once their reader has the rest; this only
    // waits for network round trips, so polling is cheap enough here.
    while (history->listener_count() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
}

void JobManager::Shutdown(absl::Duration grace) {
  std::deque<std::shared_ptr<Entry>> queued;
  {
    absl::MutexLock lock(&mu_);
    if (workers_joined_) return;
    stopping_ = true;
    queued.swap(queue_);
  }
  for (const auto& entry : queued) {
    entry->interrupted = true;
    EndWithoutRun(entry, v1::INTERRUPTED,
                  "the server shut down before the job started");
  }
  std::vector<std::shared_ptr<Entry>> running;
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &JobManager::NothingRunning),
                         grace);
    for (const auto& [id, entry] : jobs_) {
      if (!entry->history->closed()) running.push_back(entry);
    }
  }
  for (const auto& entry : running) {
    entry->interrupted = true;
    entry->cancel.Cancel();
  }
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    if (workers_joined_) return;
    workers_joined_ = true;
    workers.swap(workers_);
  }
  for (std::thread& worker : workers) worker.join();
}

}  // namespace gradwatch::server
