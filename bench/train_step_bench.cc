// Time per training step of the engine (forward, loss, backward, update,
// and the statistics), through the same Trainer the server runs:
//  - BM_TrainStep/{config}/{variant}: one variant's step time;
//  - BM_StatsOverhead/{config}: what full statistics every step cost, from
//    pairs of runs (without, with) in alternating order within one process,
//    as the median of the pairs' ratios;
//  - BM_RuleWindows/tiny/{for_steps}: the step with statistics and health
//    rules whose windows are short or long.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

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
  bool z_histograms;
};

// nostats: statistics only on the first and last step; stats: every step;
// curvature10: every step, plus a Hessian estimate every 10 steps (its cost
// per estimate is 10 x the difference to "stats"); histograms: every step,
// with every layer's Z histogram (the default 32 bins over [-4, 4)).
constexpr Variant kVariants[] = {
    {"f32/nostats", v1::TrainingSpec::F32, false, 0, false},
    {"f32/stats", v1::TrainingSpec::F32, true, 0, false},
    {"f32/curvature10", v1::TrainingSpec::F32, true, 10, false},
    {"f32/histograms", v1::TrainingSpec::F32, true, 0, true},
    {"bf16/nostats", v1::TrainingSpec::BF16, false, 0, false},
};

// Runs `spec`, of `steps` steps, on a new Trainer per iteration, timing
// Run only; reports the time per step as step_us. Returns false when the
// spec or a run failed.
bool TimeRuns(benchmark::State& state, const v1::JobSpec& spec, int steps) {
  if (absl::Status valid = engine::ValidateJobSpec(spec); !valid.ok()) {
    state.SkipWithError(std::string(valid.message()).c_str());
    return false;
  }
  for (auto _ : state) {
    state.PauseTiming();
    auto trainer = engine::Trainer::Create(spec, {});
    if (!trainer.ok()) {
      state.SkipWithError(std::string(trainer.status().message()).c_str());
      return false;
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
  return true;
}

void BM_TrainStep(benchmark::State& state, const BenchConfig& config,
                  const Variant& variant) {
  const int steps = StepsPerRun(config);
  v1::JobSpec spec = MakeBenchSpec(config, steps, kThreads, variant.full_stats,
                                   variant.precision, variant.curvature_every);
  spec.mutable_monitoring()->mutable_histograms()->set_enabled(
      variant.z_histograms);
  if (!TimeRuns(state, spec, steps)) return;
  const double total_steps = static_cast<double>(state.iterations()) * steps;
  state.counters["GFLOPs"] = benchmark::Counter(
      total_steps * FlopsPerStep(config) * 1e-9, benchmark::Counter::kIsRate);
}

// BM_RuleWindows/{config}/{for_steps}: statistics every step, with
// LOSS_NOT_DECREASING over `for_steps` steps, which also sets the
// diagnosis's windows (up to 1,000 steps, and trend halves as long).
// The runs are long enough that every window fills: what the health rules
// cost should not depend on how long their windows are.
constexpr int kRuleWindowSteps = 4000;

void BM_RuleWindows(benchmark::State& state, const BenchConfig& config) {
  v1::JobSpec spec = MakeBenchSpec(config, kRuleWindowSteps, kThreads,
                                   /*full_stats=*/true, v1::TrainingSpec::F32);
  spec.mutable_monitoring()
      ->mutable_rules()
      ->mutable_loss_not_decreasing()
      ->set_for_steps(static_cast<uint32_t>(state.range(0)));
  TimeRuns(state, spec, kRuleWindowSteps);
}

// Wall time of one run of `spec` on a new Trainer (its creation excluded).
absl::StatusOr<double> RunSeconds(const v1::JobSpec& spec) {
  auto trainer = engine::Trainer::Create(spec, {});
  if (!trainer.ok()) return trainer.status();
  engine::CancellationToken cancel;
  const auto start = std::chrono::steady_clock::now();
  v1::Summary summary = (*trainer)->Run([](const v1::JobEvent&) {}, cancel);
  const std::chrono::duration<double> elapsed =
      std::chrono::steady_clock::now() - start;
  if (summary.state() != v1::SUCCEEDED) {
    return absl::InternalError(summary.error());
  }
  return elapsed.count();
}

// Each iteration runs the f32/nostats and the f32/stats spec once, in
// alternating order, so that both see the same machine load; the machine's
// speed drifts over seconds, which the median of the pairs' ratios
// resists. A run without statistics still collects them on its first and
// last step, so `overhead_pct` scales the difference to the steps that
// differ: the extra time of one collected step in percent of a step
// without statistics.
void BM_StatsOverhead(benchmark::State& state, const BenchConfig& config) {
  const int steps = StepsPerRun(config);
  const v1::JobSpec plain_spec = MakeBenchSpec(
      config, steps, kThreads, /*full_stats=*/false, v1::TrainingSpec::F32);
  const v1::JobSpec stats_spec = MakeBenchSpec(
      config, steps, kThreads, /*full_stats=*/true, v1::TrainingSpec::F32);
  std::vector<double> plain, with_stats, ratios;
  bool stats_first = false;
  for (auto _ : state) {
    double seconds[2];  // plain, with statistics
    for (bool stats : {stats_first, !stats_first}) {
      absl::StatusOr<double> run = RunSeconds(stats ? stats_spec : plain_spec);
      if (!run.ok()) {
        state.SkipWithError(std::string(run.status().message()).c_str());
        return;
      }
      seconds[stats ? 1 : 0] = *run;
    }
    stats_first = !stats_first;
    state.SetIterationTime(seconds[0] + seconds[1]);
    plain.push_back(seconds[0] / steps);
    with_stats.push_back(seconds[1] / steps);
    ratios.push_back(seconds[1] / seconds[0]);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  state.counters["plain_step_us"] = median(plain) * 1e6;
  state.counters["stats_step_us"] = median(with_stats) * 1e6;
  state.counters["overhead_pct"] =
      (median(ratios) - 1) * 100 * steps / (steps - 2);
}

int Register() {
  for (const BenchConfig& config : BenchConfigs()) {
    benchmark::RegisterBenchmark(("BM_StatsOverhead/" + config.name).c_str(),
                                 BM_StatsOverhead, config)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->MinTime(10.0);
    for (const Variant& variant : kVariants) {
      const std::string name =
          "BM_TrainStep/" + config.name + "/" + variant.name;
      benchmark::RegisterBenchmark(name.c_str(), BM_TrainStep, config, variant)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(1.0);
    }
    // Only a small net's step is short enough for the rules to show.
    if (config.name == "tiny") {
      benchmark::RegisterBenchmark("BM_RuleWindows/tiny", BM_RuleWindows,
                                   config)
          ->Arg(10)
          ->Arg(1000)
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
