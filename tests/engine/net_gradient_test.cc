// The oneDNN network against the double-precision reference MLP, and the
// reference against central finite differences, for every activation x
// loss x batch-norm placement on a tiny model (3 inputs, hidden layers of 5
// and 4 units, batch 6).
//
// Tolerances:
// - engine (f32) vs reference (double): |got - want| <= 2e-5 * max(1, the
//   tensor's largest |want|). Values are O(1), so single-precision rounding
//   is ~1e-7 per operation; a few dozen operations and batch norm's
//   1 / sqrt(var + 1e-5) over 6 samples amplify it (the largest error seen
//   over all cases here is 1.3e-6).
// - reference vs finite differences (h = 1e-6, double): |fd - g| <= 1e-7 *
//   max(1, |fd|): the truncation error is O(h^2) and the rounding error about
//   1e-16 / h = 1e-10 (the largest seen is 1.2e-9). Parameters for which a
//   kink (RELU, LEAKY_RELU, ELU, STEP at z = 0) lies between the two
//   evaluations are skipped; at most 10% may be.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/loss.h"
#include "engine/model.h"
#include "engine/net.h"
#include "engine/onednn_util.h"
#include "engine/random.h"
#include "engine/spec_defaults.h"
#include "engine/spec_validation.h"
#include "engine/stats_collector.h"
#include "gtest/gtest.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tests/engine/reference_mlp.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;
using BatchNorm = v1::LayerSpec::BatchNorm;

constexpr int kInputs = 3;
constexpr int kHidden[] = {5, 4};
constexpr int kBatch = 6;
constexpr double kF32Tolerance = 2e-5;
constexpr double kFdStep = 1e-6;
constexpr double kFdTolerance = 1e-7;
constexpr ParamKind kParamKinds[] = {ParamKind::kWeights, ParamKind::kBias,
                                     ParamKind::kBnScale, ParamKind::kBnShift};

struct Case {
  v1::Activation activation;  // of both hidden layers
  v1::Loss loss;
  BatchNorm batch_norm;   // of both hidden layers
  bool nonlinear_output;  // MSE only: the output layer uses `activation` too
};

int OutputWidth(v1::Loss loss) {
  return loss == v1::CROSS_ENTROPY ? 3 : loss == v1::MSE ? 2 : 1;
}

const char* KindName(ParamKind kind) {
  switch (kind) {
    case ParamKind::kWeights:
      return "weights";
    case ParamKind::kBias:
      return "bias";
    case ParamKind::kBnScale:
      return "bn_scale";
    default:
      return "bn_shift";
  }
}

void SetActivation(v1::Activation activation, v1::LayerSpec& layer) {
  layer.set_activation(activation);
  // Non-default values, so that a parameter the engine ignored would show.
  if (activation == v1::LEAKY_RELU) layer.set_negative_slope(0.1f);
  if (activation == v1::ELU) layer.set_elu_alpha(0.7f);
}

// A valid spec with inline data (`rows` seeded random examples) and seeded
// random explicit initial weights, so that engine and reference start equal.
v1::JobSpec MakeSpec(const Case& c, int rows, uint64_t seed) {
  Rng rng(seed);
  v1::JobSpec spec;
  spec.set_loss(c.loss);
  const int width = OutputWidth(c.loss);
  auto* examples = spec.mutable_data()->mutable_inline_()->mutable_examples();
  for (int r = 0; r < rows; ++r) {
    v1::Example* e = examples->Add();
    for (int i = 0; i < kInputs; ++i) {
      e->add_x(static_cast<float>(rng.Uniform(-1.5, 1.5)));
    }
    if (c.loss == v1::MSE) {
      for (int j = 0; j < width; ++j) {
        e->add_y(static_cast<float>(rng.Uniform(-1, 1)));
      }
    } else {
      e->set_label(static_cast<uint32_t>(rng.Below(std::max(width, 2))));
    }
  }
  v1::ModelSpec& model = *spec.mutable_model();
  int inputs = kInputs;
  for (int l = 0; l < 3; ++l) {
    const bool output = l == 2;
    v1::LayerSpec& layer = *model.add_layers();
    layer.set_units(output ? width : kHidden[l]);
    if (!output) {
      SetActivation(c.activation, layer);
      layer.set_batch_norm(c.batch_norm);
    } else {
      SetActivation(c.nonlinear_output ? c.activation : v1::LINEAR, layer);
    }
    v1::LayerParameters& p = *model.add_initial_weights();
    p.set_inputs(inputs);
    p.set_units(layer.units());
    const double bound = std::sqrt(3.0 / inputs);  // variance 1 / fan_in
    for (uint32_t k = 0; k < inputs * layer.units(); ++k) {
      p.add_weights(static_cast<float>(rng.Uniform(-bound, bound)));
    }
    for (uint32_t j = 0; j < layer.units(); ++j) {
      p.add_bias(static_cast<float>(rng.Uniform(-0.3, 0.3)));
      if (!output && c.batch_norm != v1::LayerSpec::NONE) {
        p.add_bn_scale(static_cast<float>(rng.Uniform(0.5, 1.5)));
        p.add_bn_shift(static_cast<float>(rng.Uniform(-0.5, 0.5)));
        p.add_bn_running_mean(static_cast<float>(rng.Uniform(-0.5, 0.5)));
        p.add_bn_running_var(static_cast<float>(rng.Uniform(0.5, 2.0)));
      }
    }
    inputs = static_cast<int>(layer.units());
  }
  spec.mutable_training()->set_batch_size(std::min(rows, kBatch));
  spec.mutable_training()->set_seed(seed);
  return spec;
}

// The inline examples as the engine's input, and as the reference's.
struct Examples {
  std::vector<float> x;
  std::vector<double> x_double;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  ReferenceTargets reference;
};

Examples ExamplesOf(const v1::JobSpec& spec) {
  Examples d;
  for (const v1::Example& e : spec.data().inline_().examples()) {
    d.x.insert(d.x.end(), e.x().begin(), e.x().end());
    d.labels.push_back(static_cast<int32_t>(e.label()));
    d.targets.insert(d.targets.end(), e.y().begin(), e.y().end());
  }
  d.x_double.assign(d.x.begin(), d.x.end());
  d.reference.labels = d.labels;
  d.reference.targets.assign(d.targets.begin(), d.targets.end());
  return d;
}

// A copy of a weights-shaped buffer (the oneDNN-chosen layout) in
// LayerParameters' plain [inputs][units] layout.
std::vector<float> PlainWeights(const LayerParams& p, const dnnl::memory& mem) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::memory src(p.weights_md, engine, mem.get_data_handle());
  dnnl::memory dst({{p.units, p.inputs},
                    dnnl::memory::data_type::f32,
                    dnnl::memory::format_tag::io},
                   engine);
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
  const float* v = Data(dst);
  return std::vector<float>(v, v + static_cast<int64_t>(p.units) * p.inputs);
}

std::vector<float> EngineGradient(const LayerParams& p, ParamKind kind) {
  const auto copy = [&](const dnnl::memory& mem) {
    const float* v = Data(mem);
    return std::vector<float>(v, v + p.units);
  };
  switch (kind) {
    case ParamKind::kWeights:
      return PlainWeights(p, p.diff_weights);
    case ParamKind::kBias:
      return copy(p.diff_bias);
    case ParamKind::kBnScale:
      return copy(p.diff_bn_scale);
    default:
      return copy(p.diff_bn_shift);
  }
}

int64_t CountNonZero(const float* v, int64_t n) {
  return std::count_if(v, v + n, [](float f) { return f != 0.0f; });
}

// One EXPECT per tensor: the worst element against the f32 tolerance.
void ExpectClose(const std::vector<double>& want, const float* got,
                 const std::string& what) {
  double scale = 1;
  for (double w : want) scale = std::max(scale, std::abs(w));
  double worst = -1;
  size_t worst_index = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= worst)) {  // also catches NaN
      worst = err;
      worst_index = i;
    }
  }
  if (want.empty()) return;
  EXPECT_LE(worst, kF32Tolerance * scale)
      << what << "[" << worst_index << "]: engine " << got[worst_index]
      << ", reference " << want[worst_index];
}

// The case's loss on the net's output, its gradient written to the net.
LossResult CaseLoss(const Case& c, const Examples& data, Net& net) {
  return ComputeLoss(c.loss, net.output(), kBatch, OutputWidth(c.loss),
                     c.loss == v1::MSE ? nullptr : data.labels.data(),
                     c.loss == v1::MSE ? data.targets.data() : nullptr,
                     net.diff_output());
}

class NetGradientTest : public testing::TestWithParam<Case> {};

TEST_P(NetGradientTest, EngineMatchesReferenceAndReferenceMatchesFiniteDiff) {
  const Case& c = GetParam();
  const v1::JobSpec spec = MakeSpec(c, kBatch, /*seed=*/17);
  const absl::Status valid = ValidateJobSpec(spec);
  ASSERT_TRUE(valid.ok()) << valid;
  const v1::JobSpec filled = WithDefaults(spec, kBatch);
  const Examples data = ExamplesOf(spec);
  const int width = OutputWidth(c.loss);

  auto model = Model::Create(filled, kInputs, kBatch);
  ASSERT_TRUE(model.ok()) << model.status();
  Net& net = (*model)->train_net();
  ReferenceMlp ref = ReferenceMlp::FromModelSpec(filled.model(), kInputs);

  // (a) forward, loss, dL/d(output) and every gradient against the reference.
  std::copy(data.x.begin(), data.x.end(), net.input());
  net.Forward();
  const LossResult loss = CaseLoss(c, data, net);
  net.Backward();

  const ReferenceTrace trace =
      ref.Forward(data.x_double, kBatch, BatchNormStats::kBatch);
  std::vector<double> ref_diff_output;
  const double ref_loss = ReferenceLoss(c.loss, trace.output(), kBatch, width,
                                        data.reference, &ref_diff_output);
  const std::vector<ReferenceLayerGradients> grads =
      ref.Backward(trace, ref_diff_output);

  EXPECT_NEAR(loss.loss, ref_loss, kF32Tolerance * std::max(1.0, ref_loss));
  for (int l = 0; l < net.num_layers(); ++l) {
    const std::string at = "layers[" + std::to_string(l) + "].";
    const LayerActivations& la = net.layer(l);
    ExpectClose(trace.layers[l].z, Data(la.z), at + "z");
    ExpectClose(trace.layers[l].out, Data(la.out), at + "out");
    ExpectClose(grads[l].diff_out, Data(la.diff_out), at + "diff_out");
    const LayerParams& p = (*model)->params()[l];
    for (ParamKind kind : kParamKinds) {
      if (grads[l].Get(kind).empty()) continue;
      ExpectClose(grads[l].Get(kind), EngineGradient(p, kind).data(),
                  at + KindName(kind) + " gradient");
    }
    // The padding of a blocked layout must stay zero in the gradient.
    const std::vector<float> plain = PlainWeights(p, p.diff_weights);
    EXPECT_EQ(CountNonZero(Data(p.diff_weights), Elements(p.weights_md)),
              CountNonZero(plain.data(), static_cast<int64_t>(plain.size())))
        << at << "diff_weights has non-zero padding";
  }

  // (b) the reference's gradients against central finite differences.
  const std::vector<bool> pattern = ref.KinkPattern(data.x_double, kBatch);
  int checked = 0, skipped = 0;
  for (int l = 0; l < static_cast<int>(ref.layers().size()); ++l) {
    for (ParamKind kind : kParamKinds) {
      std::vector<double>& param = ref.Param(l, kind);
      for (size_t i = 0; i < param.size(); ++i) {
        const double saved = param[i];
        param[i] = saved + kFdStep;
        const double loss_plus =
            ref.BatchLoss(c.loss, data.x_double, kBatch, data.reference);
        bool smooth = ref.KinkPattern(data.x_double, kBatch) == pattern;
        param[i] = saved - kFdStep;
        const double loss_minus =
            ref.BatchLoss(c.loss, data.x_double, kBatch, data.reference);
        smooth = smooth && ref.KinkPattern(data.x_double, kBatch) == pattern;
        param[i] = saved;
        if (!smooth) {
          ++skipped;
          continue;
        }
        ++checked;
        const double fd = (loss_plus - loss_minus) / (2 * kFdStep);
        const double analytic = grads[l].Get(kind)[i];
        EXPECT_NEAR(fd, analytic, kFdTolerance * std::max(1.0, std::abs(fd)))
            << "layers[" << l << "]." << KindName(kind) << "[" << i << "]";
      }
    }
  }
  EXPECT_GE(checked, 9 * (checked + skipped) / 10)
      << "too many parameters near a kink to be meaningful";

  // (c) a STEP layer passes no gradient: everything up to and including its
  // dense layer and its batch norm before the activation gets exactly 0.
  if (c.activation == v1::STEP) {
    const int last_step_layer = c.nonlinear_output ? 2 : 1;
    for (int l = 0; l <= last_step_layer; ++l) {
      const LayerParams& p = (*model)->params()[l];
      for (ParamKind kind : kParamKinds) {
        if (grads[l].Get(kind).empty()) continue;
        // Batch norm after the last STEP is downstream of it.
        const bool downstream =
            l == last_step_layer &&
            c.batch_norm == v1::LayerSpec::AFTER_ACTIVATION &&
            (kind == ParamKind::kBnScale || kind == ParamKind::kBnShift);
        if (downstream) continue;
        const std::vector<float> g = EngineGradient(p, kind);
        EXPECT_EQ(CountNonZero(g.data(), static_cast<int64_t>(g.size())), 0)
            << "layers[" << l << "]." << KindName(kind);
        for (double v : grads[l].Get(kind)) EXPECT_EQ(v, 0.0);
      }
    }
    if (!c.nonlinear_output) {  // the output layer still learns
      const std::vector<float> g =
          EngineGradient((*model)->params()[2], ParamKind::kBias);
      EXPECT_GT(CountNonZero(g.data(), static_cast<int64_t>(g.size())), 0);
    }
  }
}

std::vector<Case> AllCases() {
  const v1::Activation activations[] = {v1::RELU,   v1::LEAKY_RELU, v1::ELU,
                                        v1::GELU,   v1::SIGMOID,    v1::TANH,
                                        v1::LINEAR, v1::STEP};
  const BatchNorm placements[] = {v1::LayerSpec::NONE,
                                  v1::LayerSpec::BEFORE_ACTIVATION,
                                  v1::LayerSpec::AFTER_ACTIVATION};
  std::vector<Case> cases;
  for (v1::Activation a : activations) {
    for (v1::Loss loss :
         {v1::CROSS_ENTROPY, v1::MSE, v1::BINARY_CROSS_ENTROPY}) {
      for (BatchNorm bn : placements) {
        cases.push_back({a, loss, bn, false});
        if (loss == v1::MSE && a != v1::LINEAR)
          cases.push_back({a, loss, bn, true});
      }
    }
  }
  return cases;
}

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return v1::Activation_Name(c.activation) + "_" + v1::Loss_Name(c.loss) + "_" +
         v1::LayerSpec::BatchNorm_Name(c.batch_norm) +
         (c.nonlinear_output ? "_NonlinearOutput" : "");
}

// Every buffer a step reads after the forward pass, as raw floats.
std::vector<std::vector<float>> StepBuffers(Net& net, const Model& model) {
  auto copy = [](const dnnl::memory& mem) {
    const float* data = Data(mem);
    return std::vector<float>(data, data + mem.get_desc().get_size() / 4);
  };
  std::vector<std::vector<float>> buffers;
  for (int l = 0; l < net.num_layers(); ++l) {
    const LayerActivations& la = net.layer(l);
    const LayerParams& p = model.params()[l];
    for (const dnnl::memory* mem :
         {&la.act, &la.out, &la.diff_out, &la.diff_z, &p.diff_weights,
          &p.diff_bias, &p.diff_bn_scale, &p.diff_bn_shift}) {
      if (*mem) buffers.push_back(copy(*mem));
    }
  }
  return buffers;
}

// ForwardFused (ReLU as its inner product's post-op, Z not written) and
// ForwardActivating (ReLU's A written by the statistics collector) give the
// step exactly what Forward gives: activations, output, gradients.
TEST_P(NetGradientTest, EveryForwardPassGivesTheSameStepBitForBit) {
  const Case& c = GetParam();
  const v1::JobSpec spec = MakeSpec(c, kBatch, /*seed=*/17);
  const v1::JobSpec filled = WithDefaults(spec, kBatch);
  auto model = Model::Create(filled, kInputs, kBatch);
  ASSERT_TRUE(model.ok()) << model.status();
  Net& net = (*model)->train_net();
  const Examples data = ExamplesOf(spec);

  StatsCollector collector(filled.monitoring(), **model);
  std::vector<std::vector<float>> steps[3];
  for (const int pass : {0, 1, 2}) {
    std::copy(data.x.begin(), data.x.end(), net.input());
    if (pass == 0) net.Forward();
    if (pass == 1) net.ForwardFused();
    if (pass == 2) net.ForwardActivating(collector);
    CaseLoss(c, data, net);
    net.Backward();
    steps[pass] = StepBuffers(net, **model);
  }
  for (const int pass : {1, 2}) {
    ASSERT_EQ(steps[0].size(), steps[pass].size());
    for (size_t b = 0; b < steps[0].size(); ++b) {
      ASSERT_EQ(steps[0][b].size(), steps[pass][b].size());
      EXPECT_EQ(0, std::memcmp(steps[0][b].data(), steps[pass][b].data(),
                               steps[0][b].size() * sizeof(float)))
          << "pass " << pass << ", buffer " << b;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllActivationsLossesAndBatchNorm, NetGradientTest,
                         testing::ValuesIn(AllCases()), CaseName);

// A STEP layer between a TANH layer and the output: TANH alone would pass
// gradient, so its exact zeros come from the STEP layer downstream.
TEST(NetGradientTest, StepLayerStopsGradientOfLayersUpstream) {
  Case c{v1::TANH, v1::CROSS_ENTROPY, v1::LayerSpec::NONE, false};
  v1::JobSpec spec = MakeSpec(c, kBatch, /*seed=*/5);
  spec.mutable_model()->mutable_layers(1)->set_activation(v1::STEP);
  const v1::JobSpec filled = WithDefaults(spec, kBatch);
  const Examples data = ExamplesOf(spec);
  auto model = Model::Create(filled, kInputs, kBatch);
  ASSERT_TRUE(model.ok()) << model.status();
  Net& net = (*model)->train_net();
  std::copy(data.x.begin(), data.x.end(), net.input());
  net.Forward();
  ComputeLoss(c.loss, net.output(), kBatch, 3, data.labels.data(), nullptr,
              net.diff_output());
  net.Backward();

  const auto& params = (*model)->params();
  for (int l = 0; l < 2; ++l) {
    for (ParamKind kind : {ParamKind::kWeights, ParamKind::kBias}) {
      const std::vector<float> g = EngineGradient(params[l], kind);
      EXPECT_EQ(CountNonZero(g.data(), static_cast<int64_t>(g.size())), 0)
          << "layers[" << l << "]." << KindName(kind);
    }
  }
  // dL/d(out) of the TANH layer is exactly zero too: nothing flows back.
  const float* diff = Data(net.layer(0).diff_out);
  EXPECT_EQ(CountNonZero(diff, int64_t{kBatch} * kHidden[0]), 0);
  for (ParamKind kind : {ParamKind::kWeights, ParamKind::kBias}) {
    const std::vector<float> g = EngineGradient(params[2], kind);
    EXPECT_GT(CountNonZero(g.data(), static_cast<int64_t>(g.size())), 0)
        << "the output layer should still learn";
  }
}

// Forward-only inference uses the running statistics, also in the last,
// partial (zero-padded) chunk.
class InferenceTest
    : public testing::TestWithParam<std::tuple<v1::Activation, BatchNorm>> {};

TEST_P(InferenceTest, MatchesReferenceWithRunningStatistics) {
  const Case c{std::get<0>(GetParam()), v1::CROSS_ENTROPY,
               std::get<1>(GetParam()), false};
  const int rows = Model::kInferenceChunk + 44;
  const v1::JobSpec spec = MakeSpec(c, rows, /*seed=*/23);
  const v1::JobSpec filled = WithDefaults(spec, rows);
  const Examples data = ExamplesOf(spec);
  auto model = Model::Create(filled, kInputs, kBatch);
  ASSERT_TRUE(model.ok()) << model.status();
  const int width = OutputWidth(c.loss);

  std::vector<float> out(static_cast<size_t>(rows) * width, std::nanf(""));
  std::vector<int> chunk_rows;
  const absl::Status status = (*model)->ForEachInferenceChunk(
      data.x.data(), rows, [&](const Net& net, int64_t row0, int n) {
        std::copy(net.output(), net.output() + int64_t{n} * width,
                  out.begin() + row0 * width);
        chunk_rows.push_back(n);
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(chunk_rows, (std::vector<int>{Model::kInferenceChunk, 44}));

  const ReferenceMlp ref = ReferenceMlp::FromModelSpec(filled.model(), kInputs);
  const ReferenceTrace trace =
      ref.Forward(data.x_double, rows, BatchNormStats::kRunning);
  ExpectClose(trace.output(), out.data(), "inference output");
}

INSTANTIATE_TEST_SUITE_P(
    AllActivationsAndBatchNorm, InferenceTest,
    testing::Combine(testing::Values(v1::RELU, v1::LEAKY_RELU, v1::ELU,
                                     v1::GELU, v1::SIGMOID, v1::TANH,
                                     v1::LINEAR, v1::STEP),
                     testing::Values(v1::LayerSpec::NONE,
                                     v1::LayerSpec::BEFORE_ACTIVATION,
                                     v1::LayerSpec::AFTER_ACTIVATION)),
    [](const testing::TestParamInfo<InferenceTest::ParamType>& info) {
      return v1::Activation_Name(std::get<0>(info.param)) + "_" +
             v1::LayerSpec::BatchNorm_Name(std::get<1>(info.param));
    });

// Export returns the initial weights bit for bit (the blocked layout is a
// permutation), and UpdateRunningStats folds the batch statistics in with
// momentum 0.1 and the unbiased variance.
TEST(NetGradientTest, ExportRoundTripsAndRunningStatisticsFollowBatches) {
  Case c{v1::RELU, v1::MSE, v1::LayerSpec::BEFORE_ACTIVATION, false};
  v1::JobSpec spec = MakeSpec(c, kBatch, /*seed=*/31);
  spec.mutable_model()->mutable_layers(1)->set_batch_norm(
      v1::LayerSpec::AFTER_ACTIVATION);
  const v1::JobSpec filled = WithDefaults(spec, kBatch);
  const Examples data = ExamplesOf(spec);
  auto model = Model::Create(filled, kInputs, kBatch);
  ASSERT_TRUE(model.ok()) << model.status();

  auto exported = (*model)->Export();
  ASSERT_TRUE(exported.ok()) << exported.status();
  ASSERT_EQ(exported->layers_size(), 3);
  for (int l = 0; l < 3; ++l) {
    const v1::LayerParameters& want = spec.model().initial_weights(l);
    const v1::LayerParameters& got = exported->layers(l);
    EXPECT_EQ(got.inputs(), want.inputs());
    EXPECT_EQ(got.units(), want.units());
    EXPECT_TRUE(std::equal(got.weights().begin(), got.weights().end(),
                           want.weights().begin(), want.weights().end()));
    EXPECT_TRUE(std::equal(got.bias().begin(), got.bias().end(),
                           want.bias().begin(), want.bias().end()));
    EXPECT_TRUE(std::equal(got.bn_scale().begin(), got.bn_scale().end(),
                           want.bn_scale().begin(), want.bn_scale().end()));
    EXPECT_TRUE(std::equal(got.bn_shift().begin(), got.bn_shift().end(),
                           want.bn_shift().begin(), want.bn_shift().end()));
  }

  Net& net = (*model)->train_net();
  std::copy(data.x.begin(), data.x.end(), net.input());
  net.Forward();
  (*model)->UpdateRunningStats();
  exported = (*model)->Export();
  ASSERT_TRUE(exported.ok()) << exported.status();

  const ReferenceMlp ref = ReferenceMlp::FromModelSpec(filled.model(), kInputs);
  const ReferenceTrace trace =
      ref.Forward(data.x_double, kBatch, BatchNormStats::kBatch);
  for (int l = 0; l < 2; ++l) {
    const ReferenceLayer& layer = ref.layers()[l];
    std::vector<double> mean(layer.units), var(layer.units);
    for (int j = 0; j < layer.units; ++j) {
      mean[j] =
          0.9 * layer.bn_running_mean[j] + 0.1 * trace.layers[l].bn_mean[j];
      var[j] = 0.9 * layer.bn_running_var[j] +
               0.1 * trace.layers[l].bn_var[j] * kBatch / (kBatch - 1);
    }
    const std::string at = "layers[" + std::to_string(l) + "].";
    ExpectClose(mean, exported->layers(l).bn_running_mean().data(),
                at + "bn_running_mean");
    ExpectClose(var, exported->layers(l).bn_running_var().data(),
                at + "bn_running_var");
  }
}

}  // namespace
}  // namespace gradwatch::engine
