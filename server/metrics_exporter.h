#ifndef GRADWATCH_SERVER_METRICS_EXPORTER_H_
#define GRADWATCH_SERVER_METRICS_EXPORTER_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gradwatch/v1/events.pb.h"
#include "server/job_observer.h"
#include "server/job_store.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace gradwatch::server {

struct MetricsExporterOptions {
  /// How long a finished job's series stay after its final state; then
  /// they are removed so that the number of series stays bounded. Keep it
  /// longer than the slowest alert's `for` plus a scrape interval, or a
  /// short job's alert never fires.
  absl::Duration retention = absl::Minutes(10);
  /// The server's --dead_neuron_alert_threshold, exported as
  /// gradwatch_dead_neuron_alert_threshold.
  double dead_neuron_alert_threshold = 0.5;
  /// The server's job store, whose size each scrape reads into
  /// gradwatch_store_bytes (not owned; null: no such metric; must outlive
  /// the exporter).
  JobStore* store = nullptr;
  /// Time source for the retention; absl::Now when empty.
  std::function<absl::Time()> clock;
};

/// Publishes jobs' statistics and the server's activity as Prometheus
/// metrics (docs/monitoring.md lists them). Every family is registered once,
/// in the constructor. A job's series are added when its first event
/// arrives, their pointers cached per job, layer and tensor so that a step
/// only sets values, and removed once `retention` has passed after the job
/// ended (checked on every event and every scrape).
///
/// Thread-safe: events of different jobs may arrive from different threads
/// while a scrape runs.
class MetricsExporter final : public JobObserver {
 public:
  explicit MetricsExporter(const MetricsExporterOptions& options);
  ~MetricsExporter() override;
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;

  /// Updates the job's series from one event of its history; a
  /// state_change event goes to OnJobStateChanged.
  void OnJobEvent(const std::string& job_id,
                  const gradwatch::v1::JobEvent& event) override;
  /// Moves the job between the gradwatch_jobs{state} gauges, counts
  /// submissions (QUEUED) and outcomes (final states), and starts the
  /// retention clock of a job that ended.
  void OnJobStateChanged(const std::string& job_id,
                         gradwatch::v1::JobState state);
  /// A WatchJob/Train stream started or ended.
  void OnWatcherStarted() override;
  void OnWatcherEnded() override;
  /// `count` events were written to streams.
  void OnEventsStreamed(uint64_t count) override;
  /// Counts the RPC in gradwatch_rpcs_total{method,code}.
  void OnRpcFinished(const std::string& method,
                     const std::string& code) override;

  /// Removes the series of jobs whose retention has passed, then returns
  /// every metric (what /metrics serves).
  std::vector<prometheus::MetricFamily> Collect();

  /// Serves Collect() as text on http://ADDRESS/metrics (HOST:PORT; port 0
  /// picks a free one) and returns the bound port. UNAVAILABLE if the
  /// address cannot be bound; FAILED_PRECONDITION if already serving.
  absl::StatusOr<int> Serve(const std::string& address);

  /// Jobs whose series are currently exported.
  size_t tracked_jobs() const;

 private:
  struct TensorSeries;
  struct LayerSeries;
  struct JobSeries;
  class Endpoint;

  absl::Time Now() const;
  JobSeries& SeriesFor(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LayerSeries& LayerFor(JobSeries& job, uint32_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TensorSeries& TensorFor(JobSeries& job, LayerSeries& layer,
                          const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordStats(JobSeries& job, const gradwatch::v1::StepStats& stats)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordAlert(JobSeries& job, const gradwatch::v1::Alert& alert)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordSummary(JobSeries& job, const gradwatch::v1::Summary& summary)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveExpired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveSeries(JobSeries& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const MetricsExporterOptions options_;
  const std::shared_ptr<prometheus::Registry> registry_;

  // Per job and layer (families are thread-safe themselves).
  prometheus::Family<prometheus::Gauge>& dead_ratio_;
  prometheus::Family<prometheus::Gauge>& dead_window_ratio_;
  prometheus::Family<prometheus::Gauge>& saturated_ratio_;
  prometheus::Family<prometheus::Gauge>& update_ratio_;
  prometheus::Family<prometheus::Gauge>& grad_l2_norm_;
  prometheus::Family<prometheus::Gauge>& grad_mean_abs_;
  prometheus::Family<prometheus::Gauge>& grad_zero_fraction_;
  prometheus::Family<prometheus::Gauge>& grad_subnormal_fraction_;
  prometheus::Family<prometheus::Counter>& grad_nonfinite_;
  prometheus::Family<prometheus::Gauge>& rule_firing_;
  // Per job.
  prometheus::Family<prometheus::Gauge>& loss_;
  prometheus::Family<prometheus::Gauge>& accuracy_;
  prometheus::Family<prometheus::Gauge>& learning_rate_;
  prometheus::Family<prometheus::Counter>& steps_;
  prometheus::Family<prometheus::Gauge>& job_state_;
  prometheus::Family<prometheus::Gauge>& diagnosis_;
  // Server.
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Counter& jobs_submitted_;
  prometheus::Family<prometheus::Counter>& jobs_finished_;
  // Children of jobs_ and jobs_finished_ by JobState number (null for
  // JOB_STATE_UNSPECIFIED, and for non-final states in finished).
  std::array<prometheus::Gauge*, gradwatch::v1::JobState_ARRAYSIZE>
      jobs_by_state_{};
  std::array<prometheus::Counter*, gradwatch::v1::JobState_ARRAYSIZE>
      finished_by_state_{};
  prometheus::Histogram& step_duration_;
  prometheus::Counter& events_streamed_;
  prometheus::Gauge& active_watchers_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  // Null without a store.
  prometheus::Gauge* store_bytes_ = nullptr;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<JobSeries>> job_series_
      ABSL_GUARDED_BY(mu_);
  // Children of rpcs_ by (method, code).
  absl::flat_hash_map<std::pair<std::string, std::string>, prometheus::Counter*>
      rpc_counters_ ABSL_GUARDED_BY(mu_);

  std::shared_ptr<Endpoint> endpoint_;
  // Last: stopped (which takes ~2 s) before anything it serves goes away.
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_METRICS_EXPORTER_H_
