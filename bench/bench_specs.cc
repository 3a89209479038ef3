#include "bench/bench_specs.h"

namespace gradwatch::bench {

const std::vector<BenchConfig>& BenchConfigs() {
  static const auto* configs = new std::vector<BenchConfig>{
      {"tiny", {2, 64, 64, 2}, 64},
      {"mnist_mlp", {784, 1000, 500, 100, 10}, 128},
      {"wide", {784, 1024, 1024, 1024, 10}, 256},
      {"deep", {64, 256, 256, 256, 256, 256, 256, 256, 256, 10}, 128},
  };
  return *configs;
}

v1::JobSpec MakeBenchSpec(const BenchConfig& config, int steps, int threads,
                          bool full_stats,
                          v1::TrainingSpec::Precision precision,
                          int curvature_every) {
  v1::JobSpec spec;
  spec.set_name("bench-" + config.name);
  v1::SyntheticData* data = spec.mutable_data()->mutable_synthetic();
  data->set_kind(v1::SyntheticData::BLOBS);
  data->set_samples(4 * config.batch);
  data->set_features(config.widths.front());
  data->set_classes(config.widths.back());
  data->set_seed(7);
  for (size_t i = 1; i < config.widths.size(); ++i) {
    v1::LayerSpec* layer = spec.mutable_model()->add_layers();
    layer->set_units(config.widths[i]);
    const bool output = i + 1 == config.widths.size();
    layer->set_activation(output ? v1::LINEAR : v1::RELU);
  }
  spec.set_loss(v1::CROSS_ENTROPY);
  v1::OptimizerSpec* opt = spec.mutable_optimizer();
  opt->set_kind(v1::OptimizerSpec::SGD);
  opt->set_learning_rate(0.01);
  opt->set_momentum(0.9);
  v1::TrainingSpec* training = spec.mutable_training();
  training->set_steps(steps);
  training->set_batch_size(config.batch);
  training->set_seed(1);
  training->set_threads(threads);
  training->set_precision(precision);
  spec.mutable_monitoring()->set_stats_every(full_stats ? 1 : 1000000);
  spec.mutable_monitoring()->set_curvature_every(curvature_every);
  return spec;
}

double FlopsPerStep(const BenchConfig& config) {
  double macs = 0;
  for (size_t i = 1; i < config.widths.size(); ++i) {
    macs += static_cast<double>(config.widths[i - 1]) * config.widths[i];
  }
  return 6.0 * config.batch * macs;
}

}  // namespace gradwatch::bench
