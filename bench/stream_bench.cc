// Cost of the server's event streams, measured through a real in-process
// server on a loopback port and a real gRPC client:
//  - BM_StreamOverhead: the same job run by the job manager without and
//    with a live WatchJob client reading its stream; the per-step wall
//    and CPU time of both runs and the overhead in percent. Runs alternate
//    within each repetition so that both see the same machine load.
//  - BM_Replay: a finished job's history of over 50,000 events replayed
//    through WatchJob from step 0; events per second.
// Each comes twice: as above (one event per message) and, named *_batched,
// through WatchJobBatches (several events per message).
// With GRADWATCH_BENCH_TARGET=HOST:PORT the benchmarks run against that
// gradwatch-server process instead (started with --max_concurrent_jobs=1
// --job_threads=1); the CPU counters then count the client only.
// docs/benchmarks.md ("Server streams") gives the command and the figures.
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "server/grpc_server.h"

namespace gradwatch::bench {
namespace {

namespace v1 = ::gradwatch::v1;

// Steps left out of the per-step time: the first executions of each
// primitive and the first allocations are a job's start, not its steps.
constexpr uint64_t kWarmupSteps = 5;

// The replayed job: one statistics event per step, plus its few others.
constexpr uint64_t kReplaySteps = 50'000;

// Blocks of up to 1 MiB for the arena a batch is parsed into.
google::protobuf::ArenaOptions BatchArenaOptions() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 64 << 10;
  options.max_block_size = 1 << 20;
  return options;
}

// One in-process server (one worker, one oneDNN thread per job), or the
// server at GRADWATCH_BENCH_TARGET, and a client, shared by every
// benchmark of the process.
class BenchServer {
 public:
  static absl::StatusOr<BenchServer*> Get() {
    static absl::StatusOr<BenchServer*>* instance = [] {
      if (const char* target = std::getenv("GRADWATCH_BENCH_TARGET")) {
        return new absl::StatusOr<BenchServer*>(
            new BenchServer(nullptr, target));
      }
      server::ServerOptions options;
      options.listen = "127.0.0.1:0";
      options.max_concurrent_jobs = 1;
      options.job_threads = 1;
      options.shutdown_grace = absl::ZeroDuration();
      auto started = server::GrpcServer::Start(options);
      if (!started.ok()) {
        return new absl::StatusOr<BenchServer*>(started.status());
      }
      const std::string target = absl::StrCat("127.0.0.1:", (*started)->port());
      return new absl::StatusOr<BenchServer*>(
          new BenchServer(std::move(*started), target));
    }();
    return *instance;
  }

  absl::StatusOr<std::string> Submit(const v1::JobSpec& spec) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::Job job;
    grpc::Status status = stub_->SubmitJob(&context, request, &job);
    if (!status.ok()) return absl::InternalError(status.error_message());
    return job.id();
  }

  // Polls the job's record until it has ended: a watcher-free wait.
  absl::Status AwaitEnd(const std::string& id) {
    while (true) {
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(id);
      v1::Job job;
      grpc::Status status = stub_->GetJob(&context, request, &job);
      if (!status.ok()) return absl::InternalError(status.error_message());
      if (job.state() == v1::SUCCEEDED) return absl::OkStatus();
      if (job.state() != v1::QUEUED && job.state() != v1::RUNNING) {
        return absl::InternalError(absl::StrCat(
            "job ", id, " ended ", v1::JobState_Name(job.state())));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Reads the job's stream from step 0 to its end, through WatchJobBatches
  // if `batched`, else WatchJob; `on_event` sees each event as it arrives.
  template <typename F>
  absl::Status Watch(const std::string& id, bool batched, F on_event) {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(id);
    grpc::Status status;
    if (batched) {
      auto reader = stub_->WatchJobBatches(&context, request);
      // As the client library reads: each message parsed into an arena
      // of its own, so that its hundreds of events cost a few large
      // allocations, not several each.
      while (true) {
        google::protobuf::Arena arena(BatchArenaOptions());
        auto* batch =
            google::protobuf::Arena::CreateMessage<v1::JobEventBatch>(&arena);
        if (!reader->Read(batch)) break;
        for (const v1::JobEvent& event : batch->events()) on_event(event);
      }
      status = reader->Finish();
    } else {
      auto reader = stub_->WatchJob(&context, request);
      v1::JobEvent event;
      while (reader->Read(&event)) on_event(event);
      status = reader->Finish();
    }
    if (!status.ok()) return absl::InternalError(status.error_message());
    return absl::OkStatus();
  }

 private:
  BenchServer(std::unique_ptr<server::GrpcServer> server,
              const std::string& target)
      : server_(std::move(server)),
        stub_(v1::Trainer::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))) {}

  std::unique_ptr<server::GrpcServer> server_;  // null for an outside one
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

double Seconds(const google::protobuf::Timestamp& time) {
  return static_cast<double>(time.seconds()) + time.nanos() * 1e-9;
}

// Per-step time of a job from its statistics events' timestamps, which
// the history sets as each step's event is appended: the time between
// appends covers everything the training thread does per step, the
// streams' notifications included.
class StepClock {
 public:
  void Add(const v1::JobEvent& event) {
    if (!event.has_stats() || event.step() < kWarmupSteps) return;
    if (first_step_ == 0) {
      first_step_ = event.step();
      first_time_ = Seconds(event.time());
    }
    last_step_ = event.step();
    last_time_ = Seconds(event.time());
  }
  uint64_t steps() const { return last_step_ - first_step_; }
  double seconds() const { return last_time_ - first_time_; }

 private:
  uint64_t first_step_ = 0;
  uint64_t last_step_ = 0;
  double first_time_ = 0;
  double last_time_ = 0;
};

// CPU time of the whole process (every thread: the job, gRPC's threads,
// the client), user and system, in seconds.
double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) *
             1e-6;
}

struct JobRun {
  double step_seconds;  // wall time per step, from the event timestamps
  double cpu_seconds;   // process CPU from submission to the job's end
  uint64_t steps;
};

// Runs `spec` once; with `watched`, a client reads its stream live from
// submission to the end (batched or not), otherwise nobody watches until
// it has ended.
absl::StatusOr<JobRun> RunJob(BenchServer* server, const v1::JobSpec& spec,
                              bool watched, bool batched) {
  const double cpu_start = ProcessCpuSeconds();
  absl::StatusOr<std::string> id = server->Submit(spec);
  if (!id.ok()) return id.status();
  StepClock clock;
  auto add = [&clock](const v1::JobEvent& e) { clock.Add(e); };
  double cpu_end = 0;
  if (watched) {
    if (absl::Status read = server->Watch(*id, batched, add); !read.ok()) {
      return read;
    }
    cpu_end = ProcessCpuSeconds();
  } else {
    if (absl::Status ended = server->AwaitEnd(*id); !ended.ok()) return ended;
    cpu_end = ProcessCpuSeconds();
    if (absl::Status read = server->Watch(*id, batched, add); !read.ok()) {
      return read;
    }
  }
  if (clock.steps() == 0) return absl::InternalError("no timed steps");
  return JobRun{clock.seconds() / clock.steps(), cpu_end - cpu_start,
                spec.training().steps()};
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Each iteration is a pair of runs, unwatched and watched, in alternating
// order; the overhead is the median of the pairs' ratios, which the
// machine's load, drifting over seconds, affects least.
void BM_StreamOverhead(benchmark::State& state, const v1::JobSpec& spec,
                       bool batched) {
  absl::StatusOr<BenchServer*> server = BenchServer::Get();
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  std::vector<double> plain_step, watched_step, ratios;
  double plain_cpu = 0, watched_cpu = 0;
  uint64_t plain_steps = 0, watched_steps = 0;
  bool watched_first = false;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    JobRun runs[2];
    for (bool watched : {watched_first, !watched_first}) {
      absl::StatusOr<JobRun> run = RunJob(*server, spec, watched, batched);
      if (!run.ok()) {
        state.SkipWithError(std::string(run.status().message()).c_str());
        return;
      }
      runs[watched] = *run;
    }
    watched_first = !watched_first;
    plain_step.push_back(runs[0].step_seconds);
    watched_step.push_back(runs[1].step_seconds);
    ratios.push_back(runs[1].step_seconds / runs[0].step_seconds);
    plain_cpu += runs[0].cpu_seconds;
    watched_cpu += runs[1].cpu_seconds;
    plain_steps += runs[0].steps;
    watched_steps += runs[1].steps;
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  if (ratios.empty()) return;
  state.counters["step_us"] = Median(plain_step) * 1e6;
  state.counters["watched_step_us"] = Median(watched_step) * 1e6;
  state.counters["overhead_pct"] = (Median(ratios) - 1) * 100;
  // What streaming costs in CPU, whichever thread pays it: the server's
  // writes and the client's reads, per step.
  state.counters["cpu_us_per_step"] = plain_cpu / plain_steps * 1e6;
  state.counters["watched_cpu_us_per_step"] = watched_cpu / watched_steps * 1e6;
}

// The mnist_mlp shape of docs/benchmarks.md: BLOBS data, 784-1000-500-
// 100-10 ReLU, batch 128, SGD with momentum, statistics every step.
v1::JobSpec MnistSpec() {
  v1::JobSpec spec;
  spec.set_name("bench-mnist_mlp");
  v1::SyntheticData* data = spec.mutable_data()->mutable_synthetic();
  data->set_kind(v1::SyntheticData::BLOBS);
  data->set_samples(4 * 128);
  data->set_features(784);
  data->set_classes(10);
  data->set_seed(7);
  for (int units : {1000, 500, 100}) {
    v1::LayerSpec* layer = spec.mutable_model()->add_layers();
    layer->set_units(units);
    layer->set_activation(v1::RELU);
  }
  spec.mutable_model()->add_layers()->set_units(10);
  spec.set_loss(v1::CROSS_ENTROPY);
  v1::OptimizerSpec* optimizer = spec.mutable_optimizer();
  optimizer->set_kind(v1::OptimizerSpec::SGD);
  optimizer->set_learning_rate(0.01);
  optimizer->set_momentum(0.9);
  v1::TrainingSpec* training = spec.mutable_training();
  training->set_steps(40);
  training->set_batch_size(128);
  training->set_seed(1);
  training->set_threads(1);
  spec.mutable_monitoring()->set_stats_every(1);
  return spec;
}

// SPIRALS, a 2-32-32-3 ReLU net, batch 32: a step of tens of
// microseconds, where a per-event cost would show most.
v1::JobSpec SpiralsSpec(uint64_t steps) {
  v1::JobSpec spec;
  spec.set_name("bench-spirals");
  v1::SyntheticData* data = spec.mutable_data()->mutable_synthetic();
  data->set_kind(v1::SyntheticData::SPIRALS);
  data->set_samples(600);
  data->set_classes(3);
  data->set_seed(7);
  for (int units : {32, 32}) {
    v1::LayerSpec* layer = spec.mutable_model()->add_layers();
    layer->set_units(units);
    layer->set_activation(v1::RELU);
  }
  spec.mutable_model()->add_layers()->set_units(3);
  spec.set_loss(v1::CROSS_ENTROPY);
  spec.mutable_optimizer()->set_learning_rate(0.05);
  v1::TrainingSpec* training = spec.mutable_training();
  training->set_steps(steps);
  training->set_batch_size(32);
  training->set_seed(1);
  training->set_threads(1);
  spec.mutable_monitoring()->set_stats_every(1);
  return spec;
}

// The replayed job, trained once per process, and the bytes of its
// events, counted once so that the timed replays only read.
struct ReplayJob {
  std::string id;
  int64_t bytes = 0;
};

absl::StatusOr<ReplayJob> TrainReplayJob(BenchServer* server) {
  absl::StatusOr<std::string> id = server->Submit(SpiralsSpec(kReplaySteps));
  if (!id.ok()) return id.status();
  if (absl::Status ended = server->AwaitEnd(*id); !ended.ok()) return ended;
  ReplayJob job{*id, 0};
  absl::Status read =
      server->Watch(*id, /*batched=*/false, [&job](const v1::JobEvent& e) {
        job.bytes += static_cast<int64_t>(e.ByteSizeLong());
      });
  if (!read.ok()) return read;
  return job;
}

void BM_Replay(benchmark::State& state, bool batched) {
  absl::StatusOr<BenchServer*> server = BenchServer::Get();
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  static const absl::StatusOr<ReplayJob>* job =
      new absl::StatusOr<ReplayJob>(TrainReplayJob(*server));
  if (!job->ok()) {
    state.SkipWithError(std::string(job->status().message()).c_str());
    return;
  }
  int64_t events = 0;
  const double cpu_start = ProcessCpuSeconds();
  for (auto _ : state) {
    absl::Status read = (*server)->Watch(
        (*job)->id, batched, [&](const v1::JobEvent&) { ++events; });
    if (!read.ok()) {
      state.SkipWithError(std::string(read.message()).c_str());
      return;
    }
  }
  // The server's and the client's CPU together: the rate this replay
  // would reach with a core each and nothing else running.
  const double cpu = ProcessCpuSeconds() - cpu_start;
  state.counters["cpu_us_per_event"] = cpu / static_cast<double>(events) * 1e6;
  state.SetItemsProcessed(events);
  state.SetBytesProcessed((*job)->bytes * state.iterations());
  state.counters["events_per_replay"] =
      static_cast<double>(events) / static_cast<double>(state.iterations());
}

int Register() {
  for (bool batched : {false, true}) {
    const std::string suffix = batched ? "_batched" : "";
    benchmark::RegisterBenchmark(
        ("BM_StreamOverhead/mnist_mlp" + suffix).c_str(), BM_StreamOverhead,
        MnistSpec(), batched)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->Iterations(8);
    benchmark::RegisterBenchmark(("BM_StreamOverhead/spirals" + suffix).c_str(),
                                 BM_StreamOverhead, SpiralsSpec(2000), batched)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->Iterations(8);
  }
  for (bool batched : {false, true}) {
    benchmark::RegisterBenchmark(
        batched ? "BM_Replay/spirals_50k_batched" : "BM_Replay/spirals_50k",
        BM_Replay, batched)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(3);
  }
  return 0;
}

const int registered = Register();

}  // namespace
}  // namespace gradwatch::bench
