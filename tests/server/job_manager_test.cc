#include "server/job_manager.h"

#include <pthread.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/memory_job_store.h"
#include "tests/spirals_spec.h"

namespace gradwatch::server {
namespace {

using ::gradwatch::testing::SmallSpiralsSpec;

namespace v1 = ::gradwatch::v1;
using ::google::protobuf::util::MessageDifferencer;

JobManagerOptions Options() {
  JobManagerOptions options;
  options.workers = 1;
  options.job_threads = 1;
  return options;
}

// Blocks until a history is closed (its job has ended).
class ClosedWaiter : public HistoryListener {
 public:
  explicit ClosedWaiter(std::shared_ptr<JobHistory> history)
      : history_(std::move(history)) {}
  // Taking the lock makes Wait re-evaluate its condition.
  void OnHistoryChanged() override { absl::MutexLock lock(&mu_); }
  void Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](JobHistory* history) { return history->closed(); },
        history_.get()));
  }

 private:
  std::shared_ptr<JobHistory> history_;
  absl::Mutex mu_;
};

void WaitForEnd(JobManager& manager, const std::string& job_id) {
  auto history = manager.History(job_id);
  ASSERT_TRUE(history.ok());
  auto waiter = std::make_shared<ClosedWaiter>(*history);
  ASSERT_TRUE((*history)->AddListener(waiter).ok());
  waiter->Wait();
  (*history)->RemoveListener(waiter.get());
}

std::vector<v1::JobEvent> Events(const JobHistory& history) {
  std::deque<JobHistory::EventPtr> read;
  history.Read(0, history.size(), &read);
  std::vector<v1::JobEvent> events;
  for (const auto& event : read) events.push_back(*event);
  return events;
}

v1::PredictRequest PredictRows(const std::string& job_id) {
  v1::PredictRequest request;
  request.set_job_id(job_id);
  for (float x : {0.25f, -0.75f}) {
    v1::Example* row = request.add_inputs();
    row->add_x(x);
    row->add_x(0.5f);
  }
  return request;
}

// A job whose history passes max_history_bytes is stopped within a step
// and ends FAILED, its summary naming the flag.
// Records the name of the first thread that appends to a history: the
// training thread, which listeners hear from.
class AppendingThreadName : public HistoryListener {
 public:
  void OnHistoryChanged() override {
    absl::MutexLock lock(&mu_);
    if (!name_.empty()) return;
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    name_ = name;
  }
  std::string Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::string* name) { return !name->empty(); }, &name_));
    return name_;
  }

 private:
  absl::Mutex mu_;
  std::string name_ ABSL_GUARDED_BY(mu_);
};

// So that `top -H` and perf tell a job's training apart from the
// server's other threads.
TEST(JobManagerTest, TrainsOnAThreadNamedForJobs) {
  auto manager = JobManager::Create(Options(), nullptr);
  ASSERT_TRUE(manager.ok()) << manager.status();
  v1::JobSpec spec = SmallSpiralsSpec(30);
  spec.mutable_training()->set_steps(1000000);
  auto job = (*manager)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto history = (*manager)->History(job->id());
  ASSERT_TRUE(history.ok());
  auto listener = std::make_shared<AppendingThreadName>();
  ASSERT_TRUE((*history)->AddListener(listener).ok());

  EXPECT_EQ(listener->Wait(), "gw-job");
  ASSERT_TRUE((*manager)->Cancel(job->id()).ok());
  WaitForEnd(**manager, job->id());
  (*history)->RemoveListener(listener.get());
}

TEST(JobManagerTest, AJobWhoseHistoryOutgrowsTheLimitFails) {
  JobManagerOptions options = Options();
  options.max_history_bytes = 4000;
  auto manager = JobManager::Create(options, nullptr);
  ASSERT_TRUE(manager.ok()) << manager.status();
  v1::JobSpec spec = SmallSpiralsSpec(30);
  spec.mutable_training()->set_steps(100000);
  auto job = (*manager)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  WaitForEnd(**manager, job->id());

  auto record = (*manager)->Get(job->id(), /*with_spec=*/false);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state(), v1::FAILED);
  EXPECT_THAT(record->summary().error(),
              ::testing::HasSubstr("over the server's limit of 4000 "
                                   "(--max_history_bytes)"));
  // Stopped at the first step that passed the limit: a few hundred bytes
  // per statistics event, nowhere near the 100000 steps asked for.
  EXPECT_LT(record->steps_completed(), 20u);
  auto history = (*manager)->History(job->id());
  ASSERT_TRUE(history.ok());
  const std::vector<v1::JobEvent> events = Events(**history);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state_change().state(), v1::FAILED);
  EXPECT_LT((*history)->serialized_bytes(), 4000u + 4000u);
}

TEST(JobManagerTest, WritesRecordEventsAndModelThroughToTheStore) {
  MemoryJobStore store;
  auto manager = JobManager::Create(Options(), &store);
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto job = (*manager)->Submit(SmallSpiralsSpec(30));
  ASSERT_TRUE(job.ok()) << job.status();
  WaitForEnd(**manager, job->id());

  auto stored = store.LoadAll();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  const JobStore::StoredJob& saved = (*stored)[0];
  auto record = (*manager)->Get(job->id(), /*with_spec=*/true);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(saved.job.state(), v1::SUCCEEDED);
  EXPECT_TRUE(MessageDifferencer::Equals(saved.job, *record));

  const std::vector<v1::JobEvent> events =
      Events(**(*manager)->History(job->id()));
  ASSERT_EQ(saved.events.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(saved.events[i], events[i])) << i;
  }
  ASSERT_TRUE(saved.model.has_value());
  auto model = (*manager)->GetModel(job->id());
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*saved.model, *model));
  EXPECT_EQ(saved.model->layers_size(), 2);
}

TEST(JobManagerTest, ARestartKeepsFinishedJobsHistoriesAndModels) {
  MemoryJobStore store;
  std::string job_id;
  v1::Job before_record;
  std::vector<v1::JobEvent> before_events;
  v1::Model before_model;
  v1::PredictResponse before_prediction;
  {
    auto manager = JobManager::Create(Options(), &store);
    ASSERT_TRUE(manager.ok());
    auto job = (*manager)->Submit(SmallSpiralsSpec(30));
    ASSERT_TRUE(job.ok());
    job_id = job->id();
    WaitForEnd(**manager, job_id);
    before_record = *(*manager)->Get(job_id, /*with_spec=*/true);
    before_events = Events(**(*manager)->History(job_id));
    before_model = *(*manager)->GetModel(job_id);
    auto prediction = (*manager)->Predict(PredictRows(job_id));
    ASSERT_TRUE(prediction.ok()) << prediction.status();
    before_prediction = *prediction;
  }

  auto restarted = JobManager::Create(Options(), &store);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  auto record = (*restarted)->Get(job_id, /*with_spec=*/true);
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*record, before_record));
  auto history = (*restarted)->History(job_id);
  ASSERT_TRUE(history.ok());
  EXPECT_TRUE((*history)->closed());
  const std::vector<v1::JobEvent> events = Events(**history);
  ASSERT_EQ(events.size(), before_events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(events[i], before_events[i])) << i;
  }
  auto model = (*restarted)->GetModel(job_id);
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*model, before_model));

  // The network rebuilt from the stored parameters predicts as before.
  auto prediction = (*restarted)->Predict(PredictRows(job_id));
  ASSERT_TRUE(prediction.ok()) << prediction.status();
  ASSERT_EQ(prediction->predictions_size(), 2);
  for (int row = 0; row < 2; ++row) {
    const v1::Prediction& now = prediction->predictions(row);
    const v1::Prediction& then = before_prediction.predictions(row);
    ASSERT_EQ(now.outputs_size(), then.outputs_size());
    for (int k = 0; k < now.outputs_size(); ++k) {
      EXPECT_FLOAT_EQ(now.outputs(k), then.outputs(k));
    }
    EXPECT_EQ(now.predicted_class(), then.predicted_class());
  }
}

// A store as a killed server leaves it: the job's record says RUNNING and
// its history stops at step 2.
void StoreRunningJob(MemoryJobStore& store, const std::string& id) {
  v1::Job job;
  job.set_id(id);
  job.set_state(v1::RUNNING);
  *job.mutable_spec() = SmallSpiralsSpec(30);
  ASSERT_TRUE(store.PutJob(job).ok());
  std::vector<v1::JobEvent> events(4);
  events[0].mutable_state_change()->set_state(v1::QUEUED);
  events[1].mutable_state_change()->set_state(v1::RUNNING);
  events[2].set_step(1);
  events[2].mutable_stats()->set_loss(1.5);
  events[3].set_step(2);
  events[3].mutable_stats()->set_loss(1.25);
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].set_job_id(id);
    events[i].set_sequence(i);
    ASSERT_TRUE(store.AppendEvent(events[i]).ok());
  }
}

TEST(JobManagerTest, ARestartMarksTheRunningJobInterrupted) {
  MemoryJobStore store;
  StoreRunningJob(store, "j-00000000000000aa");
  auto manager = JobManager::Create(Options(), &store);
  ASSERT_TRUE(manager.ok()) << manager.status();

  auto job = (*manager)->Get("j-00000000000000aa", /*with_spec=*/false);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::INTERRUPTED);
  EXPECT_EQ(job->steps_completed(), 2u);
  EXPECT_DOUBLE_EQ(job->loss(), 1.25);
  EXPECT_EQ(job->summary().state(), v1::INTERRUPTED);

  auto history = (*manager)->History("j-00000000000000aa");
  ASSERT_TRUE(history.ok());
  EXPECT_TRUE((*history)->closed());
  const std::vector<v1::JobEvent> events = Events(**history);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[4].summary().state(), v1::INTERRUPTED);
  EXPECT_EQ(events[4].summary().steps_completed(), 2u);
  EXPECT_EQ(events[4].step(), 2u);
  EXPECT_EQ(events[5].state_change().state(), v1::INTERRUPTED);
  EXPECT_EQ(events[5].sequence(), 5u);

  // The interruption itself is stored.
  auto stored = store.LoadAll();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ((*stored)[0].job.state(), v1::INTERRUPTED);
  EXPECT_EQ((*stored)[0].events.size(), 6u);

  auto model = (*manager)->GetModel("j-00000000000000aa");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
}

// A store whose only job lacks event 1 of its history.
class GapStore : public JobStore {
 public:
  GapStore() {
    MemoryJobStore store;
    StoreRunningJob(store, "j-00000000000000bb");
    job_ = (*store.LoadAll())[0];
    job_.events.erase(job_.events.begin() + 1);
  }
  absl::Status PutJob(const v1::Job&) override { return absl::OkStatus(); }
  absl::Status AppendEvent(const v1::JobEvent&) override {
    return absl::OkStatus();
  }
  absl::Status PutModel(const v1::Model&) override { return absl::OkStatus(); }
  absl::Status DeleteJob(const std::string&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<StoredJob>> LoadAll() override {
    return std::vector<StoredJob>{job_};
  }

 private:
  StoredJob job_;
};

TEST(JobManagerTest, AHistoryWithAGapFailsRecovery) {
  GapStore store;
  auto manager = JobManager::Create(Options(), &store);
  EXPECT_EQ(manager.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gradwatch::server
