// Time per training step of the engine (forward, loss, backward, update,
// and the statistics), through the same Trainer the server runs.
#include <benchmark/benchmark.h>

#include <string>

#include "bench/bench_specs.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"

namespace gradwatch::bench {
namespace {

constexpr int kThreads = 2;

// Steps per timed run: enough that the per-run start (OpenMP team, first
// execution of each primitive) is amortized, as in a real job.
int StepsPerRun(const BenchConfig& config) {
  return config.batch * config.widths[1] > 100000 ? 20 : 200;
}

// One benchmarked variant of a configuration.
struct Variant {
  const char* name;  // the last part of the benchmark's name
  v1::TrainingSpec::Precision precision;
  bool full_stats;
  int curvature_every;
};

// nostats: statistics only on the first and last step; stats: every step;
// curvature10: every step, plus a Hessian estimate every 10 steps (its cost
// per estimate is 10 x the difference to "stats").
constexpr Variant kVariants[] = {
    {"f32/nostats", v1::TrainingSpec::F32, false, 0},
    {"f32/stats", v1::TrainingSpec::F32, true, 0},
    {"f32/curvature10", v1::TrainingSpec::F32, true, 10},
    {"bf16/nostats", v1::TrainingSpec::BF16, false, 0},
};

void BM_TrainStep(benchmark::State& state, const BenchConfig& config,
                  const Variant& variant) {
  const int steps = StepsPerRun(config);
  const v1::JobSpec spec =
      MakeBenchSpec(config, steps, kThreads, variant.full_stats,
                    variant.precision, variant.curvature_every);
  if (absl::Status valid = engine::ValidateJobSpec(spec); !valid.ok()) {
    state.SkipWithError(std::string(valid.message()).c_str());
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    auto trainer = engine::Trainer::Create(spec, {});
    if (!trainer.ok()) {
      state.SkipWithError(std::string(trainer.status().message()).c_str());
      return;
    }
    engine::CancellationToken cancel;
    state.ResumeTiming();
    v1::Summary summary = (*trainer)->Run([](const v1::JobEvent&) {}, cancel);
    benchmark::DoNotOptimize(summary);
  }
  const double total_steps = static_cast<double>(state.iterations()) * steps;
  state.counters["step_us"] =
      benchmark::Counter(total_steps * 1e-6, benchmark::Counter::kIsRate |
                                                 benchmark::Counter::kInvert);
  state.counters["GFLOPs"] = benchmark::Counter(
      total_steps * FlopsPerStep(config) * 1e-9, benchmark::Counter::kIsRate);
}

int Register() {
  for (const BenchConfig& config : BenchConfigs()) {
    for (const Variant& variant : kVariants) {
      const std::string name =
          "BM_TrainStep/" + config.name + "/" + variant.name;
      benchmark::RegisterBenchmark(name.c_str(), BM_TrainStep, config, variant)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(1.0);
    }
  }
  return 0;
}

const int registered = Register();

}  // namespace
}  // namespace gradwatch::bench
