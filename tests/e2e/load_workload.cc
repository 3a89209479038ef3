#include "tests/e2e/load_workload.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "gradwatch/v1/trainer.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;
using Clock = std::chrono::steady_clock;

// A dropped stream is reopened; past this many drops a job's watcher reads
// on to the end.
constexpr int kMaxDropsPerJob = 8;
// Chance that a received event is followed by a GetJob poll.
constexpr double kPollFraction = 0.1;
// Deadline of each RPC of the final check, and of a client's first
// connection.
constexpr absl::Duration kCheckTimeout = absl::Seconds(30);
// Failures listed in full by FormatReport; the rest are counted.
constexpr size_t kFailuresShown = 20;

bool IsFinal(v1::JobState state) {
  return state != v1::JOB_STATE_UNSPECIFIED && state != v1::QUEUED &&
         state != v1::RUNNING;
}

std::string RpcError(absl::string_view method, const grpc::Status& status) {
  return absl::StrCat(method, " failed: code ", status.error_code(), ", ",
                      status.error_message());
}

double Milliseconds(Clock::duration elapsed) {
  return std::chrono::duration<double, std::milli>(elapsed).count();
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // Channels with equal arguments share one connection unless each keeps
  // its own subchannel pool; every client is meant to be a connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

// SPIRALS, 200 samples, a 2-H-3 ReLU net, statistics every step: a job of
// a few milliseconds whose history has one event per step.
v1::JobSpec LoadSpec(std::mt19937_64& rng, const LoadOptions& options,
                     int client, int index) {
  v1::JobSpec spec;
  spec.set_name(absl::StrCat("load-", client, "-", index));
  v1::SyntheticData* data = spec.mutable_data()->mutable_synthetic();
  data->set_kind(v1::SyntheticData::SPIRALS);
  data->set_samples(200);
  data->set_classes(3);
  data->set_seed(rng());
  constexpr uint32_t kHiddenUnits[] = {8, 16, 32};
  v1::LayerSpec* hidden = spec.mutable_model()->add_layers();
  hidden->set_units(
      kHiddenUnits[std::uniform_int_distribution<int>(0, 2)(rng)]);
  hidden->set_activation(v1::RELU);
  spec.mutable_model()->add_layers()->set_units(3);
  spec.set_loss(v1::CROSS_ENTROPY);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  v1::TrainingSpec* training = spec.mutable_training();
  training->set_steps(std::uniform_int_distribution<int>(
      options.min_steps, options.max_steps)(rng));
  training->set_batch_size(20);
  training->set_seed(rng());
  training->set_threads(1);
  spec.mutable_monitoring()->set_stats_every(1);
  return spec;
}

LatencySummary Summarize(std::vector<double> samples_ms) {
  LatencySummary summary;
  summary.count = static_cast<int64_t>(samples_ms.size());
  if (samples_ms.empty()) return summary;
  std::sort(samples_ms.begin(), samples_ms.end());
  // Nearest rank: the smallest sample with at least p of them at or below.
  auto rank = [&](double p) {
    const size_t n = samples_ms.size();
    const auto index =
        static_cast<size_t>(std::ceil(p * static_cast<double>(n)));
    return samples_ms[std::clamp<size_t>(index, 1, n) - 1];
  };
  summary.p50_ms = rank(0.50);
  summary.p99_ms = rank(0.99);
  summary.max_ms = samples_ms.back();
  return summary;
}

// A client's generator: one stream per (seed, client), whatever the
// scheduling of the other clients.
std::mt19937_64 ClientRng(uint64_t seed, int client) {
  std::seed_seq seq{static_cast<uint32_t>(seed),
                    static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(client)};
  return std::mt19937_64(seq);
}

// What a client does with one job, drawn before it is submitted so that
// the plans follow from the seed alone, whatever the timing.
struct JobPlan {
  v1::JobSpec spec;
  enum class Cancel {
    kNever,
    // Right after submission: still queued only when every worker is
    // busy; a job of a few milliseconds may already be over.
    kAtOnce,
    // As soon as GetJob shows it RUNNING: in the middle of its steps
    // unless it finishes first.
    kWhenRunning,
    // After `cancel_after` events received live (from 1): the stream
    // trails the job, so often after its end.
    kAfterEvents,
  };
  Cancel cancel = Cancel::kNever;
  int64_t cancel_after = 0;
  // drop_after[k]: events read on the job's k-th stream before the client
  // closes it; -1 = read to the end.
  std::vector<int64_t> drop_after;
};

// A job as its client saw it.
struct JobTrace {
  std::string id;
  uint64_t steps = 0;
  bool cancel_requested = false;
  // Events received live: one past the last sequence seen.
  int64_t live_events = 0;
};

// One client thread's connection, random choices and findings. Used by
// one thread at a time.
class LoadClient {
 public:
  LoadClient(int index, const std::string& address, const LoadOptions& options,
             absl::Time submit_until, absl::Time deadline)
      : index_(index),
        options_(options),
        submit_until_(submit_until),
        deadline_(deadline),
        plan_rng_(ClientRng(options.seed, 2 * index)),
        poll_rng_(ClientRng(options.seed, 2 * index + 1)),
        channel_(NewChannel(address)),
        stub_(v1::Trainer::NewStub(channel_)) {}

  void Run() {
    // Connected before the first call, which would otherwise fail at once
    // if its connection attempt did: on two busy cores, one of eight
    // clients' first SubmitJob failed UNAVAILABLE in about a hundred runs
    // while the server was serving the others. The channel retries until
    // it is ready; the workload measures the server, not that race.
    if (!channel_->WaitForConnected(
            absl::ToChronoTime(absl::Now() + kCheckTimeout))) {
      Fail(absl::StrCat("client ", index_), "no connection to the server");
      return;
    }
    for (int i = 0; i < options_.jobs_per_client; ++i) {
      if (absl::Now() >= submit_until_) {
        report_.stopped_at_deadline = true;
        return;
      }
      const JobPlan plan = NextPlan(i);
      JobTrace job;
      job.steps = plan.spec.training().steps();
      if (!Submit(plan.spec, &job.id)) return;
      if (plan.cancel == JobPlan::Cancel::kAtOnce) Cancel(&job);
      if (plan.cancel == JobPlan::Cancel::kWhenRunning) CancelWhenRunning(&job);
      Follow(plan, &job);
      AwaitFinal(job.id);
      jobs_.push_back(std::move(job));
    }
  }

  // Adds this client's counts, failures, latencies and jobs to the run's.
  void MergeInto(LoadReport* report, std::vector<double>* submit_ms,
                 std::vector<double>* get_ms,
                 std::vector<JobTrace>* jobs) const {
    report->jobs_submitted += report_.jobs_submitted;
    report->cancels_requested += report_.cancels_requested;
    report->watch_streams += report_.watch_streams;
    report->watch_drops += report_.watch_drops;
    report->events_live += report_.events_live;
    report->submit_retries += report_.submit_retries;
    report->stopped_at_deadline |= report_.stopped_at_deadline;
    report->failures.insert(report->failures.end(), report_.failures.begin(),
                            report_.failures.end());
    submit_ms->insert(submit_ms->end(), submit_ms_.begin(), submit_ms_.end());
    get_ms->insert(get_ms->end(), get_ms_.begin(), get_ms_.end());
    jobs->insert(jobs->end(), jobs_.begin(), jobs_.end());
  }

 private:
  void Fail(const std::string& job_id, absl::string_view what) {
    report_.failures.push_back(absl::StrCat(job_id, ": ", what));
  }

  JobPlan NextPlan(int index) {
    JobPlan plan;
    plan.spec = LoadSpec(plan_rng_, options_, index_, index);
    const auto steps = static_cast<int64_t>(plan.spec.training().steps());
    if (std::bernoulli_distribution(options_.cancel_fraction)(plan_rng_)) {
      plan.cancel = static_cast<JobPlan::Cancel>(
          std::uniform_int_distribution<int>(1, 3)(plan_rng_));
      plan.cancel_after =
          std::uniform_int_distribution<int64_t>(1, steps)(plan_rng_);
    }
    std::bernoulli_distribution drop(options_.watch_drop_fraction);
    // Up to the end of the longest history: a state and RunInfo, one event
    // per step, a few alerts, the summary and the final state.
    std::uniform_int_distribution<int64_t> drop_point(1, steps + 6);
    for (int k = 0; k < kMaxDropsPerJob; ++k) {
      plan.drop_after.push_back(drop(plan_rng_) ? drop_point(plan_rng_) : -1);
    }
    return plan;
  }

  void SetDeadline(grpc::ClientContext* context) const {
    context->set_deadline(absl::ToChronoTime(deadline_));
  }

  bool Submit(const v1::JobSpec& spec, std::string* id) {
    while (true) {
      grpc::ClientContext context;
      SetDeadline(&context);
      v1::SubmitJobRequest request;
      *request.mutable_spec() = spec;
      v1::Job job;
      const Clock::time_point start = Clock::now();
      grpc::Status status = stub_->SubmitJob(&context, request, &job);
      submit_ms_.push_back(Milliseconds(Clock::now() - start));
      if (status.ok()) {
        ++report_.jobs_submitted;
        *id = job.id();
        return true;
      }
      if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED ||
          absl::Now() >= submit_until_) {
        Fail(spec.name(), RpcError("SubmitJob", status));
        return false;
      }
      ++report_.submit_retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void Cancel(JobTrace* job) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CancelJobRequest request;
    request.set_job_id(job->id);
    v1::Job reply;
    grpc::Status status = stub_->CancelJob(&context, request, &reply);
    ++report_.cancels_requested;
    job->cancel_requested = true;
    if (!status.ok()) Fail(job->id, RpcError("CancelJob", status));
  }

  // GetJob, timed; the job's state, or UNSPECIFIED after an error.
  v1::JobState Poll(const std::string& id) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::GetJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    const Clock::time_point start = Clock::now();
    grpc::Status status = stub_->GetJob(&context, request, &job);
    get_ms_.push_back(Milliseconds(Clock::now() - start));
    if (!status.ok()) {
      Fail(id, RpcError("GetJob", status));
      return v1::JOB_STATE_UNSPECIFIED;
    }
    return job.state();
  }

  void CancelWhenRunning(JobTrace* job) {
    while (true) {
      const v1::JobState state = Poll(job->id);
      if (state == v1::RUNNING) break;
      if (state != v1::QUEUED) return;  // ended first, or an error
      if (absl::Now() >= deadline_) {
        Fail(job->id, "stuck in QUEUED");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    Cancel(job);
  }

  // The record turns final before the stream's last event is sent, so the
  // first poll normally shows it; a record that never does is stuck.
  void AwaitFinal(const std::string& id) {
    while (true) {
      const v1::JobState state = Poll(id);
      if (state == v1::JOB_STATE_UNSPECIFIED || IsFinal(state)) return;
      if (absl::Now() >= deadline_) {
        Fail(id, absl::StrCat("stuck in ", v1::JobState_Name(state),
                              " after its stream ended"));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Watches the job to its end, reopening dropped streams from the last
  // step seen. Events of a reopened stream that were already received are
  // skipped by sequence; anything else out of order is a lost event.
  void Follow(const JobPlan& plan, JobTrace* job) {
    std::bernoulli_distribution poll(kPollFraction);
    int64_t next_sequence = 0;
    uint64_t last_step = 0;
    size_t streams = 0;
    bool ended = false;
    while (!ended) {
      const int64_t drop_after =
          streams < plan.drop_after.size() ? plan.drop_after[streams] : -1;
      ++streams;
      grpc::ClientContext context;
      SetDeadline(&context);
      v1::WatchJobRequest request;
      request.set_job_id(job->id);
      request.set_from_step(last_step);
      ++report_.watch_streams;
      std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
          stub_->WatchJob(&context, request);
      v1::JobEvent event;
      int64_t read = 0;
      bool dropped = false;
      while (reader->Read(&event)) {
        ++read;
        if (static_cast<int64_t>(event.sequence()) >= next_sequence) {
          if (static_cast<int64_t>(event.sequence()) != next_sequence) {
            Fail(job->id,
                 absl::StrCat("live stream skipped from sequence ",
                              next_sequence, " to ", event.sequence()));
          }
          next_sequence = static_cast<int64_t>(event.sequence()) + 1;
          last_step = event.step();
          ++report_.events_live;
          if (event.has_state_change() &&
              IsFinal(event.state_change().state())) {
            ended = true;
          }
          if (plan.cancel == JobPlan::Cancel::kAfterEvents &&
              next_sequence == plan.cancel_after) {
            Cancel(job);
          }
          if (poll(poll_rng_)) Poll(job->id);
        }
        if (read == drop_after) {
          context.TryCancel();
          dropped = true;
          break;
        }
      }
      const grpc::Status status = reader->Finish();
      if (dropped) {
        if (!status.ok() &&
            status.error_code() != grpc::StatusCode::CANCELLED) {
          Fail(job->id, RpcError("WatchJob (closed by the client)", status));
        }
        // Closed on the final event: nothing left to reopen for.
        if (ended) break;
        ++report_.watch_drops;
        continue;
      }
      if (!status.ok()) {
        Fail(job->id, RpcError("WatchJob", status));
        break;
      }
      if (!ended) {
        Fail(job->id, "stream ended without a final state");
        break;
      }
    }
    job->live_events = next_sequence;
  }

  const int index_;
  const LoadOptions options_;
  const absl::Time submit_until_;
  const absl::Time deadline_;
  std::mt19937_64 plan_rng_;
  std::mt19937_64 poll_rng_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
  std::vector<JobTrace> jobs_;
  LoadReport report_;
  std::vector<double> submit_ms_;
  std::vector<double> get_ms_;
};

// GetJob and a replay from step 0 of one finished job, against what its
// client saw live.
void CheckJob(v1::Trainer::Stub* stub, const JobTrace& trace,
              LoadReport* report) {
  auto fail = [&](absl::string_view what) {
    report->failures.push_back(absl::StrCat(trace.id, ": ", what));
  };
  v1::Job job;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kCheckTimeout));
    v1::GetJobRequest request;
    request.set_job_id(trace.id);
    grpc::Status status = stub->GetJob(&context, request, &job);
    if (!status.ok()) return fail(RpcError("GetJob", status));
  }
  if (job.state() == v1::SUCCEEDED) {
    ++report->jobs_succeeded;
  } else if (job.state() == v1::CANCELLED && trace.cancel_requested) {
    ++report->jobs_cancelled;
  } else {
    return fail(absl::StrCat("GetJob shows ", v1::JobState_Name(job.state()),
                             trace.cancel_requested ? "" : " (not cancelled)"));
  }

  std::vector<v1::JobEvent> events;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kCheckTimeout));
    v1::WatchJobRequest request;
    request.set_job_id(trace.id);
    auto reader = stub->WatchJob(&context, request);
    v1::JobEvent event;
    while (reader->Read(&event)) events.push_back(std::move(event));
    grpc::Status status = reader->Finish();
    if (!status.ok()) return fail(RpcError("WatchJob replay", status));
  }
  report->events_replayed += static_cast<int64_t>(events.size());
  absl::Status history = CheckHistory(trace.id, trace.steps, events);
  if (!history.ok()) return fail(history.message());
  if (static_cast<int64_t>(events.size()) != trace.live_events) {
    return fail(absl::StrCat("replayed ", events.size(), " events, ",
                             trace.live_events, " were seen live"));
  }
  // CheckHistory leaves two shapes: QUEUED, RUNNING, ... or QUEUED, the
  // summary and CANCELLED.
  if (job.state() == v1::CANCELLED && events[1].has_summary()) {
    ++report->jobs_cancelled_queued;
  }
  const v1::Summary& summary = events[events.size() - 2].summary();
  if (events.back().state_change().state() != job.state() ||
      summary.steps_completed() != job.steps_completed()) {
    return fail(
        absl::StrCat("GetJob shows ", v1::JobState_Name(job.state()), " after ",
                     job.steps_completed(), " steps, the history ",
                     v1::JobState_Name(events.back().state_change().state()),
                     " after ", summary.steps_completed()));
  }
}

bool Serving(const std::string& address) {
  auto health = grpc::health::v1::Health::NewStub(NewChannel(address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCheckTimeout));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return health->Check(&context, request, &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace

absl::Status CheckHistory(const std::string& job_id, uint64_t steps,
                          const std::vector<v1::JobEvent>& events) {
  auto defect = [&](size_t index, absl::string_view what) {
    return absl::DataLossError(
        absl::StrCat(job_id, ": history event ", index, ": ", what));
  };
  if (events.empty()) return absl::DataLossError(job_id + ": empty history");
  std::vector<v1::JobState> states;
  bool started = false;
  uint64_t last_step = 0;
  uint64_t last_stats_step = 0;
  const v1::Summary* summary = nullptr;
  size_t summary_index = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const v1::JobEvent& event = events[i];
    if (event.job_id() != job_id) {
      return defect(i, absl::StrCat("belongs to job ", event.job_id()));
    }
    if (event.sequence() != i) {
      return defect(i, absl::StrCat("has sequence ", event.sequence()));
    }
    if (event.step() < last_step) {
      return defect(
          i, absl::StrCat("step ", event.step(), " after step ", last_step));
    }
    last_step = event.step();
    if (!states.empty() && IsFinal(states.back())) {
      return defect(i, "follows the final state");
    }
    switch (event.event_case()) {
      case v1::JobEvent::kStateChange:
        states.push_back(event.state_change().state());
        break;
      case v1::JobEvent::kStarted:
        if (started || states.size() != 2 || states.back() != v1::RUNNING) {
          return defect(i, "RunInfo outside the start of RUNNING");
        }
        started = true;
        break;
      case v1::JobEvent::kStats:
        if (event.stats().step() != last_stats_step + 1 ||
            event.step() != event.stats().step()) {
          return defect(
              i, absl::StrCat("statistics of step ", event.stats().step(),
                              " (event step ", event.step(), ") after step ",
                              last_stats_step));
        }
        last_stats_step = event.stats().step();
        break;
      case v1::JobEvent::kAlert:
        break;
      case v1::JobEvent::kSummary:
        if (summary != nullptr) return defect(i, "a second summary");
        summary = &event.summary();
        summary_index = i;
        break;
      case v1::JobEvent::EVENT_NOT_SET:
        return defect(i, "has no content");
    }
  }
  if (states.empty() || states.front() != v1::QUEUED ||
      !events.front().has_state_change()) {
    return defect(0, "is not the QUEUED state");
  }
  const v1::JobState final_state = states.back();
  if (final_state != v1::SUCCEEDED && final_state != v1::CANCELLED) {
    return absl::DataLossError(absl::StrCat(job_id, ": history ends in ",
                                            v1::JobState_Name(final_state)));
  }
  const bool ran = states.size() == 3 && states[1] == v1::RUNNING && started;
  const bool cancelled_queued = states.size() == 2 &&
                                final_state == v1::CANCELLED && !started &&
                                last_stats_step == 0;
  if (!ran && !cancelled_queued) {
    std::string names;
    for (v1::JobState state : states) {
      absl::StrAppend(&names, names.empty() ? "" : " ",
                      v1::JobState_Name(state));
    }
    return absl::DataLossError(absl::StrCat(job_id, ": states ", names,
                                            started ? " with" : " without",
                                            " RunInfo"));
  }
  if (summary == nullptr || summary_index + 2 != events.size()) {
    return absl::DataLossError(
        absl::StrCat(job_id, ": no summary right before the final state"));
  }
  if (summary->state() != final_state ||
      summary->steps_completed() != last_stats_step) {
    return defect(
        summary_index,
        absl::StrCat("summary says ", v1::JobState_Name(summary->state()),
                     " after ", summary->steps_completed(),
                     " steps; the history ", v1::JobState_Name(final_state),
                     " after ", last_stats_step));
  }
  if (final_state == v1::SUCCEEDED ? last_stats_step != steps
                                   : last_stats_step > steps) {
    return absl::DataLossError(
        absl::StrCat(job_id, ": ", v1::JobState_Name(final_state), " after ",
                     last_stats_step, " of ", steps, " steps"));
  }
  return absl::OkStatus();
}

LoadReport RunLoad(const std::string& address, const LoadOptions& options) {
  const absl::Time start = absl::Now();
  const absl::Time submit_until = start + options.max_duration;
  const absl::Time deadline = submit_until + options.drain;
  std::vector<std::unique_ptr<LoadClient>> clients;
  clients.reserve(options.clients);
  for (int i = 0; i < options.clients; ++i) {
    clients.push_back(std::make_unique<LoadClient>(i, address, options,
                                                   submit_until, deadline));
  }
  const Clock::time_point load_start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(clients.size());
  for (auto& client : clients) {
    threads.emplace_back([&client] { client->Run(); });
  }
  for (std::thread& thread : threads) thread.join();

  LoadReport report;
  report.seconds =
      std::chrono::duration<double>(Clock::now() - load_start).count();
  std::vector<double> submit_ms;
  std::vector<double> get_ms;
  std::vector<JobTrace> jobs;
  for (const auto& client : clients) {
    client->MergeInto(&report, &submit_ms, &get_ms, &jobs);
  }
  report.submit_latency = Summarize(std::move(submit_ms));
  report.get_latency = Summarize(std::move(get_ms));

  auto stub = v1::Trainer::NewStub(NewChannel(address));
  for (const JobTrace& job : jobs) CheckJob(stub.get(), job, &report);
  report.server_serving = Serving(address);
  return report;
}

std::string FormatReport(const LoadReport& report) {
  auto latency = [](const LatencySummary& figures) {
    return absl::StrFormat("p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d calls)",
                           figures.p50_ms, figures.p99_ms, figures.max_ms,
                           figures.count);
  };
  std::string out = absl::StrFormat(
      "jobs: %d submitted, %d succeeded, %d cancelled (%d while queued; "
      "%d cancels requested)%s\n"
      "throughput: %.1f jobs/s over %.2f s\n"
      "watch: %d streams, %d closed by the client and reopened; %d events "
      "live, %d replayed\n"
      "SubmitJob: %s; %d retries after RESOURCE_EXHAUSTED\n"
      "GetJob: %s\n"
      "server health after the load: %s\n"
      "failures: %d\n",
      report.jobs_submitted, report.jobs_succeeded, report.jobs_cancelled,
      report.jobs_cancelled_queued, report.cancels_requested,
      report.stopped_at_deadline ? ", stopped at --max_seconds" : "",
      report.seconds > 0
          ? static_cast<double>(report.jobs_submitted) / report.seconds
          : 0.0,
      report.seconds, report.watch_streams, report.watch_drops,
      report.events_live, report.events_replayed,
      latency(report.submit_latency), report.submit_retries,
      latency(report.get_latency),
      report.server_serving ? "SERVING" : "NOT SERVING",
      report.failures.size());
  for (size_t i = 0; i < report.failures.size() && i < kFailuresShown; ++i) {
    absl::StrAppend(&out, "  ", report.failures[i], "\n");
  }
  return out;
}

}  // namespace gradwatch::e2e
