#include "engine/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/batcher.h"
#include "engine/curvature.h"
#include "engine/dataset.h"
#include "engine/gradient_stats.h"
#include "engine/health_monitor.h"
#include "engine/loss.h"
#include "engine/lr_schedule.h"
#include "engine/model.h"
#include "engine/onednn_util.h"
#include "engine/optimizer.h"
#include "engine/spare_thread.h"
#include "engine/spec_defaults.h"
#include "engine/stats_collector.h"

namespace gradwatch::engine {

struct Trainer::State {
  v1::JobSpec spec;  // defaults filled
  DataSplit data;
  int threads = 1;
  v1::RunInfo run_info;
  std::unique_ptr<Batcher> batcher;
  std::vector<int32_t> batch_labels;
  std::vector<float> batch_targets;

  // Guards the parameters between the training thread's updates and
  // GetModel/Predict from other threads.
  absl::Mutex mu;
  std::unique_ptr<Model> model ABSL_GUARDED_BY(mu);
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<StatsCollector> collector;
  std::unique_ptr<HealthMonitor> monitor;
  std::unique_ptr<CurvatureEstimator> curvature;  // when scheduled
  // Sweeps the gradients for the statistics beside the update and the
  // next forward pass, on a thread of the budget that the step's
  // primitives leave idle (null when they use them all). Declared after
  // the collector, whose SweepGradients it runs: destroyed first.
  std::unique_ptr<SpareThread> sweeper;
  uint64_t steps_done ABSL_GUARDED_BY(mu) = 0;
};

namespace {

// Loss and accuracy of the model on a whole dataset, forward-only.
absl::Status Evaluate(Model& model, const v1::JobSpec& spec,
                      const Dataset& data, double& loss, double& accuracy) {
  double loss_sum = 0;
  int64_t correct = 0;
  const int width = model.output_units();
  absl::Status status = model.ForEachInferenceChunk(
      data.x.data(), data.rows, [&](const Net& net, int64_t row0, int n) {
        const LossResult r = ComputeLoss(
            spec.loss(), net.output(), n, width,
            data.is_regression() ? nullptr : data.labels.data() + row0,
            data.is_regression() ? data.targets.data() + row0 * width : nullptr,
            nullptr);
        loss_sum += r.loss * n;
        correct += r.correct;
      });
  if (!status.ok()) return status;
  loss = data.rows > 0 ? loss_sum / data.rows : 0;
  accuracy = data.rows > 0 ? static_cast<double>(correct) / data.rows : 0;
  return absl::OkStatus();
}

double GlobalGradNorm(const std::vector<ParamTensor>& tensors) {
  double sum = 0;
  for (const ParamTensor& t : tensors) sum += SumOfSquares(t.grad, t.size);
  return std::sqrt(sum);
}

bool IsFinite(double v) { return std::isfinite(v); }

}  // namespace

Trainer::Trainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const v1::JobSpec& spec, const TrainerOptions& options) {
  auto state = std::make_unique<State>();
  absl::StatusOr<Dataset> all = LoadDataset(spec.data(), spec.loss());
  if (!all.ok()) return all.status();
  state->data = SplitDataset(*std::move(all), spec.data().validation_fraction(),
                             spec.training().seed());
  state->spec = WithDefaults(spec, state->data.train.rows);
  const v1::TrainingSpec& training = state->spec.training();
  if (training.precision() == v1::TrainingSpec::BF16 && !CpuSupportsBf16()) {
    return absl::FailedPreconditionError(
        "training.precision BF16 needs a CPU with AVX-512 (avx512_core or "
        "newer); this one has none: use F32");
  }
  const int budget = training.threads() > 0
                         ? static_cast<int>(training.threads())
                     : options.threads > 0 ? options.threads
                                           : 1;
  const Dataset& train = state->data.train;
  state->threads =
      ThreadsForStep(budget, 6.0 * static_cast<double>(training.batch_size()) *
                                 static_cast<double>(CountParameters(
                                     state->spec.model(), train.features)));
  ConfigureComputeThreads(state->threads, training.flush_denormals());

  const int batch = static_cast<int>(training.batch_size());
  {
    absl::MutexLock lock(&state->mu);
    auto model = Model::Create(state->spec, train.features, batch);
    if (!model.ok()) return model.status();
    state->model = *std::move(model);
    state->optimizer = std::make_unique<Optimizer>(
        state->spec.optimizer(), state->model->ParamTensors());
    state->collector = std::make_unique<StatsCollector>(
        state->spec.monitoring(), *state->model);
    if (state->spec.monitoring().curvature_every() > 0) {
      auto curvature = CurvatureEstimator::Create(*state->model);
      if (!curvature.ok()) return curvature.status();
      state->curvature = *std::move(curvature);
    }
  }
  if (state->threads < budget &&
      SpareThread::AvailableCpus() > state->threads) {
    state->sweeper = std::make_unique<SpareThread>(
        [collector = state->collector.get()] { collector->SweepGradients(); });
  }
  state->monitor = std::make_unique<HealthMonitor>(
      state->spec, train.features, ChanceLevelLoss(state->spec.loss(), train));
  // Warm-up: the first execution of each primitive pays for its JIT code
  // and the OpenMP team's start (tens of ms); paying here keeps step 1's
  // timing representative. Gradients are overwritten by every step and no
  // parameter changes, so the run is unaffected.
  absl::Status warm = CatchDnnlErrors("warming up", [&] {
    absl::MutexLock lock(&state->mu);
    Net& net = state->model->train_net();
    std::fill_n(net.input(), static_cast<int64_t>(batch) * train.features,
                0.0f);
    net.ForwardFused();
    net.Forward();
    std::fill_n(net.diff_output(),
                static_cast<int64_t>(batch) * state->model->output_units(),
                0.0f);
    net.Backward();
  });
  if (!warm.ok()) return warm;
  state->batcher = std::make_unique<Batcher>(train, batch, training.seed() + 1);
  state->batch_labels.resize(batch);
  state->batch_targets.resize(static_cast<size_t>(batch) *
                              std::max(train.target_width, 0));

  v1::RunInfo& info = state->run_info;
  info.set_precision(training.precision());
  info.set_threads(state->threads);
  info.set_statistics_thread(state->sweeper != nullptr);
  info.set_parameters(CountParameters(state->spec.model(), train.features));
  info.set_train_samples(train.rows);
  info.set_validation_samples(state->data.validation.rows);
  info.set_steps_total(training.steps());
  info.set_batch_size(batch);
  info.set_input_features(train.features);
  info.set_engine_version(absl::StrCat("oneDNN ", OneDnnVersion()));
  return std::unique_ptr<Trainer>(new Trainer(std::move(state)));
}

const v1::RunInfo& Trainer::run_info() const { return state_->run_info; }

v1::Summary Trainer::Run(const EventCallback& on_event,
                         const CancellationToken& cancel) {
  State& s = *state_;
  const v1::JobSpec& spec = s.spec;
  const v1::MonitoringSpec& monitoring = spec.monitoring();
  const uint64_t total_steps = spec.training().steps();
  const auto run_start = std::chrono::steady_clock::now();
  s.run_info.set_denormals_flushed(
      ConfigureComputeThreads(s.threads, spec.training().flush_denormals()));

  v1::JobEvent event;  // started, alerts, summary
  event.mutable_started()->CopyFrom(s.run_info);
  on_event(event);

  // The step event is reused: its per-layer messages keep their memory
  // from one collected step to the next.
  v1::JobEvent step_event;
  v1::StepStats* stats = step_event.mutable_stats();
  std::vector<v1::Alert> alerts;
  v1::Summary summary;
  summary.set_state(v1::SUCCEEDED);
  Model& model = *s.model;  // the pointer never changes after Create
  Net& net = model.train_net();
  const int batch = net.batch();
  const int width = model.output_units();
  const bool regression = s.data.train.is_regression();
  std::vector<UpdateResult> updates(s.optimizer->tensors().size());
  const std::vector<UpdateResult> kNoUpdates;  // a divergent step's
  double last_loss = 0, last_accuracy = 0;
  uint64_t step = 0;
  auto every = [&](uint64_t n) { return n > 0 && step % n == 0; };

  // The end of a step: the health rules, its events, and whether the run
  // stops there.
  auto report = [&](uint64_t at, bool collect, bool emit, bool finite) {
    // Rules and diagnosis are evaluated on collected steps (every
    // divergent step is one), so their for_steps count evaluations.
    alerts.clear();
    if (collect) s.monitor->Observe(*stats, &alerts);
    if (emit) on_event(step_event);
    for (v1::Alert& alert : alerts) {
      event.Clear();
      event.set_step(at);
      *event.mutable_alert() = std::move(alert);
      on_event(event);
    }
    if (!finite || s.monitor->diverged()) {
      summary.set_state(v1::FAILED);
      summary.set_error(
          absl::StrCat("diverged: non-finite values at step ", at));
      return true;
    }
    if (s.monitor->stop_requested()) {
      summary.set_state(v1::FAILED);
      summary.set_error(s.monitor->stop_reason());
      return true;
    }
    return false;
  };
  // A collected step whose gradients the spare thread sweeps ends in the
  // next step, before its backward pass writes the gradients again (or
  // after the loop): its report then waits for the sweep. The rules thus
  // see it, and can stop the run, before the next update.
  uint64_t pending = 0;  // the step, or 0
  auto finish_pending = [&] {
    const uint64_t at = pending;
    pending = 0;
    s.sweeper->Wait();
    stats->set_grad_norm(s.collector->FillGradients(stats));
    return report(at, /*collect=*/true, /*emit=*/true, /*finite=*/true);
  };

  absl::Status failure;  // from evaluation or the dataset sweep
  absl::Status status = CatchDnnlErrors("training", [&] {
    for (step = 1; step <= total_steps; ++step) {
      if (cancel.cancelled()) {
        // The pending step ends first; it may stop the run itself.
        if (pending == 0 || !finish_pending()) {
          summary.set_state(v1::CANCELLED);
        }
        --step;
        break;
      }
      const auto step_start = std::chrono::steady_clock::now();
      s.batcher->Next(net.input(), regression ? nullptr : s.batch_labels.data(),
                      regression ? s.batch_targets.data() : nullptr);
      const bool curvature_step = every(monitoring.curvature_every());
      const bool periodic = step == 1 || step == total_steps ||
                            every(monitoring.stats_every()) || curvature_step;
      // Only the statistics read Z: other steps skip writing it.
      if (periodic) {
        net.ForwardActivating(*s.collector);
        s.collector->CollectActivations();
      } else {
        net.ForwardFused();
      }
      const LossResult loss = ComputeLoss(
          spec.loss(), net.output(), batch, width,
          regression ? nullptr : s.batch_labels.data(),
          regression ? s.batch_targets.data() : nullptr, net.diff_output());
      if (pending != 0) {
        // As if the pending step had ended at the top of this one: this
        // step stops before its update.
        if (finish_pending()) {
          --step;
          break;
        }
        if (cancel.cancelled()) {
          summary.set_state(v1::CANCELLED);
          --step;
          break;
        }
      }
      net.Backward();
      // On collected steps the statistics' one sweep over each gradient
      // also gives the norm that clipping needs; with a spare thread, that
      // sweep runs there, and this one sums the squares as on other steps.
      const bool aside = periodic && !curvature_step && s.sweeper != nullptr;
      double grad_norm = periodic && !aside
                             ? s.collector->CollectGradients(stats)
                             : GlobalGradNorm(s.optimizer->tensors());
      const bool finite = IsFinite(loss.loss) && IsFinite(grad_norm);
      const bool collect = periodic || !finite;
      if (!finite && (aside || !periodic)) {
        grad_norm = s.collector->CollectGradients(stats);
        // Z, for the activation statistics: the same inputs and weights
        // give the same A, and the gradients stay.
        if (!periodic) net.Forward();
      }
      if (aside && finite) {
        s.sweeper->Start();
        pending = step;
      }
      const double clip = spec.optimizer().clip_grad_norm();
      const float grad_scale = clip > 0 && grad_norm > clip
                                   ? static_cast<float>(clip / grad_norm)
                                   : 1.0f;
      const double lr = LearningRateAt(spec.optimizer(), step, total_steps);
      stats->clear_hessian_max_eigenvalue();
      if (curvature_step && finite) {
        // The estimate perturbs the weights (and restores them bit for
        // bit): hold the lock that GetModel and Predict take.
        absl::MutexLock lock(&s.mu);
        absl::StatusOr<double> top = s.curvature->LargestEigenvalue(
            model, spec.loss(), regression ? nullptr : s.batch_labels.data(),
            regression ? s.batch_targets.data() : nullptr,
            static_cast<int>(monitoring.curvature_iterations()),
            spec.training().seed() ^ step);
        if (top.ok()) {
          stats->set_hessian_max_eigenvalue(*top);
        } else if (!absl::IsFailedPrecondition(top.status())) {
          failure = top.status();
          return;
        }  // else non-finite only at the perturbed weights: no figure
      }
      {
        absl::MutexLock lock(&s.mu);
        if (finite) {
          s.optimizer->Step(lr, grad_scale, updates);
          model.UpdateRunningStats();
        }
        s.steps_done = step;
      }

      last_loss = loss.loss;
      last_accuracy =
          regression ? 0 : static_cast<double>(loss.correct) / batch;
      step_event.set_step(step);
      stats->set_step(step);
      stats->set_epoch(s.batcher->epoch());
      stats->set_loss(last_loss);
      stats->set_accuracy(last_accuracy);
      stats->set_learning_rate(lr);
      stats->set_grad_norm(grad_norm);
      stats->clear_validation_loss();
      stats->clear_validation_accuracy();
      if (collect) {
        s.collector->CollectLayers(model, finite ? updates : kNoUpdates, stats);
        if (every(monitoring.dataset_sweep_every())) {
          absl::MutexLock lock(&s.mu);
          absl::Status sweep =
              s.collector->SweepDataset(model, s.data.train, stats);
          if (!sweep.ok()) {
            failure = sweep;
            return;
          }
        }
      } else {
        stats->mutable_layers()->Clear();
      }
      stats->set_step_seconds(std::chrono::duration<double>(
                                  std::chrono::steady_clock::now() - step_start)
                                  .count());

      const bool validate =
          s.data.validation.rows > 0 &&
          (every(monitoring.validation_every()) || step == total_steps);
      if (validate) {
        double val_loss = 0, val_accuracy = 0;
        absl::Status eval;
        {
          absl::MutexLock lock(&s.mu);
          eval =
              Evaluate(model, spec, s.data.validation, val_loss, val_accuracy);
        }
        if (!eval.ok()) {
          failure = eval;
          return;
        }
        stats->set_validation_loss(val_loss);
        stats->set_validation_accuracy(val_accuracy);
        summary.set_final_validation_loss(val_loss);
        summary.set_final_validation_accuracy(val_accuracy);
      }

      if (pending == step) continue;
      if (report(step, collect, collect || validate, finite)) break;
    }
  });
  // The last step's report, or one that a failure in the next step's
  // forward pass left pending; a step that failed itself reports nothing.
  if (pending != 0 && pending < step) {
    finish_pending();
  } else if (pending != 0) {
    s.sweeper->Wait();
  }
  if (status.ok()) status = failure;
  if (!status.ok()) {
    summary.set_state(v1::FAILED);
    summary.set_error(std::string(status.message()));
  }
  s.monitor->FillSummary(&summary);
  summary.set_steps_completed(std::min(step, total_steps));
  summary.set_final_loss(last_loss);
  summary.set_final_accuracy(last_accuracy);
  summary.set_train_seconds(std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - run_start)
                                .count());
  event.Clear();
  event.set_step(summary.steps_completed());
  event.mutable_summary()->CopyFrom(summary);
  on_event(event);
  return summary;
}

absl::StatusOr<v1::PredictResponse> Trainer::Predict(
    const google::protobuf::RepeatedPtrField<v1::Example>& inputs) {
  State& s = *state_;
  const int features = s.data.train.features;
  std::vector<float> x;
  x.reserve(static_cast<size_t>(inputs.size()) * features);
  for (int i = 0; i < inputs.size(); ++i) {
    if (inputs[i].x_size() != features) {
      return absl::InvalidArgumentError(
          absl::StrCat("inputs[", i, "].x has ", inputs[i].x_size(),
                       " values, the model takes ", features));
    }
    for (float v : inputs[i].x()) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("inputs[", i, "].x has a non-finite value"));
      }
      x.push_back(v);
    }
  }
  v1::PredictResponse response;
  absl::MutexLock lock(&s.mu);
  Model& model = *s.model;
  const int width = model.output_units();
  std::vector<float> probs(static_cast<size_t>(Model::kInferenceChunk) * width);
  ConfigureComputeThreads(s.threads, s.spec.training().flush_denormals());
  absl::Status status = model.ForEachInferenceChunk(
      x.data(), inputs.size(), [&](const Net& net, int64_t, int n) {
        ApplyOutputLink(s.spec.loss(), net.output(), n, width, probs.data());
        for (int r = 0; r < n; ++r) {
          v1::Prediction* p = response.add_predictions();
          const float* row = probs.data() + static_cast<int64_t>(r) * width;
          p->mutable_outputs()->Assign(row, row + width);
          if (s.spec.loss() == v1::CROSS_ENTROPY) {
            p->set_predicted_class(static_cast<uint32_t>(
                std::max_element(row, row + width) - row));
          } else if (s.spec.loss() == v1::BINARY_CROSS_ENTROPY) {
            p->set_predicted_class(row[0] > 0.5f ? 1 : 0);
          }
        }
      });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<v1::Model> Trainer::GetModel() {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<v1::Model> model = state_->model->Export();
  if (model.ok()) model->set_step(state_->steps_done);
  return model;
}

}  // namespace gradwatch::engine
