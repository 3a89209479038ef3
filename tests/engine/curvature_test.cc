// CurvatureEstimator against exact Hessians computed here in double.
//
// References:
// - Linear layer with MSE: the Hessian is block diagonal, one block per
//   output j over (W[:, j], b_j), each (2 / (B * width)) * Xa^T Xa with
//   Xa = [X 1]; its top eigenvalue comes from a Jacobi eigen-decomposition.
// - Nonlinear nets: the dense Hessian of tests/engine/reference_mlp.h's
//   double-precision MLP by central differences of its exact gradients
//   (h = 1e-6: truncation ~1e-12, rounding ~1e-10, relative; no ReLU-like
//   pre-activation crosses 0, which is checked), symmetrized and
//   Jacobi-diagonalized; the estimate is compared with its eigenvalue of
//   largest magnitude (what power iteration finds). The linear case checks
//   this reference against the closed form too (1e-8).
// - STEP layer: only the output layer, reading the fixed 0/1 pattern,
//   curves the loss: the linear closed form with that pattern as input.
//
// Tolerance: 2e-3 relative to the exact eigenvalue, for the default
// kRelativeStep = 1e-5. Largest errors measured: 8.0e-4 on the linear
// layer (f32 rounding of the gradients, which grows as 1/h: 4e-4 at
// h = 3e-5, 3e-3 at 3e-6), 5.8e-4 on the nonlinear nets (tanh with batch
// norm: 4.8e-4 at 1e-4, 4.4e-2 at 1e-3, where truncation dominates),
// 5.8e-4 with a ReLU pre-activation pinned at its kink. The power iteration
// runs long enough (the exact spectrum's gap is checked) that its own
// convergence error is far below these.

#include "engine/curvature.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/loss.h"
#include "engine/model.h"
#include "engine/onednn_util.h"
#include "engine/optimizer.h"
#include "engine/random.h"
#include "engine/spec_defaults.h"
#include "engine/spec_validation.h"
#include "gtest/gtest.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tests/engine/reference_mlp.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;
using BatchNorm = v1::LayerSpec::BatchNorm;

constexpr double kTolerance = 2e-3;
constexpr double kReferenceStep = 1e-6;

struct LayerDef {
  LayerDef(int units, v1::Activation activation,
           BatchNorm batch_norm = v1::LayerSpec::NONE,
           std::optional<float> bias = std::nullopt)
      : units(units),
        activation(activation),
        batch_norm(batch_norm),
        bias(bias) {}

  int units;
  v1::Activation activation;
  BatchNorm batch_norm;
  // Every bias of the layer, instead of a random one (dead or alive units).
  std::optional<float> bias;
};

struct Problem {
  v1::JobSpec spec;  // defaults filled
  int inputs = 0;
  int batch = 0;
  std::vector<float> x;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  ReferenceTargets reference_targets;
};

int OutputWidth(const std::vector<LayerDef>& layers) {
  return layers.back().units;
}

// A valid spec with `batch` inline examples (x uniform in [x_lo, x_hi)) and
// seeded explicit initial weights, so that engine and reference start
// equal; the data are also returned as the engine's batch.
Problem MakeProblem(int inputs, const std::vector<LayerDef>& layers,
                    v1::Loss loss, int batch, uint64_t seed, double x_lo = -1,
                    double x_hi = 1) {
  Problem pr;
  pr.inputs = inputs;
  pr.batch = batch;
  Rng rng(seed);
  v1::JobSpec spec;
  spec.set_loss(loss);
  const int width = OutputWidth(layers);
  auto* examples = spec.mutable_data()->mutable_inline_()->mutable_examples();
  for (int r = 0; r < batch; ++r) {
    v1::Example* e = examples->Add();
    for (int i = 0; i < inputs; ++i) {
      const float x = static_cast<float>(rng.Uniform(x_lo, x_hi));
      e->add_x(x);
      pr.x.push_back(x);
    }
    if (loss == v1::MSE) {
      for (int j = 0; j < width; ++j) {
        const float y = static_cast<float>(rng.Uniform(-1, 1));
        e->add_y(y);
        pr.targets.push_back(y);
      }
    } else {
      const int32_t label = static_cast<int32_t>(rng.Below(std::max(width, 2)));
      e->set_label(static_cast<uint32_t>(label));
      pr.labels.push_back(label);
    }
  }
  pr.reference_targets.labels = pr.labels;
  pr.reference_targets.targets.assign(pr.targets.begin(), pr.targets.end());
  int fan_in = inputs;
  for (const LayerDef& def : layers) {
    v1::LayerSpec& layer = *spec.mutable_model()->add_layers();
    layer.set_units(def.units);
    layer.set_activation(def.activation);
    layer.set_batch_norm(def.batch_norm);
    v1::LayerParameters& p = *spec.mutable_model()->add_initial_weights();
    p.set_inputs(fan_in);
    p.set_units(def.units);
    const double bound = std::sqrt(3.0 / fan_in);
    for (int k = 0; k < fan_in * def.units; ++k) {
      p.add_weights(static_cast<float>(rng.Uniform(-bound, bound)));
    }
    for (int j = 0; j < def.units; ++j) {
      p.add_bias(def.bias ? *def.bias
                          : static_cast<float>(rng.Uniform(-.3, .3)));
      if (def.batch_norm != v1::LayerSpec::NONE) {
        p.add_bn_scale(static_cast<float>(rng.Uniform(0.5, 1.5)));
        p.add_bn_shift(static_cast<float>(rng.Uniform(-0.5, 0.5)));
      }
    }
    fan_in = def.units;
  }
  spec.mutable_training()->set_batch_size(batch);
  spec.mutable_training()->set_seed(seed);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  pr.spec = WithDefaults(spec, batch);
  return pr;
}

// The engine's model with the batch loaded and one training Forward, loss
// and Backward done, as the trainer leaves it before the optimizer step.
std::unique_ptr<Model> TrainingModel(const Problem& pr) {
  // One thread: timings stay sane on a loaded machine; results don't depend
  // on it.
  ConfigureComputeThreads(1, /*flush_denormals=*/false);
  auto model = Model::Create(pr.spec, pr.inputs, pr.batch);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  Net& net = (*model)->train_net();
  std::copy(pr.x.begin(), pr.x.end(), net.input());
  net.Forward();
  ComputeLoss(pr.spec.loss(), net.output(), pr.batch, (*model)->output_units(),
              pr.labels.data(), pr.targets.data(), net.diff_output());
  net.Backward();
  return *std::move(model);
}

double Estimate(Model& model, const Problem& pr, int iterations,
                uint64_t seed) {
  auto estimator = CurvatureEstimator::Create(model);
  EXPECT_TRUE(estimator.ok()) << estimator.status();
  absl::StatusOr<double> top =
      (*estimator)
          ->LargestEigenvalue(model, pr.spec.loss(), pr.labels.data(),
                              pr.targets.data(), iterations, seed);
  EXPECT_TRUE(top.ok()) << top.status();
  return top.ok() ? *top : std::nan("");
}

// Eigenvalues of a symmetric n x n matrix (row-major) by cyclic Jacobi
// rotations, in double; ascending.
std::vector<double> SymmetricEigenvalues(std::vector<double> a, int n) {
  auto at = [&](int i, int j) -> double& { return a[i * n + j]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, total = 0;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        total += at(i, j) * at(i, j);
        if (i != j) off += at(i, j) * at(i, j);
      }
    }
    if (off <= 1e-30 * total) break;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        if (at(p, q) == 0) continue;
        const double theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const double t = (theta >= 0 ? 1 : -1) /
                         (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {  // A <- A J
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // A <- J^T A
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
      }
    }
  }
  std::vector<double> eig(n);
  for (int i = 0; i < n; ++i) eig[i] = at(i, i);
  std::sort(eig.begin(), eig.end());
  return eig;
}

constexpr ParamKind kKinds[] = {ParamKind::kWeights, ParamKind::kBias,
                                ParamKind::kBnScale, ParamKind::kBnShift};

std::vector<double> ReferenceGradient(const ReferenceMlp& ref,
                                      const Problem& pr) {
  std::vector<double> x(pr.x.begin(), pr.x.end());
  const ReferenceTrace trace = ref.Forward(x, pr.batch, BatchNormStats::kBatch);
  std::vector<double> d_out;
  ReferenceLoss(pr.spec.loss(), trace.output(), pr.batch, ref.output_units(),
                pr.reference_targets, &d_out);
  const auto grads = ref.Backward(trace, d_out);
  std::vector<double> flat;
  for (const ReferenceLayerGradients& g : grads) {
    for (ParamKind kind : kKinds) {
      flat.insert(flat.end(), g.Get(kind).begin(), g.Get(kind).end());
    }
  }
  return flat;
}

// The dense Hessian of the reference MLP's batch loss over all parameters.
std::vector<double> ReferenceHessian(const Problem& pr, int& n) {
  ReferenceMlp ref = ReferenceMlp::FromModelSpec(pr.spec.model(), pr.inputs);
  n = static_cast<int>(ReferenceGradient(ref, pr).size());
  const std::vector<double> x(pr.x.begin(), pr.x.end());
  const std::vector<bool> pattern = ref.KinkPattern(x, pr.batch);
  int crossings = 0;
  std::vector<double> h(static_cast<size_t>(n) * n);
  int col = 0;
  for (int l = 0; l < static_cast<int>(ref.layers().size()); ++l) {
    for (ParamKind kind : kKinds) {
      std::vector<double>& param = ref.Param(l, kind);
      for (double& value : param) {
        const double saved = value;
        value = saved + kReferenceStep;
        const std::vector<double> plus = ReferenceGradient(ref, pr);
        crossings += ref.KinkPattern(x, pr.batch) != pattern;
        value = saved - kReferenceStep;
        const std::vector<double> minus = ReferenceGradient(ref, pr);
        crossings += ref.KinkPattern(x, pr.batch) != pattern;
        value = saved;
        for (int r = 0; r < n; ++r) {
          h[static_cast<size_t>(r) * n + col] =
              (plus[r] - minus[r]) / (2 * kReferenceStep);
        }
        ++col;
      }
    }
  }
  // The reference is the Hessian of the smooth piece the parameters are on.
  EXPECT_EQ(crossings, 0);
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      const double m = (h[i * n + j] + h[j * n + i]) / 2;
      h[i * n + j] = h[j * n + i] = m;
    }
  }
  return h;
}

// Eigenvalue of largest magnitude, and |second| / |first| (the power
// iteration's convergence factor).
struct Dominant {
  double value;
  double ratio;
};

Dominant DominantOf(const std::vector<double>& eig) {
  std::vector<double> sorted = eig;
  std::sort(sorted.begin(), sorted.end(),
            [](double a, double b) { return std::abs(a) > std::abs(b); });
  return {sorted[0], std::abs(sorted[1]) / std::abs(sorted[0])};
}

TEST(CurvatureTest, LinearMseMatchesClosedForm) {
  // Features in [0, 2): their mean makes one eigenvalue of Xa^T Xa dominant.
  const Problem pr = MakeProblem(5, {{3, v1::LINEAR}}, v1::MSE, /*batch=*/16,
                                 /*seed=*/3, 0.0, 2.0);
  const int n = pr.inputs + 1;
  std::vector<double> gram(static_cast<size_t>(n) * n, 0.0);
  for (int b = 0; b < pr.batch; ++b) {
    for (int i = 0; i < n; ++i) {
      const double xi = i < pr.inputs ? pr.x[b * pr.inputs + i] : 1.0;
      for (int j = 0; j < n; ++j) {
        const double xj = j < pr.inputs ? pr.x[b * pr.inputs + j] : 1.0;
        gram[i * n + j] += xi * xj;
      }
    }
  }
  const std::vector<double> eig = SymmetricEigenvalues(gram, n);
  const double scale = 2.0 / (pr.batch * 3);
  // All three output blocks share the top eigenvalue; the next distinct
  // one sets the convergence.
  const double exact = scale * eig[n - 1];
  ASSERT_LT(eig[n - 2] / eig[n - 1], 0.2);

  int params = 0;
  const std::vector<double> hessian = ReferenceHessian(pr, params);
  ASSERT_EQ(params, 3 * n);
  EXPECT_NEAR(DominantOf(SymmetricEigenvalues(hessian, params)).value, exact,
              1e-8 * exact);

  std::unique_ptr<Model> model = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  const double got = Estimate(*model, pr, /*iterations=*/30, /*seed=*/1);
  EXPECT_NEAR(got, exact, kTolerance * exact);
}

struct NonlinearCase {
  v1::Activation activation;
  v1::Loss loss;
  BatchNorm batch_norm;
};

class CurvatureNonlinearTest : public testing::TestWithParam<NonlinearCase> {};

TEST_P(CurvatureNonlinearTest, MatchesDenseReferenceHessian) {
  const NonlinearCase& c = GetParam();
  const int width = c.loss == v1::CROSS_ENTROPY ? 3 : c.loss == v1::MSE ? 2 : 1;
  const Problem pr = MakeProblem(3,
                                 {{5, c.activation, c.batch_norm},
                                  {4, c.activation, c.batch_norm},
                                  {width, v1::LINEAR}},
                                 c.loss, /*batch=*/8, /*seed=*/11);
  int n = 0;
  const std::vector<double> hessian = ReferenceHessian(pr, n);
  const Dominant exact = DominantOf(SymmetricEigenvalues(hessian, n));
  // 300 iterations shrink the Rayleigh quotient's error by ratio^600.
  ASSERT_LT(exact.ratio, 0.97);

  std::unique_ptr<Model> model = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  const double got = Estimate(*model, pr, /*iterations=*/300, /*seed=*/5);
  EXPECT_NEAR(got, exact.value, kTolerance * std::abs(exact.value))
      << "convergence ratio " << exact.ratio;
}

INSTANTIATE_TEST_SUITE_P(
    Nets, CurvatureNonlinearTest,
    testing::Values(
        NonlinearCase{v1::TANH, v1::CROSS_ENTROPY, v1::LayerSpec::NONE},
        NonlinearCase{v1::TANH, v1::MSE, v1::LayerSpec::BEFORE_ACTIVATION},
        NonlinearCase{v1::SIGMOID, v1::BINARY_CROSS_ENTROPY,
                      v1::LayerSpec::AFTER_ACTIVATION},
        NonlinearCase{v1::RELU, v1::CROSS_ENTROPY, v1::LayerSpec::NONE},
        NonlinearCase{v1::LEAKY_RELU, v1::MSE,
                      v1::LayerSpec::BEFORE_ACTIVATION},
        NonlinearCase{v1::ELU, v1::CROSS_ENTROPY, v1::LayerSpec::NONE}));

TEST(CurvatureTest, KeepsAPreActivationNearTheKinkOnItsSide) {
  Problem pr = MakeProblem(3, {{5, v1::RELU}, {4, v1::RELU}, {3, v1::LINEAR}},
                           v1::CROSS_ENTROPY, /*batch=*/8, /*seed=*/11);
  // Move unit 0 of layer 0 so that sample 0's pre-activation is 5e-6:
  // h * |dz/dh| is ~1e-5 here, so it crosses 0 in some evaluations.
  v1::LayerParameters& layer =
      *pr.spec.mutable_model()->mutable_initial_weights(0);
  double z = layer.bias(0);
  for (int i = 0; i < pr.inputs; ++i) {
    z += static_cast<double>(pr.x[i]) * layer.weights(i * layer.units());
  }
  layer.set_bias(0, static_cast<float>(layer.bias(0) - z + 5e-6));
  int n = 0;
  const std::vector<double> hessian = ReferenceHessian(pr, n);
  const Dominant exact = DominantOf(SymmetricEigenvalues(hessian, n));
  ASSERT_LT(exact.ratio, 0.97);

  std::unique_ptr<Model> model = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  auto estimator = CurvatureEstimator::Create(*model);
  ASSERT_TRUE(estimator.ok()) << estimator.status();
  const absl::StatusOr<double> got =
      (*estimator)
          ->LargestEigenvalue(*model, pr.spec.loss(), pr.labels.data(), nullptr,
                              300, /*seed=*/5);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_GT((*estimator)->pinned(), 0);
  EXPECT_NEAR(*got, exact.value, kTolerance * std::abs(exact.value));
}

TEST(CurvatureTest, HalvesTheStepRatherThanFlipAStepUnit) {
  // A STEP layer's output jumps when its input crosses 0, so h is halved
  // instead. On the piece, only the output layer (reading the fixed 0/1
  // pattern A) curves the loss: (2 / (B * width)) Aa^T Aa, Aa = [A 1].
  Problem pr = MakeProblem(3, {{6, v1::STEP}, {2, v1::LINEAR}}, v1::MSE,
                           /*batch=*/64, /*seed=*/51);
  v1::LayerParameters& hidden =
      *pr.spec.mutable_model()->mutable_initial_weights(0);
  const int units = static_cast<int>(hidden.units());
  auto z_of = [&](int b, int j) {
    double z = hidden.bias(j);
    for (int i = 0; i < pr.inputs; ++i) {
      z += static_cast<double>(pr.x[b * pr.inputs + i]) *
           hidden.weights(i * units + j);
    }
    return z;
  };
  hidden.set_bias(0, static_cast<float>(hidden.bias(0) - z_of(0, 0) + 5e-6));
  const int n = units + 1;
  std::vector<double> gram(static_cast<size_t>(n) * n, 0.0);
  for (int b = 0; b < pr.batch; ++b) {
    for (int i = 0; i < n; ++i) {
      const double ai = i < units ? (z_of(b, i) > 0 ? 1.0 : 0.0) : 1.0;
      for (int j = 0; j < n; ++j) {
        const double aj = j < units ? (z_of(b, j) > 0 ? 1.0 : 0.0) : 1.0;
        gram[i * n + j] += ai * aj;
      }
    }
  }
  const Dominant exact = DominantOf(SymmetricEigenvalues(gram, n));
  ASSERT_LT(exact.ratio, 0.97);
  const double want = 2.0 / (pr.batch * 2) * exact.value;

  std::unique_ptr<Model> model = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  auto estimator = CurvatureEstimator::Create(*model);
  ASSERT_TRUE(estimator.ok()) << estimator.status();
  const absl::StatusOr<double> got =
      (*estimator)
          ->LargestEigenvalue(*model, pr.spec.loss(), nullptr,
                              pr.targets.data(), 300, /*seed=*/5);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_GT((*estimator)->halvings(), 0);
  EXPECT_NEAR(*got, want, kTolerance * want);
}

// Every bit of the parameters, gradients and training-net activations.
std::vector<std::vector<float>> ModelBits(Model& model) {
  std::vector<std::vector<float>> bits;
  for (const ParamTensor& t : model.ParamTensors()) {
    bits.emplace_back(t.value, t.value + t.size);
    bits.emplace_back(t.grad, t.grad + t.size);
  }
  const Net& net = model.train_net();
  for (int l = 0; l < net.num_layers(); ++l) {
    const LayerActivations& la = net.layer(l);
    for (const dnnl::memory* mem :
         {&la.fc_dst, &la.z, &la.act, &la.out, &la.bn_mean, &la.bn_var,
          &la.diff_out, &la.diff_act, &la.diff_z, &la.diff_fc_dst}) {
      if (!*mem) continue;
      const float* v = Data(*mem);
      bits.emplace_back(v, v + Elements(mem->get_desc()));
    }
  }
  return bits;
}

bool BitIdentical(const std::vector<std::vector<float>>& a,
                  const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) {
      return false;
    }
  }
  return true;
}

TEST(CurvatureTest, FullyDeadReluLayerLeavesOnlyTheOutputBiasCurvature) {
  // |x W| <= 4 * sqrt(3 / 4) < 10: every hidden unit is inactive on every
  // sample, so the output reads zeros and only its bias moves the loss:
  // d2L/db_j^2 = 2 / width and every other second derivative is 0.
  const Problem pr = MakeProblem(
      4, {{8, v1::RELU, v1::LayerSpec::NONE, -10.0f}, {2, v1::LINEAR}}, v1::MSE,
      /*batch=*/16, /*seed=*/21);
  std::unique_ptr<Model> model = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  const double got = Estimate(*model, pr, /*iterations=*/20, /*seed=*/1);
  EXPECT_NEAR(got, 2.0 / 2, kTolerance);
}

// `pr` with `extra` dead units (bias -10) appended to hidden layer 0.
Problem WithDeadUnits(Problem pr, int extra, uint64_t seed) {
  Rng rng(seed);
  v1::ModelSpec& m = *pr.spec.mutable_model();
  v1::LayerParameters& hidden = *m.mutable_initial_weights(0);
  v1::LayerParameters& next = *m.mutable_initial_weights(1);
  const int inputs = static_cast<int>(hidden.inputs());
  const int units = static_cast<int>(hidden.units());
  const int wide = units + extra;
  const int next_units = static_cast<int>(next.units());
  // Plain layout: element (input i, unit j) at i * units + j.
  auto widen = [&](const v1::LayerParameters& p, int rows, int cols,
                   int new_cols) {
    google::protobuf::RepeatedField<float> w;
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < new_cols; ++j) {
        w.Add(j < cols ? p.weights(i * cols + j)
                       : static_cast<float>(rng.Uniform(-1, 1)));
      }
    }
    return w;
  };
  *hidden.mutable_weights() = widen(hidden, inputs, units, wide);
  for (int j = units; j < wide; ++j) hidden.add_bias(-10.0f);
  hidden.set_units(wide);
  m.mutable_layers(0)->set_units(wide);
  // The next layer gets rows for the new inputs: live weights that a dead
  // unit's zero output never lets act.
  google::protobuf::RepeatedField<float> w = next.weights();
  for (int i = 0; i < extra * next_units; ++i) {
    w.Add(static_cast<float>(rng.Uniform(-1, 1)));
  }
  *next.mutable_weights() = w;
  next.set_inputs(wide);
  return pr;
}

TEST(CurvatureTest, DeadUnitsAddNothingToTheLiveUnitsCurvature) {
  // Hidden units with bias 5 are active on every sample (|x W| <= 3.5).
  const Problem live = MakeProblem(
      4, {{4, v1::RELU, v1::LayerSpec::NONE, 5.0f}, {3, v1::LINEAR}},
      v1::CROSS_ENTROPY, /*batch=*/16, /*seed=*/31);
  const Problem with_dead = WithDeadUnits(live, /*extra=*/6, /*seed=*/32);
  ASSERT_TRUE(ValidateJobSpec(with_dead.spec).ok())
      << ValidateJobSpec(with_dead.spec);
  int n = 0;
  const std::vector<double> hessian = ReferenceHessian(live, n);
  const Dominant exact = DominantOf(SymmetricEigenvalues(hessian, n));
  ASSERT_LT(exact.ratio, 0.97);

  std::unique_ptr<Model> live_model = TrainingModel(live);
  std::unique_ptr<Model> dead_model = TrainingModel(with_dead);
  ASSERT_NE(live_model, nullptr);
  ASSERT_NE(dead_model, nullptr);
  ASSERT_EQ(dead_model->params()[0].units, 10);
  const double got_live = Estimate(*live_model, live, 300, /*seed=*/2);
  const double got_dead = Estimate(*dead_model, with_dead, 300, /*seed=*/2);
  const double tolerance = kTolerance * std::abs(exact.value);
  EXPECT_NEAR(got_live, exact.value, tolerance);
  EXPECT_NEAR(got_dead, exact.value, tolerance);
}

// Input 20, hidden 30 (batch norm before ReLU) and 17 (tanh), 10 classes:
// blocked weight layouts with padding, batch-norm statistics, kinks.
Problem MixedProblem() {
  return MakeProblem(20,
                     {{30, v1::RELU, v1::LayerSpec::BEFORE_ACTIVATION},
                      {17, v1::TANH},
                      {10, v1::LINEAR}},
                     v1::CROSS_ENTROPY, /*batch=*/32, /*seed=*/41);
}

TEST(CurvatureTest, LeavesParametersGradientsAndActivationsBitIdentical) {
  const Problem pr = MixedProblem();
  std::unique_ptr<Model> model = TrainingModel(pr);
  std::unique_ptr<Model> untouched = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  ASSERT_NE(untouched, nullptr);
  int64_t padding = 0;
  for (const LayerParams& p : model->params()) padding += p.weights_padding;
  const std::vector<std::vector<float>> before = ModelBits(*model);
  ASSERT_TRUE(BitIdentical(before, ModelBits(*untouched)));

  const double top = Estimate(*model, pr, /*iterations=*/10, /*seed=*/3);
  EXPECT_GT(top, 0);
  EXPECT_TRUE(BitIdentical(before, ModelBits(*model)))
      << "padding elements: " << padding;

  // Training goes on exactly as without the estimate.
  v1::OptimizerSpec sgd = pr.spec.optimizer();
  sgd.set_momentum(0.9);
  Optimizer with(sgd, model->ParamTensors());
  Optimizer without(sgd, untouched->ParamTensors());
  std::vector<UpdateResult> updates(with.tensors().size());
  with.Step(0.1, 1.0f, updates);
  without.Step(0.1, 1.0f, updates);
  model->UpdateRunningStats();
  untouched->UpdateRunningStats();
  EXPECT_TRUE(BitIdentical(ModelBits(*model), ModelBits(*untouched)));
}

TEST(CurvatureTest, DeterministicForASeed) {
  const Problem pr = MixedProblem();
  std::unique_ptr<Model> a = TrainingModel(pr);
  std::unique_ptr<Model> b = TrainingModel(pr);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const double first = Estimate(*a, pr, /*iterations=*/5, /*seed=*/9);
  EXPECT_EQ(Estimate(*a, pr, 5, 9), first);
  EXPECT_EQ(Estimate(*b, pr, 5, 9), first);
  // One iteration is the Rayleigh quotient of the seed's random direction.
  EXPECT_NE(Estimate(*a, pr, 1, 9), Estimate(*a, pr, 1, 10));
}

TEST(CurvatureTest, RejectsBadArgumentsAndRestoresOnFailure) {
  const Problem pr = MixedProblem();
  std::unique_ptr<Model> model = TrainingModel(pr);
  std::unique_ptr<Model> other = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(CurvatureEstimator::Create(*model, 0.0).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto estimator = CurvatureEstimator::Create(*model);
  ASSERT_TRUE(estimator.ok()) << estimator.status();
  CurvatureEstimator& c = **estimator;
  const v1::Loss ce = v1::CROSS_ENTROPY;
  const int32_t* labels = pr.labels.data();
  EXPECT_EQ(
      c.LargestEigenvalue(*model, ce, labels, nullptr, 0, 1).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      c.LargestEigenvalue(*model, ce, nullptr, nullptr, 5, 1).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      c.LargestEigenvalue(*other, ce, labels, nullptr, 5, 1).status().code(),
      absl::StatusCode::kInvalidArgument);

  // A non-finite loss fails the estimate and leaves the model as it was.
  const std::vector<std::vector<float>> before = ModelBits(*model);
  std::vector<int32_t> bad_labels = pr.labels;
  const Problem mse = MakeProblem(20, {{30, v1::RELU}, {10, v1::LINEAR}},
                                  v1::MSE, /*batch=*/32, 42);
  std::unique_ptr<Model> mse_model = TrainingModel(mse);
  ASSERT_NE(mse_model, nullptr);
  auto mse_estimator = CurvatureEstimator::Create(*mse_model);
  ASSERT_TRUE(mse_estimator.ok());
  const std::vector<std::vector<float>> mse_before = ModelBits(*mse_model);
  std::vector<float> nan_targets = mse.targets;
  nan_targets[7] = std::nanf("");
  const absl::StatusOr<double> failed =
      (*mse_estimator)
          ->LargestEigenvalue(*mse_model, v1::MSE, nullptr, nan_targets.data(),
                              5, 1);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition)
      << failed.status();
  EXPECT_TRUE(BitIdentical(mse_before, ModelBits(*mse_model)));
  EXPECT_TRUE(BitIdentical(before, ModelBits(*model)));
}

TEST(CurvatureTest, RefusesBf16Models) {
  if (!CpuSupportsBf16()) GTEST_SKIP() << "no bf16 inner products here";
  Problem pr = MixedProblem();
  pr.spec.mutable_training()->set_precision(v1::TrainingSpec::BF16);
  std::unique_ptr<Model> model = TrainingModel(pr);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(CurvatureEstimator::Create(*model).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gradwatch::engine
