// Jobs end to end on a real server: submit, watch, replay, cancel,
// concurrency, queue and watcher limits, shutdown.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
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
using Stub = v1::Trainer::Stub;

// SmallSpiralsSpec, statistics every `stats_every` steps.
v1::JobSpec SpiralsSpec(uint64_t steps, uint32_t stats_every = 1) {
  v1::JobSpec spec = SmallSpiralsSpec(steps);
  spec.mutable_monitoring()->set_stats_every(stats_every);
  return spec;
}

// Long enough that it is still running whenever a test looks at it; every
// such test cancels it.
v1::JobSpec LongSpec() { return SpiralsSpec(1'000'000, 100); }

class JobStreamsTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& flags = {}) {
    auto server = ServerProcess::Start(flags);
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

  v1::Job GetJob(const std::string& id) {
    v1::Job job;
    grpc::Status status = e2e::GetJob(*stub_, id, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  grpc::Status Cancel(const std::string& id, v1::Job* job) {
    return CancelJob(*stub_, id, job);
  }

  // Every event of WatchJob(id, from_step) to the end of the stream.
  std::vector<v1::JobEvent> WatchAll(const std::string& id,
                                     uint64_t from_step = 0,
                                     grpc::Status* status = nullptr) {
    std::vector<v1::JobEvent> events;
    grpc::Status finished = e2e::WatchAll(*stub_, id, from_step, &events);
    EXPECT_TRUE(status != nullptr || finished.ok()) << finished.error_message();
    if (status != nullptr) *status = finished;
    return events;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Stub> stub_;
};

// Reads until an event satisfies `done`; false if the stream ended first.
bool ReadUntil(grpc::ClientReaderInterface<v1::JobEvent>* reader,
               const std::function<bool(const v1::JobEvent&)>& done,
               v1::JobEvent* last = nullptr) {
  v1::JobEvent event;
  while (reader->Read(&event)) {
    if (done(event)) {
      if (last != nullptr) *last = event;
      return true;
    }
  }
  return false;
}

bool IsStats(const v1::JobEvent& event) { return event.has_stats(); }

v1::JobState FinalState(const std::vector<v1::JobEvent>& events) {
  if (events.empty() || !events.back().has_state_change()) {
    return v1::JOB_STATE_UNSPECIFIED;
  }
  return events.back().state_change().state();
}

TEST_F(JobStreamsTest, SubmitThenWatchToTheEndWithSummaryAndModel) {
  Start();
  const v1::Job submitted = Submit(SpiralsSpec(50));
  EXPECT_THAT(submitted.id(), ::testing::StartsWith("j-"));
  EXPECT_EQ(submitted.id().size(), 18u);

  const std::vector<v1::JobEvent> events = WatchAll(submitted.id());
  ASSERT_GE(events.size(), 5u);
  int stats = 0;
  uint64_t last_step = 0;
  const v1::Summary* summary = nullptr;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].job_id(), submitted.id());
    EXPECT_EQ(events[i].sequence(), i);
    EXPECT_GE(events[i].step(), last_step);
    EXPECT_GT(events[i].time().seconds(), 0);
    last_step = events[i].step();
    if (events[i].has_stats()) {
      ++stats;
      EXPECT_EQ(events[i].stats().step(), events[i].step());
    }
    if (events[i].has_summary()) summary = &events[i].summary();
  }
  EXPECT_EQ(events[0].state_change().state(), v1::QUEUED);
  EXPECT_EQ(events[1].state_change().state(), v1::RUNNING);
  EXPECT_EQ(stats, 50);
  ASSERT_NE(summary, nullptr);
  EXPECT_EQ(summary->state(), v1::SUCCEEDED);
  EXPECT_EQ(summary->steps_completed(), 50u);
  EXPECT_TRUE(events[events.size() - 2].has_summary());
  EXPECT_EQ(FinalState(events), v1::SUCCEEDED);

  const v1::Job job = GetJob(submitted.id());
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.steps_completed(), 50u);
  EXPECT_EQ(job.steps_total(), 50u);
  EXPECT_EQ(job.run_info().parameters(), 99u);
  EXPECT_TRUE(MessageDifferencer::Equals(job.summary(), *summary));
  EXPECT_TRUE(MessageDifferencer::Equals(job.spec(), SpiralsSpec(50)));
  EXPECT_LE(job.create_time().seconds(), job.start_time().seconds());
  EXPECT_LE(job.start_time().seconds(), job.end_time().seconds());

  {
    grpc::ClientContext context;
    v1::PredictRequest request;
    request.set_job_id(job.id());
    for (float x : {0.1f, -0.5f}) {
      v1::Example* row = request.add_inputs();
      row->add_x(x);
      row->add_x(0.3f);
    }
    v1::PredictResponse response;
    grpc::Status status = stub_->Predict(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.predictions_size(), 2);
    for (const v1::Prediction& prediction : response.predictions()) {
      ASSERT_EQ(prediction.outputs_size(), 3);
      double total = 0;
      for (float p : prediction.outputs()) total += p;
      EXPECT_NEAR(total, 1.0, 1e-5);
      EXPECT_LT(prediction.predicted_class(), 3u);
    }
  }
  {
    grpc::ClientContext context;
    v1::GetModelRequest request;
    request.set_job_id(job.id());
    v1::Model model;
    grpc::Status status = stub_->GetModel(&context, request, &model);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(model.job_id(), job.id());
    ASSERT_EQ(model.layers_size(), 2);
    EXPECT_EQ(model.layers(0).inputs(), 2u);
    EXPECT_EQ(model.layers(0).units(), 16u);
    EXPECT_EQ(model.layers(0).weights_size(), 32);
    EXPECT_EQ(model.layers(1).bias_size(), 3);
  }
}

TEST_F(JobStreamsTest, ReplayFromStepEqualsTheTailOfTheFullStream) {
  Start();
  const v1::Job job = Submit(SpiralsSpec(50));
  const std::vector<v1::JobEvent> full = WatchAll(job.id());
  ASSERT_EQ(FinalState(full), v1::SUCCEEDED);
  for (uint64_t from_step : {1u, 20u, 50u}) {
    std::vector<v1::JobEvent> tail;
    for (const v1::JobEvent& event : full) {
      if (event.step() >= from_step) tail.push_back(event);
    }
    const std::vector<v1::JobEvent> replay = WatchAll(job.id(), from_step);
    ASSERT_EQ(replay.size(), tail.size()) << "from_step " << from_step;
    EXPECT_EQ(replay.front().stats().step(), from_step);
    for (size_t i = 0; i < tail.size(); ++i) {
      EXPECT_TRUE(MessageDifferencer::Equals(replay[i], tail[i]))
          << "from_step " << from_step << ", event " << i;
    }
  }
  // Past the end: nothing to replay, and the stream still ends cleanly.
  EXPECT_TRUE(WatchAll(job.id(), 51).empty());
}

TEST_F(JobStreamsTest, TwoLiveWatchersSeeIdenticalStreams) {
  Start();
  const v1::Job job = Submit(SpiralsSpec(400));
  std::vector<v1::JobEvent> first;
  std::vector<v1::JobEvent> second;
  std::thread other([&] { second = WatchAll(job.id()); });
  first = WatchAll(job.id());
  other.join();
  EXPECT_EQ(FinalState(first), v1::SUCCEEDED);
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(first[i], second[i])) << i;
  }
}

TEST_F(JobStreamsTest, AReaderThatNeverReadsDoesNotStallTheJob) {
  Start();
  const v1::Job job = Submit(SpiralsSpec(4000));

  // The stalled reader's own connection grants the server a 4 KiB window
  // and never grows it: the job's events are far more than that.
  constexpr int kWindowBytes = 4096;
  grpc::ChannelArguments args;
  args.SetInt("grpc.http2.lookahead_bytes", kWindowBytes);
  args.SetInt("grpc.http2.bdp_probe", 0);
  auto stalled_stub = v1::Trainer::NewStub(grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext stalled_context;
  v1::WatchJobRequest request;
  request.set_job_id(job.id());
  auto stalled = stalled_stub->WatchJob(&stalled_context, request);
  v1::JobEvent first;
  ASSERT_TRUE(stalled->Read(&first));

  // While that stream sits unread, the job runs to its end.
  const std::vector<v1::JobEvent> full = WatchAll(job.id());
  EXPECT_EQ(FinalState(full), v1::SUCCEEDED);
  EXPECT_EQ(GetJob(job.id()).steps_completed(), 4000u);
  size_t bytes = 0;
  for (const v1::JobEvent& event : full) bytes += event.ByteSizeLong();
  EXPECT_GT(bytes, 50u * kWindowBytes);

  // The stalled reader then catches up from the history, losing nothing.
  std::vector<v1::JobEvent> caught_up = {first};
  v1::JobEvent event;
  while (stalled->Read(&event)) caught_up.push_back(event);
  EXPECT_TRUE(stalled->Finish().ok());
  ASSERT_EQ(caught_up.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(caught_up[i], full[i])) << i;
  }
}

TEST_F(JobStreamsTest, ADivergingJobFailsAloneWhileAnotherSucceeds) {
  Start({"--max_concurrent_jobs=2", "--job_threads=1"});
  // Plain SGD at a learning rate of 1000 on a regression: the weights grow
  // geometrically until the loss is no longer finite.
  v1::JobSpec diverging;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        data {
          synthetic { kind: TEACHER_STUDENT samples: 200 features: 2 seed: 3 }
        }
        model {
          layers { units: 16 activation: TANH }
          layers { units: 1 }
        }
        loss: MSE
        optimizer { learning_rate: 1000 }
        training { steps: 2000 batch_size: 20 seed: 1 threads: 1 }
      )pb",
      &diverging));
  const v1::Job bad = Submit(diverging);
  const v1::Job good = Submit(SpiralsSpec(300));

  const std::vector<v1::JobEvent> bad_events = WatchAll(bad.id());
  EXPECT_EQ(FinalState(bad_events), v1::FAILED);
  const v1::Job failed = GetJob(bad.id());
  EXPECT_EQ(failed.summary().diagnosis(), v1::DIVERGED);
  EXPECT_LT(failed.steps_completed(), 2000u);
  EXPECT_THAT(failed.summary().error(), HasSubstr("non-finite"));

  EXPECT_EQ(FinalState(WatchAll(good.id())), v1::SUCCEEDED);
  EXPECT_EQ(GetJob(good.id()).steps_completed(), 300u);
  // And the server takes new work.
  EXPECT_EQ(FinalState(WatchAll(Submit(SpiralsSpec(10)).id())), v1::SUCCEEDED);
}

TEST_F(JobStreamsTest, CancelJobStopsARunningJob) {
  Start();
  const v1::Job job = Submit(LongSpec());
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(job.id());
  auto reader = stub_->WatchJob(&context, request);
  ASSERT_TRUE(ReadUntil(reader.get(), IsStats));

  v1::Job cancelled;
  ASSERT_TRUE(Cancel(job.id(), &cancelled).ok());
  v1::JobEvent summary;
  ASSERT_TRUE(ReadUntil(
      reader.get(), [](const v1::JobEvent& e) { return e.has_summary(); },
      &summary));
  EXPECT_EQ(summary.summary().state(), v1::CANCELLED);
  EXPECT_LT(summary.summary().steps_completed(), 1'000'000u);
  v1::JobEvent final_state;
  ASSERT_TRUE(reader->Read(&final_state));
  EXPECT_EQ(final_state.state_change().state(), v1::CANCELLED);
  v1::JobEvent extra;
  EXPECT_FALSE(reader->Read(&extra));
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(GetJob(job.id()).state(), v1::CANCELLED);

  // Cancelling a finished job returns it unchanged.
  v1::Job again;
  ASSERT_TRUE(Cancel(job.id(), &again).ok());
  EXPECT_EQ(again.state(), v1::CANCELLED);
  EXPECT_EQ(again.steps_completed(), summary.summary().steps_completed());
}

TEST_F(JobStreamsTest, CancellingATrainCallCancelsItsJob) {
  Start();
  std::string job_id;
  {
    grpc::ClientContext context;
    v1::TrainRequest request;
    *request.mutable_spec() = LongSpec();
    auto reader = stub_->Train(&context, request);
    v1::JobEvent stats;
    ASSERT_TRUE(ReadUntil(reader.get(), IsStats, &stats));
    job_id = stats.job_id();
    context.TryCancel();
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  const std::vector<v1::JobEvent> events = WatchAll(job_id);
  EXPECT_EQ(FinalState(events), v1::CANCELLED);
  EXPECT_EQ(GetJob(job_id).state(), v1::CANCELLED);
}

TEST_F(JobStreamsTest, TrainStreamsAWholeJob) {
  Start();
  grpc::ClientContext context;
  v1::TrainRequest request;
  *request.mutable_spec() = SpiralsSpec(30);
  auto reader = stub_->Train(&context, request);
  std::vector<v1::JobEvent> events;
  v1::JobEvent event;
  while (reader->Read(&event)) events.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(events.front().state_change().state(), v1::QUEUED);
  EXPECT_EQ(FinalState(events), v1::SUCCEEDED);
  EXPECT_EQ(GetJob(events.front().job_id()).steps_completed(), 30u);
}

TEST_F(JobStreamsTest, ClosingAWatchLeavesTheJobRunning) {
  Start();
  const v1::Job job = Submit(LongSpec());
  v1::JobEvent seen;
  {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(job.id());
    auto reader = stub_->WatchJob(&context, request);
    ASSERT_TRUE(ReadUntil(reader.get(), IsStats, &seen));
    context.TryCancel();
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    reader->Finish();
  }
  // The job goes on: a new watcher sees steps after the first one's.
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(job.id());
  request.set_from_step(seen.step() + 1);
  auto reader = stub_->WatchJob(&context, request);
  v1::JobEvent later;
  ASSERT_TRUE(ReadUntil(reader.get(), IsStats, &later));
  EXPECT_GT(later.step(), seen.step());
  EXPECT_EQ(GetJob(job.id()).state(), v1::RUNNING);

  v1::Job cancelled;
  ASSERT_TRUE(Cancel(job.id(), &cancelled).ok());
  EXPECT_TRUE(ReadUntil(reader.get(), [](const v1::JobEvent& e) {
    return e.has_state_change() && e.state_change().state() == v1::CANCELLED;
  }));
  reader->Finish();
}

TEST_F(JobStreamsTest, JobsRunConcurrentlyAndAreListedNewestFirst) {
  Start({"--max_concurrent_jobs=2", "--job_threads=1"});
  // Two long jobs both report steps before either ends: they run at once.
  const v1::Job a = Submit(LongSpec());
  const v1::Job b = Submit(LongSpec());
  for (const v1::Job* job : {&a, &b}) {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(job->id());
    auto reader = stub_->WatchJob(&context, request);
    ASSERT_TRUE(ReadUntil(reader.get(), IsStats));
    context.TryCancel();
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    reader->Finish();
  }
  EXPECT_EQ(GetJob(a.id()).state(), v1::RUNNING);
  EXPECT_EQ(GetJob(b.id()).state(), v1::RUNNING);
  v1::Job ignored;
  ASSERT_TRUE(Cancel(a.id(), &ignored).ok());
  ASSERT_TRUE(Cancel(b.id(), &ignored).ok());
  const v1::Job c = Submit(SpiralsSpec(20));
  EXPECT_EQ(FinalState(WatchAll(a.id())), v1::CANCELLED);
  EXPECT_EQ(FinalState(WatchAll(b.id())), v1::CANCELLED);
  EXPECT_EQ(FinalState(WatchAll(c.id())), v1::SUCCEEDED);

  auto list = [&](uint32_t page_size, const std::string& token,
                  v1::JobState state) {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(token);
    request.set_state(state);
    v1::ListJobsResponse response;
    EXPECT_TRUE(stub_->ListJobs(&context, request, &response).ok());
    return response;
  };
  const v1::ListJobsResponse all = list(0, "", v1::JOB_STATE_UNSPECIFIED);
  ASSERT_EQ(all.jobs_size(), 3);
  EXPECT_EQ(all.jobs(0).id(), c.id());
  EXPECT_EQ(all.jobs(1).id(), b.id());
  EXPECT_EQ(all.jobs(2).id(), a.id());
  EXPECT_FALSE(all.jobs(0).has_spec());
  EXPECT_TRUE(all.next_page_token().empty());

  const v1::ListJobsResponse page1 = list(2, "", v1::JOB_STATE_UNSPECIFIED);
  ASSERT_EQ(page1.jobs_size(), 2);
  ASSERT_FALSE(page1.next_page_token().empty());
  const v1::ListJobsResponse page2 =
      list(2, page1.next_page_token(), v1::JOB_STATE_UNSPECIFIED);
  ASSERT_EQ(page2.jobs_size(), 1);
  EXPECT_EQ(page2.jobs(0).id(), a.id());
  EXPECT_TRUE(page2.next_page_token().empty());

  const v1::ListJobsResponse cancelled = list(0, "", v1::CANCELLED);
  ASSERT_EQ(cancelled.jobs_size(), 2);
  EXPECT_EQ(cancelled.jobs(0).id(), b.id());
  EXPECT_EQ(list(0, "", v1::RUNNING).jobs_size(), 0);

  grpc::ClientContext context;
  v1::ListJobsRequest bad;
  bad.set_page_token("nonsense");
  v1::ListJobsResponse response;
  EXPECT_EQ(stub_->ListJobs(&context, bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(JobStreamsTest, FullQueueAndTooManyWatchersAreResourceExhausted) {
  Start({"--max_concurrent_jobs=1", "--max_queued_jobs=1",
         "--max_watchers_per_job=1"});
  const v1::Job running = Submit(LongSpec());
  grpc::ClientContext watch_context;
  v1::WatchJobRequest watch;
  watch.set_job_id(running.id());
  auto watcher = stub_->WatchJob(&watch_context, watch);
  ASSERT_TRUE(ReadUntil(watcher.get(), IsStats));

  // The one worker is busy: the next job waits, the one after is refused.
  const v1::Job queued = Submit(SpiralsSpec(20));
  EXPECT_EQ(queued.state(), v1::QUEUED);
  {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = SpiralsSpec(20);
    v1::Job job;
    grpc::Status status = stub_->SubmitJob(&context, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("--max_queued_jobs"));
  }
  // A second watcher on the running job is over the limit.
  {
    grpc::Status status;
    EXPECT_TRUE(WatchAll(running.id(), 0, &status).empty());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("--max_watchers_per_job"));
  }
  // A queued job has no model yet, and cancelling it ends it at once.
  {
    grpc::ClientContext context;
    v1::GetModelRequest request;
    request.set_job_id(queued.id());
    v1::Model model;
    EXPECT_EQ(stub_->GetModel(&context, request, &model).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  v1::Job cancelled;
  ASSERT_TRUE(Cancel(queued.id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::CANCELLED);
  const std::vector<v1::JobEvent> events = WatchAll(queued.id());
  ASSERT_EQ(events.size(), 3u);  // QUEUED, summary, CANCELLED
  EXPECT_EQ(events[1].summary().state(), v1::CANCELLED);
  EXPECT_EQ(FinalState(events), v1::CANCELLED);

  ASSERT_TRUE(Cancel(running.id(), &cancelled).ok());
  EXPECT_TRUE(ReadUntil(watcher.get(), [](const v1::JobEvent& e) {
    return e.has_state_change() && e.state_change().state() == v1::CANCELLED;
  }));
  watcher->Finish();
}

TEST_F(JobStreamsTest, SigtermInterruptsRunningJobsAndExitsZero) {
  Start({"--shutdown_grace=0s"});
  const v1::Job job = Submit(LongSpec());
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(job.id());
  auto reader = stub_->WatchJob(&context, request);
  ASSERT_TRUE(ReadUntil(reader.get(), IsStats));

  kill(server_->pid(), SIGTERM);
  v1::JobEvent summary;
  ASSERT_TRUE(ReadUntil(
      reader.get(), [](const v1::JobEvent& e) { return e.has_summary(); },
      &summary));
  EXPECT_EQ(summary.summary().state(), v1::INTERRUPTED);
  v1::JobEvent final_state;
  ASSERT_TRUE(reader->Read(&final_state));
  EXPECT_EQ(final_state.state_change().state(), v1::INTERRUPTED);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(server_->Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace gradwatch::e2e
