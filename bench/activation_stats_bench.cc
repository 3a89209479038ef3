// One layer's activation figures on one thread, as a step with statistics
// computes them for a ReLU layer: the dead-unit test, the moments of Z and
// A, with A written from Z in the same pass (`written`, ForwardActivating's
// way) or read (`read`, Compute's). Sizes are tiny's 64 x 64 batch and
// mnist_mlp's first layer, 128 x 1000 (not a multiple of 16 units: a
// vector then runs into the next row once a row). Reported per entry.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "engine/activation_stats.h"

namespace gradwatch::bench {
namespace {

void BM_ActivationStats(benchmark::State& state, bool written) {
  const int rows = static_cast<int>(state.range(0));
  const int units = static_cast<int>(state.range(1));
  const int64_t n = int64_t{rows} * units;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.1f, 1.0f);
  std::vector<float> z(n), a(n);
  for (int64_t i = 0; i < n; ++i) {
    z[i] = normal(rng);
    a[i] = z[i] > 0 ? z[i] : 0.0f;
  }
  engine::ActivationFunction relu;
  relu.kind = v1::RELU;
  engine::ActivationStats stats(relu, units, rows, 1e-3, v1::HistogramSpec());
  for (auto _ : state) {
    if (written) {
      stats.ComputeWritingActivation(z.data(), a.data(), rows);
    } else {
      stats.Compute(z.data(), a.data(), rows);
    }
    benchmark::DoNotOptimize(stats.moments());
  }
  state.counters["ns_per_entry"] = benchmark::Counter(
      static_cast<double>(n) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK_CAPTURE(BM_ActivationStats, written, true)
    ->Args({64, 64})
    ->Args({128, 1000});
BENCHMARK_CAPTURE(BM_ActivationStats, read, false)
    ->Args({64, 64})
    ->Args({128, 1000});

}  // namespace
}  // namespace gradwatch::bench
