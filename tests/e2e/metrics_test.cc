// The Prometheus endpoint of a real server: /metrics fetched over HTTP after
// a real job, checked value by value against the job's own stream and by
// `promtool check metrics`.

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/text_format.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;

// A 2-16-16-3 ReLU net whose first layer starts with bias -10: every unit
// of both hidden layers is inactive on every input from the first step.
v1::JobSpec DeadInitSpec() {
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "dead-init"
        data { synthetic { kind: SPIRALS samples: 200 classes: 3 seed: 7 } }
        model {
          layers {
            units: 16
            activation: RELU
            init { scheme: HE_NORMAL bias: -10 }
          }
          layers { units: 16 activation: RELU }
          layers { units: 3 }
        }
        loss: CROSS_ENTROPY
        optimizer { learning_rate: 0.1 }
        training { steps: 20 batch_size: 20 seed: 1 threads: 1 }
        monitoring { stats_every: 1 }
      )pb",
      &spec));
  return spec;
}

// GET http://127.0.0.1:PORT/PATH with HTTP/1.0 (the server closes the
// connection after the response). Returns the body of a 200 response.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, 0);
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError("send failed");
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[8192];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos) {
    return absl::DataLossError(absl::StrCat("no HTTP response: ", response));
  }
  if (!absl::StartsWith(response, "HTTP/1.1 200") &&
      !absl::StartsWith(response, "HTTP/1.0 200")) {
    return absl::UnavailableError(response.substr(0, body));
  }
  return response.substr(body + 4);
}

// The value of the series written exactly as `series`, or nullopt.
std::optional<double> Value(const std::string& text,
                            const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, absl::StrCat(series, " "))) {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(),
                         nullptr);
    }
  }
  return std::nullopt;
}

// The exposition prints 16 significant digits: a figure read back matches
// the event's to about 1e-15, relative.
void ExpectClose(std::optional<double> actual, double expected) {
  ASSERT_TRUE(actual.has_value());
  EXPECT_NEAR(*actual, expected, 1e-13 * std::max(1.0, std::abs(expected)));
}

class MetricsTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& flags) {
    char dir_template[] = "/tmp/gradwatch_metrics_test_XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    std::vector<std::string> all = {
        "--metrics_listen=127.0.0.1:0",
        absl::StrCat("--metrics_port_file=", dir_, "/metrics_port")};
    all.insert(all.end(), flags.begin(), flags.end());
    auto server = ServerProcess::Start(all);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    // Written before the gRPC port: present once the server listens.
    std::ifstream(dir_ + "/metrics_port") >> metrics_port_;
    ASSERT_GT(metrics_port_, 0);
    stub_ = v1::Trainer::NewStub(server_->Channel());
  }

  void TearDown() override {
    if (!dir_.empty()) {
      std::remove((dir_ + "/metrics_port").c_str());
      std::remove((dir_ + "/metrics.txt").c_str());
      rmdir(dir_.c_str());
    }
  }

  // Trains `spec` through the Train stream; returns every event.
  std::vector<v1::JobEvent> Train(const v1::JobSpec& spec) {
    grpc::ClientContext context;
    v1::TrainRequest request;
    *request.mutable_spec() = spec;
    auto reader = stub_->Train(&context, request);
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (reader->Read(&event)) events.push_back(event);
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return events;
  }

  std::string Scrape() {
    absl::StatusOr<std::string> body = HttpGet(metrics_port_, "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    return body.ok() ? *body : "";
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
  int metrics_port_ = 0;
};

TEST_F(MetricsTest, ServesAJobsLayersAndPassesPromtool) {
  Start({"--dead_neuron_alert_threshold=0.25"});
  const std::vector<v1::JobEvent> events = Train(DeadInitSpec());
  ASSERT_FALSE(events.empty());
  const std::string id = events.front().job_id();
  const v1::StepStats* last = nullptr;
  int stats_events = 0;
  for (const v1::JobEvent& event : events) {
    if (event.has_stats()) {
      last = &event.stats();
      ++stats_events;
    }
  }
  ASSERT_NE(last, nullptr);
  ASSERT_EQ(last->layers_size(), 3);

  const std::string text = Scrape();
  const std::string job = absl::StrCat("{job_id=\"", id, "\"}");
  EXPECT_EQ(Value(text, "gradwatch_steps_total" + job), 20);
  ExpectClose(Value(text, "gradwatch_loss" + job), last->loss());
  EXPECT_EQ(Value(text, "gradwatch_dead_neuron_alert_threshold"), 0.25);
  EXPECT_EQ(Value(text, "gradwatch_jobs_submitted_total"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"succeeded\"}"),
            1);
  EXPECT_EQ(Value(text, "gradwatch_step_duration_seconds_count"), stats_events);
  // The Train stream wrote every event before it finished.
  EXPECT_EQ(Value(text, "gradwatch_events_streamed_total"), events.size());
  // Both hidden layers are dead from the start.
  for (const std::string layer : {"0", "1"}) {
    EXPECT_EQ(Value(text, absl::StrCat("gradwatch_dead_neuron_ratio{job_id=\"",
                                       id, "\",layer=\"", layer, "\"}")),
              1.0)
        << "layer " << layer;
  }
  for (const v1::LayerStats& layer : last->layers()) {
    const std::string labels =
        absl::StrCat("{job_id=\"", id, "\",layer=\"", layer.index(), "\"");
    ExpectClose(Value(text, "gradwatch_dead_neuron_ratio" + labels + "}"),
                layer.dead_ratio());
    ExpectClose(Value(text, "gradwatch_saturated_ratio" + labels + "}"),
                layer.saturated_ratio());
    for (const v1::TensorStats& tensor : layer.params()) {
      const std::string tensor_labels =
          absl::StrCat(labels, ",tensor=\"", tensor.name(), "\"}");
      ExpectClose(Value(text, "gradwatch_gradient_l2_norm" + tensor_labels),
                  tensor.grad_l2_norm());
      ExpectClose(
          Value(text, "gradwatch_gradient_zero_fraction" + tensor_labels),
          tensor.grad_zero_fraction());
    }
  }

  // promtool lints the exposition: no output and exit 0 when clean.
  const std::string path = dir_ + "/metrics.txt";
  std::ofstream(path) << text;
  FILE* promtool =
      popen(("promtool check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(promtool, nullptr);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), promtool)) > 0) {
    output.append(buffer, n);
  }
  EXPECT_EQ(pclose(promtool), 0) << output;
  EXPECT_EQ(output, "");
}

TEST_F(MetricsTest, RemovesAFinishedJobAfterTheRetention) {
  Start({"--metrics_retention=0s"});
  const std::vector<v1::JobEvent> events = Train(DeadInitSpec());
  ASSERT_FALSE(events.empty());
  const std::string text = Scrape();
  EXPECT_FALSE(absl::StrContains(text, events.front().job_id())) << text;
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"succeeded\"}"),
            1);
}

TEST_F(MetricsTest, CountsTheStreamsFollowingJobs) {
  Start({});
  v1::JobSpec spec = DeadInitSpec();
  spec.mutable_training()->set_steps(1'000'000);  // runs until cancelled
  spec.mutable_monitoring()->set_stats_every(100);
  v1::Job job;
  {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    ASSERT_TRUE(stub_->SubmitJob(&context, request, &job).ok());
  }
  grpc::ClientContext watch_context;
  v1::WatchJobRequest watch;
  watch.set_job_id(job.id());
  auto reader = stub_->WatchJob(&watch_context, watch);
  v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(Value(Scrape(), "gradwatch_active_watchers"), 1);

  {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(job.id());
    v1::Job cancelled;
    ASSERT_TRUE(stub_->CancelJob(&context, request, &cancelled).ok());
  }
  while (reader->Read(&event)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  // The server lets go of the stream just after the client has its status.
  std::optional<double> watchers;
  for (int i = 0; i < 1000; ++i) {
    watchers = Value(Scrape(), "gradwatch_active_watchers");
    if (watchers == 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(watchers, 0);
}

TEST_F(MetricsTest, APortInUseStopsTheServer) {
  // Hold a listening socket on a free port, then ask for that port.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto server = ServerProcess::Start(
      {absl::StrCat("--metrics_listen=127.0.0.1:", ntohs(address.sin_port))});
  close(fd);
  EXPECT_FALSE(server.ok());
}

}  // namespace
}  // namespace gradwatch::e2e
