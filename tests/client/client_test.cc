// Client against an in-process fake of the Trainer service: paging,
// streams, errors, health and connection failures.

#include "client/client.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

using ::testing::ElementsAre;
using ::testing::StartsWith;

// Answers ListJobs in three pages, GetJob with NOT_FOUND, and streams
// Train events until the client goes away.
class FakeTrainer final : public v1::Trainer::Service {
 public:
  grpc::Status ListJobs(grpc::ServerContext*,
                        const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override {
    absl::MutexLock lock(&mu_);
    list_requests_.push_back(*request);
    const std::string& token = request->page_token();
    const int page = token.empty() ? 1 : token == "p2" ? 2 : 3;
    for (int i = 0; i < 2; ++i) {
      response->add_jobs()->set_id(absl::StrCat("j-", page, "-", i));
    }
    if (page < 3) response->set_next_page_token(absl::StrCat("p", page + 1));
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                      v1::Job*) override {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat("job \"", request->job_id(), "\" not found"));
  }

  grpc::Status Train(grpc::ServerContext* context, const v1::TrainRequest*,
                     grpc::ServerWriter<v1::JobEvent>* writer) override {
    // Writes until the client cancels (bounded, in case it never does).
    for (uint64_t step = 1; step <= 100000 && !context->IsCancelled(); ++step) {
      v1::JobEvent event;
      event.set_sequence(step - 1);
      event.set_step(step);
      if (!writer->Write(event)) break;
    }
    absl::MutexLock lock(&mu_);
    train_cancelled_ = context->IsCancelled();
    return grpc::Status::OK;
  }

  std::vector<v1::ListJobsRequest> list_requests() {
    absl::MutexLock lock(&mu_);
    return list_requests_;
  }
  bool WaitForTrainEnd() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::optional<bool>* done) { return done->has_value(); },
        &train_cancelled_));
    return *train_cancelled_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::ListJobsRequest> list_requests_ ABSL_GUARDED_BY(mu_);
  std::optional<bool> train_cancelled_ ABSL_GUARDED_BY(mu_);
};

class ClientTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    target_ = absl::StrCat("127.0.0.1:", port_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::unique_ptr<Client> Connect() {
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect(target_, ClientOptions());
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  FakeTrainer service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string target_;
};

TEST_F(ClientTest, ListJobsFollowsEveryPageWithTheFilter) {
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = client->ListJobs(v1::RUNNING);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::vector<std::string> ids;
  for (const v1::Job& job : *jobs) ids.push_back(job.id());
  EXPECT_THAT(
      ids, ElementsAre("j-1-0", "j-1-1", "j-2-0", "j-2-1", "j-3-0", "j-3-1"));
  const std::vector<v1::ListJobsRequest> requests = service_.list_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].page_token(), "");
  EXPECT_EQ(requests[2].page_token(), "p3");
  for (const auto& request : requests) EXPECT_EQ(request.state(), v1::RUNNING);
}

TEST_F(ClientTest, ServerErrorsKeepTheirCodeAndMessage) {
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<v1::Job> job = client->GetJob("j-x");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(job.status().message()), "job \"j-x\" not found");
  // Not implemented by the fake: the canonical code comes through too.
  EXPECT_EQ(client->CancelJob("j-x").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(ClientTest, StoppingAStreamCancelsTheCall) {
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  std::vector<uint64_t> steps;
  absl::Status status =
      client->Train(v1::JobSpec(), [&](const v1::JobEvent& event) {
        steps.push_back(event.step());
        return steps.size() < 5;
      });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(steps, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_TRUE(service_.WaitForTrainEnd());  // the server saw the cancel
}

TEST_F(ClientTest, HealthCheckAnswersServing) {
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<ServingStatus> health = client->CheckHealth("");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, ServingStatus::kServing);
  EXPECT_STREQ(ServingStatusName(*health), "SERVING");
  // A service the server does not know.
  absl::StatusOr<ServingStatus> unknown =
      client->CheckHealth("no.such.Service");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, ConnectingToAStoppedServerSaysWhy) {
  server_->Shutdown();
  server_->Wait();
  server_.reset();
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect(target_, ClientOptions());
  ASSERT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(client.status().message()),
              StartsWith(absl::StrCat("cannot reach gradwatch server at ",
                                      target_, ": ")));
  EXPECT_THAT(std::string(client.status().message()),
              testing::HasSubstr("Connection refused"));
}

}  // namespace
}  // namespace gradwatch::client
