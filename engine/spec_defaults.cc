#include "engine/spec_defaults.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Both operands are non-negative counts; the result saturates instead of
// wrapping so that absurd specs compare as "too large" rather than small.
int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > kInt64Max - b ? kInt64Max : a + b;
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > kInt64Max / b ? kInt64Max : a * b;
}

bool IsReluFamily(v1::Activation activation) {
  return activation == v1::RELU || activation == v1::LEAKY_RELU ||
         activation == v1::ELU || activation == v1::GELU;
}

void FillSynthetic(v1::SyntheticData& synthetic) {
  if (synthetic.samples() == 0) synthetic.set_samples(1000);
  if (synthetic.features() == 0) synthetic.set_features(2);
  if (synthetic.classes() != 0) return;
  switch (synthetic.kind()) {
    case v1::SyntheticData::SPIRALS:
    case v1::SyntheticData::BLOBS:
      synthetic.set_classes(3);
      break;
    case v1::SyntheticData::XOR:
    case v1::SyntheticData::MOONS:
    case v1::SyntheticData::CIRCLES:
      synthetic.set_classes(2);
      break;
    case v1::SyntheticData::TEACHER_STUDENT:
      synthetic.set_classes(1);
      break;
    default:
      break;
  }
}

void FillLayer(int index, bool is_output, v1::LayerSpec& layer) {
  if (layer.name().empty()) layer.set_name(absl::StrCat(index));
  if (is_output && layer.activation() == v1::ACTIVATION_UNSPECIFIED) {
    layer.set_activation(v1::LINEAR);
  }
  // The activation parameters are filled only where they apply, so that a
  // filled spec still passes validation (which rejects them elsewhere).
  if (layer.activation() == v1::LEAKY_RELU && !layer.has_negative_slope()) {
    layer.set_negative_slope(0.01f);
  }
  if (layer.activation() == v1::ELU && !layer.has_elu_alpha()) {
    layer.set_elu_alpha(1.0f);
  }
  if (layer.batch_norm() == v1::LayerSpec::BATCH_NORM_UNSPECIFIED) {
    layer.set_batch_norm(v1::LayerSpec::NONE);
  }
  v1::InitSpec& init = *layer.mutable_init();
  if (init.scheme() == v1::InitSpec::SCHEME_UNSPECIFIED) {
    init.set_scheme(IsReluFamily(layer.activation())
                        ? v1::InitSpec::HE_NORMAL
                        : v1::InitSpec::XAVIER_UNIFORM);
  }
  if (!init.has_gain()) init.set_gain(1.0);
}

void FillOptimizer(v1::OptimizerSpec& optimizer) {
  using Kind = v1::OptimizerSpec;
  if (optimizer.kind() == Kind::KIND_UNSPECIFIED) optimizer.set_kind(Kind::SGD);
  if (optimizer.learning_rate() == 0) optimizer.set_learning_rate(0.01);
  const bool adam =
      optimizer.kind() == Kind::ADAM || optimizer.kind() == Kind::ADAMW;
  const bool rmsprop = optimizer.kind() == Kind::RMSPROP;
  if (adam && !optimizer.has_beta1()) optimizer.set_beta1(0.9);
  if (adam && !optimizer.has_beta2()) optimizer.set_beta2(0.999);
  if ((adam || rmsprop) && !optimizer.has_epsilon()) {
    optimizer.set_epsilon(1e-8);
  }
  if (rmsprop && !optimizer.has_rmsprop_alpha()) {
    optimizer.set_rmsprop_alpha(0.99);
  }
  if (!optimizer.has_decoupled_weight_decay()) {
    optimizer.set_decoupled_weight_decay(optimizer.kind() == Kind::ADAMW ? 0.01
                                                                         : 0.0);
  }
  v1::Schedule& schedule = *optimizer.mutable_schedule();
  if (schedule.kind() == v1::Schedule::KIND_UNSPECIFIED) {
    schedule.set_kind(v1::Schedule::CONSTANT);
  }
  if (schedule.kind() == v1::Schedule::STEP) {
    if (schedule.step_size() == 0) schedule.set_step_size(1000);
    if (!schedule.has_gamma()) schedule.set_gamma(0.1);
  }
}

void FillTraining(int64_t train_rows, v1::TrainingSpec& training) {
  if (training.batch_size() == 0) training.set_batch_size(32);
  if (training.steps() == 0) {
    if (training.epochs() > 0) {
      const int64_t steps_per_epoch =
          train_rows > 0 ? train_rows / training.batch_size() : 0;
      training.set_steps(static_cast<uint64_t>(
          SaturatingMul(training.epochs(), steps_per_epoch)));
    } else {
      training.set_steps(1000);
    }
  }
  if (training.precision() == v1::TrainingSpec::PRECISION_UNSPECIFIED) {
    training.set_precision(v1::TrainingSpec::F32);
  }
}

// One row of DESIGN.md's rule table. Unset thresholds stay unset: those
// rules do not use them.
struct RuleDefaults {
  std::optional<double> threshold;
  std::optional<double> threshold_low;
  uint32_t for_steps;
  v1::RuleConfig::Action action;
};

void FillRule(const RuleDefaults& defaults, v1::RuleConfig& rule) {
  if (!rule.has_threshold() && defaults.threshold) {
    rule.set_threshold(*defaults.threshold);
  }
  if (!rule.has_threshold_low() && defaults.threshold_low) {
    rule.set_threshold_low(*defaults.threshold_low);
  }
  if (rule.for_steps() == 0) rule.set_for_steps(defaults.for_steps);
  if (rule.action() == v1::RuleConfig::ACTION_UNSPECIFIED) {
    rule.set_action(defaults.action);
  }
}

void FillRules(v1::HealthRules& rules) {
  constexpr auto kNone = v1::RuleConfig::NONE;
  FillRule({0.5, std::nullopt, 1, kNone}, *rules.mutable_dead_relu());
  FillRule({0.5, std::nullopt, 1, kNone},
           *rules.mutable_saturated_activation());
  FillRule({1e-7, std::nullopt, 1, kNone}, *rules.mutable_vanishing_gradient());
  FillRule({std::nullopt, std::nullopt, 1, v1::RuleConfig::STOP_JOB},
           *rules.mutable_exploding_tensor());
  FillRule({10.0, 1e-8, 1, kNone}, *rules.mutable_weight_update_ratio());
  FillRule({std::nullopt, std::nullopt, 10, kNone},
           *rules.mutable_unchanged_weights());
  FillRule({0.1, std::nullopt, 10, kNone},
           *rules.mutable_loss_not_decreasing());
  FillRule({10.0, 0.1, 1, kNone}, *rules.mutable_poor_weight_initialization());
}

void FillMonitoring(bool has_validation, v1::MonitoringSpec& monitoring) {
  if (monitoring.stats_every() == 0) monitoring.set_stats_every(1);
  if (monitoring.dead_window() == 0) monitoring.set_dead_window(10);
  if (!monitoring.has_saturation_eps()) monitoring.set_saturation_eps(1e-3);
  if (monitoring.validation_every() == 0 && has_validation) {
    monitoring.set_validation_every(100);
  }
  v1::HistogramSpec& histograms = *monitoring.mutable_histograms();
  if (histograms.bins() == 0) histograms.set_bins(32);
  if (histograms.min() == 0 && histograms.max() == 0) {
    histograms.set_min(-4.0f);
    histograms.set_max(4.0f);
  }
  if (monitoring.curvature_iterations() == 0) {
    monitoring.set_curvature_iterations(20);
  }
  FillRules(*monitoring.mutable_rules());
}

}  // namespace

v1::JobSpec WithDefaults(const v1::JobSpec& spec, int64_t train_rows) {
  v1::JobSpec filled = spec;
  v1::DataSpec& data = *filled.mutable_data();
  if (data.has_synthetic()) FillSynthetic(*data.mutable_synthetic());

  v1::ModelSpec& model = *filled.mutable_model();
  for (int i = 0; i < model.layers_size(); ++i) {
    FillLayer(i, i + 1 == model.layers_size(), *model.mutable_layers(i));
  }
  FillOptimizer(*filled.mutable_optimizer());
  FillTraining(train_rows, *filled.mutable_training());
  FillMonitoring(data.validation_fraction() > 0, *filled.mutable_monitoring());
  return filled;
}

int64_t DeclaredExampleCount(const v1::DataSpec& data) {
  switch (data.source_case()) {
    case v1::DataSpec::kSynthetic:
      return data.synthetic().samples() == 0 ? 1000
                                             : data.synthetic().samples();
    case v1::DataSpec::kInline:
      return data.inline_().examples_size();
    default:
      return -1;
  }
}

int DeclaredFeatureCount(const v1::DataSpec& data) {
  switch (data.source_case()) {
    case v1::DataSpec::kSynthetic:
      return data.synthetic().features() == 0
                 ? 2
                 : static_cast<int>(
                       std::min<uint32_t>(data.synthetic().features(),
                                          std::numeric_limits<int>::max()));
    case v1::DataSpec::kInline:
      return data.inline_().examples().empty()
                 ? 0
                 : data.inline_().examples(0).x_size();
    default:
      return -1;
  }
}

int64_t CountParameters(const v1::ModelSpec& model, int64_t input_features) {
  int64_t total = 0;
  int64_t inputs = input_features < 0 ? 0 : input_features;
  for (const v1::LayerSpec& layer : model.layers()) {
    const int64_t units = layer.units();
    // Weights [inputs][units] and bias [units].
    total = SaturatingAdd(total, SaturatingMul(inputs, units));
    total = SaturatingAdd(total, units);
    if (layer.batch_norm() == v1::LayerSpec::BEFORE_ACTIVATION ||
        layer.batch_norm() == v1::LayerSpec::AFTER_ACTIVATION) {
      total = SaturatingAdd(total, SaturatingMul(2, units));  // scale, shift
    }
    inputs = units;
  }
  return total;
}

}  // namespace gradwatch::engine
