// The job store end to end: a server killed with SIGKILL and restarted on
// the same --data_dir keeps its finished jobs, their histories and models,
// and reports the job it was running as INTERRUPTED; --retention removes
// finished jobs from memory and from the store.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/trainer_calls.h"
#include "tests/spirals_spec.h"

namespace gradwatch::e2e {
namespace {

using ::gradwatch::testing::SmallSpiralsSpec;

namespace v1 = ::gradwatch::v1;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/gradwatch-restart-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    data_dir_ = dir_template;
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(data_dir_);
  }

  void Start(const std::vector<std::string>& flags = {}) {
    std::vector<std::string> all = {"--data_dir=" + data_dir_ + "/data"};
    all.insert(all.end(), flags.begin(), flags.end());
    auto server = ServerProcess::Start(all);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::Trainer::NewStub(server_->Channel());
  }

  v1::Job Submit(const v1::JobSpec& spec) {
    v1::Job job;
    grpc::Status status = SubmitJob(*stub_, spec, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  grpc::Status GetJob(const std::string& id, v1::Job* job) {
    return e2e::GetJob(*stub_, id, job);
  }

  std::vector<v1::JobEvent> WatchAll(const std::string& id) {
    std::vector<v1::JobEvent> events;
    grpc::Status status = e2e::WatchAll(*stub_, id, 0, &events);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return events;
  }

  grpc::Status GetModel(const std::string& id, v1::Model* model) {
    return e2e::GetModel(*stub_, id, model);
  }

  v1::PredictResponse Predict(const std::string& id) {
    grpc::ClientContext context;
    v1::PredictRequest request;
    request.set_job_id(id);
    for (float x : {0.1f, -0.5f, 0.9f}) {
      v1::Example* row = request.add_inputs();
      row->add_x(x);
      row->add_x(0.3f);
    }
    v1::PredictResponse response;
    grpc::Status status = stub_->Predict(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string data_dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(RestartTest, SigkillKeepsFinishedJobsAndInterruptsTheRunningOne) {
  Start({"--max_concurrent_jobs=1"});
  const std::string done_id = Submit(SmallSpiralsSpec(60)).id();
  const std::vector<v1::JobEvent> done_events = WatchAll(done_id);
  ASSERT_GE(done_events.size(), 60u);
  ASSERT_EQ(done_events.back().state_change().state(), v1::SUCCEEDED);
  v1::Job done_job;
  ASSERT_TRUE(GetJob(done_id, &done_job).ok());
  v1::Model done_model;
  ASSERT_TRUE(GetModel(done_id, &done_model).ok());
  const v1::PredictResponse done_predictions = Predict(done_id);
  ASSERT_EQ(done_predictions.predictions_size(), 3);

  // A long job, killed with its server while it trains.
  const std::string running_id = Submit(SmallSpiralsSpec(1'000'000)).id();
  std::vector<v1::JobEvent> seen;
  {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(running_id);
    auto reader = stub_->WatchJob(&context, request);
    v1::JobEvent event;
    while (reader->Read(&event)) {
      seen.push_back(event);
      if (event.step() >= 500) break;
    }
    ASSERT_GE(seen.back().step(), 500u);
    EXPECT_EQ(server_->Stop(SIGKILL), 128 + SIGKILL);
    context.TryCancel();
    EXPECT_FALSE(reader->Finish().ok());
  }

  Start();
  // The finished job, as it was: record, history, model and predictions.
  v1::Job restored_job;
  ASSERT_TRUE(GetJob(done_id, &restored_job).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(restored_job, done_job))
      << restored_job.DebugString() << "\nvs\n"
      << done_job.DebugString();
  const std::vector<v1::JobEvent> replayed = WatchAll(done_id);
  ASSERT_EQ(replayed.size(), done_events.size());
  for (size_t i = 0; i < replayed.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(replayed[i], done_events[i])) << i;
  }
  v1::Model restored_model;
  ASSERT_TRUE(GetModel(done_id, &restored_model).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(restored_model, done_model));
  const v1::PredictResponse predictions = Predict(done_id);
  ASSERT_EQ(predictions.predictions_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const v1::Prediction& got = predictions.predictions(i);
    const v1::Prediction& want = done_predictions.predictions(i);
    EXPECT_EQ(got.predicted_class(), want.predicted_class());
    ASSERT_EQ(got.outputs_size(), want.outputs_size());
    for (int k = 0; k < got.outputs_size(); ++k) {
      EXPECT_FLOAT_EQ(got.outputs(k), want.outputs(k));
    }
  }

  // The running job: INTERRUPTED, its stored history a prefix of what the
  // first server streamed, then the interruption.
  v1::Job interrupted;
  ASSERT_TRUE(GetJob(running_id, &interrupted).ok());
  EXPECT_EQ(interrupted.state(), v1::INTERRUPTED);
  const std::vector<v1::JobEvent> history = WatchAll(running_id);
  ASSERT_GE(history.size(), 4u);
  const size_t stored = history.size() - 2;
  for (size_t i = 0; i < std::min(stored, seen.size()); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(history[i], seen[i])) << i;
  }
  const uint64_t last_stored_step = history[stored - 1].step();
  EXPECT_GT(last_stored_step, 0u);
  EXPECT_EQ(interrupted.steps_completed(), last_stored_step);
  ASSERT_TRUE(history[stored].has_summary());
  EXPECT_EQ(history[stored].summary().state(), v1::INTERRUPTED);
  EXPECT_EQ(history[stored].summary().steps_completed(), last_stored_step);
  ASSERT_TRUE(history.back().has_state_change());
  EXPECT_EQ(history.back().state_change().state(), v1::INTERRUPTED);
  EXPECT_THAT(history[stored].summary().diagnosis_reason(),
              HasSubstr("server stopped while the job was running"));
  v1::Model no_model;
  EXPECT_EQ(GetModel(running_id, &no_model).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // New jobs run as usual next to the recovered ones.
  const std::vector<v1::JobEvent> next =
      WatchAll(Submit(SmallSpiralsSpec(5)).id());
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.back().state_change().state(), v1::SUCCEEDED);
}

TEST_F(RestartTest, RetentionRemovesFinishedJobsFromMemoryAndTheStore) {
  Start({"--retention=1s", "--max_concurrent_jobs=2", "--shutdown_grace=0s"});
  const std::string running_id = Submit(SmallSpiralsSpec(1'000'000)).id();
  const std::string done_id = Submit(SmallSpiralsSpec(20)).id();
  ASSERT_EQ(WatchAll(done_id).back().state_change().state(), v1::SUCCEEDED);

  // Gone once the sweep has seen it older than a second.
  v1::Job job;
  grpc::Status status = GetJob(done_id, &job);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (status.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = GetJob(done_id, &job);
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  // A running job is never removed, however old.
  ASSERT_TRUE(GetJob(running_id, &job).ok());
  EXPECT_EQ(job.state(), v1::RUNNING);
  EXPECT_EQ(server_->Stop(SIGTERM), 0);

  // Not in the store either: a server on the same directory, keeping jobs
  // for a week, knows only the job it interrupted.
  Start();
  EXPECT_EQ(GetJob(done_id, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext context;
  v1::ListJobsResponse listed;
  ASSERT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &listed).ok());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).id(), running_id);
  EXPECT_EQ(listed.jobs(0).state(), v1::INTERRUPTED);
}

}  // namespace
}  // namespace gradwatch::e2e
