// gradwatch_rpcs_total and gradwatch_store_bytes: the RPC-counting
// interceptor on a real in-process server, and the stores' sizes as the
// exporter reads them.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/text_format.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/grpc_server.h"
#include "server/memory_job_store.h"
#include "server/metrics_exporter.h"
#include "server/rpc_counting_interceptor.h"
#include "server/sqlite_job_store.h"
#include "tests/server/exposition.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

using ::gradwatch::server::testing::Scrape;
using ::gradwatch::server::testing::Value;

// Labels in the exposition's order (sorted by name).
std::string RpcSeries(const std::string& method, const std::string& code) {
  return absl::StrCat("gradwatch_rpcs_total{code=\"", code, "\",method=\"",
                      method, "\"}");
}

v1::Job MakeJob(const std::string& id, const std::string& name) {
  v1::Job job;
  job.set_id(id);
  job.set_state(v1::QUEUED);
  job.mutable_spec()->set_name(name);
  return job;
}

v1::JobEvent MakeEvent(const std::string& id, uint64_t sequence) {
  v1::JobEvent event;
  event.set_job_id(id);
  event.set_sequence(sequence);
  event.mutable_stats()->set_step(sequence);
  event.mutable_stats()->set_loss(0.5);
  for (int l = 0; l < 4; ++l) {
    event.mutable_stats()->add_layers()->set_dead_ratio(0.25 * l);
  }
  return event;
}

TEST(RpcCountingInterceptorTest, LabelsServedMethodsAndBoundsTheRest) {
  using Factory = RpcCountingInterceptorFactory;
  EXPECT_EQ(Factory::MethodLabel("/gradwatch.v1.Trainer/GetJob"),
            "gradwatch.v1.Trainer/GetJob");
  EXPECT_EQ(Factory::MethodLabel("/gradwatch.v1.Trainer/Train"),
            "gradwatch.v1.Trainer/Train");
  EXPECT_EQ(Factory::MethodLabel("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check");
  EXPECT_EQ(Factory::MethodLabel("/gradwatch.v1.Trainer/DropTables"),
            "unknown");
  EXPECT_EQ(Factory::MethodLabel("/gradwatch.v1.TrainerX/GetJob"), "unknown");
  EXPECT_EQ(Factory::MethodLabel("/gradwatch.v1.Trainer"), "unknown");
  EXPECT_EQ(Factory::MethodLabel("gradwatch.v1.Trainer/GetJob"), "unknown");
  EXPECT_EQ(Factory::MethodLabel(nullptr), "unknown");
}

TEST(RpcCountingInterceptorTest, CountsRpcsOfARealServerByMethodAndCode) {
  MetricsExporter exporter(MetricsExporterOptions{});
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.job_observer = &exporter;
  options.shutdown_grace = absl::ZeroDuration();
  auto server = GrpcServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                          grpc::InsecureChannelCredentials());
  auto stub = v1::Trainer::NewStub(channel);

  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id("j-0000000000000bad");
    v1::Job job;
    EXPECT_EQ(stub->GetJob(&context, request, &job).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::ListJobsResponse response;
    EXPECT_TRUE(
        stub->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;  // an empty spec is invalid
    v1::Job job;
    EXPECT_EQ(stub->SubmitJob(&context, request, &job).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // A stream: a small job trained to its end.
  {
    grpc::ClientContext context;
    v1::TrainRequest request;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"pb(
          data { synthetic { kind: SPIRALS samples: 60 classes: 3 seed: 7 } }
          model {
            layers { units: 8 activation: RELU }
            layers { units: 3 }
          }
          loss: CROSS_ENTROPY
          optimizer { learning_rate: 0.1 }
          training { steps: 40 batch_size: 20 seed: 1 threads: 1 }
          monitoring { stats_every: 1 }
        )pb",
        request.mutable_spec()));
    auto reader = stub->Train(&context, request);
    v1::JobEvent event;
    int events = 0;
    while (reader->Read(&event)) ++events;
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_GT(events, 40);
  }
  // A method the server does not serve.
  {
    grpc::GenericStub generic(channel);
    grpc::ClientContext context;
    grpc::Slice empty_message("");
    grpc::ByteBuffer request(&empty_message, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    bool done = false;
    absl::Mutex mu;
    generic.UnaryCall(&context, "/gradwatch.v1.Trainer/DropTables",
                      grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) {
                        absl::MutexLock lock(&mu);
                        status = s;
                        done = true;
                      });
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  (*server)->Shutdown();

  const std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text, RpcSeries("gradwatch.v1.Trainer/GetJob", "NOT_FOUND")),
            3);
  EXPECT_EQ(Value(text, RpcSeries("gradwatch.v1.Trainer/ListJobs", "OK")), 1);
  EXPECT_EQ(Value(text, RpcSeries("gradwatch.v1.Trainer/Train", "OK")), 1);
  EXPECT_EQ(Value(text, RpcSeries("gradwatch.v1.Trainer/SubmitJob",
                                  "INVALID_ARGUMENT")),
            1);
  // The client's method name never becomes a label.
  EXPECT_EQ(Value(text, RpcSeries("unknown", "UNIMPLEMENTED")), 1) << text;
  EXPECT_FALSE(absl::StrContains(text, "DropTables")) << text;
  EXPECT_FALSE(Value(text, RpcSeries("gradwatch.v1.Trainer/GetJob", "OK")));
  // No store given: no store metric.
  EXPECT_FALSE(absl::StrContains(text, "gradwatch_store_bytes")) << text;
}

TEST(StoreBytesTest, MemoryStoreCountsWhatItHolds) {
  MemoryJobStore store;
  EXPECT_EQ(*store.SizeBytes(), 0u);
  const v1::Job job = MakeJob("j-1", "first");
  ASSERT_TRUE(store.PutJob(job).ok());
  uint64_t expected = job.ByteSizeLong();
  EXPECT_EQ(*store.SizeBytes(), expected);

  for (uint64_t s = 0; s < 5; ++s) {
    const v1::JobEvent event = MakeEvent("j-1", s);
    ASSERT_TRUE(store.AppendEvent(event).ok());
    expected += event.ByteSizeLong();
  }
  EXPECT_EQ(*store.SizeBytes(), expected);

  // Replacing the record counts the new one instead of the old.
  const v1::Job renamed = MakeJob("j-1", "a much longer name for the job");
  ASSERT_TRUE(store.PutJob(renamed).ok());
  expected += renamed.ByteSizeLong() - job.ByteSizeLong();
  EXPECT_EQ(*store.SizeBytes(), expected);

  v1::Model model;
  model.set_job_id("j-1");
  model.add_layers()->add_weights(1.5f);
  ASSERT_TRUE(store.PutModel(model).ok());
  ASSERT_TRUE(store.PutModel(model).ok());
  expected += model.ByteSizeLong();
  EXPECT_EQ(*store.SizeBytes(), expected);

  const v1::Job other = MakeJob("j-2", "second");
  ASSERT_TRUE(store.PutJob(other).ok());
  ASSERT_TRUE(store.DeleteJob("j-1").ok());
  EXPECT_EQ(*store.SizeBytes(), other.ByteSizeLong());
  ASSERT_TRUE(store.DeleteJob("j-2").ok());
  EXPECT_EQ(*store.SizeBytes(), 0u);
}

TEST(StoreBytesTest, SqliteStoreIsItsFileAndLog) {
  char dir_template[] = "/tmp/gradwatch_store_bytes_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/gradwatch.db";
  {
    auto store = SqliteJobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    const absl::StatusOr<uint64_t> empty = (*store)->SizeBytes();
    ASSERT_TRUE(empty.ok()) << empty.status();
    auto on_disk = [&path] {
      std::error_code error;
      uint64_t bytes = std::filesystem::file_size(path);
      const uint64_t wal = std::filesystem::file_size(path + "-wal", error);
      return bytes + (error ? 0 : wal);
    };
    EXPECT_EQ(*empty, on_disk());
    EXPECT_GT(*empty, 0u);

    ASSERT_TRUE((*store)->PutJob(MakeJob("j-1", "first")).ok());
    uint64_t written = 0;
    for (uint64_t s = 0; s < 400; ++s) {
      const v1::JobEvent event = MakeEvent("j-1", s);
      written += event.ByteSizeLong();
      ASSERT_TRUE((*store)->AppendEvent(event).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
    const absl::StatusOr<uint64_t> full = (*store)->SizeBytes();
    ASSERT_TRUE(full.ok()) << full.status();
    EXPECT_EQ(*full, on_disk());
    EXPECT_GE(*full, *empty + written);

    // What the exporter serves on each scrape.
    MetricsExporterOptions options;
    options.store = store->get();
    MetricsExporter exporter(options);
    EXPECT_EQ(Value(Scrape(exporter), "gradwatch_store_bytes"),
              static_cast<double>(on_disk()));
  }
  std::filesystem::remove_all(dir_template);
}

TEST(StoreBytesTest, ExporterReadsTheStoreOnEveryScrape) {
  MemoryJobStore store;
  MetricsExporterOptions options;
  options.store = &store;
  MetricsExporter exporter(options);
  EXPECT_EQ(Value(Scrape(exporter), "gradwatch_store_bytes"), 0);
  const v1::Job job = MakeJob("j-1", "first");
  ASSERT_TRUE(store.PutJob(job).ok());
  EXPECT_EQ(Value(Scrape(exporter), "gradwatch_store_bytes"),
            static_cast<double>(job.ByteSizeLong()));
}

}  // namespace
}  // namespace gradwatch::server
