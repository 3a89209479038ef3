#include "engine/spec_validation.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/spec_defaults.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// SPIRALS (1000 examples, 2 features, 3 classes) into 16 ReLU units and a
// 3-unit output: valid, and every default in play.
v1::JobSpec Baseline() {
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "baseline"
        data { synthetic { kind: SPIRALS seed: 1 } }
        model {
          layers { units: 16 activation: RELU }
          layers { units: 3 }
        }
        loss: CROSS_ENTROPY
      )pb",
      &spec));
  return spec;
}

v1::LayerSpec& Layer(v1::JobSpec& spec, int i) {
  return *spec.mutable_model()->mutable_layers(i);
}
v1::SyntheticData& Synthetic(v1::JobSpec& spec) {
  return *spec.mutable_data()->mutable_synthetic();
}
v1::OptimizerSpec& Optimizer(v1::JobSpec& spec) {
  return *spec.mutable_optimizer();
}
v1::Schedule& Schedule(v1::JobSpec& spec) {
  return *spec.mutable_optimizer()->mutable_schedule();
}
v1::TrainingSpec& Training(v1::JobSpec& spec) {
  return *spec.mutable_training();
}
v1::MonitoringSpec& Monitoring(v1::JobSpec& spec) {
  return *spec.mutable_monitoring();
}
v1::HealthRules& Rules(v1::JobSpec& spec) {
  return *spec.mutable_monitoring()->mutable_rules();
}

// `count` inline examples of 2 features, labels cycling through `classes`.
void UseInline(v1::JobSpec& spec, int count, int classes) {
  v1::InlineData& data = *spec.mutable_data()->mutable_inline_();
  for (int i = 0; i < count; ++i) {
    v1::Example& example = *data.add_examples();
    example.add_x(0.5f * i);
    example.add_x(-1.0f);
    example.set_label(i % classes);
  }
}

// Inline regression data with `width` targets per example.
void UseInlineRegression(v1::JobSpec& spec, int count, int width) {
  UseInline(spec, count, 1);
  spec.set_loss(v1::MSE);
  for (v1::Example& example :
       *spec.mutable_data()->mutable_inline_()->mutable_examples()) {
    for (int j = 0; j < width; ++j) example.add_y(0.25f * j);
  }
  Layer(spec, 1).set_units(width);
}

// Initial weights of the right shape for the baseline's layers.
void AddInitialWeights(v1::JobSpec& spec) {
  int inputs = 2;
  for (const v1::LayerSpec& layer : spec.model().layers()) {
    v1::LayerParameters& params = *spec.mutable_model()->add_initial_weights();
    params.set_inputs(inputs);
    params.set_units(layer.units());
    params.mutable_weights()->Resize(inputs * layer.units(), 0.1f);
    params.mutable_bias()->Resize(layer.units(), 0.0f);
    inputs = layer.units();
  }
}

struct Case {
  std::string name;
  std::function<void(v1::JobSpec&)> mutate;
  std::string message;  // the exact INVALID_ARGUMENT message
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class InvalidSpecTest : public ::testing::TestWithParam<Case> {};

TEST_P(InvalidSpecTest, ReportsTheFieldPathAndRange) {
  v1::JobSpec spec = Baseline();
  GetParam().mutate(spec);
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), GetParam().message);
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

const std::vector<Case> kJobCases = {
    {"NameTooLong", [](v1::JobSpec& s) { s.set_name(std::string(129, 'a')); },
     "name must be at most 128 characters, got 129"},
    {"TooManyLabels",
     [](v1::JobSpec& s) {
       for (int i = 0; i < 17; ++i) {
         (*s.mutable_labels())[absl::StrCat("k", i)] = "v";
       }
     },
     "labels count must be in [0, 16], got 17"},
    {"LabelKeyUppercase",
     [](v1::JobSpec& s) { (*s.mutable_labels())["Team"] = "x"; },
     "labels key \"Team\" must match [a-z][a-z0-9_]{0,62}"},
    {"LabelKeyStartsWithDigit",
     [](v1::JobSpec& s) { (*s.mutable_labels())["1a"] = "x"; },
     "labels key \"1a\" must match [a-z][a-z0-9_]{0,62}"},
    {"LabelKeyTooLong",
     [](v1::JobSpec& s) { (*s.mutable_labels())[std::string(64, 'a')] = "x"; },
     "labels key \"" + std::string(40, 'a') +
         "...\" must match [a-z][a-z0-9_]{0,62}"},
    {"LabelValueTooLong",
     [](v1::JobSpec& s) {
       (*s.mutable_labels())["team"] = std::string(129, 'v');
     },
     "labels[\"team\"] must be at most 128 characters, got 129"},
    {"LabelValueNotPrintable",
     [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = "a\tb"; },
     "labels[\"team\"] must be printable ASCII, got \"a\\tb\""},
    {"LossUnset", [](v1::JobSpec& s) { s.clear_loss(); },
     "loss must be set (CROSS_ENTROPY, MSE or BINARY_CROSS_ENTROPY)"},
    {"LossUnknown",
     [](v1::JobSpec& s) { s.set_loss(static_cast<v1::Loss>(99)); },
     "loss has unknown value 99"},
};
INSTANTIATE_TEST_SUITE_P(Job, InvalidSpecTest, ::testing::ValuesIn(kJobCases),
                         CaseName);

const std::vector<Case> kDataCases = {
    {"SourceUnset", [](v1::JobSpec& s) { s.clear_data(); },
     "data.source must be set (synthetic, inline or csv)"},
    {"ValidationFractionTooLarge",
     [](v1::JobSpec& s) { s.mutable_data()->set_validation_fraction(0.6); },
     "data.validation_fraction must be in [0, 0.5], got 0.6"},
    {"ValidationFractionNegative",
     [](v1::JobSpec& s) { s.mutable_data()->set_validation_fraction(-0.1); },
     "data.validation_fraction must be in [0, 0.5], got -0.1"},
    {"ValidationFractionNan",
     [](v1::JobSpec& s) { s.mutable_data()->set_validation_fraction(kNan); },
     "data.validation_fraction must be in [0, 0.5], got nan"},
    {"ValidationFractionHoldsOutNothing",
     [](v1::JobSpec& s) {
       Synthetic(s).set_samples(8);
       Training(s).set_batch_size(4);
       s.mutable_data()->set_validation_fraction(0.1);
     },
     "data.validation_fraction 0.1 of 8 examples holds out none; use 0 or a "
     "larger fraction"},
    {"SyntheticKindUnset", [](v1::JobSpec& s) { Synthetic(s).clear_kind(); },
     "data.synthetic.kind must be set (SPIRALS, XOR, MOONS, CIRCLES, BLOBS or "
     "TEACHER_STUDENT)"},
    {"SyntheticKindUnknown",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(static_cast<v1::SyntheticData::Kind>(42));
     },
     "data.synthetic.kind has unknown value 42"},
    {"SamplesTooFew", [](v1::JobSpec& s) { Synthetic(s).set_samples(3); },
     "data.synthetic.samples must be in [4, 1000000], got 3"},
    {"SamplesTooMany",
     [](v1::JobSpec& s) { Synthetic(s).set_samples(1000001); },
     "data.synthetic.samples must be in [4, 1000000], got 1000001"},
    {"SpiralFeaturesNotTwo",
     [](v1::JobSpec& s) { Synthetic(s).set_features(3); },
     "data.synthetic.features must be 0 or 2 for SPIRALS, got 3"},
    {"BlobFeaturesTooMany",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::BLOBS);
       Synthetic(s).set_features(4097);
     },
     "data.synthetic.features must be in [1, 4096], got 4097"},
    {"SpiralClassesTooFew", [](v1::JobSpec& s) { Synthetic(s).set_classes(1); },
     "data.synthetic.classes must be in [2, 1000], got 1"},
    {"BlobClassesTooMany",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::BLOBS);
       Synthetic(s).set_classes(1001);
     },
     "data.synthetic.classes must be in [2, 1000], got 1001"},
    {"XorClassesNotTwo",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::XOR);
       Synthetic(s).set_classes(3);
     },
     "data.synthetic.classes must be 0 or 2 for XOR, got 3"},
    {"TeacherOutputsTooMany",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::TEACHER_STUDENT);
       Synthetic(s).set_classes(1025);
     },
     "data.synthetic.classes must be in [1, 1024], got 1025"},
    {"NoiseNegative", [](v1::JobSpec& s) { Synthetic(s).set_noise(-1); },
     "data.synthetic.noise must be in [0, 10], got -1"},
    {"NoiseTooLarge", [](v1::JobSpec& s) { Synthetic(s).set_noise(10.5f); },
     "data.synthetic.noise must be in [0, 10], got 10.5"},
    {"NoiseJustAboveTen",
     [](v1::JobSpec& s) {
       Synthetic(s).set_noise(std::nextafter(10.0f, 11.0f));
     },
     "data.synthetic.noise must be in [0, 10], got 10.000001"},
    {"NoiseInfinite", [](v1::JobSpec& s) { Synthetic(s).set_noise(kInf); },
     "data.synthetic.noise must be in [0, 10], got inf"},
    {"InlineTooFewExamples", [](v1::JobSpec& s) { UseInline(s, 1, 3); },
     "data.inline.examples count must be in [2, 1000000], got 1"},
    {"InlineNoFeatures",
     [](v1::JobSpec& s) {
       UseInline(s, 3, 3);
       s.mutable_data()->mutable_inline_()->mutable_examples(0)->clear_x();
     },
     "data.inline.examples[0].x size must be in [1, 65536], got 0"},
    {"InlineUnequalWidths",
     [](v1::JobSpec& s) {
       UseInline(s, 3, 3);
       s.mutable_data()->mutable_inline_()->mutable_examples(2)->add_x(1);
     },
     "data.inline.examples[2].x must have 2 values, as "
     "data.inline.examples[0].x, got 3"},
    {"InlineFeatureNan",
     [](v1::JobSpec& s) {
       UseInline(s, 3, 3);
       s.mutable_data()->mutable_inline_()->mutable_examples(1)->set_x(1, kNan);
     },
     "data.inline.examples[1].x[1] must be finite, got nan"},
    {"InlineTargetInfinite",
     [](v1::JobSpec& s) {
       UseInlineRegression(s, 40, 2);
       s.mutable_data()->mutable_inline_()->mutable_examples(3)->set_y(0,
                                                                       -kInf);
     },
     "data.inline.examples[3].y[0] must be finite, got -inf"},
    {"InlineLabelNotBelowOutputWidth",
     [](v1::JobSpec& s) {
       UseInline(s, 40, 3);
       s.mutable_data()->mutable_inline_()->mutable_examples(5)->set_label(3);
     },
     "data.inline.examples[5].label must be in [0, 2], got 3; CROSS_ENTROPY "
     "labels index the 3 units of model.layers[1]"},
    {"InlineBinaryLabelTwo",
     [](v1::JobSpec& s) {
       UseInline(s, 40, 2);
       s.set_loss(v1::BINARY_CROSS_ENTROPY);
       Layer(s, 1).set_units(1);
       s.mutable_data()->mutable_inline_()->mutable_examples(7)->set_label(2);
     },
     "data.inline.examples[7].label must be in [0, 1], got 2; "
     "BINARY_CROSS_ENTROPY labels are 0 or 1"},
    {"InlineTargetsWithClassification",
     [](v1::JobSpec& s) {
       UseInline(s, 40, 3);
       s.mutable_data()->mutable_inline_()->mutable_examples(0)->add_y(1);
     },
     "data.inline.examples[0].y must be empty with CROSS_ENTROPY (the class "
     "is in label), got 1 values"},
    {"InlineLabelWithRegression",
     [](v1::JobSpec& s) {
       UseInlineRegression(s, 40, 2);
       s.mutable_data()->mutable_inline_()->mutable_examples(1)->set_label(1);
     },
     "data.inline.examples[1].label must be 0 with MSE (the targets are in "
     "y), got 1"},
    {"InlineTargetWidthNotOutputWidth",
     [](v1::JobSpec& s) {
       UseInlineRegression(s, 40, 2);
       s.mutable_data()->mutable_inline_()->mutable_examples(4)->add_y(1);
     },
     "data.inline.examples[4].y must have 2 values (model.layers[1].units) "
     "for MSE, got 3"},
    {"InlineCrossEntropyOneOutput",
     [](v1::JobSpec& s) {
       UseInline(s, 40, 1);
       Layer(s, 1).set_units(1);
     },
     "model.layers[1].units (output layer) must be at least 2 for "
     "CROSS_ENTROPY, got 1"},
};
INSTANTIATE_TEST_SUITE_P(Data, InvalidSpecTest, ::testing::ValuesIn(kDataCases),
                         CaseName);

const std::vector<Case> kModelCases = {
    {"NoLayers", [](v1::JobSpec& s) { s.mutable_model()->clear_layers(); },
     "model.layers count must be in [1, 64], got 0"},
    {"TooManyLayers",
     [](v1::JobSpec& s) {
       for (int i = 0; i < 63; ++i) {
         *s.mutable_model()->add_layers() = s.model().layers(0);
       }
     },
     "model.layers count must be in [1, 64], got 65"},
    {"UnitsZero", [](v1::JobSpec& s) { Layer(s, 0).set_units(0); },
     "model.layers[0].units must be in [1, 65536], got 0"},
    {"UnitsTooMany", [](v1::JobSpec& s) { Layer(s, 0).set_units(65537); },
     "model.layers[0].units must be in [1, 65536], got 65537"},
    {"NameBadCharacter", [](v1::JobSpec& s) { Layer(s, 0).set_name("a b"); },
     "model.layers[0].name must be at most 32 characters of [A-Za-z0-9_.-], "
     "got \"a b\""},
    {"NameTooLong",
     [](v1::JobSpec& s) { Layer(s, 1).set_name(std::string(33, 'n')); },
     "model.layers[1].name must be at most 32 characters of [A-Za-z0-9_.-], "
     "got \"" +
         std::string(33, 'n') + "\""},
    {"NameDuplicate",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_name("x");
       Layer(s, 1).set_name("x");
     },
     "model.layers[1].name \"x\" duplicates model.layers[0].name"},
    {"NameDuplicatesADefault",
     [](v1::JobSpec& s) { Layer(s, 0).set_name("1"); },
     "model.layers[1].name \"1\" (default) duplicates model.layers[0].name"},
    {"ActivationUnknown",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_activation(static_cast<v1::Activation>(99));
     },
     "model.layers[0].activation has unknown value 99"},
    {"HiddenActivationUnset",
     [](v1::JobSpec& s) { Layer(s, 0).clear_activation(); },
     "model.layers[0].activation must be set on a hidden layer"},
    {"OutputSigmoidWithCrossEntropy",
     [](v1::JobSpec& s) { Layer(s, 1).set_activation(v1::SIGMOID); },
     "model.layers[1].activation must be LINEAR (or unset) on the output "
     "layer with CROSS_ENTROPY (the softmax is part of the loss), got "
     "SIGMOID"},
    {"OutputReluWithBinaryCrossEntropy",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::XOR);
       s.set_loss(v1::BINARY_CROSS_ENTROPY);
       Layer(s, 1).set_units(1);
       Layer(s, 1).set_activation(v1::RELU);
     },
     "model.layers[1].activation must be LINEAR (or unset) on the output "
     "layer with BINARY_CROSS_ENTROPY (the sigmoid is part of the loss), got "
     "RELU"},
    {"NegativeSlopeOnRelu",
     [](v1::JobSpec& s) { Layer(s, 0).set_negative_slope(0.1f); },
     "model.layers[0].negative_slope applies only to LEAKY_RELU, but "
     "model.layers[0].activation is RELU"},
    {"NegativeSlopeOne",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_activation(v1::LEAKY_RELU);
       Layer(s, 0).set_negative_slope(1);
     },
     "model.layers[0].negative_slope must be in [0, 1), got 1"},
    {"NegativeSlopeNegative",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_activation(v1::LEAKY_RELU);
       Layer(s, 0).set_negative_slope(-0.25f);
     },
     "model.layers[0].negative_slope must be in [0, 1), got -0.25"},
    {"EluAlphaOnOutput", [](v1::JobSpec& s) { Layer(s, 1).set_elu_alpha(1); },
     "model.layers[1].elu_alpha applies only to ELU, but "
     "model.layers[1].activation is LINEAR"},
    {"EluAlphaZero",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_activation(v1::ELU);
       Layer(s, 0).set_elu_alpha(0);
     },
     "model.layers[0].elu_alpha must be in (0, 100], got 0"},
    {"EluAlphaTooLarge",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_activation(v1::ELU);
       Layer(s, 0).set_elu_alpha(100.5f);
     },
     "model.layers[0].elu_alpha must be in (0, 100], got 100.5"},
    {"BatchNormUnknown",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_batch_norm(static_cast<v1::LayerSpec::BatchNorm>(7));
     },
     "model.layers[0].batch_norm has unknown value 7"},
    {"BatchNormOnOutput",
     [](v1::JobSpec& s) {
       Layer(s, 1).set_batch_norm(v1::LayerSpec::BEFORE_ACTIVATION);
     },
     "model.layers[1].batch_norm is not allowed on the output layer, got "
     "BEFORE_ACTIVATION"},
    {"InitSchemeUnknown",
     [](v1::JobSpec& s) {
       Layer(s, 0).mutable_init()->set_scheme(
           static_cast<v1::InitSpec::Scheme>(8));
     },
     "model.layers[0].init.scheme has unknown value 8"},
    {"InitGainTooLarge",
     [](v1::JobSpec& s) { Layer(s, 0).mutable_init()->set_gain(1000.5); },
     "model.layers[0].init.gain must be in [-1000, 1000], got 1000.5"},
    {"InitGainNan",
     [](v1::JobSpec& s) { Layer(s, 0).mutable_init()->set_gain(kNan); },
     "model.layers[0].init.gain must be in [-1000, 1000], got nan"},
    {"InitBiasTooNegative",
     [](v1::JobSpec& s) { Layer(s, 1).mutable_init()->set_bias(-1001); },
     "model.layers[1].init.bias must be in [-1000, 1000], got -1001"},
    {"InitBiasInfinite",
     [](v1::JobSpec& s) { Layer(s, 1).mutable_init()->set_bias(kInf); },
     "model.layers[1].init.bias must be in [-1000, 1000], got inf"},
};
INSTANTIATE_TEST_SUITE_P(Model, InvalidSpecTest,
                         ::testing::ValuesIn(kModelCases), CaseName);

v1::LayerParameters& Params(v1::JobSpec& spec, int i) {
  return *spec.mutable_model()->mutable_initial_weights(i);
}

const std::vector<Case> kInitialWeightCases = {
    {"CountNotLayers",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       s.mutable_model()->mutable_initial_weights()->RemoveLast();
     },
     "model.initial_weights count must be 0 or 2 (one entry per layer), got "
     "1"},
    {"InputsNotFeatures",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 0).set_inputs(3);
     },
     "model.initial_weights[0].inputs must be 2 (the data's input features), "
     "got 3"},
    {"InputsNotPreviousWidth",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 1).set_inputs(15);
     },
     "model.initial_weights[1].inputs must be 16 (model.layers[0].units), got "
     "15"},
    {"AbsurdShapeDoesNotOverflow",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 1).set_inputs(4294967295u);
       Params(s, 1).set_units(4294967295u);
     },
     "model.initial_weights[1].inputs must be 16 (model.layers[0].units), got "
     "4294967295"},
    {"UnitsNotLayerUnits",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 1).set_units(4);
     },
     "model.initial_weights[1].units must be 3 (model.layers[1].units), got "
     "4"},
    {"WeightsWrongSize",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 1).mutable_weights()->RemoveLast();
     },
     "model.initial_weights[1].weights must have 48 values (inputs * units), "
     "got 47"},
    {"BiasWrongSize",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 0).add_bias(0);
     },
     "model.initial_weights[0].bias must have 16 values (units), got 17"},
    {"WeightNotFinite",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 0).set_weights(5, kInf);
     },
     "model.initial_weights[0].weights[5] must be finite, got inf"},
    {"BiasNotFinite",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 1).set_bias(2, kNan);
     },
     "model.initial_weights[1].bias[2] must be finite, got nan"},
    {"BatchNormOnLayerWithout",
     [](v1::JobSpec& s) {
       AddInitialWeights(s);
       Params(s, 0).mutable_bn_scale()->Resize(16, 1.0f);
     },
     "model.initial_weights[0].bn_scale must be empty: model.layers[0] has no "
     "batch normalization"},
    {"BatchNormWrongSize",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_batch_norm(v1::LayerSpec::BEFORE_ACTIVATION);
       AddInitialWeights(s);
       Params(s, 0).mutable_bn_shift()->Resize(15, 0.0f);
     },
     "model.initial_weights[0].bn_shift must be empty or have 16 values "
     "(units), got 15"},
    {"BatchNormMeanNotFinite",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_batch_norm(v1::LayerSpec::AFTER_ACTIVATION);
       AddInitialWeights(s);
       Params(s, 0).mutable_bn_running_mean()->Resize(16, 0.0f);
       Params(s, 0).set_bn_running_mean(9, kNan);
     },
     "model.initial_weights[0].bn_running_mean[9] must be finite, got nan"},
    {"BatchNormVarianceZero",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_batch_norm(v1::LayerSpec::BEFORE_ACTIVATION);
       AddInitialWeights(s);
       Params(s, 0).mutable_bn_running_var()->Resize(16, 1.0f);
       Params(s, 0).set_bn_running_var(3, 0.0f);
     },
     "model.initial_weights[0].bn_running_var[3] must be > 0, got 0"},
};
INSTANTIATE_TEST_SUITE_P(InitialWeights, InvalidSpecTest,
                         ::testing::ValuesIn(kInitialWeightCases), CaseName);

const std::vector<Case> kLossCases = {
    {"CrossEntropyWidthNotClasses",
     [](v1::JobSpec& s) { Layer(s, 1).set_units(2); },
     "model.layers[1].units (output layer) must be 3 for CROSS_ENTROPY "
     "(data.synthetic.classes, default), got 2"},
    {"CrossEntropyWidthNotExplicitClasses",
     [](v1::JobSpec& s) { Synthetic(s).set_classes(5); },
     "model.layers[1].units (output layer) must be 5 for CROSS_ENTROPY "
     "(data.synthetic.classes), got 3"},
    {"BinaryCrossEntropyThreeClasses",
     [](v1::JobSpec& s) {
       s.set_loss(v1::BINARY_CROSS_ENTROPY);
       Layer(s, 1).set_units(1);
     },
     "data.synthetic.classes must be 2 for BINARY_CROSS_ENTROPY, got 3 "
     "(default)"},
    {"BinaryCrossEntropyTwoOutputs",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::MOONS);
       s.set_loss(v1::BINARY_CROSS_ENTROPY);
       Layer(s, 1).set_units(2);
     },
     "model.layers[1].units (output layer) must be 1 for "
     "BINARY_CROSS_ENTROPY, got 2"},
    {"MseOnClassificationData", [](v1::JobSpec& s) { s.set_loss(v1::MSE); },
     "loss MSE needs regression data, but data.synthetic.kind SPIRALS is a "
     "classification kind (use TEACHER_STUDENT, inline y or a CSV target)"},
    {"TeacherStudentWithCrossEntropy",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::TEACHER_STUDENT);
     },
     "loss must be MSE for data.synthetic.kind TEACHER_STUDENT (regression), "
     "got CROSS_ENTROPY"},
    {"TeacherStudentWidthNotOutputs",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::TEACHER_STUDENT);
       s.set_loss(v1::MSE);
     },
     "model.layers[1].units (output layer) must be 1 for MSE "
     "(data.synthetic.classes, default), got 3"},
};
INSTANTIATE_TEST_SUITE_P(Loss, InvalidSpecTest, ::testing::ValuesIn(kLossCases),
                         CaseName);

const std::vector<Case> kOptimizerCases = {
    {"KindUnknown",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(static_cast<v1::OptimizerSpec::Kind>(9));
     },
     "optimizer.kind has unknown value 9"},
    {"LearningRateNegative",
     [](v1::JobSpec& s) { Optimizer(s).set_learning_rate(-1); },
     "optimizer.learning_rate must be in (0, 1000], got -1"},
    {"LearningRateTooLarge",
     [](v1::JobSpec& s) { Optimizer(s).set_learning_rate(1000.5); },
     "optimizer.learning_rate must be in (0, 1000], got 1000.5"},
    {"LearningRateNan",
     [](v1::JobSpec& s) { Optimizer(s).set_learning_rate(kNan); },
     "optimizer.learning_rate must be in (0, 1000], got nan"},
    {"MomentumOne", [](v1::JobSpec& s) { Optimizer(s).set_momentum(1); },
     "optimizer.momentum must be in [0, 1), got 1"},
    {"MomentumWithAdam",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::ADAM);
       Optimizer(s).set_momentum(0.9);
     },
     "optimizer.momentum applies only to SGD, but optimizer.kind is ADAM"},
    {"NesterovWithoutMomentum",
     [](v1::JobSpec& s) { Optimizer(s).set_nesterov(true); },
     "optimizer.nesterov needs optimizer.momentum > 0, got 0"},
    {"NesterovWithRmsprop",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::RMSPROP);
       Optimizer(s).set_nesterov(true);
     },
     "optimizer.nesterov applies only to SGD, but optimizer.kind is RMSPROP"},
    {"Beta1WithSgd", [](v1::JobSpec& s) { Optimizer(s).set_beta1(0.9); },
     "optimizer.beta1 applies only to ADAM and ADAMW, but optimizer.kind is "
     "SGD"},
    {"Beta1One",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::ADAM);
       Optimizer(s).set_beta1(1);
     },
     "optimizer.beta1 must be in [0, 1), got 1"},
    {"Beta2Negative",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::ADAMW);
       Optimizer(s).set_beta2(-0.5);
     },
     "optimizer.beta2 must be in [0, 1), got -0.5"},
    {"EpsilonWithSgd", [](v1::JobSpec& s) { Optimizer(s).set_epsilon(1e-6); },
     "optimizer.epsilon applies only to ADAM, ADAMW and RMSPROP, but "
     "optimizer.kind is SGD"},
    {"EpsilonZero",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::RMSPROP);
       Optimizer(s).set_epsilon(0);
     },
     "optimizer.epsilon must be in (0, 1], got 0"},
    {"RmspropAlphaWithAdam",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::ADAM);
       Optimizer(s).set_rmsprop_alpha(0.9);
     },
     "optimizer.rmsprop_alpha applies only to RMSPROP, but optimizer.kind is "
     "ADAM"},
    {"RmspropAlphaOne",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::RMSPROP);
       Optimizer(s).set_rmsprop_alpha(1);
     },
     "optimizer.rmsprop_alpha must be in [0, 1), got 1"},
    {"WeightDecayNegative",
     [](v1::JobSpec& s) { Optimizer(s).set_weight_decay(-1e-4); },
     "optimizer.weight_decay must be in [0, 1000], got -0.0001"},
    {"DecoupledWeightDecayTooLarge",
     [](v1::JobSpec& s) { Optimizer(s).set_decoupled_weight_decay(1001); },
     "optimizer.decoupled_weight_decay must be in [0, 1000], got 1001"},
    {"ClipTooLarge",
     [](v1::JobSpec& s) { Optimizer(s).set_clip_grad_norm(2e9); },
     "optimizer.clip_grad_norm must be in [0, 1000000000], got 2000000000"},
    {"ClipNegative",
     [](v1::JobSpec& s) { Optimizer(s).set_clip_grad_norm(-1); },
     "optimizer.clip_grad_norm must be in [0, 1000000000], got -1"},
    {"ScheduleKindUnknown",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(static_cast<v1::Schedule::Kind>(5));
     },
     "optimizer.schedule.kind has unknown value 5"},
    {"StepSizeWithConstant",
     [](v1::JobSpec& s) { Schedule(s).set_step_size(10); },
     "optimizer.schedule.step_size applies only to STEP, but "
     "optimizer.schedule.kind is CONSTANT"},
    {"StepSizeTooLarge",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::STEP);
       Schedule(s).set_step_size(1000000001);
     },
     "optimizer.schedule.step_size must be in [1, 1000000000], got "
     "1000000001"},
    {"GammaZero",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::STEP);
       Schedule(s).set_gamma(0);
     },
     "optimizer.schedule.gamma must be in (0, 1], got 0"},
    {"GammaWithCosine",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::COSINE);
       Schedule(s).set_gamma(0.5);
     },
     "optimizer.schedule.gamma applies only to STEP, but "
     "optimizer.schedule.kind is COSINE"},
    {"MinLrFractionWithStep",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::STEP);
       Schedule(s).set_min_lr_fraction(0.1);
     },
     "optimizer.schedule.min_lr_fraction applies only to COSINE, but "
     "optimizer.schedule.kind is STEP"},
    {"MinLrFractionAboveOne",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::COSINE);
       Schedule(s).set_min_lr_fraction(1.5);
     },
     "optimizer.schedule.min_lr_fraction must be in [0, 1], got 1.5"},
    {"WarmupLongerThanDefaultSteps",
     [](v1::JobSpec& s) { Schedule(s).set_warmup_steps(1001); },
     "optimizer.schedule.warmup_steps must be in [0, 1000], got 1001; the "
     "upper bound is training.steps (default)"},
    {"WarmupLongerThanSteps",
     [](v1::JobSpec& s) {
       Training(s).set_steps(50);
       Schedule(s).set_warmup_steps(51);
     },
     "optimizer.schedule.warmup_steps must be in [0, 50], got 51; the upper "
     "bound is training.steps"},
    {"WarmupLongerThanEpochs",
     [](v1::JobSpec& s) {
       Training(s).set_epochs(2);  // 2 * floor(1000 / 32) = 62 steps
       Schedule(s).set_warmup_steps(63);
     },
     "optimizer.schedule.warmup_steps must be in [0, 62], got 63; the upper "
     "bound is training.steps (from training.epochs)"},
};
INSTANTIATE_TEST_SUITE_P(Optimizer, InvalidSpecTest,
                         ::testing::ValuesIn(kOptimizerCases), CaseName);

const std::vector<Case> kTrainingCases = {
    {"StepsAndEpochs",
     [](v1::JobSpec& s) {
       Training(s).set_steps(10);
       Training(s).set_epochs(1);
     },
     "training.steps and training.epochs are both set; set exactly one "
     "(neither = 1000 steps)"},
    {"StepsTooMany", [](v1::JobSpec& s) { Training(s).set_steps(1000000001); },
     "training.steps must be in [1, 1000000000], got 1000000001"},
    {"EpochsTooMany", [](v1::JobSpec& s) { Training(s).set_epochs(1000001); },
     "training.epochs must be in [1, 1000000], got 1000001"},
    {"EpochsMakeTooManySteps",
     [](v1::JobSpec& s) {
       Synthetic(s).set_samples(1000000);
       Training(s).set_batch_size(1);
       Training(s).set_epochs(1001);
     },
     "training.epochs 1001 makes 1001000000 steps (epochs * floor(1000000 / "
     "1)), but training.steps must be in [1, 1000000000]"},
    {"BatchTooLarge", [](v1::JobSpec& s) { Training(s).set_batch_size(65537); },
     "training.batch_size must be in [1, 65536], got 65537"},
    {"BatchLargerThanTrainingSet",
     [](v1::JobSpec& s) {
       Synthetic(s).set_samples(100);
       s.mutable_data()->set_validation_fraction(0.25);
       Training(s).set_batch_size(76);
     },
     "training.batch_size must be in [1, 75], got 76; the training set has "
     "75 of the 100 examples"},
    {"DefaultBatchLargerThanTrainingSet",
     [](v1::JobSpec& s) {
       UseInline(s, 10, 3);
       s.mutable_data()->set_validation_fraction(0.2);
     },
     "training.batch_size must be in [1, 8], got 32 (default); the training "
     "set has 8 of the 10 examples"},
    {"PrecisionUnknown",
     [](v1::JobSpec& s) {
       Training(s).set_precision(static_cast<v1::TrainingSpec::Precision>(3));
     },
     "training.precision has unknown value 3"},
    {"ThreadsTooMany", [](v1::JobSpec& s) { Training(s).set_threads(257); },
     "training.threads must be in [0, 256], got 257"},
};
INSTANTIATE_TEST_SUITE_P(Training, InvalidSpecTest,
                         ::testing::ValuesIn(kTrainingCases), CaseName);

const std::vector<Case> kMonitoringCases = {
    {"StatsEveryTooLarge",
     [](v1::JobSpec& s) { Monitoring(s).set_stats_every(1000001); },
     "monitoring.stats_every must be in [1, 1000000], got 1000001"},
    {"DeadWindowTooLarge",
     [](v1::JobSpec& s) { Monitoring(s).set_dead_window(4097); },
     "monitoring.dead_window must be in [1, 4096], got 4097"},
    {"DatasetSweepTooRare",
     [](v1::JobSpec& s) { Monitoring(s).set_dataset_sweep_every(1000000001); },
     "monitoring.dataset_sweep_every must be in [0, 1000000000], got "
     "1000000001"},
    {"SaturationEpsZero",
     [](v1::JobSpec& s) { Monitoring(s).set_saturation_eps(0); },
     "monitoring.saturation_eps must be in (0, 1), got 0"},
    {"SaturationEpsOne",
     [](v1::JobSpec& s) { Monitoring(s).set_saturation_eps(1); },
     "monitoring.saturation_eps must be in (0, 1), got 1"},
    {"ValidationEveryTooRare",
     [](v1::JobSpec& s) {
       s.mutable_data()->set_validation_fraction(0.1);
       Monitoring(s).set_validation_every(1000000001);
     },
     "monitoring.validation_every must be in [0, 1000000000], got "
     "1000000001"},
    {"ValidationEveryWithoutValidationSet",
     [](v1::JobSpec& s) { Monitoring(s).set_validation_every(10); },
     "monitoring.validation_every needs data.validation_fraction > 0 (no "
     "validation set), got 10"},
    {"HistogramBinsOne",
     [](v1::JobSpec& s) { Monitoring(s).mutable_histograms()->set_bins(1); },
     "monitoring.histograms.bins must be in [2, 256], got 1"},
    {"HistogramBinsTooMany",
     [](v1::JobSpec& s) { Monitoring(s).mutable_histograms()->set_bins(257); },
     "monitoring.histograms.bins must be in [2, 256], got 257"},
    {"HistogramEmptyRange",
     [](v1::JobSpec& s) {
       Monitoring(s).mutable_histograms()->set_min(1);
       Monitoring(s).mutable_histograms()->set_max(1);
     },
     "monitoring.histograms.min must be finite and less than "
     "monitoring.histograms.max (both 0 = [-4, 4)), got [1, 1)"},
    {"HistogramMinAboveZeroMax",
     [](v1::JobSpec& s) { Monitoring(s).mutable_histograms()->set_min(2); },
     "monitoring.histograms.min must be finite and less than "
     "monitoring.histograms.max (both 0 = [-4, 4)), got [2, 0)"},
    {"HistogramMaxInfinite",
     [](v1::JobSpec& s) { Monitoring(s).mutable_histograms()->set_max(kInf); },
     "monitoring.histograms.min must be finite and less than "
     "monitoring.histograms.max (both 0 = [-4, 4)), got [0, inf)"},
    {"CurvatureEveryTooRare",
     [](v1::JobSpec& s) { Monitoring(s).set_curvature_every(1000000001); },
     "monitoring.curvature_every must be in [0, 1000000000], got 1000000001"},
    {"CurvatureWithBf16",
     [](v1::JobSpec& s) {
       Monitoring(s).set_curvature_every(10);
       s.mutable_training()->set_precision(v1::TrainingSpec::BF16);
     },
     "monitoring.curvature_every needs training.precision F32, got BF16"},
    {"CurvatureIterationsTooMany",
     [](v1::JobSpec& s) { Monitoring(s).set_curvature_iterations(101); },
     "monitoring.curvature_iterations must be in [1, 100], got 101"},
    {"RuleThresholdNegative",
     [](v1::JobSpec& s) { Rules(s).mutable_dead_relu()->set_threshold(-0.5); },
     "monitoring.rules.dead_relu.threshold must be finite and >= 0, got "
     "-0.5"},
    {"RuleThresholdInfinite",
     [](v1::JobSpec& s) {
       Rules(s).mutable_vanishing_gradient()->set_threshold(kInf);
     },
     "monitoring.rules.vanishing_gradient.threshold must be finite and >= 0, "
     "got inf"},
    {"RuleThresholdNan",
     [](v1::JobSpec& s) {
       Rules(s).mutable_loss_not_decreasing()->set_threshold(kNan);
     },
     "monitoring.rules.loss_not_decreasing.threshold must be finite and >= "
     "0, got nan"},
    {"ExplodingTensorThreshold",
     [](v1::JobSpec& s) {
       Rules(s).mutable_exploding_tensor()->set_threshold(1);
     },
     "monitoring.rules.exploding_tensor.threshold is not used by "
     "exploding_tensor and must be unset"},
    {"UnchangedWeightsThreshold",
     [](v1::JobSpec& s) {
       Rules(s).mutable_unchanged_weights()->set_threshold(1);
     },
     "monitoring.rules.unchanged_weights.threshold is not used by "
     "unchanged_weights and must be unset"},
    {"ThresholdLowOnDeadRelu",
     [](v1::JobSpec& s) { Rules(s).mutable_dead_relu()->set_threshold_low(0); },
     "monitoring.rules.dead_relu.threshold_low applies only to "
     "weight_update_ratio and poor_weight_initialization"},
    {"ThresholdLowAboveDefaultThreshold",
     [](v1::JobSpec& s) {
       Rules(s).mutable_weight_update_ratio()->set_threshold_low(20);
     },
     "monitoring.rules.weight_update_ratio.threshold_low must be in [0, 10], "
     "got 20; the upper bound is "
     "monitoring.rules.weight_update_ratio.threshold (default)"},
    {"ThresholdLowAboveThreshold",
     [](v1::JobSpec& s) {
       Rules(s).mutable_poor_weight_initialization()->set_threshold(2);
       Rules(s).mutable_poor_weight_initialization()->set_threshold_low(3);
     },
     "monitoring.rules.poor_weight_initialization.threshold_low must be in "
     "[0, 2], got 3; the upper bound is "
     "monitoring.rules.poor_weight_initialization.threshold"},
    {"ThresholdLowNegative",
     [](v1::JobSpec& s) {
       Rules(s).mutable_weight_update_ratio()->set_threshold_low(-1e-9);
     },
     "monitoring.rules.weight_update_ratio.threshold_low must be in [0, 10], "
     "got -1e-09; the upper bound is "
     "monitoring.rules.weight_update_ratio.threshold (default)"},
    {"ThresholdBelowDefaultThresholdLow",
     [](v1::JobSpec& s) {
       Rules(s).mutable_weight_update_ratio()->set_threshold(1e-9);
     },
     "monitoring.rules.weight_update_ratio.threshold must be at least 1e-08 "
     "(monitoring.rules.weight_update_ratio.threshold_low, default), got "
     "1e-09"},
    {"InitThresholdBelowDefaultThresholdLow",
     [](v1::JobSpec& s) {
       Rules(s).mutable_poor_weight_initialization()->set_threshold(0.05);
     },
     "monitoring.rules.poor_weight_initialization.threshold must be at least "
     "0.1 (monitoring.rules.poor_weight_initialization.threshold_low, "
     "default), got 0.05"},
    {"RuleForStepsTooMany",
     [](v1::JobSpec& s) {
       Rules(s).mutable_unchanged_weights()->set_for_steps(1000001);
     },
     "monitoring.rules.unchanged_weights.for_steps must be in [0, 1000000], "
     "got 1000001"},
    {"RuleActionUnknown",
     [](v1::JobSpec& s) {
       Rules(s).mutable_saturated_activation()->set_action(
           static_cast<v1::RuleConfig::Action>(3));
     },
     "monitoring.rules.saturated_activation.action has unknown value 3"},
    {"ExplodingTensorActionNone",
     [](v1::JobSpec& s) {
       Rules(s).mutable_exploding_tensor()->set_action(v1::RuleConfig::NONE);
     },
     "monitoring.rules.exploding_tensor.action must be STOP_JOB (or unset): "
     "a non-finite value ends the job"},
};
INSTANTIATE_TEST_SUITE_P(Monitoring, InvalidSpecTest,
                         ::testing::ValuesIn(kMonitoringCases), CaseName);

// ---------------------------------------------------------------- valid specs

struct ValidCase {
  std::string name;
  std::function<void(v1::JobSpec&)> mutate;
};

void PrintTo(const ValidCase& c, std::ostream* os) { *os << c.name; }

class ValidSpecTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ValidSpecTest, Passes) {
  v1::JobSpec spec = Baseline();
  GetParam().mutate(spec);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  // A filled spec is still valid: the engine may re-check what it runs.
  if (spec.training().epochs() == 0) {
    const absl::Status filled = ValidateJobSpec(WithDefaults(spec, 0));
    EXPECT_TRUE(filled.ok()) << filled;
  }
}

std::string ValidCaseName(const ::testing::TestParamInfo<ValidCase>& info) {
  return info.param.name;
}

const std::vector<ValidCase> kValidCases = {
    {"Baseline", [](v1::JobSpec&) {}},
    {"NameOf128MultibyteCharacters",
     [](v1::JobSpec& s) {
       std::string name;
       for (int i = 0; i < 128; ++i) name += "\xC3\xA9";  // U+00E9
       s.set_name(name);
     }},
    {"SixteenLabels",
     [](v1::JobSpec& s) {
       for (int i = 0; i < 15; ++i) {
         (*s.mutable_labels())[absl::StrCat("k", i)] = "value ~!";
       }
       (*s.mutable_labels())[std::string(63, 'z')] = std::string(128, 'v');
     }},
    {"ExplicitSyntheticBounds",
     [](v1::JobSpec& s) {
       Synthetic(s).set_samples(4);
       Synthetic(s).set_features(2);
       Synthetic(s).set_classes(3);
       Synthetic(s).set_noise(10);
       Training(s).set_batch_size(4);
     }},
    {"BlobsWide",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::BLOBS);
       Synthetic(s).set_features(4096);
       Synthetic(s).set_classes(1000);
       Layer(s, 1).set_units(1000);
     }},
    {"XorBinaryCrossEntropy",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::XOR);
       s.set_loss(v1::BINARY_CROSS_ENTROPY);
       Layer(s, 1).set_units(1);
     }},
    {"TwoSpiralsBinaryCrossEntropy",
     [](v1::JobSpec& s) {
       Synthetic(s).set_classes(2);
       s.set_loss(v1::BINARY_CROSS_ENTROPY);
       Layer(s, 1).set_units(1);
     }},
    {"CirclesCrossEntropy",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::CIRCLES);
       Layer(s, 1).set_units(2);
     }},
    {"TeacherStudentMse",
     [](v1::JobSpec& s) {
       Synthetic(s).set_kind(v1::SyntheticData::TEACHER_STUDENT);
       Synthetic(s).set_features(8);
       Synthetic(s).set_classes(4);
       s.set_loss(v1::MSE);
       Layer(s, 1).set_units(4);
       Layer(s, 1).set_activation(v1::TANH);  // any output activation
     }},
    {"InlineClassification",
     [](v1::JobSpec& s) {
       UseInline(s, 40, 2);  // labels 0 and 1 into 3 units is fine
       Training(s).set_batch_size(40);
     }},
    {"InlineRegression",
     [](v1::JobSpec& s) {
       UseInlineRegression(s, 10, 3);
       s.mutable_data()->set_validation_fraction(0.5);
       Training(s).set_batch_size(5);
     }},
    {"BatchEqualsTrainingSet",
     [](v1::JobSpec& s) {
       Synthetic(s).set_samples(100);
       s.mutable_data()->set_validation_fraction(0.25);
       Training(s).set_batch_size(75);
     }},
    {"ActivationParameters",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_activation(v1::LEAKY_RELU);
       Layer(s, 0).set_negative_slope(0);
       v1::LayerSpec& elu = *s.mutable_model()->mutable_layers()->Add();
       elu.set_units(3);
       s.mutable_model()->mutable_layers()->SwapElements(1, 2);
       Layer(s, 1).set_activation(v1::ELU);
       Layer(s, 1).set_elu_alpha(100);
       Layer(s, 1).set_units(8);
     }},
    {"NamedLayersAndInit",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_name("hidden.A-1_" + std::string(21, 'x'));
       Layer(s, 1).set_name("0");  // no clash: layer 0 has a name
       Layer(s, 0).mutable_init()->set_scheme(v1::InitSpec::CONSTANT);
       Layer(s, 0).mutable_init()->set_gain(-1000);
       Layer(s, 0).mutable_init()->set_bias(1000);
     }},
    {"InitialWeightsWithBatchNorm",
     [](v1::JobSpec& s) {
       Layer(s, 0).set_batch_norm(v1::LayerSpec::BEFORE_ACTIVATION);
       AddInitialWeights(s);
       Params(s, 0).mutable_bn_scale()->Resize(16, 1.0f);
       Params(s, 0).mutable_bn_running_var()->Resize(16, 0.5f);
     }},
    {"AdamWithEveryField",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::ADAM);
       Optimizer(s).set_learning_rate(1000);
       Optimizer(s).set_beta1(0);
       Optimizer(s).set_beta2(0.5);
       Optimizer(s).set_epsilon(1);
       Optimizer(s).set_weight_decay(1000);
       Optimizer(s).set_decoupled_weight_decay(0.1);
       Optimizer(s).set_clip_grad_norm(1e9);
     }},
    {"RmspropAlpha",
     [](v1::JobSpec& s) {
       Optimizer(s).set_kind(v1::OptimizerSpec::RMSPROP);
       Optimizer(s).set_rmsprop_alpha(0);
       Optimizer(s).set_epsilon(1e-6);
     }},
    {"NesterovMomentum",
     [](v1::JobSpec& s) {
       Optimizer(s).set_momentum(0.9);
       Optimizer(s).set_nesterov(true);
     }},
    {"StepScheduleWithWarmup",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::STEP);
       Schedule(s).set_step_size(1000000000);
       Schedule(s).set_gamma(1);
       Schedule(s).set_warmup_steps(1000);
     }},
    {"CosineSchedule",
     [](v1::JobSpec& s) {
       Schedule(s).set_kind(v1::Schedule::COSINE);
       Schedule(s).set_min_lr_fraction(1);
     }},
    {"Epochs",
     [](v1::JobSpec& s) {
       Training(s).set_epochs(3);
       Schedule(s).set_warmup_steps(93);  // 3 * floor(1000 / 32)
     }},
    {"TrainingBounds",
     [](v1::JobSpec& s) {
       Training(s).set_steps(1000000000);
       Training(s).set_precision(v1::TrainingSpec::BF16);
       Training(s).set_threads(256);
       Training(s).set_flush_denormals(true);
       Training(s).set_seed(~0ull);
     }},
    {"MonitoringBounds",
     [](v1::JobSpec& s) {
       s.mutable_data()->set_validation_fraction(0.5);
       v1::MonitoringSpec& m = Monitoring(s);
       m.set_stats_every(1000000);
       m.set_dead_window(4096);
       m.set_dataset_sweep_every(1000000000);
       m.set_saturation_eps(0.5);
       m.set_validation_every(1000000000);
       m.mutable_histograms()->set_enabled(true);
       m.mutable_histograms()->set_bins(256);
       m.mutable_histograms()->set_min(-1);
       m.mutable_histograms()->set_max(0);
       m.set_curvature_every(1000000000);
       m.set_curvature_iterations(100);
     }},
    {"TinyUpdateRatioThresholdWithItsOwnLowerBound",
     [](v1::JobSpec& s) {
       Rules(s).mutable_weight_update_ratio()->set_threshold(1e-9);
       Rules(s).mutable_weight_update_ratio()->set_threshold_low(0);
     }},
    {"RulesExplicit",
     [](v1::JobSpec& s) {
       Rules(s).mutable_dead_relu()->set_threshold(0);
       Rules(s).mutable_dead_relu()->set_disabled(true);
       Rules(s).mutable_weight_update_ratio()->set_threshold(5);
       Rules(s).mutable_weight_update_ratio()->set_threshold_low(5);
       Rules(s).mutable_poor_weight_initialization()->set_threshold_low(0.5);
       Rules(s).mutable_unchanged_weights()->set_for_steps(1000000);
       Rules(s).mutable_exploding_tensor()->set_action(
           v1::RuleConfig::STOP_JOB);
       Rules(s).mutable_loss_not_decreasing()->set_action(
           v1::RuleConfig::STOP_JOB);
     }},
};
INSTANTIATE_TEST_SUITE_P(Valid, ValidSpecTest, ::testing::ValuesIn(kValidCases),
                         ValidCaseName);

// ---------------------------------------------------------------- CSV

std::string Message(const v1::JobSpec& spec) {
  return std::string(ValidateJobSpec(spec).message());
}

v1::JobSpec CsvSpec(const std::string& content, v1::Loss loss, int outputs) {
  v1::JobSpec spec = Baseline();
  spec.mutable_data()->mutable_csv()->set_content(content);
  spec.mutable_data()->mutable_csv()->set_label_column(-1);
  spec.set_loss(loss);
  Layer(spec, 1).set_units(outputs);
  Training(spec).set_batch_size(2);
  return spec;
}

TEST(ValidateCsvTest, AcceptsAValidDocument) {
  v1::JobSpec spec =
      CsvSpec("a,b,label\n1,2,0\n3,4,2\n5,6,1\n", v1::CROSS_ENTROPY, 3);
  spec.mutable_data()->mutable_csv()->set_header(true);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  spec.mutable_data()->mutable_csv()->set_label_column(0);  // 1, 3, 5
  EXPECT_EQ(Message(spec),
            "data.csv.content data row 2 label must be in [0, 2], got 3; "
            "CROSS_ENTROPY labels index the 3 units of model.layers[1]");
}

TEST(ValidateCsvTest, KeepsTheParserLineAndColumn) {
  const absl::Status status =
      ValidateJobSpec(CsvSpec("1,2,0\n3,x,1\n", v1::CROSS_ENTROPY, 3));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_THAT(message, StartsWith("data.csv.content line 2, column 2: "));
  EXPECT_THAT(message, HasSubstr("\"x\""));
}

TEST(ValidateCsvTest, ReportsTooFewRows) {
  const absl::Status status =
      ValidateJobSpec(CsvSpec("1,2,0\n", v1::CROSS_ENTROPY, 3));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "data.csv.content rows must be in [2, 1000000], got 1");
}

TEST(ValidateCsvTest, KeepsTheParserLabelColumnRange) {
  v1::JobSpec spec = CsvSpec("1,2,0\n3,4,1\n", v1::CROSS_ENTROPY, 3);
  spec.mutable_data()->mutable_csv()->set_label_column(3);
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("data.csv.label_column must be in [-3, 2]"));
}

TEST(ValidateCsvTest, ReportsTooManyFeatureColumns) {
  std::string row;
  for (int i = 0; i < 65537; ++i) row += "1,";
  row += "0\n";
  EXPECT_EQ(Message(CsvSpec(row + row, v1::CROSS_ENTROPY, 3)),
            "data.csv.content feature columns must be in [1, 65536], got "
            "65537");
}

TEST(ValidateCsvTest, ChecksLabelsAgainstTheLoss) {
  const std::string doc = "1,2,0\n3,4,1\n5,6,2\n";
  EXPECT_EQ(Message(CsvSpec(doc, v1::CROSS_ENTROPY, 2)),
            "data.csv.content data row 3 label must be in [0, 1], got 2; "
            "CROSS_ENTROPY labels index the 2 units of model.layers[1]");
  EXPECT_EQ(Message(CsvSpec(doc, v1::CROSS_ENTROPY, 1)),
            "model.layers[1].units (output layer) must be at least 2 for "
            "CROSS_ENTROPY, got 1");
  EXPECT_EQ(Message(CsvSpec(doc, v1::BINARY_CROSS_ENTROPY, 1)),
            "data.csv.content data row 3 label must be in [0, 1], got 2; "
            "BINARY_CROSS_ENTROPY labels are 0 or 1");
  EXPECT_EQ(Message(CsvSpec(doc, v1::BINARY_CROSS_ENTROPY, 2)),
            "model.layers[1].units (output layer) must be 1 for "
            "BINARY_CROSS_ENTROPY, got 2");
  EXPECT_TRUE(ValidateJobSpec(CsvSpec(doc, v1::CROSS_ENTROPY, 4)).ok());
}

TEST(ValidateCsvTest, RegressionNeedsOneOutput) {
  const std::string doc = "1,2,0.5\n3,4,-1.25\n";
  EXPECT_TRUE(ValidateJobSpec(CsvSpec(doc, v1::MSE, 1)).ok());
  EXPECT_EQ(Message(CsvSpec(doc, v1::MSE, 2)),
            "model.layers[1].units (output layer) must be 1 for MSE (the CSV "
            "label column is the one target), got 2");
}

TEST(ValidateCsvTest, InitialWeightsUseTheParsedWidth) {
  v1::JobSpec spec = CsvSpec("1,2,3,0\n4,5,6,1\n", v1::CROSS_ENTROPY, 3);
  AddInitialWeights(spec);  // built for 2 inputs; the document has 3
  EXPECT_EQ(Message(spec),
            "model.initial_weights[0].inputs must be 3 (the data's input "
            "features), got 2");
}

TEST(ValidateCsvTest, BatchMustFitTheParsedRows) {
  v1::JobSpec spec = CsvSpec("1,2,0\n3,4,1\n5,6,2\n", v1::CROSS_ENTROPY, 3);
  Training(spec).clear_batch_size();
  EXPECT_EQ(Message(spec),
            "training.batch_size must be in [1, 3], got 32 (default); the "
            "training set has 3 of the 3 examples");
}

}  // namespace
}  // namespace gradwatch::engine
