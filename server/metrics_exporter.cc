#include "server/metrics_exporter.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

// Step wall times run from well under a millisecond (tiny MLPs) to
// seconds (wide layers on one thread).
const prometheus::Histogram::BucketBoundaries& StepBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *kBuckets;
}

Family<Gauge>& AddGauge(prometheus::Registry& registry, const std::string& name,
                        const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

Family<Counter>& AddCounter(prometheus::Registry& registry,
                            const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

bool IsFinal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED ||
         state == v1::CANCELLED || state == v1::INTERRUPTED;
}

// Label values are the enum names in lower case ("running", "dead_relu").
std::string StateLabel(v1::JobState state) {
  return absl::AsciiStrToLower(v1::JobState_Name(state));
}

// Job-wide alerts (Alert.layer == -1) carry layer="all".
std::string LayerLabel(int64_t index) {
  return index < 0 ? std::string("all") : absl::StrCat(index);
}

}  // namespace

struct MetricsExporter::TensorSeries {
  std::string name;
  Gauge* l2_norm;
  Gauge* mean_abs;
  Gauge* zero_fraction;
  Gauge* subnormal_fraction;
  Counter* nonfinite;
};

struct MetricsExporter::LayerSeries {
  std::string label;
  Gauge* dead_ratio;
  Gauge* dead_window_ratio;
  Gauge* saturated_ratio;
  Gauge* update_ratio;
  std::vector<TensorSeries> tensors;
};

struct MetricsExporter::JobSeries {
  std::string id;
  Gauge* loss;
  Gauge* accuracy;
  Gauge* learning_rate;
  Counter* steps;
  uint64_t last_step = 0;
  std::array<Gauge*, v1::JobState_ARRAYSIZE> state{};
  std::array<Gauge*, v1::Diagnosis_ARRAYSIZE> diagnosis{};
  absl::flat_hash_map<uint32_t, LayerSeries> layers;
  // By (layer index or -1, rule).
  absl::flat_hash_map<std::pair<int32_t, int>, Gauge*> rules;
  v1::JobState current = v1::JOB_STATE_UNSPECIFIED;
  std::optional<absl::Time> remove_at;
};

// What the Exposer scrapes: the exporter's Collect, so that a scrape also
// applies the retention.
class MetricsExporter::Endpoint final : public prometheus::Collectable {
 public:
  explicit Endpoint(MetricsExporter* exporter) : exporter_(exporter) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return exporter_->Collect();
  }

 private:
  MetricsExporter* const exporter_;
};

MetricsExporter::MetricsExporter(const MetricsExporterOptions& options)
    : options_(options),
      registry_(std::make_shared<prometheus::Registry>()),
      dead_ratio_(AddGauge(
          *registry_, "gradwatch_dead_neuron_ratio",
          "Fraction of the layer's units inactive (f'(z) == 0) for every "
          "sample of the step's batch.")),
      dead_window_ratio_(AddGauge(
          *registry_, "gradwatch_dead_neuron_window_ratio",
          "Fraction of the layer's units inactive on the whole batch in each "
          "of the last dead_window steps.")),
      saturated_ratio_(AddGauge(
          *registry_, "gradwatch_saturated_ratio",
          "Fraction of the layer's units with f'(z) < eps * max f' for every "
          "sample of the batch.")),
      update_ratio_(AddGauge(
          *registry_, "gradwatch_update_ratio",
          "||delta W||_2 / ||W||_2 of the update applied to the layer's "
          "weights at the last step.")),
      grad_l2_norm_(AddGauge(*registry_, "gradwatch_gradient_l2_norm",
                             "L2 norm of the parameter tensor's loss gradient "
                             "at the last step.")),
      grad_mean_abs_(AddGauge(*registry_, "gradwatch_gradient_mean_abs",
                              "Mean absolute value of the parameter tensor's "
                              "loss gradient at the last step.")),
      grad_zero_fraction_(
          AddGauge(*registry_, "gradwatch_gradient_zero_fraction",
                   "Fraction of the tensor's gradient entries exactly 0 at "
                   "the last step.")),
      grad_subnormal_fraction_(AddGauge(
          *registry_, "gradwatch_gradient_subnormal_fraction",
          "Fraction of the tensor's gradient entries with 0 < |g| < FLT_MIN "
          "at the last step.")),
      grad_nonfinite_(AddCounter(
          *registry_, "gradwatch_gradient_nonfinite_total",
          "NaN and Inf gradient entries of the tensor, summed over steps.")),
      rule_firing_(AddGauge(
          *registry_, "gradwatch_health_rule_firing",
          "1 while the job's health rule fires for the layer (layer=\"all\" "
          "for job-wide rules), 0 once it stopped.")),
      loss_(AddGauge(*registry_, "gradwatch_loss",
                     "Batch loss of the job's last step.")),
      accuracy_(AddGauge(*registry_, "gradwatch_accuracy",
                         "Batch accuracy of the job's last step (ratio).")),
      learning_rate_(AddGauge(*registry_, "gradwatch_learning_rate",
                              "Learning rate used by the job's last step.")),
      steps_(AddCounter(*registry_, "gradwatch_steps_total",
                        "Optimizer steps the job has taken.")),
      job_state_(AddGauge(*registry_, "gradwatch_job_state",
                          "1 for the job's current state, 0 for the others.")),
      diagnosis_(AddGauge(
          *registry_, "gradwatch_job_diagnosis",
          "1 for the job's diagnosis (set when the job ends), 0 for the "
          "others.")),
      jobs_(AddGauge(*registry_, "gradwatch_jobs",
                     "Jobs of this server process by state.")),
      jobs_submitted_(AddCounter(*registry_, "gradwatch_jobs_submitted_total",
                                 "Jobs accepted into the queue.")
                          .Add({})),
      jobs_finished_(AddCounter(*registry_, "gradwatch_jobs_finished_total",
                                "Jobs that ended, by final state.")),
      step_duration_(prometheus::BuildHistogram()
                         .Name("gradwatch_step_duration_seconds")
                         .Help("Wall time of one training step (forward, "
                               "backward, update), any job.")
                         .Register(*registry_)
                         .Add({}, StepBuckets())),
      events_streamed_(AddCounter(*registry_, "gradwatch_events_streamed_total",
                                  "Job events written to WatchJob and Train "
                                  "streams.")
                           .Add({})),
      active_watchers_(AddGauge(*registry_, "gradwatch_active_watchers",
                                "WatchJob and Train streams open now.")
                           .Add({})),
      rpcs_(AddCounter(*registry_, "gradwatch_rpcs_total",
                       "RPCs served, by method and canonical status code.")) {
  if (options_.store != nullptr) {
    store_bytes_ = &AddGauge(*registry_, "gradwatch_store_bytes",
                             "Size of the job store: the SQLite database "
                             "file and its write-ahead log, in bytes.")
                        .Add({});
  }
  AddGauge(*registry_, "gradwatch_dead_neuron_alert_threshold",
           "The server's --dead_neuron_alert_threshold: the dead-neuron ratio "
           "above which GradwatchDeadNeuronRatioHigh fires.")
      .Add({})
      .Set(options_.dead_neuron_alert_threshold);
  for (int s = 0; s < v1::JobState_ARRAYSIZE; ++s) {
    const auto state = static_cast<v1::JobState>(s);
    if (!v1::JobState_IsValid(s) || state == v1::JOB_STATE_UNSPECIFIED) {
      continue;
    }
    jobs_by_state_[s] = &jobs_.Add({{"state", StateLabel(state)}});
    if (IsFinal(state)) {
      finished_by_state_[s] =
          &jobs_finished_.Add({{"outcome", StateLabel(state)}});
    }
  }
}

MetricsExporter::~MetricsExporter() { exposer_.reset(); }

absl::Time MetricsExporter::Now() const {
  return options_.clock ? options_.clock() : absl::Now();
}

absl::StatusOr<int> MetricsExporter::Serve(const std::string& address) {
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError("the metrics endpoint already runs");
  }
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address, 2);
    const std::vector<int> ports = exposer->GetListeningPorts();
    if (ports.empty()) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", address));
    }
    endpoint_ = std::make_shared<Endpoint>(this);
    exposer->RegisterCollectable(endpoint_);
    exposer_ = std::move(exposer);
    return ports.front();
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

MetricsExporter::JobSeries& MetricsExporter::SeriesFor(
    const std::string& job_id) {
  std::unique_ptr<JobSeries>& slot = job_series_[job_id];
  if (slot != nullptr) return *slot;
  slot = std::make_unique<JobSeries>();
  JobSeries& job = *slot;
  const prometheus::Labels labels = {{"job_id", job_id}};
  job.id = job_id;
  job.loss = &loss_.Add(labels);
  job.accuracy = &accuracy_.Add(labels);
  job.learning_rate = &learning_rate_.Add(labels);
  job.steps = &steps_.Add(labels);
  for (int s = 0; s < v1::JobState_ARRAYSIZE; ++s) {
    if (jobs_by_state_[s] == nullptr) continue;
    job.state[s] = &job_state_.Add(
        {{"job_id", job_id}, {"state", StateLabel(v1::JobState(s))}});
  }
  for (int d = 0; d < v1::Diagnosis_ARRAYSIZE; ++d) {
    if (!v1::Diagnosis_IsValid(d) || d == v1::DIAGNOSIS_UNSPECIFIED) continue;
    job.diagnosis[d] = &diagnosis_.Add(
        {{"job_id", job_id},
         {"diagnosis",
          absl::AsciiStrToLower(v1::Diagnosis_Name(v1::Diagnosis(d)))}});
  }
  return job;
}

MetricsExporter::LayerSeries& MetricsExporter::LayerFor(JobSeries& job,
                                                        uint32_t index) {
  auto [it, inserted] = job.layers.try_emplace(index);
  LayerSeries& layer = it->second;
  if (inserted) {
    layer.label = LayerLabel(index);
    const prometheus::Labels labels = {{"job_id", job.id},
                                       {"layer", layer.label}};
    layer.dead_ratio = &dead_ratio_.Add(labels);
    layer.dead_window_ratio = &dead_window_ratio_.Add(labels);
    layer.saturated_ratio = &saturated_ratio_.Add(labels);
    layer.update_ratio = &update_ratio_.Add(labels);
  }
  return layer;
}

MetricsExporter::TensorSeries& MetricsExporter::TensorFor(
    JobSeries& job, LayerSeries& layer, const std::string& name) {
  for (TensorSeries& tensor : layer.tensors) {
    if (tensor.name == name) return tensor;
  }
  const prometheus::Labels labels = {
      {"job_id", job.id}, {"layer", layer.label}, {"tensor", name}};
  layer.tensors.push_back(TensorSeries{
      name, &grad_l2_norm_.Add(labels), &grad_mean_abs_.Add(labels),
      &grad_zero_fraction_.Add(labels), &grad_subnormal_fraction_.Add(labels),
      &grad_nonfinite_.Add(labels)});
  return layer.tensors.back();
}

void MetricsExporter::OnJobEvent(const std::string& job_id,
                                 const v1::JobEvent& event) {
  if (event.has_state_change()) {
    OnJobStateChanged(job_id, event.state_change().state());
    return;
  }
  if (!event.has_stats() && !event.has_alert() && !event.has_summary()) {
    return;
  }
  absl::MutexLock lock(&mu_);
  RemoveExpired();
  JobSeries& job = SeriesFor(job_id);
  if (event.has_stats()) {
    RecordStats(job, event.stats());
  } else if (event.has_alert()) {
    RecordAlert(job, event.alert());
  } else {
    RecordSummary(job, event.summary());
  }
}

void MetricsExporter::RecordStats(JobSeries& job, const v1::StepStats& stats) {
  job.loss->Set(stats.loss());
  job.accuracy->Set(stats.accuracy());
  job.learning_rate->Set(stats.learning_rate());
  if (stats.step() > job.last_step) {
    job.steps->Increment(static_cast<double>(stats.step() - job.last_step));
    job.last_step = stats.step();
  }
  step_duration_.Observe(stats.step_seconds());
  for (const v1::LayerStats& layer_stats : stats.layers()) {
    LayerSeries& layer = LayerFor(job, layer_stats.index());
    layer.dead_ratio->Set(layer_stats.dead_ratio());
    layer.dead_window_ratio->Set(layer_stats.dead_window_ratio());
    layer.saturated_ratio->Set(layer_stats.saturated_ratio());
    for (int t = 0; t < layer_stats.params_size(); ++t) {
      const v1::TensorStats& tensor_stats = layer_stats.params(t);
      // The layer's update ratio is its weight matrix's (params(0) when a
      // layer reports no tensor named "weights").
      if (tensor_stats.name() == "weights" || t == 0) {
        layer.update_ratio->Set(tensor_stats.update_ratio());
      }
      TensorSeries& tensor = TensorFor(job, layer, tensor_stats.name());
      tensor.l2_norm->Set(tensor_stats.grad_l2_norm());
      tensor.mean_abs->Set(tensor_stats.grad_mean_abs());
      tensor.zero_fraction->Set(tensor_stats.grad_zero_fraction());
      tensor.subnormal_fraction->Set(
          tensor_stats.size() == 0
              ? 0.0
              : static_cast<double>(tensor_stats.grad_subnormal_count()) /
                    static_cast<double>(tensor_stats.size()));
      const uint64_t nonfinite =
          tensor_stats.grad_nan_count() + tensor_stats.grad_inf_count();
      if (nonfinite > 0) tensor.nonfinite->Increment(double(nonfinite));
    }
  }
}

void MetricsExporter::RecordAlert(JobSeries& job, const v1::Alert& alert) {
  const int32_t layer = alert.layer() < 0 ? -1 : alert.layer();
  Gauge*& gauge = job.rules[{layer, static_cast<int>(alert.rule())}];
  if (gauge == nullptr) {
    gauge = &rule_firing_.Add(
        {{"job_id", job.id},
         {"layer", LayerLabel(layer)},
         {"rule", absl::AsciiStrToLower(v1::HealthRule_Name(alert.rule()))}});
  }
  gauge->Set(alert.firing() ? 1.0 : 0.0);
}

void MetricsExporter::RecordSummary(JobSeries& job,
                                    const v1::Summary& summary) {
  for (int d = 0; d < v1::Diagnosis_ARRAYSIZE; ++d) {
    if (job.diagnosis[d] != nullptr) {
      job.diagnosis[d]->Set(d == summary.diagnosis() ? 1.0 : 0.0);
    }
  }
}

void MetricsExporter::OnJobStateChanged(const std::string& job_id,
                                        v1::JobState state) {
  if (!v1::JobState_IsValid(state) || state == v1::JOB_STATE_UNSPECIFIED) {
    return;
  }
  absl::MutexLock lock(&mu_);
  RemoveExpired();
  JobSeries& job = SeriesFor(job_id);
  if (job.current == state) return;
  if (job.current != v1::JOB_STATE_UNSPECIFIED) {
    jobs_by_state_[job.current]->Decrement();
  } else if (state == v1::QUEUED) {
    // A recovered job's first event is its final state: not a submission.
    jobs_submitted_.Increment();
  }
  jobs_by_state_[state]->Increment();
  for (int s = 0; s < v1::JobState_ARRAYSIZE; ++s) {
    if (job.state[s] != nullptr) job.state[s]->Set(s == state ? 1.0 : 0.0);
  }
  job.current = state;
  if (IsFinal(state)) {
    finished_by_state_[state]->Increment();
    job.remove_at = Now() + options_.retention;
  }
}

void MetricsExporter::OnWatcherStarted() { active_watchers_.Increment(); }

void MetricsExporter::OnWatcherEnded() { active_watchers_.Decrement(); }

void MetricsExporter::OnEventsStreamed(uint64_t count) {
  events_streamed_.Increment(static_cast<double>(count));
}

void MetricsExporter::OnRpcFinished(const std::string& method,
                                    const std::string& code) {
  absl::MutexLock lock(&mu_);
  Counter*& counter = rpc_counters_[{method, code}];
  if (counter == nullptr) {
    counter = &rpcs_.Add({{"method", method}, {"code", code}});
  }
  counter->Increment();
}

void MetricsExporter::RemoveExpired() {
  const absl::Time now = Now();
  for (auto it = job_series_.begin(); it != job_series_.end();) {
    JobSeries& job = *it->second;
    if (job.remove_at.has_value() && *job.remove_at <= now) {
      RemoveSeries(job);
      job_series_.erase(it++);
    } else {
      ++it;
    }
  }
}

void MetricsExporter::RemoveSeries(JobSeries& job) {
  loss_.Remove(job.loss);
  accuracy_.Remove(job.accuracy);
  learning_rate_.Remove(job.learning_rate);
  steps_.Remove(job.steps);
  for (Gauge* gauge : job.state) {
    if (gauge != nullptr) job_state_.Remove(gauge);
  }
  for (Gauge* gauge : job.diagnosis) {
    if (gauge != nullptr) diagnosis_.Remove(gauge);
  }
  for (auto& [index, layer] : job.layers) {
    dead_ratio_.Remove(layer.dead_ratio);
    dead_window_ratio_.Remove(layer.dead_window_ratio);
    saturated_ratio_.Remove(layer.saturated_ratio);
    update_ratio_.Remove(layer.update_ratio);
    for (TensorSeries& tensor : layer.tensors) {
      grad_l2_norm_.Remove(tensor.l2_norm);
      grad_mean_abs_.Remove(tensor.mean_abs);
      grad_zero_fraction_.Remove(tensor.zero_fraction);
      grad_subnormal_fraction_.Remove(tensor.subnormal_fraction);
      grad_nonfinite_.Remove(tensor.nonfinite);
    }
  }
  for (auto& [key, gauge] : job.rules) rule_firing_.Remove(gauge);
}

std::vector<prometheus::MetricFamily> MetricsExporter::Collect() {
  {
    absl::MutexLock lock(&mu_);
    RemoveExpired();
  }
  if (store_bytes_ != nullptr) {
    // A store that cannot tell keeps the last size it reported.
    absl::StatusOr<uint64_t> bytes = options_.store->SizeBytes();
    if (bytes.ok()) store_bytes_->Set(static_cast<double>(*bytes));
  }
  return registry_->Collect();
}

size_t MetricsExporter::tracked_jobs() const {
  absl::MutexLock lock(&mu_);
  return job_series_.size();
}

}  // namespace gradwatch::server
