#include "engine/spec_validation.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/csv_data.h"
#include "engine/dataset.h"
#include "engine/spec_defaults.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;

// Validation reports the first violation it finds.
#define GW_RETURN_IF_ERROR(expr)                                      \
  do {                                                                \
    if (absl::Status status_ = (expr); !status_.ok()) return status_; \
  } while (false)

constexpr int64_t kMaxExamples = 1000000;
constexpr int64_t kMaxWidth = 65536;
constexpr uint64_t kBillion = 1000000000;

template <typename... Args>
absl::Status Invalid(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}

// Shortest decimal form that reads back as the same value, so that an
// out-of-range value is never shown rounded into its range.
template <typename T>
std::string Num(T value) {
  if constexpr (std::is_integral_v<T>) {
    return absl::StrCat(value);
  } else {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    // Whole numbers print in full: 1000000000, not 1e+09.
    if (std::abs(value) < 1e15 && std::trunc(value) == value) {
      return absl::StrCat(static_cast<int64_t>(value));
    }
    char buffer[48];
    for (int digits = 6; digits <= std::numeric_limits<T>::max_digits10;
         ++digits) {
      std::snprintf(buffer, sizeof(buffer), "%.*g", digits,
                    static_cast<double>(value));
      if (static_cast<T>(std::strtod(buffer, nullptr)) == value) break;
    }
    return buffer;
  }
}

template <typename T>
struct Same {
  using type = T;
};

enum class Ends { kClosed, kOpenLow, kOpenHigh, kOpen };

// `path must be in [lo, hi], got value`; NaN is never in range.
template <typename T>
absl::Status CheckRange(absl::string_view path, T value,
                        typename Same<T>::type lo, typename Same<T>::type hi,
                        Ends ends = Ends::kClosed,
                        absl::string_view suffix = "") {
  const bool open_low = ends == Ends::kOpenLow || ends == Ends::kOpen;
  const bool open_high = ends == Ends::kOpenHigh || ends == Ends::kOpen;
  const bool low_ok = open_low ? value > lo : value >= lo;
  const bool high_ok = open_high ? value < hi : value <= hi;
  if (low_ok && high_ok) return absl::OkStatus();
  return Invalid(path, " must be in ", open_low ? "(" : "[", Num(lo), ", ",
                 Num(hi), open_high ? ")" : "]", ", got ", Num(value), suffix);
}

template <typename T>
absl::Status CheckFinite(absl::string_view path,
                         const google::protobuf::RepeatedField<T>& values) {
  for (int i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return Invalid(path, "[", i, "] must be finite, got ", Num(values[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckEnum(absl::string_view path, int value, bool valid) {
  if (valid) return absl::OkStatus();
  return Invalid(path, " has unknown value ", value);
}

std::string Indexed(absl::string_view path, int64_t index) {
  return absl::StrCat(path, "[", index, "]");
}

std::string Quote(absl::string_view text) {
  constexpr size_t kShown = 40;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kShown)),
                      text.size() > kShown ? "...\"" : "\"");
}

const char* DefaultNote(bool is_default) {
  return is_default ? " (default)" : "";
}

bool HasBatchNorm(const v1::LayerSpec& layer) {
  return layer.batch_norm() == v1::LayerSpec::BEFORE_ACTIVATION ||
         layer.batch_norm() == v1::LayerSpec::AFTER_ACTIVATION;
}

// The spec without its examples and initial weights, with defaults filled:
// what the cross-field rules compare against, cheap to build.
v1::JobSpec ResolvedConfig(const v1::JobSpec& spec, int64_t train_rows) {
  v1::JobSpec shell;
  v1::DataSpec& data = *shell.mutable_data();
  if (spec.data().has_synthetic()) {
    *data.mutable_synthetic() = spec.data().synthetic();
  }
  data.set_validation_fraction(spec.data().validation_fraction());
  *shell.mutable_model()->mutable_layers() = spec.model().layers();
  shell.set_loss(spec.loss());
  *shell.mutable_optimizer() = spec.optimizer();
  *shell.mutable_training() = spec.training();
  *shell.mutable_monitoring() = spec.monitoring();
  return WithDefaults(shell, train_rows);
}

// ---------------------------------------------------------------- job

absl::Status CheckNameAndLabels(const v1::JobSpec& spec) {
  int64_t chars = 0;  // UTF-8 code points
  for (char c : spec.name()) chars += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  if (chars > 128) {
    return Invalid("name must be at most 128 characters, got ", chars);
  }
  GW_RETURN_IF_ERROR(CheckRange("labels count", spec.labels_size(), 0, 16));
  // Map order is unspecified; sorting keeps the reported error stable.
  std::map<std::string, std::string> labels(spec.labels().begin(),
                                            spec.labels().end());
  for (const auto& [key, value] : labels) {
    bool key_ok = !key.empty() && key.size() <= 63 &&
                  absl::ascii_islower(static_cast<unsigned char>(key[0]));
    for (char c : key) {
      const auto u = static_cast<unsigned char>(c);
      key_ok = key_ok &&
               (absl::ascii_islower(u) || absl::ascii_isdigit(u) || c == '_');
    }
    if (!key_ok) {
      return Invalid("labels key ", Quote(key),
                     " must match [a-z][a-z0-9_]{0,62}");
    }
    const std::string path = absl::StrCat("labels[\"", key, "\"]");
    if (value.size() > 128) {
      return Invalid(path, " must be at most 128 characters, got ",
                     value.size());
    }
    for (char c : value) {
      if (c < 0x20 || c > 0x7e) {
        return Invalid(path, " must be printable ASCII, got ", Quote(value));
      }
    }
  }
  if (!v1::Loss_IsValid(spec.loss())) {
    return Invalid("loss has unknown value ", spec.loss());
  }
  if (spec.loss() == v1::LOSS_UNSPECIFIED) {
    return Invalid(
        "loss must be set (CROSS_ENTROPY, MSE or "
        "BINARY_CROSS_ENTROPY)");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- data

absl::Status CheckSynthetic(const v1::SyntheticData& synthetic) {
  using S = v1::SyntheticData;
  GW_RETURN_IF_ERROR(CheckEnum("data.synthetic.kind", synthetic.kind(),
                               S::Kind_IsValid(synthetic.kind())));
  if (synthetic.kind() == S::KIND_UNSPECIFIED) {
    return Invalid(
        "data.synthetic.kind must be set (SPIRALS, XOR, MOONS, "
        "CIRCLES, BLOBS or TEACHER_STUDENT)");
  }
  const std::string kind = S::Kind_Name(synthetic.kind());
  if (synthetic.samples() != 0) {
    GW_RETURN_IF_ERROR(CheckRange("data.synthetic.samples", synthetic.samples(),
                                  4, kMaxExamples));
  }
  const bool planar =
      synthetic.kind() != S::BLOBS && synthetic.kind() != S::TEACHER_STUDENT;
  if (planar && synthetic.features() != 0 && synthetic.features() != 2) {
    return Invalid("data.synthetic.features must be 0 or 2 for ", kind,
                   ", got ", synthetic.features());
  }
  if (!planar && synthetic.features() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("data.synthetic.features", synthetic.features(), 1, 4096));
  }
  const uint32_t classes = synthetic.classes();
  if (classes != 0) {
    if (synthetic.kind() == S::SPIRALS || synthetic.kind() == S::BLOBS) {
      GW_RETURN_IF_ERROR(
          CheckRange("data.synthetic.classes", classes, 2, 1000));
    } else if (synthetic.kind() == S::TEACHER_STUDENT) {
      GW_RETURN_IF_ERROR(
          CheckRange("data.synthetic.classes", classes, 1, 1024));
    } else if (classes != 2) {
      return Invalid("data.synthetic.classes must be 0 or 2 for ", kind,
                     ", got ", classes);
    }
  }
  return CheckRange("data.synthetic.noise", synthetic.noise(), 0.0f, 10.0f);
}

absl::Status CheckInlineShapes(const v1::InlineData& data) {
  const int count = data.examples_size();
  GW_RETURN_IF_ERROR(
      CheckRange("data.inline.examples count", count, 2, kMaxExamples));
  const int width = data.examples(0).x_size();
  GW_RETURN_IF_ERROR(
      CheckRange("data.inline.examples[0].x size", width, 1, kMaxWidth));
  for (int i = 0; i < count; ++i) {
    const v1::Example& example = data.examples(i);
    const std::string path = Indexed("data.inline.examples", i);
    if (example.x_size() != width) {
      return Invalid(path, ".x must have ", width,
                     " values, as data.inline.examples[0].x, got ",
                     example.x_size());
    }
    GW_RETURN_IF_ERROR(CheckFinite(path + ".x", example.x()));
    GW_RETURN_IF_ERROR(CheckFinite(path + ".y", example.y()));
  }
  return absl::OkStatus();
}

absl::Status CheckDataFields(const v1::DataSpec& data) {
  switch (data.source_case()) {
    case v1::DataSpec::kSynthetic:
      GW_RETURN_IF_ERROR(CheckSynthetic(data.synthetic()));
      break;
    case v1::DataSpec::kInline:
      GW_RETURN_IF_ERROR(CheckInlineShapes(data.inline_()));
      break;
    case v1::DataSpec::kCsv:
      break;  // parsed once the model is known to be valid
    default:
      return Invalid("data.source must be set (synthetic, inline or csv)");
  }
  return CheckRange("data.validation_fraction", data.validation_fraction(), 0.0,
                    0.5);
}

// ---------------------------------------------------------------- model

absl::Status CheckLayer(const v1::LayerSpec& layer,
                        const v1::LayerSpec& resolved, const std::string& path,
                        bool is_output, v1::Loss loss) {
  const std::string& name = layer.name();
  const bool name_ok =
      name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
               c == '.' || c == '-';
      });
  if (!name_ok) {
    return Invalid(path, ".name must be at most 32 characters of ",
                   "[A-Za-z0-9_.-], got ", Quote(name));
  }
  GW_RETURN_IF_ERROR(CheckRange(path + ".units", layer.units(), 1, kMaxWidth));
  GW_RETURN_IF_ERROR(CheckEnum(path + ".activation", layer.activation(),
                               v1::Activation_IsValid(layer.activation())));
  const v1::Activation activation = resolved.activation();
  if (activation == v1::ACTIVATION_UNSPECIFIED) {
    return Invalid(path, ".activation must be set on a hidden layer");
  }
  const std::string activation_name = v1::Activation_Name(activation);
  if (is_output && loss != v1::MSE && activation != v1::LINEAR) {
    return Invalid(path, ".activation must be LINEAR (or unset) on the ",
                   "output layer with ", v1::Loss_Name(loss), " (the ",
                   loss == v1::CROSS_ENTROPY ? "softmax" : "sigmoid",
                   " is part of the loss), got ", activation_name);
  }
  if (layer.has_negative_slope()) {
    if (activation != v1::LEAKY_RELU) {
      return Invalid(path, ".negative_slope applies only to LEAKY_RELU, but ",
                     path, ".activation is ", activation_name);
    }
    GW_RETURN_IF_ERROR(CheckRange(path + ".negative_slope",
                                  layer.negative_slope(), 0.0f, 1.0f,
                                  Ends::kOpenHigh));
  }
  if (layer.has_elu_alpha()) {
    if (activation != v1::ELU) {
      return Invalid(path, ".elu_alpha applies only to ELU, but ", path,
                     ".activation is ", activation_name);
    }
    GW_RETURN_IF_ERROR(CheckRange(path + ".elu_alpha", layer.elu_alpha(), 0.0f,
                                  100.0f, Ends::kOpenLow));
  }
  GW_RETURN_IF_ERROR(
      CheckEnum(path + ".batch_norm", layer.batch_norm(),
                v1::LayerSpec::BatchNorm_IsValid(layer.batch_norm())));
  if (is_output && HasBatchNorm(layer)) {
    return Invalid(path, ".batch_norm is not allowed on the output layer, got ",
                   v1::LayerSpec::BatchNorm_Name(layer.batch_norm()));
  }
  const v1::InitSpec& init = layer.init();
  GW_RETURN_IF_ERROR(CheckEnum(path + ".init.scheme", init.scheme(),
                               v1::InitSpec::Scheme_IsValid(init.scheme())));
  if (init.has_gain()) {
    GW_RETURN_IF_ERROR(
        CheckRange(path + ".init.gain", init.gain(), -1000.0, 1000.0));
  }
  return CheckRange(path + ".init.bias", init.bias(), -1000.0, 1000.0);
}

absl::Status CheckModelFields(const v1::JobSpec& spec,
                              const v1::JobSpec& config) {
  const v1::ModelSpec& model = spec.model();
  GW_RETURN_IF_ERROR(
      CheckRange("model.layers count", model.layers_size(), 1, 64));
  std::map<std::string, int> first_use;  // resolved name -> layer index
  for (int i = 0; i < model.layers_size(); ++i) {
    const std::string path = Indexed("model.layers", i);
    const v1::LayerSpec& resolved = config.model().layers(i);
    GW_RETURN_IF_ERROR(CheckLayer(model.layers(i), resolved, path,
                                  i + 1 == model.layers_size(), spec.loss()));
    const auto [it, inserted] = first_use.emplace(resolved.name(), i);
    if (!inserted) {
      return Invalid(path, ".name ", Quote(resolved.name()),
                     DefaultNote(model.layers(i).name().empty()),
                     " duplicates model.layers[", it->second, "].name");
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- optimizer

// A field that only some kinds read: setting it elsewhere would be silently
// ignored, so it is rejected.
absl::Status OnlyFor(absl::string_view path, absl::string_view kinds,
                     absl::string_view kind_path, absl::string_view kind) {
  return Invalid(path, " applies only to ", kinds, ", but ", kind_path, " is ",
                 kind);
}

absl::Status CheckOptimizerFields(const v1::OptimizerSpec& optimizer,
                                  const v1::OptimizerSpec& resolved) {
  using O = v1::OptimizerSpec;
  GW_RETURN_IF_ERROR(CheckEnum("optimizer.kind", optimizer.kind(),
                               O::Kind_IsValid(optimizer.kind())));
  const O::Kind kind = resolved.kind();
  const std::string kind_name = O::Kind_Name(kind);
  const bool sgd = kind == O::SGD;
  const bool adam = kind == O::ADAM || kind == O::ADAMW;
  if (optimizer.learning_rate() != 0) {
    GW_RETURN_IF_ERROR(CheckRange("optimizer.learning_rate",
                                  optimizer.learning_rate(), 0.0, 1000.0,
                                  Ends::kOpenLow));
  }
  if (optimizer.momentum() != 0) {
    if (!sgd) {
      return OnlyFor("optimizer.momentum", "SGD", "optimizer.kind", kind_name);
    }
    GW_RETURN_IF_ERROR(CheckRange("optimizer.momentum", optimizer.momentum(),
                                  0.0, 1.0, Ends::kOpenHigh));
  }
  if (optimizer.nesterov()) {
    if (!sgd) {
      return OnlyFor("optimizer.nesterov", "SGD", "optimizer.kind", kind_name);
    }
    if (!(optimizer.momentum() > 0)) {
      return Invalid("optimizer.nesterov needs optimizer.momentum > 0, got ",
                     Num(optimizer.momentum()));
    }
  }
  const struct {
    const char* path;
    bool set;
    double value;
    bool applies;
    const char* kinds;
    Ends ends;
  } kind_fields[] = {
      {"optimizer.beta1", optimizer.has_beta1(), optimizer.beta1(), adam,
       "ADAM and ADAMW", Ends::kOpenHigh},
      {"optimizer.beta2", optimizer.has_beta2(), optimizer.beta2(), adam,
       "ADAM and ADAMW", Ends::kOpenHigh},
      {"optimizer.epsilon", optimizer.has_epsilon(), optimizer.epsilon(),
       adam || kind == O::RMSPROP, "ADAM, ADAMW and RMSPROP", Ends::kOpenLow},
      {"optimizer.rmsprop_alpha", optimizer.has_rmsprop_alpha(),
       optimizer.rmsprop_alpha(), kind == O::RMSPROP, "RMSPROP",
       Ends::kOpenHigh},
  };
  for (const auto& field : kind_fields) {
    if (!field.set) continue;
    if (!field.applies) {
      return OnlyFor(field.path, field.kinds, "optimizer.kind", kind_name);
    }
    GW_RETURN_IF_ERROR(
        CheckRange(field.path, field.value, 0.0, 1.0, field.ends));
  }
  GW_RETURN_IF_ERROR(CheckRange("optimizer.weight_decay",
                                optimizer.weight_decay(), 0.0, 1000.0));
  if (optimizer.has_decoupled_weight_decay()) {
    GW_RETURN_IF_ERROR(CheckRange("optimizer.decoupled_weight_decay",
                                  optimizer.decoupled_weight_decay(), 0.0,
                                  1000.0));
  }
  GW_RETURN_IF_ERROR(CheckRange("optimizer.clip_grad_norm",
                                optimizer.clip_grad_norm(), 0.0, 1e9));

  using Sc = v1::Schedule;
  const Sc& schedule = optimizer.schedule();
  GW_RETURN_IF_ERROR(CheckEnum("optimizer.schedule.kind", schedule.kind(),
                               Sc::Kind_IsValid(schedule.kind())));
  const std::string schedule_name = Sc::Kind_Name(resolved.schedule().kind());
  const bool step = resolved.schedule().kind() == Sc::STEP;
  if (schedule.step_size() != 0) {
    if (!step) {
      return OnlyFor("optimizer.schedule.step_size", "STEP",
                     "optimizer.schedule.kind", schedule_name);
    }
    GW_RETURN_IF_ERROR(CheckRange("optimizer.schedule.step_size",
                                  schedule.step_size(), 1, kBillion));
  }
  if (schedule.has_gamma()) {
    if (!step) {
      return OnlyFor("optimizer.schedule.gamma", "STEP",
                     "optimizer.schedule.kind", schedule_name);
    }
    GW_RETURN_IF_ERROR(CheckRange("optimizer.schedule.gamma", schedule.gamma(),
                                  0.0, 1.0, Ends::kOpenLow));
  }
  if (schedule.min_lr_fraction() != 0) {
    if (resolved.schedule().kind() != Sc::COSINE) {
      return OnlyFor("optimizer.schedule.min_lr_fraction", "COSINE",
                     "optimizer.schedule.kind", schedule_name);
    }
    GW_RETURN_IF_ERROR(CheckRange("optimizer.schedule.min_lr_fraction",
                                  schedule.min_lr_fraction(), 0.0, 1.0));
  }
  return absl::OkStatus();  // warmup_steps is checked against the steps
}

// ---------------------------------------------------------------- training

absl::Status CheckTrainingFields(const v1::TrainingSpec& training) {
  if (training.steps() != 0 && training.epochs() != 0) {
    return Invalid(
        "training.steps and training.epochs are both set; set "
        "exactly one (neither = 1000 steps)");
  }
  if (training.steps() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("training.steps", training.steps(), 1, kBillion));
  }
  if (training.epochs() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("training.epochs", training.epochs(), 1, 1000000));
  }
  if (training.batch_size() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("training.batch_size", training.batch_size(), 1, kMaxWidth));
  }
  GW_RETURN_IF_ERROR(
      CheckEnum("training.precision", training.precision(),
                v1::TrainingSpec::Precision_IsValid(training.precision())));
  return CheckRange("training.threads", training.threads(), 0, 256);
}

// ---------------------------------------------------------------- monitoring

struct RuleField {
  const char* name;
  const v1::RuleConfig& (v1::HealthRules::*get)() const;
  bool uses_threshold;
  bool uses_threshold_low;
};

constexpr RuleField kRuleFields[] = {
    {"dead_relu", &v1::HealthRules::dead_relu, true, false},
    {"saturated_activation", &v1::HealthRules::saturated_activation, true,
     false},
    {"vanishing_gradient", &v1::HealthRules::vanishing_gradient, true, false},
    {"exploding_tensor", &v1::HealthRules::exploding_tensor, false, false},
    {"weight_update_ratio", &v1::HealthRules::weight_update_ratio, true, true},
    {"unchanged_weights", &v1::HealthRules::unchanged_weights, false, false},
    {"loss_not_decreasing", &v1::HealthRules::loss_not_decreasing, true, false},
    {"poor_weight_initialization", &v1::HealthRules::poor_weight_initialization,
     true, true},
};

absl::Status CheckRule(const RuleField& field, const v1::RuleConfig& rule,
                       const v1::RuleConfig& resolved) {
  const std::string path = absl::StrCat("monitoring.rules.", field.name);
  if (rule.has_threshold()) {
    if (!field.uses_threshold) {
      return Invalid(path, ".threshold is not used by ", field.name,
                     " and must be unset");
    }
    if (!(std::isfinite(rule.threshold()) && rule.threshold() >= 0)) {
      return Invalid(path, ".threshold must be finite and >= 0, got ",
                     Num(rule.threshold()));
    }
  }
  if (rule.has_threshold_low()) {
    if (!field.uses_threshold_low) {
      return Invalid(path, ".threshold_low applies only to ",
                     "weight_update_ratio and poor_weight_initialization");
    }
    GW_RETURN_IF_ERROR(
        CheckRange(path + ".threshold_low", rule.threshold_low(), 0.0,
                   resolved.threshold(), Ends::kClosed,
                   absl::StrCat("; the upper bound is ", path, ".threshold",
                                DefaultNote(!rule.has_threshold()))));
  } else if (field.uses_threshold_low && rule.has_threshold() &&
             !(rule.threshold() >= resolved.threshold_low())) {
    // The default lower bound would exceed the upper one: the rule would
    // fire on every step whatever the ratio.
    return Invalid(path, ".threshold must be at least ",
                   Num(resolved.threshold_low()), " (", path,
                   ".threshold_low, default), got ", Num(rule.threshold()));
  }
  GW_RETURN_IF_ERROR(
      CheckRange(path + ".for_steps", rule.for_steps(), 0, 1000000));
  GW_RETURN_IF_ERROR(CheckEnum(path + ".action", rule.action(),
                               v1::RuleConfig::Action_IsValid(rule.action())));
  if (field.get == &v1::HealthRules::exploding_tensor &&
      rule.action() == v1::RuleConfig::NONE) {
    return Invalid(path, ".action must be STOP_JOB (or unset): a non-finite ",
                   "value ends the job");
  }
  return absl::OkStatus();
}

absl::Status CheckMonitoringFields(const v1::JobSpec& spec,
                                   const v1::JobSpec& config) {
  const v1::MonitoringSpec& m = spec.monitoring();
  if (m.stats_every() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("monitoring.stats_every", m.stats_every(), 1, 1000000));
  }
  if (m.dead_window() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("monitoring.dead_window", m.dead_window(), 1, 4096));
  }
  GW_RETURN_IF_ERROR(CheckRange("monitoring.dataset_sweep_every",
                                m.dataset_sweep_every(), 0, kBillion));
  if (m.has_saturation_eps()) {
    GW_RETURN_IF_ERROR(CheckRange("monitoring.saturation_eps",
                                  m.saturation_eps(), 0.0, 1.0, Ends::kOpen));
  }
  GW_RETURN_IF_ERROR(CheckRange("monitoring.validation_every",
                                m.validation_every(), 0, kBillion));
  if (m.validation_every() != 0 && !(spec.data().validation_fraction() > 0)) {
    return Invalid("monitoring.validation_every needs ",
                   "data.validation_fraction > 0 (no validation set), got ",
                   m.validation_every());
  }
  const v1::HistogramSpec& h = m.histograms();
  if (h.bins() != 0) {
    GW_RETURN_IF_ERROR(
        CheckRange("monitoring.histograms.bins", h.bins(), 2, 256));
  }
  if (!std::isfinite(h.min()) || !std::isfinite(h.max()) ||
      ((h.min() != 0 || h.max() != 0) && !(h.min() < h.max()))) {
    return Invalid("monitoring.histograms.min must be finite and less than ",
                   "monitoring.histograms.max (both 0 = [-4, 4)), got [",
                   Num(h.min()), ", ", Num(h.max()), ")");
  }
  GW_RETURN_IF_ERROR(CheckRange("monitoring.curvature_every",
                                m.curvature_every(), 0, kBillion));
  if (m.curvature_every() > 0 &&
      spec.training().precision() == v1::TrainingSpec::BF16) {
    // bf16 products cannot resolve the finite-difference perturbation.
    return Invalid("monitoring.curvature_every needs training.precision F32, ",
                   "got BF16");
  }
  if (m.curvature_iterations() != 0) {
    GW_RETURN_IF_ERROR(CheckRange("monitoring.curvature_iterations",
                                  m.curvature_iterations(), 1, 100));
  }
  for (const RuleField& field : kRuleFields) {
    GW_RETURN_IF_ERROR(CheckRule(field, (m.rules().*field.get)(),
                                 (config.monitoring().rules().*field.get)()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- cross-field

struct DataShape {
  int64_t rows = 0;
  int64_t features = 0;
};

absl::Status CheckClassifierWidth(v1::Loss loss, const std::string& output,
                                  uint32_t units) {
  if (loss == v1::CROSS_ENTROPY && units < 2) {
    return Invalid(output, ".units (output layer) must be at least 2 for ",
                   "CROSS_ENTROPY, got ", units);
  }
  if (loss == v1::BINARY_CROSS_ENTROPY && units != 1) {
    return Invalid(output, ".units (output layer) must be 1 for ",
                   "BINARY_CROSS_ENTROPY, got ", units);
  }
  return absl::OkStatus();
}

// Class labels of inline or CSV data: below the output width (CROSS_ENTROPY)
// or in {0, 1} (BINARY_CROSS_ENTROPY).
absl::Status CheckLabel(const std::string& path, int64_t label, v1::Loss loss,
                        const std::string& output, uint32_t units) {
  const int64_t limit = loss == v1::CROSS_ENTROPY ? units : 2;
  if (label >= 0 && label < limit) return absl::OkStatus();
  return CheckRange(path, label, 0, limit - 1, Ends::kClosed,
                    loss == v1::CROSS_ENTROPY
                        ? absl::StrCat("; CROSS_ENTROPY labels index the ",
                                       units, " units of ", output)
                        : std::string("; BINARY_CROSS_ENTROPY labels are 0 "
                                      "or 1"));
}

absl::Status CheckSyntheticAgainstModel(const v1::JobSpec& spec,
                                        const v1::JobSpec& config,
                                        const std::string& output,
                                        uint32_t units) {
  using S = v1::SyntheticData;
  const S& synthetic = spec.data().synthetic();
  const int64_t classes = config.data().synthetic().classes();
  const v1::Loss loss = spec.loss();
  const std::string loss_name = v1::Loss_Name(loss);
  if (synthetic.kind() == S::TEACHER_STUDENT && loss != v1::MSE) {
    return Invalid("loss must be MSE for data.synthetic.kind ",
                   "TEACHER_STUDENT (regression), got ", loss_name);
  }
  if (synthetic.kind() != S::TEACHER_STUDENT && loss == v1::MSE) {
    return Invalid("loss MSE needs regression data, but data.synthetic.kind ",
                   S::Kind_Name(synthetic.kind()), " is a classification ",
                   "kind (use TEACHER_STUDENT, inline y or a CSV target)");
  }
  if (loss == v1::BINARY_CROSS_ENTROPY && classes != 2) {
    return Invalid("data.synthetic.classes must be 2 for ",
                   "BINARY_CROSS_ENTROPY, got ", classes,
                   DefaultNote(synthetic.classes() == 0));
  }
  GW_RETURN_IF_ERROR(CheckClassifierWidth(loss, output, units));
  if (loss != v1::BINARY_CROSS_ENTROPY && units != classes) {
    return Invalid(output, ".units (output layer) must be ", classes, " for ",
                   loss_name, " (data.synthetic.classes",
                   synthetic.classes() == 0 ? ", default" : "", "), got ",
                   units);
  }
  return absl::OkStatus();
}

absl::Status CheckInlineAgainstModel(const v1::JobSpec& spec,
                                     const std::string& output,
                                     uint32_t units) {
  const v1::Loss loss = spec.loss();
  GW_RETURN_IF_ERROR(CheckClassifierWidth(loss, output, units));
  const v1::InlineData& data = spec.data().inline_();
  for (int i = 0; i < data.examples_size(); ++i) {
    const v1::Example& example = data.examples(i);
    const std::string path = Indexed("data.inline.examples", i);
    if (loss == v1::MSE) {
      if (example.label() != 0) {
        return Invalid(path, ".label must be 0 with MSE (the targets are in ",
                       "y), got ", example.label());
      }
      if (example.y_size() != static_cast<int64_t>(units)) {
        return Invalid(path, ".y must have ", units, " values (", output,
                       ".units) for MSE, got ", example.y_size());
      }
      continue;
    }
    if (example.y_size() != 0) {
      return Invalid(path, ".y must be empty with ", v1::Loss_Name(loss),
                     " (the class is in label), got ", example.y_size(),
                     " values");
    }
    GW_RETURN_IF_ERROR(
        CheckLabel(path + ".label", example.label(), loss, output, units));
  }
  return absl::OkStatus();
}

absl::StatusOr<DataShape> CheckCsvAgainstModel(const v1::JobSpec& spec,
                                               const std::string& output,
                                               uint32_t units) {
  const v1::Loss loss = spec.loss();
  absl::StatusOr<Dataset> parsed =
      ParseCsv(spec.data().csv(), IsRegression(loss));
  if (!parsed.ok()) {
    // A document too large to hold stays RESOURCE_EXHAUSTED.
    if (!absl::IsInvalidArgument(parsed.status())) return parsed.status();
    const absl::string_view message = parsed.status().message();
    if (absl::StartsWith(message, "data.csv")) {
      return absl::InvalidArgumentError(message);
    }
    return Invalid("data.csv.content: ", message);
  }
  const Dataset& data = *parsed;
  GW_RETURN_IF_ERROR(
      CheckRange("data.csv.content rows", data.rows, 2, kMaxExamples));
  GW_RETURN_IF_ERROR(CheckRange("data.csv.content feature columns",
                                data.features, 1, kMaxWidth));
  GW_RETURN_IF_ERROR(CheckClassifierWidth(loss, output, units));
  if (loss == v1::MSE) {
    if (units != 1) {
      return Invalid(output, ".units (output layer) must be 1 for MSE (the ",
                     "CSV label column is the one target), got ", units);
    }
    for (size_t i = 0; i < data.targets.size(); ++i) {
      if (!std::isfinite(data.targets[i])) {
        return Invalid("data.csv.content data row ", i + 1,
                       " target must be finite, got ", Num(data.targets[i]));
      }
    }
  } else {
    for (size_t i = 0; i < data.labels.size(); ++i) {
      GW_RETURN_IF_ERROR(CheckLabel(
          absl::StrCat("data.csv.content data row ", i + 1, " label"),
          data.labels[i], loss, output, units));
    }
  }
  return DataShape{data.rows, data.features};
}

absl::StatusOr<DataShape> CheckDataAgainstModel(const v1::JobSpec& spec,
                                                const v1::JobSpec& config) {
  const int last = spec.model().layers_size() - 1;
  const std::string output = Indexed("model.layers", last);
  const uint32_t units = spec.model().layers(last).units();
  const v1::DataSpec& data = spec.data();
  if (data.has_csv()) return CheckCsvAgainstModel(spec, output, units);
  if (data.has_synthetic()) {
    GW_RETURN_IF_ERROR(CheckSyntheticAgainstModel(spec, config, output, units));
  } else {
    GW_RETURN_IF_ERROR(CheckInlineAgainstModel(spec, output, units));
  }
  return DataShape{DeclaredExampleCount(data), DeclaredFeatureCount(data)};
}

absl::Status CheckInitialWeights(const v1::ModelSpec& model, int64_t features) {
  if (model.initial_weights().empty()) return absl::OkStatus();
  if (model.initial_weights_size() != model.layers_size()) {
    return Invalid("model.initial_weights count must be 0 or ",
                   model.layers_size(), " (one entry per layer), got ",
                   model.initial_weights_size());
  }
  int64_t inputs = features;
  for (int i = 0; i < model.layers_size(); ++i) {
    const v1::LayerParameters& params = model.initial_weights(i);
    const v1::LayerSpec& layer = model.layers(i);
    const std::string path = Indexed("model.initial_weights", i);
    const std::string layer_path = Indexed("model.layers", i);
    if (params.inputs() != inputs) {
      return Invalid(path, ".inputs must be ", inputs,
                     i == 0
                         ? std::string(" (the data's input features)")
                         : absl::StrCat(" (model.layers[", i - 1, "].units)"),
                     ", got ", params.inputs());
    }
    const int64_t units = layer.units();
    if (params.units() != units) {
      return Invalid(path, ".units must be ", units, " (", layer_path,
                     ".units), got ", params.units());
    }
    // Both factors are at most 65536 here, so the product fits.
    if (params.weights_size() != inputs * units) {
      return Invalid(path, ".weights must have ", inputs * units,
                     " values (inputs * units), got ", params.weights_size());
    }
    if (params.bias_size() != units) {
      return Invalid(path, ".bias must have ", units, " values (units), got ",
                     params.bias_size());
    }
    GW_RETURN_IF_ERROR(CheckFinite(path + ".weights", params.weights()));
    GW_RETURN_IF_ERROR(CheckFinite(path + ".bias", params.bias()));
    const std::pair<const char*, const google::protobuf::RepeatedField<float>*>
        batch_norm[] = {{"bn_scale", &params.bn_scale()},
                        {"bn_shift", &params.bn_shift()},
                        {"bn_running_mean", &params.bn_running_mean()},
                        {"bn_running_var", &params.bn_running_var()}};
    for (const auto& [name, values] : batch_norm) {
      if (values->empty()) continue;
      const std::string field = absl::StrCat(path, ".", name);
      if (!HasBatchNorm(layer)) {
        return Invalid(field, " must be empty: ", layer_path,
                       " has no batch normalization");
      }
      if (values->size() != units) {
        return Invalid(field, " must be empty or have ", units,
                       " values (units), got ", values->size());
      }
      GW_RETURN_IF_ERROR(CheckFinite(field, *values));
    }
    for (int j = 0; j < params.bn_running_var_size(); ++j) {
      if (!(params.bn_running_var(j) > 0)) {
        return Invalid(path, ".bn_running_var[", j, "] must be > 0, got ",
                       Num(params.bn_running_var(j)));
      }
    }
    inputs = units;
  }
  return absl::OkStatus();
}

absl::Status CheckTrainingAgainstData(const v1::JobSpec& spec, int64_t rows) {
  const double fraction = spec.data().validation_fraction();
  const int64_t validation_rows = ValidationRows(rows, fraction);
  const int64_t train_rows = rows - validation_rows;
  if (fraction > 0 && validation_rows == 0) {
    return Invalid("data.validation_fraction ", Num(fraction), " of ", rows,
                   " examples holds out none; use 0 or a larger fraction");
  }
  const v1::JobSpec config = ResolvedConfig(spec, train_rows);
  const v1::TrainingSpec& training = spec.training();
  const uint32_t batch = config.training().batch_size();
  GW_RETURN_IF_ERROR(CheckRange(
      "training.batch_size", int64_t{batch}, 1, train_rows, Ends::kClosed,
      absl::StrCat(DefaultNote(training.batch_size() == 0),
                   "; the training set has ", train_rows, " of the ", rows,
                   " examples")));
  const uint64_t steps = config.training().steps();
  if (training.epochs() != 0 && steps > kBillion) {
    return Invalid("training.epochs ", training.epochs(), " makes ", steps,
                   " steps (epochs * floor(", train_rows, " / ", batch,
                   ")), but training.steps must be in [1, 1000000000]");
  }
  return CheckRange(
      "optimizer.schedule.warmup_steps",
      uint64_t{spec.optimizer().schedule().warmup_steps()}, 0, steps,
      Ends::kClosed,
      absl::StrCat("; the upper bound is training.steps",
                   training.steps() != 0    ? ""
                   : training.epochs() != 0 ? " (from training.epochs)"
                                            : " (default)"));
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  // Defaults come from WithDefaults; the training-set size only matters for
  // training.steps, which CheckTrainingAgainstData resolves again.
  const v1::JobSpec config = ResolvedConfig(spec, 0);
  GW_RETURN_IF_ERROR(CheckNameAndLabels(spec));
  GW_RETURN_IF_ERROR(CheckDataFields(spec.data()));
  GW_RETURN_IF_ERROR(CheckModelFields(spec, config));
  GW_RETURN_IF_ERROR(
      CheckOptimizerFields(spec.optimizer(), config.optimizer()));
  GW_RETURN_IF_ERROR(CheckTrainingFields(spec.training()));
  GW_RETURN_IF_ERROR(CheckMonitoringFields(spec, config));
  absl::StatusOr<DataShape> shape = CheckDataAgainstModel(spec, config);
  if (!shape.ok()) return shape.status();
  GW_RETURN_IF_ERROR(CheckInitialWeights(spec.model(), shape->features));
  return CheckTrainingAgainstData(spec, shape->rows);
}

#undef GW_RETURN_IF_ERROR

}  // namespace gradwatch::engine
