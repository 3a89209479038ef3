#include "engine/health_monitor.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/dataset.h"
#include "engine/spec_defaults.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"
#include "tests/engine/allocation_counter.h"

namespace gradwatch::engine {
namespace {

using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const double kLog3 = std::log(3.0);

// Two inputs, a hidden layer of 4 units, 3 outputs (cross-entropy).
v1::JobSpec Spec(const char* hidden_activation = "RELU",
                 const char* rules = "") {
  const std::string text = absl::StrCat(
      R"pb(data { synthetic { kind: SPIRALS } }
           model { layers { units: 4 activation:)pb",
      hidden_activation, R"pb(}
                              layers { units: 3 }
           }
           loss: CROSS_ENTROPY
           monitoring { rules { )pb",
      rules, " } }");
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec))
      << text;
  return WithDefaults(spec, 1000);
}

bool IsHe(const std::string& activation) {
  return activation == "RELU" || activation == "LEAKY_RELU" ||
         activation == "ELU" || activation == "GELU";
}

void AddTensor(const char* name, uint64_t size, double reference_std,
               v1::LayerStats* layer) {
  v1::TensorStats* t = layer->add_params();
  t->set_name(name);
  t->set_size(size);
  t->set_grad_l2_norm(1e-2);
  t->set_grad_mean_abs(1e-3);
  t->set_grad_max_abs(1e-2);
  t->set_weight_l2_norm(reference_std * std::sqrt(static_cast<double>(size)));
  t->set_update_ratio(1e-3);
}

// A healthy step of Spec(activation): every figure well inside every
// rule, weights at exactly the reference scale of their init family.
v1::StepStats Healthy(uint64_t step, double loss,
                      const std::string& activation = "RELU") {
  v1::StepStats s;
  s.set_step(step);
  s.set_loss(loss);
  s.set_accuracy(0.5);
  s.set_learning_rate(0.01);
  s.set_grad_norm(0.5);
  v1::LayerStats* hidden = s.add_layers();
  hidden->set_index(0);
  hidden->set_name("0");
  hidden->set_units(4);
  AddTensor("weights", 8,
            IsHe(activation) ? std::sqrt(2.0 / 2) : std::sqrt(2.0 / 6), hidden);
  AddTensor("bias", 4, 0.1, hidden);
  v1::LayerStats* out = s.add_layers();
  out->set_index(1);
  out->set_name("1");
  out->set_units(3);
  AddTensor("weights", 12, std::sqrt(2.0 / 7), out);
  AddTensor("bias", 3, 0.1, out);
  return s;
}

v1::TensorStats* Weights(v1::StepStats& s, int layer) {
  return s.mutable_layers(layer)->mutable_params(0);
}

std::vector<v1::Alert> Observe(HealthMonitor& monitor,
                               const v1::StepStats& stats) {
  std::vector<v1::Alert> alerts;
  monitor.Observe(stats, &alerts);
  return alerts;
}

// (step, firing) of every alert of `rule` on `layer`.
using Transitions = std::vector<std::pair<uint64_t, bool>>;

// Feeds one healthy step per value, modified by `set`, and records the
// transitions of `rule` on `layer`.
template <class Set>
Transitions Feed(HealthMonitor& monitor, int n, v1::HealthRule rule, int layer,
                 Set set, std::vector<v1::Alert>* all = nullptr) {
  Transitions out;
  for (int i = 0; i < n; ++i) {
    v1::StepStats s = Healthy(i + 1, 1.0);
    set(i, s);
    for (const v1::Alert& a : Observe(monitor, s)) {
      if (a.rule() == rule && a.layer() == layer) {
        out.emplace_back(i + 1, a.firing());
        if (all != nullptr) all->push_back(a);
      }
    }
  }
  return out;
}

TEST(ChanceLevelLossTest, EntropyOfTheLabelsAndVarianceOfTheTargets) {
  Dataset balanced;
  balanced.rows = 6;
  balanced.labels = {0, 1, 2, 2, 1, 0};
  EXPECT_NEAR(ChanceLevelLoss(v1::CROSS_ENTROPY, balanced), kLog3, 1e-12);

  Dataset skewed;
  skewed.rows = 4;
  skewed.labels = {1, 0, 0, 0};
  const double h = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  EXPECT_NEAR(ChanceLevelLoss(v1::BINARY_CROSS_ENTROPY, skewed), h, 1e-12);
  EXPECT_NEAR(ChanceLevelLoss(v1::CROSS_ENTROPY, skewed), h, 1e-12);

  Dataset regression;
  regression.rows = 2;
  regression.target_width = 2;
  regression.targets = {1, 10, 3, 10};  // columns {1, 3} and {10, 10}
  EXPECT_DOUBLE_EQ(ChanceLevelLoss(v1::MSE, regression), 0.5);

  EXPECT_EQ(ChanceLevelLoss(v1::CROSS_ENTROPY, Dataset{}), 0.0);
}

TEST(HealthMonitorTest, DeadReluFiresStrictlyAboveThresholdAndClears) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  // Above 0.5 on steps 2, 3 and 6 only; 0.5 itself does not count.
  std::vector<double> ratios(20, 0.5);
  ratios[1] = 0.75;
  ratios[2] = 0.6;
  ratios[5] = 0.9;
  std::vector<v1::Alert> alerts;
  const Transitions t = Feed(
      monitor, 20, v1::DEAD_RELU, 0,
      [&](int i, v1::StepStats& s) {
        s.mutable_layers(0)->set_dead_ratio(ratios[i]);
      },
      &alerts);
  // Fires at once (for_steps 1); clears after 10 steps in a row below
  // (7-16): step 6 kept it firing.
  EXPECT_EQ(t, (Transitions{{2, true}, {16, false}}));
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0].layer_name(), "0");
  EXPECT_EQ(alerts[0].value(), 0.75);
  EXPECT_EQ(alerts[0].threshold(), 0.5);
  EXPECT_EQ(alerts[0].action(), v1::RuleConfig::NONE);
  EXPECT_THAT(alerts[0].message(), HasSubstr("75% of units dead"));
  EXPECT_EQ(alerts[1].value(), 0.5);
  EXPECT_FALSE(monitor.stop_requested());
}

// Feeds DEAD_RELU a pattern of dead ('D') and healthy steps.
Transitions FeedDeadPattern(HealthMonitor& monitor,
                            const std::string& pattern) {
  return Feed(monitor, static_cast<int>(pattern.size()), v1::DEAD_RELU, 0,
              [&](int i, v1::StepStats& s) {
                s.mutable_layers(0)->set_dead_ratio(pattern[i] == 'D' ? 1 : 0);
              });
}

TEST(HealthMonitorTest, ForStepsNeedsConsecutiveStepsToFire) {
  HealthMonitor monitor(Spec("RELU", "dead_relu { for_steps: 3 }"), 2, kLog3);
  // Dead on 1-2, 4-6 and 9: fires on the third in a row (6); clears after
  // 10 healthy steps in a row (10-19), the minimum above for_steps.
  EXPECT_EQ(FeedDeadPattern(monitor, "DDxDDDxxDxxxxxxxxxxx"),
            (Transitions{{6, true}, {19, false}}));
}

TEST(HealthMonitorTest, ForStepsAboveTheMinimumHoldsBothWays) {
  HealthMonitor monitor(Spec("RELU", "dead_relu { for_steps: 12 }"), 2, kLog3);
  const std::string pattern = std::string(11, 'D') + "x" +
                              std::string(12, 'D') + std::string(11, 'x') +
                              "D" + std::string(12, 'x');
  // Fires on the 12th dead step in a row (24), clears on the 12th healthy
  // one in a row (48).
  EXPECT_EQ(FeedDeadPattern(monitor, pattern),
            (Transitions{{24, true}, {48, false}}));
}

TEST(HealthMonitorTest, SaturatedActivationUsesTheConfiguredThreshold) {
  HealthMonitor monitor(
      Spec("SIGMOID", "saturated_activation { threshold: 0.25 }"), 2, kLog3);
  std::vector<double> ratios(14, 0.25);
  ratios[1] = ratios[2] = 0.5;
  const Transitions t = Feed(
      monitor, 14, v1::SATURATED_ACTIVATION, 0, [&](int i, v1::StepStats& s) {
        s.mutable_layers(0)->set_saturated_ratio(ratios[i]);
      });
  EXPECT_EQ(t, (Transitions{{2, true}, {13, false}}));
}

TEST(HealthMonitorTest, VanishingGradientFiresStrictlyBelowThreshold) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  std::vector<double> g(14, 1e-7);  // 1e-7 itself is not below
  g[1] = 9e-8;
  g[2] = 0;
  std::vector<v1::Alert> alerts;
  const Transitions t = Feed(
      monitor, 14, v1::VANISHING_GRADIENT, 1,
      [&](int i, v1::StepStats& s) { Weights(s, 1)->set_grad_mean_abs(g[i]); },
      &alerts);
  EXPECT_EQ(t, (Transitions{{2, true}, {13, false}}));
  EXPECT_EQ(alerts[0].value(), 9e-8);
  EXPECT_EQ(alerts[0].threshold(), 1e-7);
}

TEST(HealthMonitorTest, WeightUpdateRatioHasAnUpperAndALowerBound) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  // 10 and 1e-8 are on the bounds (inside); 10.5 on step 2 and 5e-9 on
  // step 14 are out.
  std::vector<double> r(25, 1e-3);
  r[0] = 10;
  r[1] = 10.5;
  r[12] = 1e-8;
  r[13] = 5e-9;
  std::vector<v1::Alert> alerts;
  const Transitions t = Feed(
      monitor, 25, v1::WEIGHT_UPDATE_RATIO, 0,
      [&](int i, v1::StepStats& s) { Weights(s, 0)->set_update_ratio(r[i]); },
      &alerts);
  EXPECT_EQ(t, (Transitions{{2, true}, {12, false}, {14, true}, {24, false}}));
  ASSERT_EQ(alerts.size(), 4u);
  EXPECT_EQ(alerts[0].threshold(), 10);
  EXPECT_THAT(alerts[0].message(), HasSubstr("above 10"));
  EXPECT_EQ(alerts[2].value(), 5e-9);
  EXPECT_EQ(alerts[2].threshold(), 1e-8);
  EXPECT_THAT(alerts[2].message(), HasSubstr("below 1e-08"));
}

TEST(HealthMonitorTest, UnchangedWeightsFiresAfterForStepsIdenticalSteps) {
  HealthMonitor monitor(Spec(), 2, kLog3);  // default for_steps 10
  // Unchanged on steps 1-9, changed on 10, unchanged on 11-20, changed on
  // 21-30.
  const Transitions t =
      Feed(monitor, 30, v1::UNCHANGED_WEIGHTS, 0, [](int i, v1::StepStats& s) {
        const int step = i + 1;
        Weights(s, 0)->set_unchanged(step < 10 || (step > 10 && step <= 20));
      });
  EXPECT_EQ(t, (Transitions{{20, true}, {30, false}}));
}

TEST(HealthMonitorTest, LossNotDecreasingComparesTheHalvesOfItsWindow) {
  HealthMonitor monitor(
      Spec("RELU", "loss_not_decreasing { threshold: 25 for_steps: 4 }"), 2,
      kLog3);
  // Window of 4 (halves of 2): step 4 fell exactly 25% (4 -> 3, does not
  // fire), step 5 fell 14.3% (fires), step 6 16.7%; from step 7 every
  // window falls by more than 40%: cleared after 10 of them (7-16).
  std::vector<double> losses = {4, 4, 3, 3, 3, 2};
  for (int k = 1; k <= 12; ++k) losses.push_back(2 * std::pow(0.75, k));
  Transitions t;
  std::vector<v1::Alert> fired;
  for (size_t i = 0; i < losses.size(); ++i) {
    for (const v1::Alert& a : Observe(monitor, Healthy(i + 1, losses[i]))) {
      if (a.rule() != v1::LOSS_NOT_DECREASING) continue;
      t.emplace_back(i + 1, a.firing());
      fired.push_back(a);
    }
  }
  EXPECT_EQ(t, (Transitions{{5, true}, {16, false}}));
  EXPECT_EQ(fired[0].layer(), -1);
  EXPECT_NEAR(fired[0].value(), 100.0 / 7, 1e-12);  // (3.5 - 3) / 3.5
  EXPECT_EQ(fired[0].threshold(), 25);
}

TEST(HealthMonitorTest, ExplodingTensorStopsTheJobAndNamesTheTensor) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  std::vector<v1::Alert> alerts;
  alerts = Observe(monitor, Healthy(1, 1.0));
  EXPECT_TRUE(alerts.empty());
  EXPECT_FALSE(monitor.diverged());

  v1::StepStats bad = Healthy(2, kNaN);
  Weights(bad, 0)->set_grad_nan_count(8);
  Weights(bad, 1)->set_grad_inf_count(2);
  alerts = Observe(monitor, bad);
  ASSERT_EQ(alerts.size(), 3u);  // the loss, then layers 0 and 1
  for (const v1::Alert& a : alerts) {
    EXPECT_EQ(a.rule(), v1::EXPLODING_TENSOR);
    EXPECT_TRUE(a.firing());
    EXPECT_EQ(a.action(), v1::RuleConfig::STOP_JOB);
  }
  EXPECT_EQ(alerts[0].layer(), -1);
  EXPECT_EQ(alerts[1].layer(), 0);
  EXPECT_EQ(alerts[1].value(), 8);
  EXPECT_TRUE(monitor.stop_requested());
  EXPECT_THAT(monitor.stop_reason(), HasSubstr("EXPLODING_TENSOR"));
  EXPECT_TRUE(monitor.diverged());
  EXPECT_EQ(monitor.diverged_step(), 2u);
  EXPECT_EQ(monitor.diverged_tensor(), "loss");
  EXPECT_EQ(monitor.diagnosis(), v1::DIVERGED);

  // Finite again: every alert clears after 10 finite steps; the divergence
  // and the verdict stay.
  for (int step = 3; step < 12; ++step) {
    EXPECT_TRUE(Observe(monitor, Healthy(step, 1.0)).empty());
  }
  int cleared = 0;
  for (const v1::Alert& a : Observe(monitor, Healthy(12, 1.0))) {
    if (a.rule() != v1::EXPLODING_TENSOR) continue;  // the flat loss fires
    EXPECT_FALSE(a.firing());
    ++cleared;
  }
  EXPECT_EQ(cleared, 3);
  EXPECT_EQ(monitor.diverged_step(), 2u);
  EXPECT_EQ(monitor.diagnosis(), v1::DIVERGED);
  v1::Summary summary;
  monitor.FillSummary(&summary);
  EXPECT_EQ(summary.diagnosis(), v1::DIVERGED);
  EXPECT_EQ(summary.diverged_step(), 2u);
  EXPECT_EQ(summary.diverged_tensor(), "loss");
  EXPECT_THAT(summary.diagnosis_reason(), HasSubstr("loss at step 2"));
}

TEST(HealthMonitorTest, DivergenceIsLocatedInComputationOrder) {
  struct Case {
    const char* name;
    void (*plant)(v1::StepStats&);
    const char* tensor;
  };
  const Case cases[] = {
      {"forward first",
       [](v1::StepStats& s) {
         s.mutable_layers(1)->set_z_nonfinite_count(3);
         s.set_loss(kNaN);
         Weights(s, 0)->set_grad_nan_count(1);
       },
       "layers[1].z"},
      {"backward from the output",
       [](v1::StepStats& s) {
         Weights(s, 0)->set_grad_nan_count(1);
         s.mutable_layers(1)->mutable_params(1)->set_grad_inf_count(1);
       },
       "layers[1].bias.grad"},
      {"only the norm overflowed",
       [](v1::StepStats& s) { s.set_grad_norm(kInf); }, "grad_norm"},
  };
  for (const Case& c : cases) {
    HealthMonitor monitor(Spec(), 2, kLog3);
    v1::StepStats s = Healthy(7, 1.0);
    c.plant(s);
    Observe(monitor, s);
    EXPECT_EQ(monitor.diverged_tensor(), c.tensor) << c.name;
    EXPECT_EQ(monitor.diverged_step(), 7u) << c.name;
  }
}

TEST(HealthMonitorTest, ActionNoneReportsWithoutStopping) {
  HealthMonitor monitor(Spec("RELU", "exploding_tensor { action: NONE }"), 2,
                        kLog3);
  const std::vector<v1::Alert> alerts = Observe(monitor, Healthy(1, kNaN));
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].action(), v1::RuleConfig::NONE);
  EXPECT_FALSE(monitor.stop_requested());
  EXPECT_TRUE(monitor.diverged());
}

TEST(HealthMonitorTest, ActionStopJobOnAnyRule) {
  HealthMonitor monitor(Spec("RELU", "dead_relu { action: STOP_JOB }"), 2,
                        kLog3);
  v1::StepStats s = Healthy(1, 1.0);
  s.mutable_layers(0)->set_dead_ratio(0.5);
  Observe(monitor, s);
  EXPECT_FALSE(monitor.stop_requested());
  s = Healthy(2, 1.0);
  s.mutable_layers(0)->set_dead_ratio(0.75);
  const std::vector<v1::Alert> alerts = Observe(monitor, s);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].action(), v1::RuleConfig::STOP_JOB);
  EXPECT_TRUE(monitor.stop_requested());
  EXPECT_THAT(monitor.stop_reason(), HasSubstr("DEAD_RELU: layer 0: 75%"));
}

TEST(HealthMonitorTest, PoorInitializationIsCheckedOnTheFirstStepOnly) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  v1::StepStats s = Healthy(1, 1.0);
  // Layer 0 (He reference 1, 8 weights): std 20. Layer 1 (Xavier): 9.99x.
  Weights(s, 0)->set_weight_l2_norm(20 * std::sqrt(8.0));
  Weights(s, 1)->set_weight_l2_norm(9.99 * std::sqrt(2.0 / 7 * 12));
  std::vector<v1::Alert> alerts = Observe(monitor, s);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].rule(), v1::POOR_WEIGHT_INITIALIZATION);
  EXPECT_EQ(alerts[0].layer(), 0);
  EXPECT_TRUE(alerts[0].firing());
  // |W0| >= |W| / (1 + r) with the first update's ratio r = 1e-3.
  EXPECT_NEAR(alerts[0].value(), 20 / 1.001, 1e-9);
  EXPECT_EQ(alerts[0].threshold(), 10);
  EXPECT_THAT(alerts[0].message(), HasSubstr("He reference 1"));
  // Later steps are not checked, and the alert is never cleared.
  s = Healthy(2, 1.0);
  Weights(s, 1)->set_weight_l2_norm(0);
  s.mutable_layers(0)->set_dead_ratio(1);
  for (const v1::Alert& a : Observe(monitor, s)) {
    EXPECT_NE(a.rule(), v1::POOR_WEIGHT_INITIALIZATION);
  }
}

TEST(HealthMonitorTest, PoorInitializationTooSmallOrAllDead) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  v1::StepStats s = Healthy(1, 1.0);
  Weights(s, 1)->set_weight_l2_norm(0.05 * std::sqrt(2.0 / 7 * 12));
  s.mutable_layers(0)->set_dead_ratio(1);
  const std::vector<v1::Alert> alerts = Observe(monitor, s);
  std::vector<v1::Alert> init;
  for (const v1::Alert& a : alerts) {
    if (a.rule() == v1::POOR_WEIGHT_INITIALIZATION) init.push_back(a);
  }
  ASSERT_EQ(init.size(), 2u);
  EXPECT_EQ(init[0].layer(), 0);
  EXPECT_THAT(init[0].message(), HasSubstr("every unit dead"));
  EXPECT_EQ(init[1].layer(), 1);
  EXPECT_NEAR(init[1].value(), 0.05 / 0.999, 1e-9);  // |W| / (1 - r)
  EXPECT_EQ(init[1].threshold(), 0.1);
  EXPECT_THAT(init[1].message(), HasSubstr("Xavier"));

  // A STEP layer is dead by definition, not by its initialization.
  HealthMonitor step_monitor(Spec("STEP"), 2, kLog3);
  v1::StepStats t = Healthy(1, 1.0, "STEP");
  t.mutable_layers(0)->set_dead_ratio(1);
  for (const v1::Alert& a : Observe(step_monitor, t)) {
    EXPECT_NE(a.rule(), v1::POOR_WEIGHT_INITIALIZATION);
  }
}

TEST(HealthMonitorTest, PoorInitializationLooksThroughTheFirstUpdate) {
  // Weights 13x the reference after a first update 13x their size (a
  // learning rate of 1000): the initial std was between 13/14 and +inf
  // times the reference, not certainly out of range.
  HealthMonitor big_step(Spec(), 2, kLog3);
  v1::StepStats s = Healthy(1, 1.0);
  Weights(s, 0)->set_weight_l2_norm(13 * std::sqrt(8.0));
  Weights(s, 0)->set_update_ratio(13);
  for (const v1::Alert& a : Observe(big_step, s)) {
    EXPECT_EQ(a.rule(), v1::WEIGHT_UPDATE_RATIO);  // 13 > 10
  }

  // 30x after an update of 1.5x: at least 12x before it.
  HealthMonitor certain(Spec(), 2, kLog3);
  Weights(s, 0)->set_weight_l2_norm(30 * std::sqrt(8.0));
  Weights(s, 0)->set_update_ratio(1.5);
  const std::vector<v1::Alert> alerts = Observe(certain, s);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_NEAR(alerts[0].value(), 12, 1e-9);
  EXPECT_THAT(alerts[0].message(), HasSubstr("at least 12,"));

  // ZEROS: an update ratio of 0 for weights that changed means |W0| = 0.
  HealthMonitor zeros(Spec(), 2, kLog3);
  s = Healthy(1, 1.0);
  Weights(s, 0)->set_update_ratio(0);
  const std::vector<v1::Alert> zero_alerts = Observe(zeros, s);
  ASSERT_EQ(zero_alerts.size(), 2u);  // and WEIGHT_UPDATE_RATIO below 1e-8
  EXPECT_EQ(zero_alerts[0].rule(), v1::POOR_WEIGHT_INITIALIZATION);
  EXPECT_EQ(zero_alerts[0].value(), 0);
  EXPECT_EQ(zero_alerts[0].threshold(), 0.1);
}

TEST(HealthMonitorTest, DisabledRulesNeverFire) {
  HealthMonitor monitor(Spec("RELU", R"pb(
                          dead_relu { disabled: true }
                          saturated_activation { disabled: true }
                          vanishing_gradient { disabled: true }
                          exploding_tensor { disabled: true }
                          weight_update_ratio { disabled: true }
                          unchanged_weights { disabled: true }
                          loss_not_decreasing { disabled: true }
                          poor_weight_initialization { disabled: true }
                        )pb"),
                        2, kLog3);
  for (int step = 1; step <= 40; ++step) {
    v1::StepStats s = Healthy(step, step % 2 ? kNaN : 1.0);
    v1::LayerStats* l = s.mutable_layers(0);
    l->set_dead_ratio(1);
    l->set_saturated_ratio(1);
    l->set_z_nonfinite_count(4);
    Weights(s, 0)->set_grad_mean_abs(0);
    Weights(s, 0)->set_update_ratio(1e3);
    Weights(s, 0)->set_unchanged(true);
    Weights(s, 0)->set_weight_l2_norm(1e6);
    EXPECT_TRUE(Observe(monitor, s).empty()) << "step " << step;
  }
  EXPECT_FALSE(monitor.stop_requested());
  EXPECT_TRUE(monitor.diverged());  // recorded whatever the rules say
}

TEST(HealthMonitorTest, QuietStepsAllocateNothing) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  std::vector<v1::Alert> alerts;
  alerts.reserve(16);
  std::vector<v1::StepStats> steps;
  for (int i = 0; i < 50; ++i) steps.push_back(Healthy(i + 1, 1.0 - 0.01 * i));
  monitor.Observe(steps[0], &alerts);  // the first step checks the init
  const int64_t before = gradwatch::testing::AllocationCount();
  for (int i = 1; i < 50; ++i) monitor.Observe(steps[i], &alerts);
  EXPECT_EQ(gradwatch::testing::AllocationCount() - before, 0);
  EXPECT_TRUE(alerts.empty());
}

// ---------------------------------------------------------------- diagnosis

// Steps at which the diagnosis changed, and to what.
using Verdicts = std::vector<std::pair<uint64_t, v1::Diagnosis>>;

template <class Make>
Verdicts Diagnose(HealthMonitor& monitor, int n, Make make) {
  Verdicts out;
  v1::Diagnosis last = monitor.diagnosis();
  for (int i = 0; i < n; ++i) {
    std::vector<v1::Alert> alerts;
    monitor.Observe(make(i + 1), &alerts);
    if (monitor.diagnosis() != last) {
      last = monitor.diagnosis();
      out.emplace_back(i + 1, last);
    }
  }
  return out;
}

TEST(DiagnosisTest, DeadLayerWithFrozenWeightsIsStalledDeadUnits) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  EXPECT_EQ(monitor.diagnosis(), v1::LEARNING);
  // A wholly dead hidden layer: no gradient reaches its weights and the
  // output layer sees A = 0, so no weights move (plain SGD); only the
  // output bias learns and the loss sits at the chance level.
  const Verdicts v = Diagnose(monitor, 30, [](int step) {
    v1::StepStats s = Healthy(step, kLog3);
    v1::LayerStats* l = s.mutable_layers(0);
    l->set_dead_ratio(1);
    l->set_dead_window_ratio(1);
    s.mutable_layers(1)->set_dead_window_ratio(1);
    for (int layer = 0; layer < 2; ++layer) {
      Weights(s, layer)->set_grad_mean_abs(0);
      Weights(s, layer)->set_grad_zero_fraction(1);
      Weights(s, layer)->set_update_ratio(0);
      Weights(s, layer)->set_unchanged(true);
    }
    return s;
  });
  // Indicated from step 1 (frozen), confirmed after 10 consecutive steps.
  EXPECT_EQ(v, (Verdicts{{10, v1::STALLED_DEAD_UNITS}}));
  EXPECT_THAT(monitor.diagnosis_reason(),
              HasSubstr("no layer's weights moved"));
  EXPECT_THAT(monitor.diagnosis_reason(),
              HasSubstr("layer 0 has 100% of its units dead"));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("passes no gradient"));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("(2 layers above 50%)"));
}

TEST(DiagnosisTest, DeadLayerWithFlatLossIsStalledDeadUnits) {
  // Weight decay keeps every weight moving: only the flat loss tells.
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 120, [](int step) {
    v1::StepStats s = Healthy(step, step % 2 ? 1.10 : 1.09);
    s.mutable_layers(0)->set_dead_ratio(0.75);
    s.mutable_layers(0)->set_dead_window_ratio(0.75);
    return s;
  });
  // Two halves of 50 steps from step 100, confirmed on step 109.
  EXPECT_EQ(v, (Verdicts{{109, v1::STALLED_DEAD_UNITS}}));
  EXPECT_THAT(monitor.diagnosis_reason(),
              HasSubstr("the mean loss fell 0% between the two halves of the "
                        "last 100 steps"));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("75% of its units dead"));
}

TEST(DiagnosisTest, NoisyPlateauWithDeadLayerDoesNotFlicker) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  std::mt19937 rng(42);
  std::normal_distribution<double> noise(0.0, 0.05);
  const Verdicts v = Diagnose(monitor, 1000, [&](int step) {
    v1::StepStats s = Healthy(step, kLog3 + noise(rng));
    s.mutable_layers(0)->set_dead_window_ratio(1);
    return s;
  });
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].second, v1::STALLED_DEAD_UNITS);
  EXPECT_LE(v[0].first, 120u);
}

TEST(DiagnosisTest, DecreasingLossIsLearningDespiteDeadUnits) {
  // Claim 7 of DESIGN.md: layers downstream of dead units keep learning.
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 150, [](int step) {
    v1::StepStats s = Healthy(step, kLog3 * std::pow(0.99, step));
    s.mutable_layers(0)->set_dead_window_ratio(1);
    return s;
  });
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(monitor.diagnosis(), v1::LEARNING);
  // 1 - 0.99^50 between steps 51-100 and 101-150.
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("the mean loss fell 39.4"));
}

TEST(DiagnosisTest, SlowSteadyFallInNoiseIsLearning) {
  // 0.1% per step under +-2% noise: invisible over 10 steps, clear over
  // the trend window of 100; a majority-dead layer must not be blamed.
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 400, [](int step) {
    v1::StepStats s = Healthy(
        step, kLog3 * std::pow(0.999, step) + (step % 2 ? 0.02 : -0.02));
    s.mutable_layers(0)->set_dead_window_ratio(0.6);
    return s;
  });
  EXPECT_TRUE(v.empty());
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("the mean loss fell 4."));
}

TEST(DiagnosisTest, SaturatedLayerWithFlatLossIsStalledSaturation) {
  HealthMonitor monitor(Spec("SIGMOID"), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 120, [](int step) {
    v1::StepStats s = Healthy(step, kLog3, "SIGMOID");
    s.mutable_layers(0)->set_saturated_ratio(0.9);
    // Sigmoid units at the far end of saturation also count as dead; they
    // are reported as saturation.
    s.mutable_layers(0)->set_dead_window_ratio(0.6);
    Weights(s, 0)->set_grad_mean_abs(1e-6);
    return s;
  });
  EXPECT_EQ(v, (Verdicts{{109, v1::STALLED_SATURATION}}));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("90% of its units"));
}

TEST(DiagnosisTest, ZeroGradientsWithoutDeadUnitsIsStalledUnderflow) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 120, [](int step) {
    v1::StepStats s = Healthy(step, 1.0);
    v1::TensorStats* w = Weights(s, 0);
    w->set_grad_zero_fraction(0.75);
    w->set_grad_subnormal_count(2);  // 0.75 + 2/8 = every entry
    w->set_grad_mean_abs(1e-3);
    return s;
  });
  EXPECT_EQ(v, (Verdicts{{109, v1::STALLED_UNDERFLOW}}));
  EXPECT_THAT(monitor.diagnosis_reason(),
              HasSubstr("100% of its entries zero or subnormal"));
}

TEST(DiagnosisTest, UpdatesLostToRoundingAreStalledUnderflow) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  Diagnose(monitor, 120, [](int step) {
    v1::StepStats s = Healthy(step, 1.0);
    Weights(s, 1)->set_unchanged(true);  // nonzero gradient, no change
    return s;
  });
  EXPECT_EQ(monitor.diagnosis(), v1::STALLED_UNDERFLOW);
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("layer 1"));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("too small to change"));
}

TEST(DiagnosisTest, LossFarBelowChanceLevelIsConverged) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 30, [](int step) {
    return Healthy(step, step % 2 ? 0.01 : 0.02);  // flat, but tiny
  });
  // The mean over 10 steps is available at step 10; confirmed at 19.
  EXPECT_EQ(v, (Verdicts{{19, v1::CONVERGED}}));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("below 5%"));
}

TEST(DiagnosisTest, PerfectAccuracyAndSmallGradientsIsConverged) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 60, [](int step) {
    v1::StepStats s = Healthy(step, 0.3);  // 27% of the chance level
    s.set_accuracy(step <= 10 ? 0.6 : 1.0);
    s.set_grad_norm(step <= 10 ? 2.0 : 0.1);
    return s;
  });
  // The last 10 steps are all at accuracy 1 from step 20.
  EXPECT_EQ(v, (Verdicts{{29, v1::CONVERGED}}));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("accuracy 1"));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("5% of its peak"));
}

TEST(DiagnosisTest, PlateauFarBelowChanceLevelIsConverged) {
  // 0.2 is 18% of the chance level: not below 5%, but once the loss stops
  // falling the net has settled at a minimum, whatever its dead units.
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 120, [](int step) {
    v1::StepStats s = Healthy(step, step % 2 ? 0.21 : 0.19);
    s.mutable_layers(0)->set_dead_window_ratio(0.6);
    return s;
  });
  EXPECT_EQ(v, (Verdicts{{109, v1::CONVERGED}}));
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("at a minimum"));
}

TEST(DiagnosisTest, LossBlowUpIsDivergedWithoutANaN) {
  // A learning rate of 1000: finite, but the loss jumps 45x.
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 30, [](int step) {
    return Healthy(step, step <= 3 ? 1.1 : 50);
  });
  // From step 10 the mean over 10 steps (35.3) is over 10x both the chance
  // level and the lowest loss (1.1); confirmed on step 19.
  EXPECT_EQ(v, (Verdicts{{19, v1::DIVERGED}}));
  EXPECT_FALSE(monitor.diverged());  // no NaN or Inf
  EXPECT_THAT(monitor.diagnosis_reason(), HasSubstr("the loss blew up"));
}

TEST(DiagnosisTest, HighButFallingLossIsNotDiverged) {
  // A badly scaled start, far above the chance level, that is improving.
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 150, [](int step) {
    return Healthy(step, 50 * std::pow(0.99, step));
  });
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(monitor.diagnosis(), v1::LEARNING);
}

TEST(DiagnosisTest, PlateauWithoutACauseStaysLearningAndSaysSo) {
  // 73% of the chance level, units below the thresholds: say how close.
  HealthMonitor monitor(Spec(), 2, kLog3);
  Diagnose(monitor, 120, [](int step) {
    v1::StepStats s = Healthy(step, 0.8);
    s.mutable_layers(0)->set_dead_window_ratio(0.25);
    s.mutable_layers(1)->set_saturated_ratio(0.375);
    return s;
  });
  EXPECT_EQ(monitor.diagnosis(), v1::LEARNING);
  EXPECT_THAT(monitor.diagnosis_reason(),
              HasSubstr("no dead, saturated or underflowing layer explains it; "
                        "most dead: layer 0 with 25%; most saturated: layer 1 "
                        "with 37.5%"));
}

TEST(DiagnosisTest, NaNLossIsDivergedAtOnce) {
  HealthMonitor monitor(Spec(), 2, kLog3);
  const Verdicts v = Diagnose(monitor, 12, [](int step) {
    return Healthy(step, step == 5 ? kNaN : 1.0);
  });
  EXPECT_EQ(v, (Verdicts{{5, v1::DIVERGED}}));
  EXPECT_EQ(monitor.diverged_tensor(), "loss");
}

}  // namespace
}  // namespace gradwatch::engine
