#ifndef GRADWATCH_ENGINE_HEALTH_MONITOR_H_
#define GRADWATCH_ENGINE_HEALTH_MONITOR_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/dataset.h"
#include "engine/value_window.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// The loss of the best prediction that ignores the inputs, on `train`:
/// CROSS_ENTROPY the entropy of the label frequencies (log K for K balanced
/// classes), BINARY_CROSS_ENTROPY the binary entropy of the positive rate,
/// MSE the mean over the outputs of the targets' population variance. A
/// network whose loss sits at this level has learned nothing from its
/// inputs; 0 for an empty set.
double ChanceLevelLoss(gradwatch::v1::Loss loss, const Dataset& train);

/// Evaluates the health rules of a job (HealthRules in spec.proto) on each
/// collected step's statistics, emits an Alert when a rule starts or stops
/// firing, records where a NaN/Inf first appeared, and keeps the job's
/// diagnosis up to date. docs/statistics.md documents every rule and the
/// diagnosis criteria.
///
/// Hysteresis: a rule fires once its condition has held on `for_steps`
/// consecutive evaluations and clears once it has failed on max(for_steps,
/// 10) consecutive evaluations, so that a figure oscillating around its
/// threshold does not fire and clear every other step.
/// LOSS_NOT_DECREASING's condition already spans a window of `for_steps`
/// steps and fires on the first full window that shows it;
/// POOR_WEIGHT_INITIALIZATION is evaluated on the first step with layer
/// statistics only and never clears.
///
/// Pure computation: no I/O, no clock. The state is a few ring buffers
/// sized in the constructor; Observe allocates only for the alerts it
/// appends. Not thread-safe: one owner (the training thread).
///
///   HealthMonitor monitor(spec, train.features,
///                         ChanceLevelLoss(spec.loss(), train));
///   // each collected step, after the statistics are filled:
///   monitor.Observe(stats, &alerts);   // emit alerts; stop if asked
///   if (monitor.stop_requested()) ...
///   // at the end:
///   monitor.FillSummary(&summary);
class HealthMonitor {
 public:
  /// `spec` has its defaults filled (WithDefaults): the layer shapes and
  /// activations of its model and its monitoring rules are used.
  /// `input_features` is the data's width (the first layer's fan-in);
  /// `chance_loss` the level the loss is judged against
  /// (ChanceLevelLoss).
  HealthMonitor(const gradwatch::v1::JobSpec& spec, int input_features,
                double chance_loss);

  /// Evaluates every enabled rule on one collected step, in step order,
  /// and appends an Alert to `alerts` for each rule (and layer) that
  /// starts or stops firing. Steps without layer statistics update the
  /// job-wide rules only (EXPLODING_TENSOR on the loss and gradient norm,
  /// LOSS_NOT_DECREASING).
  void Observe(const gradwatch::v1::StepStats& stats,
               std::vector<gradwatch::v1::Alert>* alerts);

  /// True once a rule whose action is STOP_JOB has fired (the job should
  /// end FAILED); stop_reason() says which rule and why.
  bool stop_requested() const { return !stop_reason_.empty(); }
  const std::string& stop_reason() const { return stop_reason_; }

  /// True once a NaN or Inf has been observed; the step and the tensor
  /// where it first appeared ("loss", "grad_norm", "layers[1].z",
  /// "layers[1].weights.grad"). Within a step the first tensor in
  /// computation order is named: the layers' Z from input to output, the
  /// loss, then the gradients from the output layer back.
  bool diverged() const { return diverged_; }
  uint64_t diverged_step() const { return diverged_step_; }
  const std::string& diverged_tensor() const { return diverged_tensor_; }

  /// The current verdict and why, in words. LEARNING until the evidence
  /// says otherwise; a new verdict replaces the current one after it has
  /// been indicated on consecutive steps (DIVERGED at once).
  gradwatch::v1::Diagnosis diagnosis() const { return verdict_.diagnosis; }
  std::string diagnosis_reason() const;

  /// Sets the summary's diagnosis and reason, and the divergence step and
  /// tensor if the job diverged.
  void FillSummary(gradwatch::v1::Summary* summary) const;

 private:
  // The consecutive-evaluation counter behind a rule's hysteresis.
  struct Hysteresis {
    bool firing = false;
    uint32_t run = 0;
  };
  enum class Transition { kNone, kFired, kCleared };

  struct LayerState {
    std::string name;
    gradwatch::v1::Activation activation = gradwatch::v1::LINEAR;
    uint32_t fan_in = 0;
    uint32_t fan_out = 0;
    Hysteresis dead, saturated, vanishing, exploding, update_ratio, unchanged;
    double update_bound = 0;  // the WEIGHT_UPDATE_RATIO bound crossed
    ValueWindow saturated_history;
  };

  // Why the diagnosis says what it says; formatted on demand.
  enum class Evidence {
    kTooEarly,
    kDiverged,
    kLossBlowUp,
    kLossLevel,
    kAccuracy,
    kPlateau,
    kDecreasing,
    kDeadLayer,
    kSaturatedLayer,
    kVanishedGradient,
    kUnexplainedPlateau,
  };
  struct Verdict {
    gradwatch::v1::Diagnosis diagnosis = gradwatch::v1::LEARNING;
    Evidence evidence = Evidence::kTooEarly;
    uint64_t step = 0;
    int layer = -1;
    int layers_over = 0;  // layers past the threshold
    int max_dead_layer = -1;
    double max_dead = 0;  // windowed dead ratio
    int max_saturated_layer = -1;
    double max_saturated = 0;  // mean saturated ratio over saturation_window
    size_t saturation_window = 0;
    double layer_value = 0;  // the layer figure that decided
    double grad_mean_abs = 0;
    bool rounded_away = false;  // weights unchanged despite a gradient
    double loss_mean = 0;       // over the last horizon_ steps
    double accuracy_mean = 0;
    double grad_norm_fraction = 0;   // mean grad norm / peak
    size_t trend_half = 0;           // steps in each half of the trend
    double loss_change_percent = 0;  // first vs second half
    double loss_noise_percent = 0;   // two standard errors of that change
    bool frozen = false;             // no layer's weights moved
    double max_update_ratio = 0;
  };

  static Transition Advance(bool condition, uint32_t fire_after,
                            uint32_t clear_after, Hysteresis& h);
  void Report(gradwatch::v1::HealthRule rule,
              const gradwatch::v1::RuleConfig& config, Transition transition,
              int layer, double value, double threshold, std::string message,
              std::vector<gradwatch::v1::Alert>* alerts);

  void RecordDivergence(const gradwatch::v1::StepStats& stats);
  void EvaluateJobRules(const gradwatch::v1::StepStats& stats,
                        std::vector<gradwatch::v1::Alert>* alerts);
  void EvaluateLayerRules(const gradwatch::v1::LayerStats& layer,
                          std::vector<gradwatch::v1::Alert>* alerts);
  void CheckInitialization(const gradwatch::v1::StepStats& stats,
                           std::vector<gradwatch::v1::Alert>* alerts);
  Verdict Judge(const gradwatch::v1::StepStats& stats) const;
  void UpdateDiagnosis(const gradwatch::v1::StepStats& stats);
  std::string LayerLabel(int layer) const;

  gradwatch::v1::HealthRules rules_;
  double chance_loss_;
  // LOSS_NOT_DECREASING's window; the diagnosis horizon (the steps its
  // means cover and a new verdict must persist); half of the trend window.
  size_t loss_window_;
  size_t horizon_;
  size_t trend_half_;
  std::vector<LayerState> layers_;
  Hysteresis job_exploding_;
  Hysteresis loss_flat_;
  ValueWindow losses_;
  ValueWindow accuracies_;
  ValueWindow grad_norms_;
  double peak_grad_norm_ = 0;
  double min_loss_ = std::numeric_limits<double>::infinity();
  bool initialization_checked_ = false;

  std::string stop_reason_;
  bool diverged_ = false;
  uint64_t diverged_step_ = 0;
  std::string diverged_tensor_;

  Verdict verdict_;
  Verdict pending_;
  size_t pending_run_ = 0;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_HEALTH_MONITOR_H_
