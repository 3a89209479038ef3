// Bearer tokens and job ownership end to end: a real server with
// --auth_tokens_file, real clients with and without tokens.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"
#include "tests/spirals_spec.h"

namespace gradwatch::e2e {
namespace {

using ::gradwatch::testing::SmallSpiralsSpec;

namespace v1 = ::gradwatch::v1;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr char kAliceToken[] = "alice-e2e-token-5b1f2c7d9e";
constexpr char kBobToken[] = "bob-e2e-token-8c3a4d6e0f";
constexpr char kRootToken[] = "root-e2e-token-1a9b8c7d6e";
constexpr char kWrongToken[] = "wrong-e2e-token-0000000000";

// The Trainer service as one principal sees it ("" sends no token).
class Caller {
 public:
  Caller(const ServerProcess& server, std::string token)
      : stub_(v1::Trainer::NewStub(server.Channel())),
        token_(std::move(token)) {}

  grpc::Status Submit(std::string* job_id) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::SubmitJobRequest request;
    *request.mutable_spec() = SmallSpiralsSpec(30);
    v1::Job job;
    grpc::Status status = stub_->SubmitJob(&context, request, &job);
    if (job_id != nullptr) *job_id = job.id();
    return status;
  }
  grpc::Status Get(const std::string& id, v1::Job* job = nullptr) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetJobRequest request;
    request.set_job_id(id);
    v1::Job response;
    grpc::Status status = stub_->GetJob(&context, request, &response);
    if (job != nullptr) *job = response;
    return status;
  }
  grpc::Status List(std::vector<std::string>* ids = nullptr) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::ListJobsResponse response;
    grpc::Status status =
        stub_->ListJobs(&context, v1::ListJobsRequest(), &response);
    if (ids != nullptr) {
      for (const v1::Job& job : response.jobs()) ids->push_back(job.id());
    }
    return status;
  }
  grpc::Status Cancel(const std::string& id) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::CancelJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    return stub_->CancelJob(&context, request, &job);
  }
  grpc::Status Predict(const std::string& id) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::PredictRequest request;
    request.set_job_id(id);
    v1::Example* row = request.add_inputs();
    row->add_x(0.25f);
    row->add_x(-0.5f);
    v1::PredictResponse response;
    return stub_->Predict(&context, request, &response);
  }
  grpc::Status GetModel(const std::string& id) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetModelRequest request;
    request.set_job_id(id);
    v1::Model model;
    return stub_->GetModel(&context, request, &model);
  }
  // Reads the whole stream: for a job that exists, until it ends.
  grpc::Status Watch(const std::string& id, int* events = nullptr) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::WatchJobRequest request;
    request.set_job_id(id);
    auto reader = stub_->WatchJob(&context, request);
    v1::JobEvent event;
    int count = 0;
    while (reader->Read(&event)) ++count;
    if (events != nullptr) *events = count;
    return reader->Finish();
  }
  grpc::Status Train(int* events = nullptr) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::TrainRequest request;
    *request.mutable_spec() = SmallSpiralsSpec(30);
    auto reader = stub_->Train(&context, request);
    v1::JobEvent event;
    int count = 0;
    while (reader->Read(&event)) ++count;
    if (events != nullptr) *events = count;
    return reader->Finish();
  }

 private:
  void Prepare(grpc::ClientContext* context) const {
    if (!token_.empty()) {
      context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    }
  }

  std::unique_ptr<v1::Trainer::Stub> stub_;
  const std::string token_;
};

// Code and message with the job id replaced, to compare answers about two
// different ids.
std::string Shape(const grpc::Status& status, const std::string& id) {
  return absl::StrCat(
      status.error_code(), " ",
      absl::StrReplaceAll(status.error_message(), {{id, "ID"}}));
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/gradwatch-auth-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    tokens_file_ = dir_ + "/tokens";
    std::ofstream(tokens_file_) << "# principals of the auth test\n"
                                << kAliceToken << " alice\n"
                                << kBobToken << " bob\n"
                                << kRootToken << " root admin\n";
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(const std::vector<std::string>& flags = {}) {
    std::vector<std::string> all = {"--auth_tokens_file=" + tokens_file_};
    all.insert(all.end(), flags.begin(), flags.end());
    auto server = ServerProcess::StartCapturingStderr(all);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // A finished job of `owner`.
  std::string FinishedJob(Caller& owner) {
    std::string id;
    grpc::Status submitted = owner.Submit(&id);
    EXPECT_TRUE(submitted.ok()) << submitted.error_message();
    grpc::Status watched = owner.Watch(id);
    EXPECT_TRUE(watched.ok()) << watched.error_message();
    return id;
  }

  std::string dir_;
  std::string tokens_file_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AuthTest, EveryTrainerRpcWithoutOrWithAWrongTokenIsUnauthenticated) {
  Start();
  Caller root(*server_, kRootToken);
  const std::string id = FinishedJob(root);
  const std::vector<
      std::pair<const char*, std::function<grpc::Status(Caller&)>>>
      rpcs = {
          {"SubmitJob", [](Caller& c) { return c.Submit(nullptr); }},
          {"WatchJob", [&](Caller& c) { return c.Watch(id); }},
          {"Train", [](Caller& c) { return c.Train(); }},
          {"GetJob", [&](Caller& c) { return c.Get(id); }},
          {"ListJobs", [](Caller& c) { return c.List(); }},
          {"CancelJob", [&](Caller& c) { return c.Cancel(id); }},
          {"Predict", [&](Caller& c) { return c.Predict(id); }},
          {"GetModel", [&](Caller& c) { return c.GetModel(id); }},
      };
  for (const char* token : {"", kWrongToken}) {
    Caller caller(*server_, token);
    for (const auto& [name, rpc] : rpcs) {
      grpc::Status status = rpc(caller);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << name << " with token '" << token << "'";
      EXPECT_THAT(status.error_message(), Not(HasSubstr("e2e-token")));
    }
  }
  // The refused submissions created no job; the real token works.
  std::vector<std::string> ids;
  ASSERT_TRUE(root.List(&ids).ok());
  EXPECT_THAT(ids, ElementsAre(id));
  EXPECT_TRUE(root.Predict(id).ok());
  EXPECT_TRUE(root.GetModel(id).ok());
}

TEST_F(AuthTest, HealthAndReflectionNeedNoToken) {
  Start();
  auto health = grpc::health::v1::Health::NewStub(server_->Channel());
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(
      &health_context, grpc::health::v1::HealthCheckRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  namespace reflection = ::grpc::reflection::v1alpha;
  auto stub = reflection::ServerReflection::NewStub(server_->Channel());
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  reflection::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  reflection::ServerReflectionResponse listed;
  ASSERT_TRUE(stream->Read(&listed));
  std::vector<std::string> names;
  for (const auto& service : listed.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, Contains("gradwatch.v1.Trainer"));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(AuthTest, APrincipalReachesOnlyItsOwnJobsAndAnAdminAll) {
  Start();
  Caller alice(*server_, kAliceToken);
  Caller bob(*server_, kBobToken);
  Caller root(*server_, kRootToken);
  const std::string bobs = FinishedJob(bob);
  const std::string alices = FinishedJob(alice);

  // Alice gets, for each of bob's jobs, exactly the answer an unknown id
  // gets: she cannot tell that it exists.
  const std::string unknown = "j-0123456789abcdef";
  using Rpc = std::function<grpc::Status(const std::string&)>;
  const std::vector<std::pair<const char*, Rpc>> rpcs = {
      {"GetJob", [&](const std::string& id) { return alice.Get(id); }},
      {"WatchJob", [&](const std::string& id) { return alice.Watch(id); }},
      {"CancelJob", [&](const std::string& id) { return alice.Cancel(id); }},
      {"Predict", [&](const std::string& id) { return alice.Predict(id); }},
      {"GetModel", [&](const std::string& id) { return alice.GetModel(id); }},
  };
  for (const auto& [name, rpc] : rpcs) {
    const grpc::Status on_bobs = rpc(bobs);
    const grpc::Status on_unknown = rpc(unknown);
    EXPECT_EQ(on_bobs.error_code(), grpc::StatusCode::NOT_FOUND) << name;
    EXPECT_EQ(Shape(on_bobs, bobs), Shape(on_unknown, unknown)) << name;
    EXPECT_THAT(on_bobs.error_message(), Not(HasSubstr("bob"))) << name;
  }

  std::vector<std::string> alice_sees;
  ASSERT_TRUE(alice.List(&alice_sees).ok());
  EXPECT_THAT(alice_sees, ElementsAre(alices));
  std::vector<std::string> bob_sees;
  ASSERT_TRUE(bob.List(&bob_sees).ok());
  EXPECT_THAT(bob_sees, ElementsAre(bobs));
  std::vector<std::string> root_sees;
  ASSERT_TRUE(root.List(&root_sees).ok());
  EXPECT_THAT(root_sees, UnorderedElementsAre(alices, bobs));

  // Each owner, and the admin, reach the job in every way.
  v1::Job job;
  ASSERT_TRUE(bob.Get(bobs, &job).ok());
  EXPECT_EQ(job.owner(), "bob");
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  for (Caller* caller : {&bob, &root}) {
    int events = 0;
    EXPECT_TRUE(caller->Watch(bobs, &events).ok());
    EXPECT_GT(events, 30);
    EXPECT_TRUE(caller->Predict(bobs).ok());
    EXPECT_TRUE(caller->GetModel(bobs).ok());
    EXPECT_TRUE(caller->Cancel(bobs).ok());
  }
  ASSERT_TRUE(root.Get(alices, &job).ok());
  EXPECT_EQ(job.owner(), "alice");
}

TEST_F(AuthTest, TrainRecordsTheCallerAsOwner) {
  Start();
  Caller alice(*server_, kAliceToken);
  int events = 0;
  ASSERT_TRUE(alice.Train(&events).ok());
  EXPECT_GT(events, 30);
  std::vector<std::string> ids;
  ASSERT_TRUE(alice.List(&ids).ok());
  ASSERT_EQ(ids.size(), 1u);
  v1::Job job;
  ASSERT_TRUE(alice.Get(ids[0], &job).ok());
  EXPECT_EQ(job.owner(), "alice");
  Caller bob(*server_, kBobToken);
  EXPECT_EQ(bob.Get(ids[0]).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AuthTest, OwnerSurvivesARestart) {
  const std::string data_dir = "--data_dir=" + dir_ + "/data";
  Start({data_dir});
  std::string id;
  {
    Caller alice(*server_, kAliceToken);
    id = FinishedJob(alice);
  }
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  Start({data_dir});
  Caller alice(*server_, kAliceToken);
  Caller bob(*server_, kBobToken);
  Caller root(*server_, kRootToken);
  v1::Job job;
  ASSERT_TRUE(alice.Get(id, &job).ok());
  EXPECT_EQ(job.owner(), "alice");
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_TRUE(alice.GetModel(id).ok());
  EXPECT_EQ(bob.Get(id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(bob.GetModel(id).error_code(), grpc::StatusCode::NOT_FOUND);
  std::vector<std::string> bob_sees;
  ASSERT_TRUE(bob.List(&bob_sees).ok());
  EXPECT_TRUE(bob_sees.empty());
  std::vector<std::string> root_sees;
  ASSERT_TRUE(root.List(&root_sees).ok());
  EXPECT_THAT(root_sees, ElementsAre(id));
}

TEST_F(AuthTest, TokensNeverAppearInTheLog) {
  Start();
  Caller alice(*server_, kAliceToken);
  Caller root(*server_, kRootToken);
  Caller wrong(*server_, kWrongToken);
  const std::string id = FinishedJob(alice);
  EXPECT_FALSE(wrong.Get(id).ok());
  EXPECT_FALSE(wrong.Submit(nullptr).ok());
  EXPECT_TRUE(root.Cancel(id).ok());
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  const std::string log = server_->Stderr();
  // The log is there, and names who queued the job.
  EXPECT_THAT(log, HasSubstr(absl::StrCat("job ", id, " queued")));
  EXPECT_THAT(log, HasSubstr("for alice"));
  for (const char* token : {kAliceToken, kBobToken, kRootToken, kWrongToken}) {
    EXPECT_THAT(log, Not(HasSubstr(token)));
  }
  EXPECT_THAT(log, Not(HasSubstr("e2e-token")));
}

TEST_F(AuthTest, AMalformedTokensFileStopsTheServerNamingTheLine) {
  std::ofstream(tokens_file_) << kAliceToken << " alice\n"
                              << "# comment\n"
                              << kBobToken << " bob owner\n";
  auto server = ServerProcess::StartCapturingStderr(
      {"--auth_tokens_file=" + tokens_file_});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("exited with 2"));
  EXPECT_THAT(server.status().message(),
              HasSubstr("--auth_tokens_file: " + tokens_file_ +
                        " line 3: the third field, if any, must be the "
                        "word admin"));
  EXPECT_THAT(server.status().message(), Not(HasSubstr("e2e-token")));

  std::ofstream(tokens_file_) << kAliceToken << " alice\n"
                              << kAliceToken << " bob\n";
  server = ServerProcess::StartCapturingStderr(
      {"--auth_tokens_file=" + tokens_file_});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(),
              HasSubstr("line 2: repeats the token of line 1"));
}

}  // namespace
}  // namespace gradwatch::e2e
