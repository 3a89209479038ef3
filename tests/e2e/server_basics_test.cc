// The server skeleton end to end: health, reflection, errors, shutdown.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
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
using ::testing::HasSubstr;

std::unique_ptr<ServerProcess> StartServer(
    const std::vector<std::string>& flags = {}) {
  auto server = ServerProcess::Start(flags);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(ServerBasicsTest, HealthCheckAnswersServing) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto health = grpc::health::v1::Health::NewStub(server->Channel());
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(ServerBasicsTest, ReflectionListsAndDescribesTrainer) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  namespace reflection = ::grpc::reflection::v1alpha;
  auto stub = reflection::ServerReflection::NewStub(server->Channel());
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

  reflection::ServerReflectionRequest describe;
  describe.set_file_containing_symbol("gradwatch.v1.Trainer");
  ASSERT_TRUE(stream->Write(describe));
  reflection::ServerReflectionResponse described;
  ASSERT_TRUE(stream->Read(&described));
  ASSERT_GE(described.file_descriptor_response().file_descriptor_proto_size(),
            1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(
      described.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "gradwatch/v1/trainer.proto");
  ASSERT_EQ(file.service_size(), 1);
  EXPECT_EQ(file.service(0).name(), "Trainer");
  // Every RPC of the schema this test was built with.
  const google::protobuf::ServiceDescriptor* compiled =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "gradwatch.v1.Trainer");
  ASSERT_NE(compiled, nullptr);
  EXPECT_EQ(file.service(0).method_size(), compiled->method_count());
  EXPECT_GE(file.service(0).method_size(), 9);

  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(ServerBasicsTest, InvalidSpecIsInvalidArgumentWithFieldPath) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto trainer = v1::Trainer::NewStub(server->Channel());
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SmallSpiralsSpec(50);
  request.mutable_spec()->mutable_model()->mutable_layers(0)->set_units(0);

  grpc::ClientContext context;
  v1::Job job;
  grpc::Status status = trainer->SubmitJob(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model.layers[0].units"));

  // Train goes through the same validation point.
  v1::TrainRequest train;
  *train.mutable_spec() = request.spec();
  grpc::ClientContext train_context;
  auto reader = trainer->Train(&train_context, train);
  v1::JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status train_status = reader->Finish();
  EXPECT_EQ(train_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(train_status.error_message(), HasSubstr("model.layers[0].units"));
}

TEST(ServerBasicsTest, SpecOverALimitIsResourceExhausted) {
  auto server = StartServer({"--max_parameters=98", "--max_steps=49"});
  ASSERT_NE(server, nullptr);
  auto trainer = v1::Trainer::NewStub(server->Channel());

  v1::SubmitJobRequest request;
  *request.mutable_spec() = SmallSpiralsSpec(50);
  grpc::ClientContext context;
  v1::Job job;
  grpc::Status status = trainer->SubmitJob(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            "model has 99 parameters, over the server's limit of 98 "
            "(--max_parameters)");

  // A smaller model passes the parameter limit and meets the step limit.
  v1::TrainRequest train;
  *train.mutable_spec() = SmallSpiralsSpec(50);
  train.mutable_spec()->mutable_model()->mutable_layers(0)->set_units(8);
  grpc::ClientContext train_context;
  auto reader = trainer->Train(&train_context, train);
  v1::JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status train_status = reader->Finish();
  EXPECT_EQ(train_status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(train_status.error_message(),
            "job has 50 steps, over the server's limit of 49 (--max_steps)");
}

TEST(ServerBasicsTest, MessageOverMaxMessageBytesIsResourceExhausted) {
  auto server = StartServer({"--max_message_bytes=4096"});
  ASSERT_NE(server, nullptr);
  auto trainer = v1::Trainer::NewStub(server->Channel());
  v1::SubmitJobRequest request;
  *request.mutable_spec() = SmallSpiralsSpec(50);
  request.mutable_spec()->set_name(std::string(8192, 'n'));
  grpc::ClientContext context;
  v1::Job job;
  grpc::Status status = trainer->SubmitJob(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(ServerBasicsTest, UnknownJobIsNotFound) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto trainer = v1::Trainer::NewStub(server->Channel());
  const std::string missing = "j-0000000000000000";
  {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(missing);
    v1::Job job;
    grpc::Status status = trainer->GetJob(&context, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr(missing));
  }
  {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(missing);
    v1::Job job;
    EXPECT_EQ(trainer->CancelJob(&context, request, &job).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::GetModelRequest request;
    request.set_job_id(missing);
    v1::Model model;
    EXPECT_EQ(trainer->GetModel(&context, request, &model).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::PredictRequest request;
    request.set_job_id(missing);
    request.add_inputs()->add_x(0.5f);
    v1::PredictResponse response;
    EXPECT_EQ(trainer->Predict(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(missing);
    auto reader = trainer->WatchJob(&context, request);
    v1::JobEvent event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST(ServerBasicsTest, SigtermAndSigintExitZero) {
  for (int signal : {SIGTERM, SIGINT}) {
    auto server = StartServer();
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(server->Stop(signal), 0) << "signal " << signal;
  }
}

}  // namespace
}  // namespace gradwatch::e2e
