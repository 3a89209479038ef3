#include "engine/spec_defaults.h"

#include <cstdint>
#include <limits>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;

v1::JobSpec Parse(const char* text) {
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec))
      << text;
  return spec;
}

// The smallest spec a user would write: everything else is a default.
constexpr char kMinimal[] = R"pb(
  data { synthetic { kind: SPIRALS } }
  model {
    layers { units: 16 activation: RELU }
    layers { units: 3 }
  }
  loss: CROSS_ENTROPY
)pb";

TEST(WithDefaultsTest, FillsDataDefaults) {
  const v1::JobSpec spec = WithDefaults(Parse(kMinimal), 800);
  const v1::SyntheticData& synthetic = spec.data().synthetic();
  EXPECT_EQ(synthetic.samples(), 1000u);
  EXPECT_EQ(synthetic.features(), 2u);
  EXPECT_EQ(synthetic.classes(), 3u);
  EXPECT_EQ(synthetic.noise(), 0.0f);
  EXPECT_EQ(spec.data().validation_fraction(), 0.0);
}

TEST(WithDefaultsTest, ClassesDependOnTheSyntheticKind) {
  struct Case {
    v1::SyntheticData::Kind kind;
    uint32_t classes;
  };
  for (const Case& c :
       {Case{v1::SyntheticData::SPIRALS, 3}, Case{v1::SyntheticData::BLOBS, 3},
        Case{v1::SyntheticData::XOR, 2}, Case{v1::SyntheticData::MOONS, 2},
        Case{v1::SyntheticData::CIRCLES, 2},
        Case{v1::SyntheticData::TEACHER_STUDENT, 1}}) {
    v1::JobSpec spec;
    spec.mutable_data()->mutable_synthetic()->set_kind(c.kind);
    EXPECT_EQ(WithDefaults(spec, 100).data().synthetic().classes(), c.classes)
        << v1::SyntheticData::Kind_Name(c.kind);
  }
}

TEST(WithDefaultsTest, KeepsExplicitDataValues) {
  v1::JobSpec spec = Parse(kMinimal);
  v1::SyntheticData& synthetic = *spec.mutable_data()->mutable_synthetic();
  synthetic.set_kind(v1::SyntheticData::BLOBS);
  synthetic.set_samples(40);
  synthetic.set_features(7);
  synthetic.set_classes(5);
  const v1::SyntheticData filled = WithDefaults(spec, 40).data().synthetic();
  EXPECT_EQ(filled.samples(), 40u);
  EXPECT_EQ(filled.features(), 7u);
  EXPECT_EQ(filled.classes(), 5u);
}

TEST(WithDefaultsTest, FillsLayerDefaults) {
  const v1::JobSpec spec = WithDefaults(Parse(kMinimal), 800);
  ASSERT_EQ(spec.model().layers_size(), 2);
  const v1::LayerSpec& hidden = spec.model().layers(0);
  const v1::LayerSpec& output = spec.model().layers(1);
  EXPECT_EQ(hidden.name(), "0");
  EXPECT_EQ(output.name(), "1");
  EXPECT_EQ(hidden.activation(), v1::RELU);
  EXPECT_EQ(output.activation(), v1::LINEAR);
  EXPECT_EQ(hidden.batch_norm(), v1::LayerSpec::NONE);
  EXPECT_EQ(output.batch_norm(), v1::LayerSpec::NONE);
  EXPECT_EQ(hidden.init().scheme(), v1::InitSpec::HE_NORMAL);
  EXPECT_EQ(output.init().scheme(), v1::InitSpec::XAVIER_UNIFORM);
  ASSERT_TRUE(hidden.init().has_gain());
  EXPECT_EQ(hidden.init().gain(), 1.0);
  EXPECT_EQ(output.init().gain(), 1.0);
  EXPECT_EQ(hidden.init().bias(), 0.0);
  // Activation parameters are filled only where the activation reads them.
  EXPECT_FALSE(hidden.has_negative_slope());
  EXPECT_FALSE(hidden.has_elu_alpha());
}

TEST(WithDefaultsTest, InitSchemeFollowsTheActivation) {
  struct Case {
    v1::Activation activation;
    v1::InitSpec::Scheme scheme;
  };
  for (const Case& c : {Case{v1::RELU, v1::InitSpec::HE_NORMAL},
                        Case{v1::LEAKY_RELU, v1::InitSpec::HE_NORMAL},
                        Case{v1::ELU, v1::InitSpec::HE_NORMAL},
                        Case{v1::GELU, v1::InitSpec::HE_NORMAL},
                        Case{v1::SIGMOID, v1::InitSpec::XAVIER_UNIFORM},
                        Case{v1::TANH, v1::InitSpec::XAVIER_UNIFORM},
                        Case{v1::LINEAR, v1::InitSpec::XAVIER_UNIFORM},
                        Case{v1::STEP, v1::InitSpec::XAVIER_UNIFORM}}) {
    v1::JobSpec spec = Parse(kMinimal);
    spec.mutable_model()->mutable_layers(0)->set_activation(c.activation);
    EXPECT_EQ(WithDefaults(spec, 800).model().layers(0).init().scheme(),
              c.scheme)
        << v1::Activation_Name(c.activation);
  }
}

TEST(WithDefaultsTest, ActivationParametersDefaultOnTheirActivation) {
  v1::JobSpec spec = Parse(kMinimal);
  spec.mutable_model()->mutable_layers(0)->set_activation(v1::LEAKY_RELU);
  v1::LayerSpec filled = WithDefaults(spec, 800).model().layers(0);
  EXPECT_FLOAT_EQ(filled.negative_slope(), 0.01f);
  EXPECT_FALSE(filled.has_elu_alpha());

  spec.mutable_model()->mutable_layers(0)->set_activation(v1::ELU);
  filled = WithDefaults(spec, 800).model().layers(0);
  EXPECT_FLOAT_EQ(filled.elu_alpha(), 1.0f);
  EXPECT_FALSE(filled.has_negative_slope());
}

TEST(WithDefaultsTest, KeepsExplicitLayerValues) {
  v1::JobSpec spec = Parse(R"pb(
    model {
      layers {
        name: "hidden"
        units: 8
        activation: LEAKY_RELU
        negative_slope: 0
        batch_norm: BEFORE_ACTIVATION
        init { scheme: ZEROS gain: 0 bias: 0.5 }
      }
      layers { name: "out" units: 1 activation: SIGMOID }
    }
  )pb");
  const v1::JobSpec filled = WithDefaults(spec, 10);
  const v1::LayerSpec& hidden = filled.model().layers(0);
  EXPECT_EQ(hidden.name(), "hidden");
  EXPECT_EQ(hidden.negative_slope(), 0.0f);  // set to 0, not defaulted
  EXPECT_EQ(hidden.batch_norm(), v1::LayerSpec::BEFORE_ACTIVATION);
  EXPECT_EQ(hidden.init().scheme(), v1::InitSpec::ZEROS);
  EXPECT_EQ(hidden.init().gain(), 0.0);
  EXPECT_EQ(hidden.init().bias(), 0.5);
  EXPECT_EQ(filled.model().layers(1).name(), "out");
  EXPECT_EQ(filled.model().layers(1).activation(), v1::SIGMOID);
}

TEST(WithDefaultsTest, FillsSgdDefaults) {
  const v1::OptimizerSpec optimizer =
      WithDefaults(Parse(kMinimal), 800).optimizer();
  EXPECT_EQ(optimizer.kind(), v1::OptimizerSpec::SGD);
  EXPECT_EQ(optimizer.learning_rate(), 0.01);
  EXPECT_EQ(optimizer.momentum(), 0.0);
  ASSERT_TRUE(optimizer.has_decoupled_weight_decay());
  EXPECT_EQ(optimizer.decoupled_weight_decay(), 0.0);
  // Fields of other kinds stay unset: validation rejects them on SGD.
  EXPECT_FALSE(optimizer.has_beta1());
  EXPECT_FALSE(optimizer.has_beta2());
  EXPECT_FALSE(optimizer.has_epsilon());
  EXPECT_FALSE(optimizer.has_rmsprop_alpha());
  EXPECT_EQ(optimizer.schedule().kind(), v1::Schedule::CONSTANT);
  EXPECT_EQ(optimizer.schedule().step_size(), 0u);
  EXPECT_FALSE(optimizer.schedule().has_gamma());
}

TEST(WithDefaultsTest, FillsAdamAdamwAndRmspropDefaults) {
  v1::JobSpec spec = Parse(kMinimal);
  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::ADAM);
  v1::OptimizerSpec optimizer = WithDefaults(spec, 800).optimizer();
  EXPECT_EQ(optimizer.beta1(), 0.9);
  EXPECT_EQ(optimizer.beta2(), 0.999);
  EXPECT_EQ(optimizer.epsilon(), 1e-8);
  EXPECT_EQ(optimizer.decoupled_weight_decay(), 0.0);
  EXPECT_FALSE(optimizer.has_rmsprop_alpha());

  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::ADAMW);
  optimizer = WithDefaults(spec, 800).optimizer();
  EXPECT_EQ(optimizer.beta1(), 0.9);
  EXPECT_EQ(optimizer.decoupled_weight_decay(), 0.01);

  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::RMSPROP);
  optimizer = WithDefaults(spec, 800).optimizer();
  EXPECT_EQ(optimizer.rmsprop_alpha(), 0.99);
  EXPECT_EQ(optimizer.epsilon(), 1e-8);
  EXPECT_FALSE(optimizer.has_beta1());
}

TEST(WithDefaultsTest, KeepsExplicitOptimizerValues) {
  v1::JobSpec spec = Parse(R"pb(
    optimizer {
      kind: ADAMW
      learning_rate: 0.5
      beta1: 0
      beta2: 0.5
      epsilon: 0.25
      decoupled_weight_decay: 0
      schedule { kind: STEP step_size: 7 gamma: 0.5 warmup_steps: 3 }
    }
  )pb");
  const v1::OptimizerSpec optimizer = WithDefaults(spec, 800).optimizer();
  EXPECT_EQ(optimizer.learning_rate(), 0.5);
  EXPECT_EQ(optimizer.beta1(), 0.0);
  EXPECT_EQ(optimizer.beta2(), 0.5);
  EXPECT_EQ(optimizer.epsilon(), 0.25);
  EXPECT_EQ(optimizer.decoupled_weight_decay(), 0.0);
  EXPECT_EQ(optimizer.schedule().step_size(), 7u);
  EXPECT_EQ(optimizer.schedule().gamma(), 0.5);
  EXPECT_EQ(optimizer.schedule().warmup_steps(), 3u);
}

TEST(WithDefaultsTest, FillsStepScheduleDefaults) {
  v1::JobSpec spec = Parse(kMinimal);
  spec.mutable_optimizer()->mutable_schedule()->set_kind(v1::Schedule::STEP);
  const v1::Schedule schedule = WithDefaults(spec, 800).optimizer().schedule();
  EXPECT_EQ(schedule.step_size(), 1000u);
  EXPECT_EQ(schedule.gamma(), 0.1);
  EXPECT_EQ(schedule.min_lr_fraction(), 0.0);
}

TEST(WithDefaultsTest, FillsTrainingDefaults) {
  const v1::TrainingSpec training =
      WithDefaults(Parse(kMinimal), 800).training();
  EXPECT_EQ(training.batch_size(), 32u);
  EXPECT_EQ(training.steps(), 1000u);
  EXPECT_EQ(training.epochs(), 0u);
  EXPECT_EQ(training.precision(), v1::TrainingSpec::F32);
  EXPECT_EQ(training.threads(), 0u);
}

TEST(WithDefaultsTest, StepsComeFromEpochs) {
  v1::JobSpec spec = Parse(kMinimal);
  spec.mutable_training()->set_epochs(3);
  // floor(800 / 32) = 25 steps per epoch.
  EXPECT_EQ(WithDefaults(spec, 800).training().steps(), 75u);
  // floor(810 / 32) = 25: the last partial batch is dropped.
  EXPECT_EQ(WithDefaults(spec, 810).training().steps(), 75u);
  spec.mutable_training()->set_batch_size(100);
  EXPECT_EQ(WithDefaults(spec, 810).training().steps(), 24u);
  EXPECT_EQ(WithDefaults(spec, 810).training().epochs(), 3u);
}

TEST(WithDefaultsTest, KeepsExplicitTrainingValues) {
  v1::JobSpec spec = Parse(R"pb(
    training {
      steps: 5
      batch_size: 4
      seed: 9
      precision: BF16
      flush_denormals: true
      threads: 3
    }
  )pb");
  const v1::TrainingSpec training = WithDefaults(spec, 800).training();
  EXPECT_EQ(training.steps(), 5u);
  EXPECT_EQ(training.batch_size(), 4u);
  EXPECT_EQ(training.seed(), 9u);
  EXPECT_EQ(training.precision(), v1::TrainingSpec::BF16);
  EXPECT_TRUE(training.flush_denormals());
  EXPECT_EQ(training.threads(), 3u);
}

TEST(WithDefaultsTest, FillsMonitoringDefaults) {
  const v1::MonitoringSpec monitoring =
      WithDefaults(Parse(kMinimal), 800).monitoring();
  EXPECT_EQ(monitoring.stats_every(), 1u);
  EXPECT_EQ(monitoring.dead_window(), 10u);
  EXPECT_EQ(monitoring.dataset_sweep_every(), 0u);
  EXPECT_EQ(monitoring.saturation_eps(), 1e-3);
  EXPECT_EQ(monitoring.validation_every(), 0u);  // no validation set
  EXPECT_FALSE(monitoring.histograms().enabled());
  EXPECT_EQ(monitoring.histograms().bins(), 32u);
  EXPECT_EQ(monitoring.histograms().min(), -4.0f);
  EXPECT_EQ(monitoring.histograms().max(), 4.0f);
  EXPECT_EQ(monitoring.curvature_every(), 0u);
  EXPECT_EQ(monitoring.curvature_iterations(), 20u);
}

TEST(WithDefaultsTest, ValidationEveryDefaultsOnlyWithAValidationSet) {
  v1::JobSpec spec = Parse(kMinimal);
  spec.mutable_data()->set_validation_fraction(0.2);
  EXPECT_EQ(WithDefaults(spec, 800).monitoring().validation_every(), 100u);
  spec.mutable_monitoring()->set_validation_every(7);
  EXPECT_EQ(WithDefaults(spec, 800).monitoring().validation_every(), 7u);
}

TEST(WithDefaultsTest, KeepsExplicitMonitoringValues) {
  v1::JobSpec spec = Parse(R"pb(
    monitoring {
      stats_every: 5
      dead_window: 3
      saturation_eps: 0.25
      histograms { enabled: true bins: 8 min: 0 max: 2 }
      curvature_iterations: 4
    }
  )pb");
  const v1::MonitoringSpec monitoring = WithDefaults(spec, 800).monitoring();
  EXPECT_EQ(monitoring.stats_every(), 5u);
  EXPECT_EQ(monitoring.dead_window(), 3u);
  EXPECT_EQ(monitoring.saturation_eps(), 0.25);
  EXPECT_EQ(monitoring.histograms().bins(), 8u);
  EXPECT_EQ(monitoring.histograms().min(), 0.0f);  // [0, 2) is not "both 0"
  EXPECT_EQ(monitoring.histograms().max(), 2.0f);
  EXPECT_EQ(monitoring.curvature_iterations(), 4u);
}

struct RuleDefault {
  const char* name;
  const v1::RuleConfig& (v1::HealthRules::*get)() const;
  bool has_threshold;
  double threshold;
  bool has_threshold_low;
  double threshold_low;
  uint32_t for_steps;
  v1::RuleConfig::Action action;
};

// DESIGN.md's rule table.
TEST(WithDefaultsTest, FillsEveryRuleDefault) {
  using R = v1::HealthRules;
  constexpr auto kNone = v1::RuleConfig::NONE;
  const RuleDefault table[] = {
      {"dead_relu", &R::dead_relu, true, 0.5, false, 0, 1, kNone},
      {"saturated_activation", &R::saturated_activation, true, 0.5, false, 0, 1,
       kNone},
      {"vanishing_gradient", &R::vanishing_gradient, true, 1e-7, false, 0, 1,
       kNone},
      {"exploding_tensor", &R::exploding_tensor, false, 0, false, 0, 1,
       v1::RuleConfig::STOP_JOB},
      {"weight_update_ratio", &R::weight_update_ratio, true, 10, true, 1e-8, 1,
       kNone},
      {"unchanged_weights", &R::unchanged_weights, false, 0, false, 0, 10,
       kNone},
      {"loss_not_decreasing", &R::loss_not_decreasing, true, 0.1, false, 0, 10,
       kNone},
      {"poor_weight_initialization", &R::poor_weight_initialization, true, 10,
       true, 0.1, 1, kNone},
  };
  const v1::HealthRules rules =
      WithDefaults(Parse(kMinimal), 800).monitoring().rules();
  for (const RuleDefault& want : table) {
    SCOPED_TRACE(want.name);
    const v1::RuleConfig& rule = (rules.*want.get)();
    EXPECT_FALSE(rule.disabled());
    EXPECT_EQ(rule.has_threshold(), want.has_threshold);
    if (want.has_threshold) {
      EXPECT_EQ(rule.threshold(), want.threshold);
    }
    EXPECT_EQ(rule.has_threshold_low(), want.has_threshold_low);
    if (want.has_threshold_low) {
      EXPECT_EQ(rule.threshold_low(), want.threshold_low);
    }
    EXPECT_EQ(rule.for_steps(), want.for_steps);
    EXPECT_EQ(rule.action(), want.action);
  }
}

TEST(WithDefaultsTest, KeepsExplicitRuleValues) {
  v1::JobSpec spec = Parse(R"pb(
    monitoring {
      rules {
        dead_relu { disabled: true threshold: 0 for_steps: 4 action: STOP_JOB }
        weight_update_ratio { threshold: 3 threshold_low: 0 }
      }
    }
  )pb");
  const v1::HealthRules rules = WithDefaults(spec, 800).monitoring().rules();
  EXPECT_TRUE(rules.dead_relu().disabled());
  EXPECT_EQ(rules.dead_relu().threshold(), 0.0);
  EXPECT_EQ(rules.dead_relu().for_steps(), 4u);
  EXPECT_EQ(rules.dead_relu().action(), v1::RuleConfig::STOP_JOB);
  EXPECT_EQ(rules.weight_update_ratio().threshold(), 3.0);
  EXPECT_EQ(rules.weight_update_ratio().threshold_low(), 0.0);
}

TEST(WithDefaultsTest, LeavesTheInputAndDataUntouched) {
  v1::JobSpec spec = Parse(R"pb(
    name: "run"
    labels { key: "team" value: "x" }
    data {
      inline {
        examples { x: 1 label: 0 }
        examples { x: 2 label: 1 }
      }
    }
    loss: BINARY_CROSS_ENTROPY
  )pb");
  const v1::JobSpec original = spec;
  const v1::JobSpec filled = WithDefaults(spec, 2);
  EXPECT_EQ(spec.SerializeAsString(), original.SerializeAsString());
  EXPECT_EQ(filled.name(), "run");
  EXPECT_EQ(filled.labels().at("team"), "x");
  EXPECT_EQ(filled.data().inline_().examples_size(), 2);
  EXPECT_EQ(filled.loss(), v1::BINARY_CROSS_ENTROPY);
}

TEST(DeclaredCountsTest, Synthetic) {
  v1::DataSpec data;
  data.mutable_synthetic()->set_kind(v1::SyntheticData::BLOBS);
  EXPECT_EQ(DeclaredExampleCount(data), 1000);
  EXPECT_EQ(DeclaredFeatureCount(data), 2);
  data.mutable_synthetic()->set_samples(64);
  data.mutable_synthetic()->set_features(9);
  EXPECT_EQ(DeclaredExampleCount(data), 64);
  EXPECT_EQ(DeclaredFeatureCount(data), 9);
}

TEST(DeclaredCountsTest, InlineCsvAndUnset) {
  v1::DataSpec data;
  EXPECT_EQ(DeclaredExampleCount(data), -1);
  EXPECT_EQ(DeclaredFeatureCount(data), -1);
  data.mutable_inline_();
  EXPECT_EQ(DeclaredExampleCount(data), 0);
  EXPECT_EQ(DeclaredFeatureCount(data), 0);
  for (int i = 0; i < 3; ++i) {
    v1::Example& example = *data.mutable_inline_()->add_examples();
    example.add_x(1);
    example.add_x(2);
    example.add_x(3);
  }
  EXPECT_EQ(DeclaredExampleCount(data), 3);
  EXPECT_EQ(DeclaredFeatureCount(data), 3);
  data.mutable_csv()->set_content("1,2\n3,4\n");
  EXPECT_EQ(DeclaredExampleCount(data), -1);
  EXPECT_EQ(DeclaredFeatureCount(data), -1);
}

TEST(CountParametersTest, CountsWeightsBiasesAndBatchNorm) {
  v1::ModelSpec model;
  model.add_layers()->set_units(16);
  v1::LayerSpec& bn = *model.add_layers();
  bn.set_units(8);
  bn.set_batch_norm(v1::LayerSpec::BEFORE_ACTIVATION);
  model.add_layers()->set_units(3);
  // (2*16 + 16) + (16*8 + 8 + 2*8) + (8*3 + 3) = 48 + 152 + 27.
  EXPECT_EQ(CountParameters(model, 2), 227);
  model.mutable_layers(1)->set_batch_norm(v1::LayerSpec::AFTER_ACTIVATION);
  EXPECT_EQ(CountParameters(model, 2), 227);
  model.mutable_layers(1)->set_batch_norm(v1::LayerSpec::NONE);
  EXPECT_EQ(CountParameters(model, 2), 211);
  EXPECT_EQ(CountParameters(v1::ModelSpec(), 5), 0);
}

TEST(CountParametersTest, SaturatesInsteadOfOverflowing) {
  v1::ModelSpec model;
  for (int i = 0; i < 64; ++i) {
    model.add_layers()->set_units(std::numeric_limits<uint32_t>::max());
  }
  EXPECT_EQ(CountParameters(model, std::numeric_limits<int64_t>::max()),
            std::numeric_limits<int64_t>::max());
  // 64 layers of 2^32 - 1 squared overflow int64 too, without huge inputs.
  EXPECT_EQ(CountParameters(model, 1), std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace gradwatch::engine
