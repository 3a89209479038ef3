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
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <string>
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
// gradients and update figures in place.
struct TrainedModel {
  v1::JobSpec spec;
  engine::Dataset data;
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::Optimizer> optimizer;
  std::unique_ptr<engine::StatsCollector> collector;
  std::vector<engine::UpdateResult> updates;
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

  engine::Net& net = t->model->train_net();
  engine::Batcher batcher(t->data, config.batch, t->spec.training().seed());
  std::vector<int32_t> labels(config.batch);
  const double lr = t->spec.optimizer().learning_rate();
  for (int step = 0; step < kTrainedSteps; ++step) {
    batcher.Next(net.input(), labels.data(), nullptr);
    net.Forward();
    engine::ComputeLoss(t->spec.loss(), net.output(), config.batch,
                        t->model->output_units(), labels.data(), nullptr,
                        net.diff_output());
    net.Backward();
    if (step + 1 < kTrainedSteps) t->optimizer->Step(lr, 1.0f, t->updates);
  }
  return t;
}

enum class Part { kGradientNorm, kGradientStats, kLayerStats };

void BM_Stats(benchmark::State& state, const BenchConfig& config, Part part) {
  absl::StatusOr<std::unique_ptr<TrainedModel>> trained = Train(config);
  if (!trained.ok()) {
    state.SkipWithError(std::string(trained.status().message()).c_str());
    return;
  }
  TrainedModel& t = **trained;
  v1::StepStats stats;
  // The event's messages exist after the first collected step of a job.
  t.collector->Collect(*t.model, t.updates, &stats);
  const std::vector<engine::ParamTensor>& tensors = t.optimizer->tensors();
  for (auto _ : state) {
    switch (part) {
      case Part::kGradientNorm: {
        double sum = 0;
        for (const engine::ParamTensor& p : tensors) {
          sum += engine::SumOfSquares(p.grad, p.size);
        }
        benchmark::DoNotOptimize(std::sqrt(sum));
        break;
      }
      case Part::kGradientStats:
        benchmark::DoNotOptimize(
            t.collector->CollectGradients(*t.model, &stats));
        break;
      case Part::kLayerStats:
        t.collector->CollectLayers(*t.model, t.updates, &stats);
        benchmark::ClobberMemory();
        break;
    }
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
    }
  }
  return 0;
}

const int registered = Register();

}  // namespace
}  // namespace gradwatch::bench
