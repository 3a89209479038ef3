#ifndef GRADWATCH_BENCH_BENCH_SPECS_H_
#define GRADWATCH_BENCH_BENCH_SPECS_H_

#include <string>
#include <vector>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::bench {

/// A benchmark configuration: an MLP shape and batch, shared with
/// bench/torch_compare.py (which defines the same table).
struct BenchConfig {
  std::string name;
  std::vector<int> widths;  // input features, hidden..., output classes
  int batch;
};

/// tiny, mnist_mlp, wide, deep — see docs/benchmarks.md.
const std::vector<BenchConfig>& BenchConfigs();

/// A valid spec for `config`: BLOBS data (4 batches' worth of rows), ReLU
/// hidden layers, softmax cross-entropy, SGD with momentum 0.9, `threads`
/// oneDNN threads, `steps` steps; statistics every step when `full_stats`,
/// otherwise only on the first and last step; a Hessian estimate (20 power
/// iterations) every `curvature_every` steps (0 = never).
gradwatch::v1::JobSpec MakeBenchSpec(
    const BenchConfig& config, int steps, int threads, bool full_stats,
    gradwatch::v1::TrainingSpec::Precision precision, int curvature_every = 0);

/// 6 * batch * sum(in * out): multiply-adds of forward, backward-data and
/// backward-weights, times two flops each.
double FlopsPerStep(const BenchConfig& config);

}  // namespace gradwatch::bench

#endif  // GRADWATCH_BENCH_BENCH_SPECS_H_
