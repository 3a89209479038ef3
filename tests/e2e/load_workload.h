#ifndef GRADWATCH_TESTS_E2E_LOAD_WORKLOAD_H_
#define GRADWATCH_TESTS_E2E_LOAD_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gradwatch/v1/events.pb.h"

namespace gradwatch::e2e {

/// What the load workload does. Every random choice (job sizes, which jobs
/// are cancelled and when, where watchers drop) comes from `seed`.
struct LoadOptions {
  /// Client threads, each with its own connection to the server.
  int clients = 8;
  /// Jobs each client submits, one after another.
  int jobs_per_client = 10;
  uint64_t seed = 1;
  /// Fraction of jobs cancelled, in equal parts right after submission,
  /// as soon as GetJob shows them RUNNING, and after a random number of
  /// their events. A cancel that comes after the job's end leaves it
  /// SUCCEEDED.
  double cancel_fraction = 0.25;
  /// Fraction of watch streams closed by the client at a random event and
  /// reopened with from_step set to the last step seen.
  double watch_drop_fraction = 0.3;
  /// No job is submitted after this; every RPC has a deadline of this plus
  /// `drain`, so that a stuck job ends the run instead of hanging it.
  absl::Duration max_duration = absl::Seconds(120);
  absl::Duration drain = absl::Seconds(60);
  /// Steps of each job, drawn uniformly from [min_steps, max_steps].
  int min_steps = 20;
  int max_steps = 60;
};

/// Latency figures of one RPC method, in milliseconds.
struct LatencySummary {
  int64_t count = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

/// The outcome of RunLoad. `failures` lists every incomplete job and every
/// RPC error other than the CANCELLED status of a stream the client itself
/// closed, each with the job id; an empty list is a clean run.
struct LoadReport {
  int64_t jobs_submitted = 0;
  int64_t jobs_succeeded = 0;
  int64_t jobs_cancelled = 0;
  /// Of the cancelled jobs, those cancelled before they started.
  int64_t jobs_cancelled_queued = 0;
  /// CancelJob calls made (a job that had already ended stays SUCCEEDED).
  int64_t cancels_requested = 0;
  /// WatchJob streams opened while the jobs ran, and those the client
  /// closed before the end and reopened.
  int64_t watch_streams = 0;
  int64_t watch_drops = 0;
  /// Events received live (each once, overlaps of reopened streams left
  /// out), and events replayed by the final check.
  int64_t events_live = 0;
  int64_t events_replayed = 0;
  /// Submissions answered RESOURCE_EXHAUSTED (full queue) and retried.
  int64_t submit_retries = 0;
  /// The workload stopped submitting at max_duration.
  bool stopped_at_deadline = false;
  /// From the first submission until every client had seen its last job
  /// end, in seconds.
  double seconds = 0;
  LatencySummary submit_latency;
  LatencySummary get_latency;
  /// grpc.health.v1 Check answered SERVING after the final check.
  bool server_serving = false;
  std::vector<std::string> failures;
};

/// Runs the workload against the server at `address` (HOST:PORT, plain
/// TCP): `clients` threads submit small SPIRALS jobs (2-H-3 ReLU nets,
/// statistics every step), follow each with WatchJob, poll GetJob, cancel
/// some and drop and reopen some streams. Then, for every job, checks that
/// GetJob shows a final state and that WatchJob from step 0 replays a
/// complete history (CheckHistory) with as many events as were seen live.
/// Blocks until done; returns the report whatever the failures.
LoadReport RunLoad(const std::string& address, const LoadOptions& options);

/// Checks one finished job's whole history: sequences 0, 1, ... with the
/// job's id; states QUEUED, then RUNNING with its RunInfo (unless cancelled
/// while queued), then exactly one final state, SUCCEEDED or CANCELLED, as
/// the last event, right after the one summary, which agrees with it; steps
/// never decreasing; a statistics event for every step 1..n without gap,
/// where n is the summary's steps_completed, `steps` for SUCCEEDED and at
/// most `steps` for CANCELLED. Returns DATA_LOSS naming the first defect.
absl::Status CheckHistory(const std::string& job_id, uint64_t steps,
                          const std::vector<gradwatch::v1::JobEvent>& events);

/// Formats a report as the lines the load bench prints.
std::string FormatReport(const LoadReport& report);

}  // namespace gradwatch::e2e

#endif  // GRADWATCH_TESTS_E2E_LOAD_WORKLOAD_H_
