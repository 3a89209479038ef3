// One optimizer update of a single tensor, in cache: the loop that every
// step runs once per parameter tensor, with the update figures (weight and
// update norms) it gathers on the way. Sizes are tiny's 64×64 weights
// (4,096 entries), mnist_mlp's 500×100 (50,000) and wide's 1024×1024
// (1,048,576, split among the threads). Reported per entry.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "engine/optimizer.h"

namespace gradwatch::bench {
namespace {

void BM_OptimizerStep(benchmark::State& state, v1::OptimizerSpec::Kind kind) {
  const int64_t n = state.range(0);
  std::vector<float> weights(n), grads(n);
  for (int64_t i = 0; i < n; ++i) {
    weights[i] = 0.01f * static_cast<float>((i * 7919) % 201 - 100);
    grads[i] = 1e-4f * static_cast<float>((i * 104729) % 199 - 99);
  }
  v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(1e-3);
  spec.set_momentum(0.9);
  spec.set_beta1(0.9);
  spec.set_beta2(0.999);
  spec.set_epsilon(1e-8);
  engine::Optimizer optimizer(spec, {{weights.data(), grads.data(), n}});
  std::vector<engine::UpdateResult> results(1);
  omp_set_num_threads(2);
  for (auto _ : state) {
    optimizer.Step(1e-3, 1.0f, results);
    benchmark::DoNotOptimize(results.data());
  }
  state.counters["ns_per_entry"] = benchmark::Counter(
      static_cast<double>(n) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK_CAPTURE(BM_OptimizerStep, momentum, v1::OptimizerSpec::SGD)
    ->Arg(4096)
    ->Arg(50000)
    ->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_OptimizerStep, adam, v1::OptimizerSpec::ADAM)
    ->Arg(4096)
    ->Arg(50000)
    ->Arg(1 << 20);

}  // namespace
}  // namespace gradwatch::bench
