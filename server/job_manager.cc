#include "server/job_manager.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/trainer.h"
#include "server/proto_time.h"

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
  Entry(std::string job_id, uint64_t creation_index, v1::JobSpec job_spec,
        int64_t max_watchers)
      : id(std::move(job_id)),
        creation(creation_index),
        spec(std::move(job_spec)),
        history(std::make_shared<JobHistory>(id, max_watchers)) {}

  // Appends a StateChange event at the job's current step.
  void EmitState(v1::JobState state, const std::string& message) {
    v1::JobEvent event;
    {
      absl::MutexLock lock(&mu);
      event.set_step(record.steps_completed());
    }
    event.mutable_state_change()->set_state(state);
    event.mutable_state_change()->set_message(message);
    history->Append(std::move(event));
  }

  const std::string id;
  const uint64_t creation;
  const v1::JobSpec spec;
  const std::shared_ptr<JobHistory> history;
  engine::CancellationToken cancel;
  // Set when the manager, not a client, stops the job.
  std::atomic<bool> interrupted{false};

  mutable absl::Mutex mu;
  // Everything but the spec, which is kept once above.
  v1::Job record ABSL_GUARDED_BY(mu);
  std::shared_ptr<engine::Trainer> trainer ABSL_GUARDED_BY(mu);
};

JobManager::JobManager(const JobManagerOptions& options) : options_(options) {
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

JobManager::~JobManager() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<v1::Job> JobManager::Submit(const v1::JobSpec& spec) {
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the server is shutting down");
    }
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queued_jobs) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the queue holds ", queue_.size(),
                       " jobs, the server's limit (--max_queued_jobs)"));
    }
    std::string id;
    do {
      id = absl::StrFormat("j-%016x", absl::Uniform<uint64_t>(id_bits_));
    } while (jobs_.contains(id));
    const uint64_t creation = next_creation_++;
    entry = std::make_shared<Entry>(id, creation, spec,
                                    options_.max_watchers_per_job);
    {
      absl::MutexLock entry_lock(&entry->mu);
      entry->record.set_id(id);
      entry->record.set_state(v1::QUEUED);
      *entry->record.mutable_create_time() = ToTimestamp(absl::Now());
    }
    // Before a worker can see the job, so that QUEUED comes first in its
    // history; nobody can watch the job before this lock is released.
    entry->EmitState(v1::QUEUED, "accepted");
    LogJob(entry->id, absl::StrCat("queued \"", spec.name(), "\""));
    jobs_[id] = entry;
    by_creation_[creation] = entry;
    queue_.push_back(entry);
  }
  return Get(entry->id, /*with_spec=*/false);
}

std::shared_ptr<JobManager::Entry> JobManager::Find(
    const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second;
}

namespace {
absl::Status UnknownJob(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}
}  // namespace

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id,
                                        bool with_spec) const {
  std::shared_ptr<Entry> entry = Find(job_id);
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
    const v1::ListJobsRequest& request) const {
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

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  std::shared_ptr<Entry> entry;
  bool was_queued = false;
  {
    absl::MutexLock lock(&mu_);
    auto found = jobs_.find(job_id);
    if (found == jobs_.end()) return UnknownJob(job_id);
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
    const std::string& job_id) const {
  std::shared_ptr<Entry> entry = Find(job_id);
  if (entry == nullptr) return UnknownJob(job_id);
  return entry->history;
}

absl::StatusOr<v1::PredictResponse> JobManager::Predict(
    const v1::PredictRequest& request) const {
  std::shared_ptr<Entry> entry = Find(request.job_id());
  if (entry == nullptr) return UnknownJob(request.job_id());
  if (request.inputs_size() < 1 || request.inputs_size() > kMaxPredictRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("inputs must hold [1, ", kMaxPredictRows, "] rows, got ",
                     request.inputs_size()));
  }
  std::shared_ptr<engine::Trainer> trainer;
  v1::JobState state;
  {
    absl::MutexLock lock(&entry->mu);
    trainer = entry->trainer;
    state = entry->record.state();
  }
  if (trainer == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", entry->id, " has no model (state ", StateName(state), ")"));
  }
  try {
    return trainer->Predict(request.inputs());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("prediction failed: ", e.what()));
  }
}

absl::StatusOr<v1::Model> JobManager::GetModel(
    const std::string& job_id) const {
  std::shared_ptr<Entry> entry = Find(job_id);
  if (entry == nullptr) return UnknownJob(job_id);
  std::shared_ptr<engine::Trainer> trainer;
  v1::JobState state;
  {
    absl::MutexLock lock(&entry->mu);
    trainer = entry->trainer;
    state = entry->record.state();
  }
  if (trainer == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", entry->id, " has no model (state ", StateName(state), ")"));
  }
  try {
    absl::StatusOr<v1::Model> model = trainer->GetModel();
    if (model.ok()) model->set_job_id(entry->id);
    return model;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("reading the model failed: ", e.what()));
  }
}

bool JobManager::WorkAvailable() const { return stopping_ || !queue_.empty(); }

bool JobManager::NothingRunning() const { return running_ == 0; }

void JobManager::WorkerLoop() {
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
  entry->EmitState(v1::RUNNING, "started");
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
      }
      summary = copy.summary();
      summary_seen = true;
    }
    entry->history->Append(std::move(copy));
  };
  try {
    v1::Summary returned = trainer->Run(on_event, entry->cancel);
    if (!summary_seen) summary = std::move(returned);
  } catch (const std::exception& e) {
    summary.set_state(v1::FAILED);
    summary.set_error(absl::StrCat("training failed: ", e.what()));
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
    entry->history->Append(std::move(event));
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
  *event.mutable_summary() = summary;
  entry->history->Append(std::move(event));
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
  entry->EmitState(summary.state(), message);
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
