// The statistics' share of a training step, part by part, on the buffers
// of a real run: each configuration is trained for kTrainedSteps steps
// (forward, loss, backward, SGD with momentum), then the benchmarks time
// what a step with full statistics adds over one without.
//
//   GradientNorm: the sum of squares over every gradient, which a step
//     without statistics computes for StepStats.grad_norm;
//   GradientStats: StatsCollector::CollectGradients, the one sweep per
//     gradient that replaces it on a collected step;
//   LayerStats: StatsCollector::CollectLayers, the activation statistics,
//     dead windows and update figures of every layer.
//
// So a collected step costs GradientStats - GradientNorm + LayerStats more.
//
// Those sweep the same buffers again and again: the gradients stay in
// cache and the branch predictor learns them. The `/in_step` variants of
// GradientNorm and GradientStats train one more step before each timed
// sweep (untimed), so that each sweep reads gradients as a step leaves
// them: just written by the backward pass, and new.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_specs.h"
#include "engine/batcher.h"
#include "engine/dataset.h"
#include "engine/gradient_stats.h"
#include "engine/loss.h"
#include "engine/model.h"
#include "engine/onednn_util.h"
#include "engine/optimizer.h"
#include "engine/spec_defaults.h"
#include "engine/stats_collector.h"

namespace gradwatch::bench {
namespace {

constexpr int kThreads = 2;
constexpr int kTrainedSteps = 30;

// A model after kTrainedSteps steps, with the last step's activations,
// gradients and update figures in place, and its statistics collected once
// (the event's messages exist after the first collected step of a job).
struct TrainedModel {
  v1::JobSpec spec;
  engine::Dataset data;
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::Optimizer> optimizer;
  std::unique_ptr<engine::StatsCollector> collector;
  std::vector<engine::UpdateResult> updates;
  v1::StepStats stats;
  std::unique_ptr<engine::Batcher> batcher;
  std::vector<int32_t> labels;

  // Forward, loss and backward of the next batch; the update of the
  // previous step's gradients first, unless `first`.
  void Step(bool first) {
    if (!first) {
      optimizer->Step(spec.optimizer().learning_rate(), 1.0f, updates);
    }
    engine::Net& net = model->train_net();
    batcher->Next(net.input(), labels.data(), nullptr);
    net.Forward();
    engine::ComputeLoss(spec.loss(), net.output(), net.batch(),
                        model->output_units(), labels.data(), nullptr,
                        net.diff_output());
    net.Backward();
  }
};

absl::StatusOr<std::unique_ptr<TrainedModel>> Train(const BenchConfig& config) {
  auto t = std::make_unique<TrainedModel>();
  const v1::JobSpec raw =
      MakeBenchSpec(config, kTrainedSteps, kThreads,
                    /*full_stats=*/true, v1::TrainingSpec::F32);
  absl::StatusOr<engine::Dataset> data =
      engine::LoadDataset(raw.data(), raw.loss());
  if (!data.ok()) return data.status();
  t->data = *std::move(data);
  t->spec = engine::WithDefaults(raw, t->data.rows);
  engine::ConfigureComputeThreads(kThreads, /*flush_denormals=*/false);
  auto model = engine::Model::Create(t->spec, t->data.features, config.batch);
  if (!model.ok()) return model.status();
  t->model = *std::move(model);
  t->optimizer = std::make_unique<engine::Optimizer>(t->spec.optimizer(),
                                                     t->model->ParamTensors());
  t->collector =
      std::make_unique<engine::StatsCollector>(t->spec.monitoring(), *t->model);
  t->updates.resize(t->optimizer->tensors().size());

  t->batcher = std::make_unique<engine::Batcher>(t->data, config.batch,
                                                 t->spec.training().seed());
  t->labels.resize(config.batch);
  for (int step = 0; step < kTrainedSteps; ++step) t->Step(step == 0);
  t->collector->Collect(*t->model, t->updates, &t->stats);
  return t;
}

enum class Part { kGradientNorm, kGradientStats, kLayerStats };

// The timed work of `part` (kGradientNorm or kGradientStats).
double SweepGradients(TrainedModel& t, Part part) {
  if (part == Part::kGradientStats) {
    return t.collector->CollectGradients(&t.stats);
  }
  double sum = 0;
  for (const engine::ParamTensor& p : t.optimizer->tensors()) {
    sum += engine::SumOfSquares(p.grad, p.size);
  }
  return std::sqrt(sum);
}

// The trained model, or null after marking the benchmark skipped with the
// error.
std::unique_ptr<TrainedModel> TrainOrSkip(benchmark::State& state,
                                          const BenchConfig& config) {
  absl::StatusOr<std::unique_ptr<TrainedModel>> trained = Train(config);
  if (!trained.ok()) {
    state.SkipWithError(std::string(trained.status().message()).c_str());
    return nullptr;
  }
  return *std::move(trained);
}

void BM_Stats(benchmark::State& state, const BenchConfig& config, Part part) {
  const std::unique_ptr<TrainedModel> trained = TrainOrSkip(state, config);
  if (trained == nullptr) return;
  TrainedModel& t = *trained;
  for (auto _ : state) {
    if (part == Part::kLayerStats) {
      t.collector->CollectLayers(*t.model, t.updates, &t.stats);
      benchmark::ClobberMemory();
    } else {
      benchmark::DoNotOptimize(SweepGradients(t, part));
    }
  }
}

void BM_StatsInStep(benchmark::State& state, const BenchConfig& config,
                    Part part) {
  const std::unique_ptr<TrainedModel> trained = TrainOrSkip(state, config);
  if (trained == nullptr) return;
  TrainedModel& t = *trained;
  for (auto _ : state) {
    t.Step(/*first=*/false);
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(SweepGradients(t, part));
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
}

int Register() {
  constexpr struct {
    const char* name;
    Part part;
  } kParts[] = {{"GradientNorm", Part::kGradientNorm},
                {"GradientStats", Part::kGradientStats},
                {"LayerStats", Part::kLayerStats}};
  for (const BenchConfig& config : BenchConfigs()) {
    for (const auto& part : kParts) {
      const std::string name =
          std::string("BM_Stats/") + config.name + "/" + part.name;
      benchmark::RegisterBenchmark(name.c_str(), BM_Stats, config, part.part)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      if (part.part == Part::kLayerStats) continue;
      benchmark::RegisterBenchmark((name + "/in_step").c_str(), BM_StatsInStep,
                                   config, part.part)
          ->Unit(benchmark::kMicrosecond)
          ->UseManualTime();
    }
  }
  return 0;
}

const int registered = Register();

}  // namespace
}  // namespace gradwatch::bench
