#include "server/watch_reactor.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/grpc_server.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;
using ::google::protobuf::util::MessageDifferencer;

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST(WatchReactorTest, ParseRequestReadsAValidMessage) {
  v1::WatchJobRequest sent;
  sent.set_job_id("j-0123456789abcdef");
  sent.set_from_step(42);
  v1::WatchJobRequest parsed;
  ASSERT_TRUE(
      WatchReactor::ParseRequest(Buffer(sent.SerializeAsString()), &parsed)
          .ok());
  EXPECT_EQ(parsed.job_id(), "j-0123456789abcdef");
  EXPECT_EQ(parsed.from_step(), 42u);
}

TEST(WatchReactorTest, ParseRequestRejectsBytesThatAreNoMessage) {
  v1::TrainRequest parsed;
  // A length-delimited field 1 claiming more bytes than follow.
  absl::Status status = WatchReactor::ParseRequest(
      Buffer(std::string("\x0a\x7f\x01", 3)), &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("gradwatch.v1.TrainRequest"),
            std::string::npos)
      << status;
  EXPECT_EQ(WatchReactor::ParseRequest(grpc::ByteBuffer(), &parsed).code(),
            absl::StatusCode::kInvalidArgument);
}

// A server on a free loopback port, and a client channel to it.
class WatchStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.job_threads = 1;
    options.shutdown_grace = absl::ZeroDuration();
    auto started = GrpcServer::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Trainer::NewStub(channel_);
  }

  // Sends `bytes` as the request of `method` and returns the call's
  // status; for calls that fail before their first message.
  grpc::Status CallWithBytes(const std::string& method,
                             const std::string& bytes) {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext context;
    grpc::ByteBuffer request = Buffer(bytes);
    grpc::ByteBuffer response;
    absl::Mutex mu;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&context, method, grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        absl::MutexLock lock(&mu);
                        status = std::move(s);
                        done = true;
                      });
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    return status;
  }

  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

TEST_F(WatchStreamTest, RequestsThatAreNoMessageAreInvalidArgument) {
  const std::string garbage("\x0a\x7f\x01", 3);
  for (const char* method :
       {"/gradwatch.v1.Trainer/WatchJob", "/gradwatch.v1.Trainer/Train"}) {
    grpc::Status status = CallWithBytes(method, garbage);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << method << ": " << status.error_message();
  }
  // An empty request is a valid one, for no job.
  EXPECT_EQ(CallWithBytes("/gradwatch.v1.Trainer/WatchJob", "").error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(WatchStreamTest, TypedClientsReadTheStoredEvents) {
  v1::TrainRequest train;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        data { synthetic { kind: SPIRALS samples: 60 classes: 3 seed: 7 } }
        model {
          layers { units: 8 activation: RELU }
          layers { units: 3 }
        }
        loss: CROSS_ENTROPY
        optimizer { learning_rate: 0.1 }
        training { steps: 20 batch_size: 20 seed: 1 threads: 1 }
        monitoring {
          stats_every: 1
          histograms { enabled: true }
        }
      )pb",
      train.mutable_spec()));
  std::vector<v1::JobEvent> trained;
  {
    grpc::ClientContext context;
    auto reader = stub_->Train(&context, train);
    v1::JobEvent event;
    while (reader->Read(&event)) trained.push_back(event);
    ASSERT_TRUE(reader->Finish().ok());
  }
  ASSERT_GT(trained.size(), 20u);
  for (size_t i = 0; i < trained.size(); ++i) {
    EXPECT_EQ(trained[i].sequence(), i);
  }
  EXPECT_TRUE(trained.back().has_state_change());
  EXPECT_EQ(trained.back().state_change().state(), v1::SUCCEEDED);

  // The finished job replayed from step 12: the same events, parsed from
  // the same bytes.
  std::vector<v1::JobEvent> tail;
  for (const v1::JobEvent& event : trained) {
    if (event.step() >= 12) tail.push_back(event);
  }
  grpc::ClientContext context;
  v1::WatchJobRequest watch;
  watch.set_job_id(trained.front().job_id());
  watch.set_from_step(12);
  auto reader = stub_->WatchJob(&context, watch);
  std::vector<v1::JobEvent> replayed;
  v1::JobEvent event;
  while (reader->Read(&event)) replayed.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(replayed.size(), tail.size());
  for (size_t i = 0; i < tail.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(replayed[i], tail[i]))
        << replayed[i].DebugString() << "\nvs\n"
        << tail[i].DebugString();
  }
  EXPECT_TRUE(replayed.front().has_stats());
  EXPECT_EQ(replayed.front().stats().step(), 12u);
  EXPECT_GT(replayed.front().stats().layers(0).z_histogram().counts_size(), 0);
}

}  // namespace
}  // namespace gradwatch::server
