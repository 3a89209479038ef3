#include "engine/health_monitor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gradwatch::engine {
namespace {

// The diagnosis criteria of docs/statistics.md ("Diagnosis").
constexpr double kConvergedLossFraction = 0.05;  // of the chance level
constexpr double kSettledLossFraction = 0.25;    // once learning stops
constexpr double kBlowUpFactor = 10;  // x the chance level and the best loss
constexpr double kConvergedAccuracy = 0.99;         // mean batch accuracy
constexpr double kConvergedGradNormFraction = 0.1;  // of the peak norm
constexpr double kVanishedFraction = 0.99;          // zero or subnormal
constexpr double kNoiseStandardErrors = 3.0;
// The diagnosis horizon follows LOSS_NOT_DECREASING's window up to here.
constexpr size_t kMaxHorizon = 1000;
// Half of the longest window the loss trend is measured over: a slow but
// steady fall hides in the noise of a short window.
constexpr size_t kMinTrendHalf = 50;

bool IsReluFamily(v1::Activation activation) {
  return activation == v1::RELU || activation == v1::LEAKY_RELU ||
         activation == v1::ELU || activation == v1::GELU;
}

// Units of these saturate before f' reaches exactly 0, so their "dead"
// units are the far end of saturation.
bool IsSaturating(v1::Activation activation) {
  return activation == v1::SIGMOID || activation == v1::TANH;
}

const v1::TensorStats* WeightsOf(const v1::LayerStats& layer) {
  for (const v1::TensorStats& t : layer.params()) {
    if (t.name() == "weights") return &t;
  }
  return nullptr;
}

uint64_t NonFiniteGradients(const v1::TensorStats& t) {
  return t.grad_nan_count() + t.grad_inf_count();
}

uint32_t ForSteps(const v1::RuleConfig& config) {
  return std::max<uint32_t>(config.for_steps(), 1);
}

// A firing rule keeps firing until its condition has failed on this many
// consecutive evaluations (or for_steps, if larger): a figure oscillating
// around its threshold would otherwise fire and clear every other step.
constexpr uint32_t kMinClearSteps = 10;

uint32_t ClearAfter(const v1::RuleConfig& config) {
  return std::max(ForSteps(config), kMinClearSteps);
}

v1::RuleConfig::Action ActionOf(v1::HealthRule rule,
                                const v1::RuleConfig& config) {
  if (config.action() != v1::RuleConfig::ACTION_UNSPECIFIED) {
    return config.action();
  }
  return rule == v1::EXPLODING_TENSOR ? v1::RuleConfig::STOP_JOB
                                      : v1::RuleConfig::NONE;
}

std::string Percent(double fraction) {
  return absl::StrCat(100 * fraction, "%");
}

}  // namespace

double ChanceLevelLoss(v1::Loss loss, const Dataset& train) {
  if (train.rows <= 0) return 0;
  const double rows = static_cast<double>(train.rows);
  if (loss == v1::MSE) {
    const int width = train.target_width;
    if (width <= 0) return 0;
    double total = 0;
    for (int j = 0; j < width; ++j) {
      double mean = 0;
      for (int64_t r = 0; r < train.rows; ++r) {
        mean += train.targets[r * width + j];
      }
      mean /= rows;
      double variance = 0;
      for (int64_t r = 0; r < train.rows; ++r) {
        const double d = train.targets[r * width + j] - mean;
        variance += d * d;
      }
      total += variance / rows;
    }
    return total / width;
  }
  // Cross-entropy of the label frequencies p: -sum p log p (the binary
  // entropy of the positive rate for BINARY_CROSS_ENTROPY).
  int32_t max_label = 0;
  for (int32_t label : train.labels) max_label = std::max(max_label, label);
  std::vector<int64_t> counts(static_cast<size_t>(max_label) + 1, 0);
  for (int32_t label : train.labels) {
    if (label >= 0) ++counts[label];
  }
  double entropy = 0;
  for (int64_t count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / rows;
    entropy -= p * std::log(p);
  }
  return entropy;
}

HealthMonitor::HealthMonitor(const v1::JobSpec& spec, int input_features,
                             double chance_loss)
    : rules_(spec.monitoring().rules()),
      chance_loss_(chance_loss),
      loss_window_(
          std::max<uint32_t>(rules_.loss_not_decreasing().for_steps(), 2)),
      horizon_(std::min(loss_window_, kMaxHorizon)),
      trend_half_(std::max(horizon_, kMinTrendHalf)),
      losses_(std::max(loss_window_, 2 * trend_half_)),
      accuracies_(horizon_),
      grad_norms_(horizon_) {
  uint32_t fan_in = static_cast<uint32_t>(std::max(input_features, 0));
  const auto& specs = spec.model().layers();
  layers_.resize(specs.size());
  for (int l = 0; l < specs.size(); ++l) {
    LayerState& s = layers_[l];
    s.name = specs[l].name().empty() ? absl::StrCat(l) : specs[l].name();
    s.activation = specs[l].activation() == v1::ACTIVATION_UNSPECIFIED
                       ? v1::LINEAR
                       : specs[l].activation();
    s.fan_in = fan_in;
    s.fan_out = specs[l].units();
    s.saturated_history = ValueWindow(trend_half_);
    fan_in = specs[l].units();
  }
}

HealthMonitor::Transition HealthMonitor::Advance(bool condition,
                                                 uint32_t fire_after,
                                                 uint32_t clear_after,
                                                 Hysteresis& h) {
  h.run = condition != h.firing ? h.run + 1 : 0;
  if (!h.firing && h.run >= fire_after) {
    h = Hysteresis{true, 0};
    return Transition::kFired;
  }
  if (h.firing && h.run >= clear_after) {
    h = Hysteresis{false, 0};
    return Transition::kCleared;
  }
  return Transition::kNone;
}

void HealthMonitor::Report(v1::HealthRule rule, const v1::RuleConfig& config,
                           Transition transition, int layer, double value,
                           double threshold, std::string message,
                           std::vector<v1::Alert>* alerts) {
  const bool fired = transition == Transition::kFired;
  v1::Alert& alert = alerts->emplace_back();
  alert.set_rule(rule);
  alert.set_layer(layer);
  if (layer >= 0) alert.set_layer_name(layers_[layer].name);
  alert.set_firing(fired);
  alert.set_value(value);
  alert.set_threshold(threshold);
  alert.set_action(ActionOf(rule, config));
  alert.set_message(std::move(message));
  if (fired && alert.action() == v1::RuleConfig::STOP_JOB &&
      stop_reason_.empty()) {
    stop_reason_ =
        absl::StrCat(v1::HealthRule_Name(rule), ": ", alert.message());
  }
}

std::string HealthMonitor::LayerLabel(int layer) const {
  const std::string& name = layers_[layer].name;
  return name == absl::StrCat(layer)
             ? absl::StrCat("layer ", layer)
             : absl::StrCat("layer ", layer, " (", name, ")");
}

void HealthMonitor::Observe(const v1::StepStats& stats,
                            std::vector<v1::Alert>* alerts) {
  RecordDivergence(stats);
  EvaluateJobRules(stats, alerts);
  if (!stats.layers().empty() && !initialization_checked_) {
    initialization_checked_ = true;
    CheckInitialization(stats, alerts);
  }
  for (const v1::LayerStats& layer : stats.layers()) {
    if (layer.index() < layers_.size()) EvaluateLayerRules(layer, alerts);
  }
  UpdateDiagnosis(stats);
}

void HealthMonitor::RecordDivergence(const v1::StepStats& stats) {
  if (diverged_) return;
  // The first non-finite tensor in computation order is where it started:
  // forward through the layers, the loss, then backward.
  std::string tensor;
  for (const v1::LayerStats& layer : stats.layers()) {
    if (layer.z_nonfinite_count() > 0) {
      tensor = absl::StrCat("layers[", layer.index(), "].z");
      break;
    }
  }
  if (tensor.empty() && !std::isfinite(stats.loss())) tensor = "loss";
  for (int l = stats.layers_size() - 1; tensor.empty() && l >= 0; --l) {
    const v1::LayerStats& layer = stats.layers(l);
    for (const v1::TensorStats& t : layer.params()) {
      if (NonFiniteGradients(t) > 0) {
        tensor =
            absl::StrCat("layers[", layer.index(), "].", t.name(), ".grad");
        break;
      }
    }
  }
  if (tensor.empty() && !std::isfinite(stats.grad_norm())) {
    tensor = "grad_norm";
  }
  if (tensor.empty()) return;
  diverged_ = true;
  diverged_step_ = stats.step();
  diverged_tensor_ = std::move(tensor);
}

void HealthMonitor::EvaluateJobRules(const v1::StepStats& stats,
                                     std::vector<v1::Alert>* alerts) {
  losses_.Push(stats.loss());
  accuracies_.Push(stats.accuracy());
  grad_norms_.Push(stats.grad_norm());
  if (std::isfinite(stats.grad_norm())) {
    peak_grad_norm_ = std::max(peak_grad_norm_, stats.grad_norm());
  }
  if (std::isfinite(stats.loss())) {
    min_loss_ = std::min(min_loss_, stats.loss());
  }

  const v1::RuleConfig& exploding = rules_.exploding_tensor();
  if (!exploding.disabled()) {
    const bool loss_bad = !std::isfinite(stats.loss());
    const bool norm_bad = !std::isfinite(stats.grad_norm());
    const int count = loss_bad + norm_bad;
    const Transition t = Advance(count > 0, ForSteps(exploding),
                                 ClearAfter(exploding), job_exploding_);
    if (t != Transition::kNone) {
      Report(v1::EXPLODING_TENSOR, exploding, t, -1, count, 0,
             t == Transition::kFired
                 ? absl::StrCat("non-finite ", loss_bad ? "loss " : "",
                                loss_bad && norm_bad ? "and " : "",
                                norm_bad ? "gradient norm " : "", "at step ",
                                stats.step(), " (loss ", stats.loss(),
                                ", gradient norm ", stats.grad_norm(), ")")
                 : "loss and gradient norm finite again",
             alerts);
    }
  }

  const v1::RuleConfig& flat = rules_.loss_not_decreasing();
  if (flat.disabled() || losses_.size() < loss_window_) return;
  const size_t half = loss_window_ / 2;
  double first = 0, last = 0, variance = 0;
  losses_.MeanVariance(loss_window_ - half, half, &first, &variance);
  losses_.MeanVariance(0, half, &last, &variance);
  if (!std::isfinite(first) || !std::isfinite(last)) return;
  const double scale = std::abs(first);
  const double fell_percent = scale > 0 ? 100 * (first - last) / scale : 0;
  const Transition t =
      Advance(fell_percent < flat.threshold(), 1, ClearAfter(flat), loss_flat_);
  if (t == Transition::kNone) return;
  Report(v1::LOSS_NOT_DECREASING, flat, t, -1, fell_percent, flat.threshold(),
         absl::StrCat("loss fell ", fell_percent, "% over the last ",
                      loss_window_, " steps (mean of the first ", half,
                      " vs the last ", half, ": ", first, " -> ", last, "), ",
                      t == Transition::kFired ? "less than " : "at least ",
                      flat.threshold(), "%"),
         alerts);
}

void HealthMonitor::EvaluateLayerRules(const v1::LayerStats& layer,
                                       std::vector<v1::Alert>* alerts) {
  const int l = static_cast<int>(layer.index());
  LayerState& s = layers_[l];
  s.saturated_history.Push(layer.saturated_ratio());
  const v1::TensorStats* weights = WeightsOf(layer);

  // One ratio rule (dead or saturated units) with its messages.
  auto ratio_rule = [&](v1::HealthRule rule, const v1::RuleConfig& config,
                        double ratio, const char* what, Hysteresis& h) {
    if (config.disabled()) return;
    const Transition t = Advance(ratio > config.threshold(), ForSteps(config),
                                 ClearAfter(config), h);
    if (t == Transition::kNone) return;
    Report(rule, config, t, l, ratio, config.threshold(),
           absl::StrCat(LayerLabel(l), ": ", Percent(ratio), " of units ", what,
                        " on the batch, ",
                        t == Transition::kFired ? "above " : "back to at most ",
                        Percent(config.threshold())),
           alerts);
  };
  ratio_rule(v1::DEAD_RELU, rules_.dead_relu(), layer.dead_ratio(),
             "dead (f'(z) = 0 for every sample)", s.dead);
  ratio_rule(v1::SATURATED_ACTIVATION, rules_.saturated_activation(),
             layer.saturated_ratio(), "saturated", s.saturated);

  const v1::RuleConfig& exploding = rules_.exploding_tensor();
  if (!exploding.disabled()) {
    uint64_t grads = 0;
    for (const v1::TensorStats& t : layer.params()) {
      grads += NonFiniteGradients(t);
    }
    const uint64_t count = layer.z_nonfinite_count() + grads;
    const Transition t = Advance(count > 0, ForSteps(exploding),
                                 ClearAfter(exploding), s.exploding);
    if (t != Transition::kNone) {
      Report(
          v1::EXPLODING_TENSOR, exploding, t, l, static_cast<double>(count), 0,
          t == Transition::kFired
              ? absl::StrCat(
                    LayerLabel(l), ": ", count, " non-finite values (Z: ",
                    layer.z_nonfinite_count(), ", gradients: ", grads, ")")
              : absl::StrCat(LayerLabel(l), ": Z and gradients finite again"),
          alerts);
    }
  }
  if (weights == nullptr) return;

  const v1::RuleConfig& vanishing = rules_.vanishing_gradient();
  if (!vanishing.disabled()) {
    const double g = weights->grad_mean_abs();
    const Transition t = Advance(g < vanishing.threshold(), ForSteps(vanishing),
                                 ClearAfter(vanishing), s.vanishing);
    if (t != Transition::kNone) {
      Report(v1::VANISHING_GRADIENT, vanishing, t, l, g, vanishing.threshold(),
             absl::StrCat(LayerLabel(l), ": mean |dL/dW| ", g,
                          t == Transition::kFired ? " below " : " back to ",
                          vanishing.threshold()),
             alerts);
    }
  }

  const v1::RuleConfig& update = rules_.weight_update_ratio();
  if (!update.disabled()) {
    const double r = weights->update_ratio();
    const bool high = r > update.threshold();
    const bool low = r < update.threshold_low();
    const Transition t = Advance(high || low, ForSteps(update),
                                 ClearAfter(update), s.update_ratio);
    if (t == Transition::kFired) {
      s.update_bound = high ? update.threshold() : update.threshold_low();
    }
    if (t != Transition::kNone) {
      Report(v1::WEIGHT_UPDATE_RATIO, update, t, l, r, s.update_bound,
             absl::StrCat(LayerLabel(l), ": update ratio |dW|/|W| ", r,
                          t == Transition::kCleared ? " back within ["
                          : high                    ? " above "
                                                    : " below ",
                          t == Transition::kCleared
                              ? absl::StrCat(update.threshold_low(), ", ",
                                             update.threshold(), "]")
                              : absl::StrCat(s.update_bound)),
             alerts);
    }
  }

  const v1::RuleConfig& unchanged = rules_.unchanged_weights();
  if (!unchanged.disabled()) {
    const uint32_t n = ForSteps(unchanged);
    const uint32_t clear = ClearAfter(unchanged);
    const Transition t = Advance(weights->unchanged(), n, clear, s.unchanged);
    if (t != Transition::kNone) {
      const bool fired = t == Transition::kFired;
      Report(v1::UNCHANGED_WEIGHTS, unchanged, t, l, fired ? n : clear, n,
             absl::StrCat(LayerLabel(l), ": weights ",
                          fired ? "bit-identical" : "changing again", " for ",
                          fired ? n : clear, " consecutive steps"),
             alerts);
    }
  }
}

void HealthMonitor::CheckInitialization(const v1::StepStats& stats,
                                        std::vector<v1::Alert>* alerts) {
  const v1::RuleConfig& config = rules_.poor_weight_initialization();
  if (config.disabled()) return;
  for (const v1::LayerStats& layer : stats.layers()) {
    if (layer.index() >= layers_.size()) continue;
    const int l = static_cast<int>(layer.index());
    const LayerState& s = layers_[l];
    const v1::TensorStats* weights = WeightsOf(layer);
    if (weights != nullptr && weights->size() > 0 && s.fan_in > 0) {
      const bool he = IsReluFamily(s.activation);
      const double reference =
          he ? std::sqrt(2.0 / s.fan_in)
             : std::sqrt(2.0 / (static_cast<double>(s.fan_in) + s.fan_out));
      // The norm is taken after the first update; with r = |dW| / |W0|,
      // |W| / (1 + r) <= |W0| <= |W| / (1 - r), so the rule fires only when
      // the initial weights were certainly out of range (a first update of
      // learning rate 1000 is not an initialization problem). r = 0 with a
      // change means |W0| = 0.
      const double rms = weights->weight_l2_norm() /
                         std::sqrt(static_cast<double>(weights->size()));
      const double r = weights->update_ratio();
      const bool was_zero = r == 0 && !weights->unchanged();
      const double lowest = was_zero ? 0 : rms / (1 + r);
      const double highest = was_zero ? 0
                             : r < 1  ? rms / (1 - r)
                                      : std::numeric_limits<double>::infinity();
      const bool high = lowest / reference > config.threshold();
      if (high || highest / reference < config.threshold_low()) {
        const double initial = high ? lowest : highest;
        const double bound = high ? config.threshold() : config.threshold_low();
        Report(v1::POOR_WEIGHT_INITIALIZATION, config, Transition::kFired, l,
               initial / reference, bound,
               absl::StrCat(LayerLabel(l), ": initial weight std ",
                            high ? "at least " : "at most ", initial, ", ",
                            initial / reference, "x the ", he ? "He" : "Xavier",
                            " reference ", reference, " (fan_in ", s.fan_in,
                            he ? "" : absl::StrCat(", fan_out ", s.fan_out),
                            "), ", high ? "above " : "below ", bound, "x"),
               alerts);
        continue;
      }
    }
    // A STEP layer is dead by definition, not by its initialization.
    const bool dead = layer.dead_ratio() >= 1 && s.activation != v1::STEP;
    if (dead || layer.saturated_ratio() >= 1) {
      Report(v1::POOR_WEIGHT_INITIALIZATION, config, Transition::kFired, l, 1,
             1,
             absl::StrCat(LayerLabel(l), ": every unit ",
                          dead ? "dead" : "saturated",
                          " on the first batch (z_mean ", layer.z_mean(),
                          ", z_std ", layer.z_std(), ")"),
             alerts);
    }
  }
}

HealthMonitor::Verdict HealthMonitor::Judge(const v1::StepStats& stats) const {
  Verdict v;
  v.step = stats.step();
  const size_t n = losses_.size();
  if (n >= horizon_) {
    v.loss_mean = losses_.Mean(horizon_);
    v.accuracy_mean = accuracies_.Mean(horizon_);
    v.grad_norm_fraction =
        peak_grad_norm_ > 0 ? grad_norms_.Mean(horizon_) / peak_grad_norm_ : 1;
    if (chance_loss_ > 0 && v.loss_mean > kBlowUpFactor * chance_loss_ &&
        v.loss_mean > kBlowUpFactor * min_loss_) {
      v.diagnosis = v1::DIVERGED;
      v.evidence = Evidence::kLossBlowUp;
      return v;
    }
    if (chance_loss_ > 0 &&
        v.loss_mean < kConvergedLossFraction * chance_loss_) {
      v.diagnosis = v1::CONVERGED;
      v.evidence = Evidence::kLossLevel;
      return v;
    }
    if (v.accuracy_mean >= kConvergedAccuracy &&
        v.grad_norm_fraction <= kConvergedGradNormFraction) {
      v.diagnosis = v1::CONVERGED;
      v.evidence = Evidence::kAccuracy;
      return v;
    }
  }

  // Has learning stopped? Either no weights moved at all, or the loss did
  // not fall by the rule's threshold and by more than its noise between
  // the two halves of the trend window.
  bool any_weights = false;
  for (const v1::LayerStats& layer : stats.layers()) {
    const v1::TensorStats* weights = WeightsOf(layer);
    if (weights == nullptr) continue;
    any_weights = true;
    v.max_update_ratio = std::max(v.max_update_ratio, weights->update_ratio());
  }
  v.frozen = any_weights &&
             v.max_update_ratio < rules_.weight_update_ratio().threshold_low();
  bool flat = false;
  if (n >= 2 * trend_half_) {
    const size_t half = trend_half_;
    v.trend_half = half;
    double first = 0, first_var = 0, last = 0, last_var = 0;
    losses_.MeanVariance(half, half, &first, &first_var);
    losses_.MeanVariance(0, half, &last, &last_var);
    const double scale = std::abs(first);
    if (scale > 0) {
      v.loss_change_percent = 100 * (first - last) / scale;
      v.loss_noise_percent =
          100 * kNoiseStandardErrors *
          std::sqrt((first_var + last_var) / static_cast<double>(half)) / scale;
    }
    flat =
        !(v.loss_change_percent >= rules_.loss_not_decreasing().threshold() &&
          v.loss_change_percent > v.loss_noise_percent);
  }
  if (!v.frozen && !flat) {
    v.evidence =
        n >= 2 * trend_half_ ? Evidence::kDecreasing : Evidence::kTooEarly;
    return v;
  }

  // Learning has stopped. Far below the chance level, the net has learned
  // what it could: a minimum.
  if (chance_loss_ > 0 && n >= horizon_ &&
      v.loss_mean <= kSettledLossFraction * chance_loss_) {
    v.diagnosis = v1::CONVERGED;
    v.evidence = Evidence::kPlateau;
    return v;
  }
  // Near it, the net is stuck: find the layer that explains it. The first
  // of several dead layers is usually what killed the ones after it.
  int dead_over = 0, saturated_over = 0;
  for (const v1::LayerStats& layer : stats.layers()) {
    if (layer.index() >= layers_.size()) continue;
    const int l = static_cast<int>(layer.index());
    const ValueWindow& history = layers_[l].saturated_history;
    v.saturation_window = std::min(history.size(), trend_half_);
    const double saturated = history.Mean(v.saturation_window);
    saturated_over += saturated > rules_.saturated_activation().threshold();
    if (saturated > v.max_saturated) {
      v.max_saturated = saturated;
      v.max_saturated_layer = l;
    }
    if (IsSaturating(layers_[l].activation)) continue;
    dead_over += layer.dead_window_ratio() > rules_.dead_relu().threshold();
    if (layer.dead_window_ratio() > v.max_dead) {
      v.max_dead = layer.dead_window_ratio();
      v.max_dead_layer = l;
    }
  }
  if (dead_over > 0) {
    v.diagnosis = v1::STALLED_DEAD_UNITS;
    v.evidence = Evidence::kDeadLayer;
    v.layer = v.max_dead_layer;
    v.layer_value = v.max_dead;
    v.layers_over = dead_over;
    return v;
  }
  if (saturated_over > 0) {
    v.diagnosis = v1::STALLED_SATURATION;
    v.evidence = Evidence::kSaturatedLayer;
    v.layer = v.max_saturated_layer;
    v.layer_value = v.max_saturated;
    v.layers_over = saturated_over;
    return v;
  }
  for (const v1::LayerStats& layer : stats.layers()) {
    const v1::TensorStats* w = WeightsOf(layer);
    if (w == nullptr || w->size() == 0 || layer.index() >= layers_.size()) {
      continue;
    }
    const double vanished =
        w->grad_zero_fraction() +
        static_cast<double>(w->grad_subnormal_count()) / w->size();
    // A nonzero gradient whose update leaves the weights bit-identical is
    // below their f32 resolution: lost to rounding as surely as a zero.
    const bool rounded_away = w->unchanged() && w->grad_mean_abs() > 0;
    if (vanished >= kVanishedFraction ||
        w->grad_mean_abs() < rules_.vanishing_gradient().threshold() ||
        rounded_away) {
      v.diagnosis = v1::STALLED_UNDERFLOW;
      v.evidence = Evidence::kVanishedGradient;
      v.layer = static_cast<int>(layer.index());
      v.layer_value = vanished;
      v.grad_mean_abs = w->grad_mean_abs();
      v.rounded_away = rounded_away;
      return v;
    }
  }
  v.evidence = Evidence::kUnexplainedPlateau;
  return v;
}

void HealthMonitor::UpdateDiagnosis(const v1::StepStats& stats) {
  if (diverged_) {
    verdict_ = Verdict{};
    verdict_.diagnosis = v1::DIVERGED;
    verdict_.evidence = Evidence::kDiverged;
    verdict_.step = diverged_step_;
    return;
  }
  Verdict candidate = Judge(stats);
  if (candidate.diagnosis == verdict_.diagnosis) {
    verdict_ = candidate;
    pending_run_ = 0;
    return;
  }
  pending_run_ = pending_run_ > 0 && candidate.diagnosis == pending_.diagnosis
                     ? pending_run_ + 1
                     : 1;
  pending_ = candidate;
  if (pending_run_ >= horizon_) {
    verdict_ = pending_;
    pending_run_ = 0;
  }
}

std::string HealthMonitor::diagnosis_reason() const {
  const Verdict& v = verdict_;
  const std::string level =
      chance_loss_ > 0
          ? absl::StrCat("mean loss ", v.loss_mean, " over the last ", horizon_,
                         " steps is ", Percent(v.loss_mean / chance_loss_),
                         " of the chance level ", chance_loss_)
          : absl::StrCat("mean loss ", v.loss_mean, " over the last ", horizon_,
                         " steps");
  const std::string stopped =
      v.frozen
          ? absl::StrCat("no layer's weights moved: largest update ratio ",
                         v.max_update_ratio, " < ",
                         rules_.weight_update_ratio().threshold_low())
          : absl::StrCat("the mean loss fell ", v.loss_change_percent,
                         "% between the two halves of the last ",
                         2 * v.trend_half, " steps, less than ",
                         rules_.loss_not_decreasing().threshold(),
                         "% or than the noise (", v.loss_noise_percent, "%)");
  const std::string layer = v.layer >= 0 ? LayerLabel(v.layer) : "";
  switch (v.evidence) {
    case Evidence::kTooEarly:
      return absl::StrCat("fewer than ", 2 * trend_half_,
                          " steps observed: too early to tell whether "
                          "learning has stopped");
    case Evidence::kDiverged:
      return absl::StrCat("a NaN or Inf appeared in ", diverged_tensor_,
                          " at step ", diverged_step_);
    case Evidence::kLossBlowUp:
      return absl::StrCat("the loss blew up: ", level, ", over ", kBlowUpFactor,
                          "x both the chance level and the "
                          "lowest loss so far (",
                          min_loss_, ")");
    case Evidence::kLossLevel:
      return absl::StrCat(level, ", below ", Percent(kConvergedLossFraction));
    case Evidence::kPlateau:
      return absl::StrCat("learning has stopped (", stopped,
                          ") far below the chance level, at a minimum: ", level,
                          ", at most ", Percent(kSettledLossFraction));
    case Evidence::kAccuracy:
      return absl::StrCat(
          "mean training accuracy ", v.accuracy_mean, " over the last ",
          horizon_, " steps with the gradient norm at ",
          Percent(v.grad_norm_fraction), " of its peak; ", level);
    case Evidence::kDecreasing:
      return absl::StrCat("the mean loss fell ", v.loss_change_percent,
                          "% between the two halves of the last ",
                          2 * v.trend_half, " steps (noise ",
                          v.loss_noise_percent, "%); ", level);
    case Evidence::kDeadLayer:
      return absl::StrCat(
          "learning has stopped (", stopped, ") and ", layer, " has ",
          Percent(v.layer_value),
          " of its units dead on every batch of the dead window",
          v.layer_value >= 1
              ? ": a wholly dead layer passes no gradient to the layers "
                "before it"
              : "",
          v.layers_over > 1
              ? absl::StrCat(" (", v.layers_over, " layers above ",
                             Percent(rules_.dead_relu().threshold()), ")")
              : "",
          "; ", level);
    case Evidence::kSaturatedLayer:
      return absl::StrCat(
          "learning has stopped (", stopped, ") and ", layer, " has ",
          Percent(v.layer_value),
          " of its units saturated on average over the last ",
          v.saturation_window, " steps",
          v.layers_over > 1
              ? absl::StrCat(" (", v.layers_over, " layers above ",
                             Percent(rules_.saturated_activation().threshold()),
                             ")")
              : "",
          "; ", level);
    case Evidence::kVanishedGradient:
      return absl::StrCat(
          "learning has stopped (", stopped, ") and the weight gradient of ",
          layer, " has vanished without dead or saturated units: ",
          Percent(v.layer_value),
          " of its entries zero or subnormal, mean |g| ", v.grad_mean_abs,
          v.rounded_away ? ", updates too small to change any f32 weight" : "",
          "; ", level);
    case Evidence::kUnexplainedPlateau: {
      std::string closest;
      if (v.max_dead_layer >= 0 && v.max_dead > 0) {
        absl::StrAppend(&closest, "; most dead: ", LayerLabel(v.max_dead_layer),
                        " with ", Percent(v.max_dead));
      }
      if (v.max_saturated_layer >= 0 && v.max_saturated > 0) {
        absl::StrAppend(&closest,
                        "; most saturated: ", LayerLabel(v.max_saturated_layer),
                        " with ", Percent(v.max_saturated));
      }
      return absl::StrCat("learning has stopped (", stopped,
                          ") but no dead, saturated or underflowing layer "
                          "explains it",
                          closest, "; ", level);
    }
  }
  return "";
}

void HealthMonitor::FillSummary(v1::Summary* summary) const {
  summary->set_diagnosis(diagnosis());
  summary->set_diagnosis_reason(diagnosis_reason());
  if (diverged_) {
    summary->set_diverged_step(diverged_step_);
    summary->set_diverged_tensor(diverged_tensor_);
  }
}

}  // namespace gradwatch::engine
