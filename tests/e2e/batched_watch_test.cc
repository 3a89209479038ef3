// WatchJobBatches end to end on a real server: the same events as WatchJob,
// several to a message, with WatchJob's errors and access rules.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/trainer_calls.h"
#include "tests/spirals_spec.h"

namespace gradwatch::e2e {
namespace {

using ::gradwatch::testing::SmallSpiralsSpec;

namespace v1 = ::gradwatch::v1;

constexpr char kAliceToken[] = "alice-batch-token-3e8d1c0b7a";
constexpr char kBobToken[] = "bob-batch-token-9f2a6b4c1d";

// Every message of WatchJobBatches(id, from_step), read to the end.
grpc::Status WatchBatches(v1::Trainer::Stub& stub, const std::string& id,
                          uint64_t from_step,
                          std::vector<v1::JobEventBatch>* batches,
                          const std::string& token = "") {
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::WatchJobRequest request;
  request.set_job_id(id);
  request.set_from_step(from_step);
  auto reader = stub.WatchJobBatches(&context, request);
  v1::JobEventBatch batch;
  while (reader->Read(&batch)) batches->push_back(batch);
  return reader->Finish();
}

std::vector<std::string> SerializedEvents(
    const std::vector<v1::JobEventBatch>& batches) {
  std::vector<std::string> bytes;
  for (const v1::JobEventBatch& batch : batches) {
    for (const v1::JobEvent& event : batch.events()) {
      bytes.push_back(event.SerializeAsString());
    }
  }
  return bytes;
}

std::vector<std::string> SerializedEvents(
    const std::vector<v1::JobEvent>& events) {
  std::vector<std::string> bytes;
  for (const v1::JobEvent& event : events) {
    bytes.push_back(event.SerializeAsString());
  }
  return bytes;
}

class BatchedWatchTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& flags = {}) {
    auto server = ServerProcess::Start(flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::Trainer::NewStub(server_->Channel());
  }

  // Submits a job and waits for its end by reading WatchJob through;
  // returns its id and every event of its history.
  std::string FinishedJob(uint64_t steps, std::vector<v1::JobEvent>* events) {
    v1::Job job;
    grpc::Status submitted = SubmitJob(*stub_, SmallSpiralsSpec(steps), &job);
    EXPECT_TRUE(submitted.ok()) << submitted.error_message();
    grpc::Status watched = WatchAll(*stub_, job.id(), 0, events);
    EXPECT_TRUE(watched.ok()) << watched.error_message();
    return job.id();
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(BatchedWatchTest, ReplayFromStepZeroIsExactlyWatchJob) {
  Start();
  std::vector<v1::JobEvent> events;
  const std::string id = FinishedJob(300, &events);
  // QUEUED, RUNNING, started, 300 statistics, summary, SUCCEEDED at least.
  ASSERT_GE(events.size(), 305u);

  std::vector<v1::JobEventBatch> batches;
  grpc::Status status = WatchBatches(*stub_, id, 0, &batches);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(SerializedEvents(batches), SerializedEvents(events));
  // The whole history is at hand from the start: it is written in far
  // fewer messages than events, none of them empty.
  EXPECT_LT(batches.size(), events.size());
  EXPECT_LE(batches.size(), 4u);
  for (const v1::JobEventBatch& batch : batches) {
    EXPECT_GT(batch.events_size(), 0);
  }
}

TEST_F(BatchedWatchTest, AMessageHoldsAtMost512Events) {
  Start();
  std::vector<v1::JobEvent> events;
  const std::string id = FinishedJob(1200, &events);
  ASSERT_GE(events.size(), 1205u);

  std::vector<v1::JobEventBatch> batches;
  grpc::Status status = WatchBatches(*stub_, id, 0, &batches);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(SerializedEvents(batches), SerializedEvents(events));
  // 1,206 events at 512 a message at most: 3 messages at least.
  EXPECT_GE(batches.size(), 3u);
  for (const v1::JobEventBatch& batch : batches) {
    EXPECT_GT(batch.events_size(), 0);
    EXPECT_LE(batch.events_size(), 512);
  }
}

TEST_F(BatchedWatchTest, ReplayFromAStepIsWatchJobsTail) {
  Start();
  std::vector<v1::JobEvent> events;
  const std::string id = FinishedJob(200, &events);
  for (uint64_t from_step : {1u, 57u, 200u, 201u}) {
    std::vector<v1::JobEvent> tail;
    ASSERT_TRUE(WatchAll(*stub_, id, from_step, &tail).ok());
    std::vector<v1::JobEventBatch> batches;
    grpc::Status status = WatchBatches(*stub_, id, from_step, &batches);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(SerializedEvents(batches), SerializedEvents(tail))
        << "from_step " << from_step;
    for (const v1::JobEventBatch& batch : batches) {
      for (const v1::JobEvent& event : batch.events()) {
        EXPECT_GE(event.step(), from_step);
      }
    }
  }
  // from_step 57 leaves out the 56 first steps' statistics and what came
  // before them: the tail is shorter than the history by at least that.
  std::vector<v1::JobEventBatch> batches;
  ASSERT_TRUE(WatchBatches(*stub_, id, 57, &batches).ok());
  EXPECT_LE(SerializedEvents(batches).size() + 56, events.size());
}

TEST_F(BatchedWatchTest, ALiveStreamEndsWithTheFinalState) {
  Start();
  v1::Job job;
  ASSERT_TRUE(SubmitJob(*stub_, SmallSpiralsSpec(3000), &job).ok());
  // Opened right after submission: most events are written live.
  std::vector<v1::JobEventBatch> batches;
  grpc::Status status = WatchBatches(*stub_, job.id(), 0, &batches);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(batches.empty());
  const v1::JobEventBatch& last = batches.back();
  ASSERT_GT(last.events_size(), 0);
  ASSERT_TRUE(last.events(last.events_size() - 1).has_state_change());
  EXPECT_EQ(last.events(last.events_size() - 1).state_change().state(),
            v1::SUCCEEDED);
  // Live or replayed, the stream is the whole history in order.
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(WatchAll(*stub_, job.id(), 0, &events).ok());
  EXPECT_EQ(SerializedEvents(batches), SerializedEvents(events));
}

TEST_F(BatchedWatchTest, AnUnknownJobIsNotFound) {
  Start();
  std::vector<v1::JobEventBatch> batches;
  grpc::Status status = WatchBatches(*stub_, "j-0000000000000000", 0, &batches);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
      << status.error_message();
  EXPECT_TRUE(batches.empty());
}

TEST_F(BatchedWatchTest, WatchersOfBothKindsShareTheLimit) {
  Start({"--max_watchers_per_job=1"});
  v1::Job job;
  // Long enough to be running throughout; cancelled below.
  v1::JobSpec spec = SmallSpiralsSpec(1'000'000);
  spec.mutable_monitoring()->set_stats_every(100);
  ASSERT_TRUE(SubmitJob(*stub_, spec, &job).ok());
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(job.id());
  auto first = stub_->WatchJobBatches(&context, request);
  v1::JobEventBatch batch;
  // Once a message has arrived, the stream holds its place.
  ASSERT_TRUE(first->Read(&batch));

  std::vector<v1::JobEventBatch> batches;
  grpc::Status batched = WatchBatches(*stub_, job.id(), 0, &batches);
  EXPECT_EQ(batched.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(batched.error_message().find("--max_watchers_per_job"),
            std::string::npos)
      << batched.error_message();
  std::vector<v1::JobEvent> events;
  EXPECT_EQ(WatchAll(*stub_, job.id(), 0, &events).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  v1::Job cancelled;
  ASSERT_TRUE(CancelJob(*stub_, job.id(), &cancelled).ok());
  v1::JobEvent last;
  while (first->Read(&batch)) {
    ASSERT_GT(batch.events_size(), 0);
    last = batch.events(batch.events_size() - 1);
  }
  EXPECT_TRUE(first->Finish().ok());
  EXPECT_EQ(last.state_change().state(), v1::CANCELLED);
}

// Sends `bytes` as the request of a raw call to `method`; returns the
// call's status and counts the messages received.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel,
                     const std::string& method, const std::string& bytes,
                     int* messages) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  void* tag = nullptr;
  bool ok = false;
  auto call = stub.PrepareCall(&context, method, &queue);
  call->StartCall(reinterpret_cast<void*>(1));
  queue.Next(&tag, &ok);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  queue.Next(&tag, &ok);
  grpc::ByteBuffer response;
  while (true) {
    call->Read(&response, reinterpret_cast<void*>(3));
    if (!queue.Next(&tag, &ok) || !ok) break;
    ++*messages;
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(BatchedWatchTest, AGarbageRequestIsInvalidArgument) {
  Start();
  int messages = 0;
  // A length-delimited field 1 claiming more bytes than follow.
  grpc::Status status =
      RawCall(server_->Channel(), "/gradwatch.v1.Trainer/WatchJobBatches",
              std::string("\x0a\x7f\x01", 3), &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_NE(status.error_message().find("gradwatch.v1.WatchJobRequest"),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(messages, 0);
}

TEST_F(BatchedWatchTest, AnotherPrincipalsJobIsNotFound) {
  char dir_template[] = "/tmp/gradwatch-batch-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string tokens = dir + "/tokens";
  std::ofstream(tokens) << kAliceToken << " alice\n" << kBobToken << " bob\n";
  Start({"--auth_tokens_file=" + tokens});

  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Bearer ") + kAliceToken);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SmallSpiralsSpec(50);
  v1::Job job;
  ASSERT_TRUE(stub_->SubmitJob(&context, request, &job).ok());

  std::vector<v1::JobEventBatch> batches;
  grpc::Status bob = WatchBatches(*stub_, job.id(), 0, &batches, kBobToken);
  EXPECT_EQ(bob.error_code(), grpc::StatusCode::NOT_FOUND)
      << bob.error_message();
  EXPECT_TRUE(batches.empty());
  grpc::Status anonymous = WatchBatches(*stub_, job.id(), 0, &batches);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << anonymous.error_message();
  // The owner reads the job to its end.
  grpc::Status alice = WatchBatches(*stub_, job.id(), 0, &batches, kAliceToken);
  EXPECT_TRUE(alice.ok()) << alice.error_message();
  ASSERT_FALSE(batches.empty());
  EXPECT_EQ(batches.back()
                .events(batches.back().events_size() - 1)
                .state_change()
                .state(),
            v1::SUCCEEDED);
  server_.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gradwatch::e2e
