// The seed study: each claim of the answer in seeds/000 (DESIGN.md, claims
// 1-9 of the seed study) run through a real server from the specs in
// examples/seed/, and asserted with the figures the job streams back.
// docs/dead-neurons.md quotes the figures and explains them.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/spec_io.h"
#include "engine/trainer.h"
#include "gmock/gmock.h"
#include "gradwatch/v1/events.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;

const std::string kSeedDir =
    std::string(GRADWATCH_SOURCE_DIR) + "/examples/seed/";
// Cross-entropy of a prediction that ignores the inputs, 3 balanced classes.
const double kChance = std::log(3.0);

// Everything a job streamed, by kind.
struct JobRun {
  std::string job_id;
  v1::RunInfo info;
  std::vector<v1::StepStats> steps;      // every StepStats event
  std::vector<v1::StepStats> collected;  // those with layer figures
  std::vector<v1::Alert> alerts;
  v1::Summary summary;

  const v1::LayerStats& Layer(size_t step, int layer) const {
    return collected[step].layers(layer);
  }
  const v1::TensorStats& Weights(size_t step, int layer) const {
    return Layer(step, layer).params(0);
  }
  const v1::TensorStats& Bias(size_t step, int layer) const {
    return Layer(step, layer).params(1);
  }
  // Mean of a step figure over the last `n` StepStats.
  template <typename F>
  double TailMean(size_t n, F figure) const {
    n = std::min(n, steps.size());
    double total = 0;
    for (size_t i = steps.size() - n; i < steps.size(); ++i) {
      total += figure(steps[i]);
    }
    return total / static_cast<double>(n);
  }
  bool Fired(v1::HealthRule rule, int layer) const {
    return std::any_of(alerts.begin(), alerts.end(), [&](const v1::Alert& a) {
      return a.firing() && a.rule() == rule && a.layer() == layer;
    });
  }
};

double MeanLoss(const v1::StepStats& s) { return s.loss(); }
double MeanAccuracy(const v1::StepStats& s) { return s.accuracy(); }
double GradNorm(const v1::StepStats& s) { return s.grad_norm(); }

// Mean binary exponent floor(log2 |g|) of a gradient's nonzero entries.
double MeanExponent(const v1::TensorStats& tensor) {
  const v1::ExponentHistogram& h = tensor.grad_exponents();
  double total = 0;
  double count = 0;
  for (int i = 0; i < h.counts_size(); ++i) {
    total += static_cast<double>(h.first_exponent() + i) * h.counts(i);
    count += static_cast<double>(h.counts(i));
  }
  return count > 0 ? total / count : 0;
}

bool BitIdentical(const google::protobuf::RepeatedField<float>& a,
                  const google::protobuf::RepeatedField<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

v1::JobSpec LoadSpec(const std::string& name) {
  absl::StatusOr<v1::JobSpec> spec =
      client::ReadJobSpecFile(kSeedDir + name + ".json");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : v1::JobSpec();
}

// The parameters a job starts from: the engine initializes them from the
// spec's seed, exactly as the server's trainer does.
v1::Model InitialModel(const v1::JobSpec& spec) {
  auto trainer = engine::Trainer::Create(spec, engine::TrainerOptions{});
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return v1::Model();
  absl::StatusOr<v1::Model> model = (*trainer)->GetModel();
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : v1::Model();
}

class SeedStudyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = ServerProcess::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server).release();
    auto connected =
        client::Client::Connect(server_->address(), client::ClientOptions{});
    ASSERT_TRUE(connected.ok()) << connected.status();
    client_ = std::move(*connected).release();
  }
  static void TearDownTestSuite() {
    delete client_;
    delete server_;
    client_ = nullptr;
    server_ = nullptr;
  }

  // Trains examples/seed/NAME.json on the server and collects its stream.
  static JobRun Train(const std::string& name) {
    JobRun run;
    const absl::Status status =
        client_->Train(LoadSpec(name), [&run](const v1::JobEvent& event) {
          run.job_id = event.job_id();
          if (event.has_started()) run.info = event.started();
          if (event.has_alert()) run.alerts.push_back(event.alert());
          if (event.has_summary()) run.summary = event.summary();
          if (event.has_stats()) {
            run.steps.push_back(event.stats());
            if (event.stats().layers_size() > 0) {
              run.collected.push_back(event.stats());
            }
          }
          return true;
        });
    EXPECT_TRUE(status.ok()) << name << ": " << status;
    EXPECT_EQ(run.summary.state(), v1::SUCCEEDED) << name;
    EXPECT_FALSE(run.collected.empty()) << name;
    return run;
  }

  static v1::Model FinalModel(const JobRun& run) {
    absl::StatusOr<v1::Model> model = client_->GetModel(run.job_id);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *model : v1::Model();
  }

  static ServerProcess* server_;
  static client::Client* client_;
};

ServerProcess* SeedStudyTest::server_ = nullptr;
client::Client* SeedStudyTest::client_ = nullptr;

// Claim 1: XW + b < 0 on every input, plain SGD.
TEST_F(SeedStudyTest, Claim1DeadLayerHasZeroGradientAndFrozenWeights) {
  const JobRun run = Train("claim1_dead_layer");
  ASSERT_EQ(run.collected.size(), 300u);
  for (size_t i = 0; i < run.collected.size(); ++i) {
    const v1::LayerStats& hidden = run.Layer(i, 0);
    EXPECT_EQ(hidden.dead_ratio(), 1.0) << i;
    EXPECT_LT(hidden.z_max(), -6.0) << i;
    for (const v1::TensorStats& tensor : hidden.params()) {
      EXPECT_EQ(tensor.grad_zero_fraction(), 1.0) << i;
      EXPECT_EQ(tensor.grad_l2_norm(), 0.0) << i;
      EXPECT_EQ(tensor.update_ratio(), 0.0) << i;
      EXPECT_TRUE(tensor.unchanged()) << i;
    }
    if (hidden.has_dead_dataset_ratio()) {
      EXPECT_EQ(hidden.dead_dataset_ratio(), 1.0);
    }
  }
  EXPECT_EQ(run.summary.diagnosis(), v1::STALLED_DEAD_UNITS);
  EXPECT_NEAR(run.TailMean(50, MeanLoss), kChance, 0.01 * kChance);
  EXPECT_TRUE(run.Fired(v1::DEAD_RELU, 0));
  EXPECT_TRUE(run.Fired(v1::UNCHANGED_WEIGHTS, 0));

  // The server's weights after 300 steps are the initial ones, bit for bit;
  // the output layer's bias, the one parameter with a signal, moved.
  const v1::Model start = InitialModel(LoadSpec("claim1_dead_layer"));
  const v1::Model end = FinalModel(run);
  ASSERT_EQ(end.layers_size(), 2);
  ASSERT_EQ(start.layers_size(), 2);
  EXPECT_TRUE(BitIdentical(start.layers(0).weights(), end.layers(0).weights()));
  EXPECT_TRUE(BitIdentical(start.layers(0).bias(), end.layers(0).bias()));
  EXPECT_FALSE(BitIdentical(start.layers(1).bias(), end.layers(1).bias()));
}

// Claim 2: the same first update kills the layer in both runs; momentum
// keeps moving its weights, plain SGD stops at once.
TEST_F(SeedStudyTest, Claim2MomentumCarriesDeadUnitsOnPlainSgdStops) {
  const JobRun plain = Train("claim2_plain_sgd");
  const JobRun momentum = Train("claim2_momentum");
  ASSERT_EQ(plain.collected.size(), 60u);
  ASSERT_EQ(momentum.collected.size(), 60u);
  for (const JobRun* run : {&plain, &momentum}) {
    EXPECT_EQ(run->Layer(0, 0).dead_ratio(), 0.0);
    EXPECT_GT(run->Weights(0, 0).update_ratio(), 0.5);
    for (size_t i = 1; i < run->collected.size(); ++i) {
      EXPECT_EQ(run->Layer(i, 0).dead_ratio(), 1.0) << i;
      EXPECT_EQ(run->Weights(i, 0).grad_zero_fraction(), 1.0) << i;
    }
  }
  // Identical first steps.
  EXPECT_EQ(plain.Weights(0, 0).weight_l2_norm(),
            momentum.Weights(0, 0).weight_l2_norm());

  for (size_t i = 1; i < plain.collected.size(); ++i) {
    EXPECT_EQ(plain.Weights(i, 0).update_ratio(), 0.0) << i;
    EXPECT_TRUE(plain.Weights(i, 0).unchanged()) << i;
  }
  // ||dW|| = update_ratio * ||W before||: the velocity decays by the
  // momentum, 0.9, every step, with no gradient at all.
  auto step_norm = [&](size_t i) {
    return momentum.Weights(i, 0).update_ratio() *
           momentum.Weights(i - 1, 0).weight_l2_norm();
  };
  for (size_t i = 2; i < momentum.collected.size(); ++i) {
    EXPECT_GT(momentum.Weights(i, 0).update_ratio(), 0.0) << i;
    EXPECT_FALSE(momentum.Weights(i, 0).unchanged()) << i;
    EXPECT_NEAR(step_norm(i) / step_norm(i - 1), 0.9, 1e-3) << i;
    EXPECT_EQ(momentum.Layer(i, 0).revived_units(), 0u) << i;
  }
  // The carried velocity points where the last gradient did: deeper into
  // the dead region, not back out of it.
  EXPECT_GT(momentum.Layer(1, 0).z_max(), -1.5);
  EXPECT_LT(momentum.collected.back().layers(0).z_max(), -7.0);
  EXPECT_EQ(plain.collected.back().layers(0).z_max(),
            plain.Layer(1, 0).z_max());
  EXPECT_EQ(plain.summary.diagnosis(), v1::STALLED_DEAD_UNITS);
}

// Claim 3: weight decay shrinks a dead layer's weights geometrically; the
// units approach the boundary from below and never come back.
TEST_F(SeedStudyTest, Claim3WeightDecayShrinksDeadWeightsWithoutReviving) {
  for (const std::string name : {"claim3_coupled_l2", "claim3_decoupled"}) {
    SCOPED_TRACE(name);
    const JobRun run = Train(name);
    ASSERT_EQ(run.collected.size(), 300u);
    for (size_t i = 0; i < run.collected.size(); ++i) {
      EXPECT_EQ(run.Layer(i, 0).dead_ratio(), 1.0) << i;
      EXPECT_EQ(run.Layer(i, 0).revived_units(), 0u) << i;
      EXPECT_LT(run.Layer(i, 0).z_max(), 0.0) << i;
      EXPECT_EQ(run.Weights(i, 0).grad_zero_fraction(), 1.0) << i;
      EXPECT_EQ(run.Bias(i, 0).grad_zero_fraction(), 1.0) << i;
      // lr * decay = 0.1 * 0.1: W <- 0.99 W each step.
      EXPECT_NEAR(run.Weights(i, 0).update_ratio(), 0.01, 1e-5) << i;
      if (i > 0) {
        EXPECT_NEAR(run.Weights(i, 0).weight_l2_norm() /
                        run.Weights(i - 1, 0).weight_l2_norm(),
                    0.99, 1e-5)
            << i;
      }
    }
    EXPECT_LT(run.Layer(0, 0).z_max(), -6.0);
    EXPECT_GT(run.collected.back().layers(0).z_max(), -0.5);
    EXPECT_NEAR(run.collected.back().layers(0).params(0).weight_l2_norm() /
                    run.Weights(0, 0).weight_l2_norm(),
                std::pow(0.99, 299), 1e-4);
    EXPECT_EQ(run.summary.diagnosis(), v1::STALLED_DEAD_UNITS);
    // Every bias went from -10 to -10 * 0.99^300 = -0.49: closer to 0,
    // still negative.
    const v1::Model end = FinalModel(run);
    ASSERT_EQ(end.layers_size(), 2);
    for (float b : end.layers(0).bias()) {
      EXPECT_NEAR(b, -10 * std::pow(0.99, 300), 1e-3);
    }
  }
}

// Claim 4: batch normalization before the ReLU, same bias -10.
TEST_F(SeedStudyTest, Claim4BatchNormKeepsTheLayerAliveAndLearning) {
  const JobRun run = Train("claim4_batch_norm");
  for (size_t i = 0; i < run.collected.size(); ++i) {
    EXPECT_LE(run.Layer(i, 0).dead_ratio(), 0.05) << i;
    EXPECT_LT(run.Weights(i, 0).grad_zero_fraction(), 1.0) << i;
    if (run.Layer(i, 0).has_dead_dataset_ratio()) {
      EXPECT_LE(run.Layer(i, 0).dead_dataset_ratio(), 0.05);
    }
  }
  EXPECT_LT(run.TailMean(50, MeanLoss), 0.5 * kChance);
  EXPECT_GT(run.TailMean(20, MeanAccuracy), 0.8);
  EXPECT_NE(run.summary.diagnosis(), v1::STALLED_DEAD_UNITS);
  EXPECT_FALSE(run.Fired(v1::DEAD_RELU, 0));
}

// Claim 5: sigmoid gradients are never exactly zero, but vanish layer by
// layer (moderate z) or through saturation (large z).
TEST_F(SeedStudyTest, Claim5SigmoidGradientsVanishWithoutBeingZero) {
  const JobRun deep = Train("claim5_deep_sigmoid");
  const JobRun saturated = Train("claim5_saturated_sigmoid");
  for (const JobRun* run : {&deep, &saturated}) {
    for (size_t i = 0; i < run->collected.size(); ++i) {
      for (int l = 0; l < 8; ++l) {
        EXPECT_EQ(run->Layer(i, l).dead_ratio(), 0.0);
        EXPECT_EQ(run->Weights(i, l).grad_zero_fraction(), 0.0);
        EXPECT_GT(run->Weights(i, l).grad_l2_norm(), 0.0);
      }
    }
    // Binary exponents fall from the output towards the input.
    const double last = MeanExponent(run->Weights(0, 7));
    for (int l = 0; l < 7; ++l) {
      EXPECT_LT(MeanExponent(run->Weights(0, l)),
                MeanExponent(run->Weights(0, l + 1)) + 0.5)
          << l;
    }
    EXPECT_LT(MeanExponent(run->Weights(0, 0)), last - 10);
    EXPECT_GT(run->TailMean(50, MeanLoss), 0.95 * kChance);
  }
  // Moderate z: nothing saturated, about 2 binades lost per layer
  // (sigmoid' <= 1/4), the first layer's gradients near 2^-23.
  for (size_t i = 0; i < deep.collected.size(); ++i) {
    for (int l = 0; l < 8; ++l) {
      EXPECT_EQ(deep.Layer(i, l).saturated_ratio(), 0.0);
      EXPECT_LT(std::abs(deep.Layer(i, l).z_min()), 3.0);
      EXPECT_LT(std::abs(deep.Layer(i, l).z_max()), 3.0);
    }
  }
  EXPECT_LT(MeanExponent(deep.Weights(0, 0)), -20);
  EXPECT_NE(deep.summary.diagnosis(), v1::CONVERGED);
  // Bias 10: z around 10, sigmoid' = 4.5e-5, the first layer saturated and
  // its gradient about 2^-115: nonzero, yet too small to move any weight.
  EXPECT_EQ(saturated.Layer(0, 0).saturated_ratio(), 1.0);
  EXPECT_LT(MeanExponent(saturated.Weights(0, 0)), -100);
  for (size_t i = 0; i < saturated.collected.size(); ++i) {
    EXPECT_TRUE(saturated.Weights(i, 0).unchanged()) << i;
  }
  EXPECT_EQ(saturated.summary.diagnosis(), v1::STALLED_SATURATION);
}

// Claim 6: back-propagated products underflow into the subnormal range;
// with flush_denormals they become exact zeros instead.
TEST_F(SeedStudyTest, Claim6GradientsUnderflowAndFlushToZero) {
  const JobRun gradual = Train("claim6_underflow");
  const JobRun flushed = Train("claim6_underflow_ftz");
  EXPECT_FALSE(gradual.info.denormals_flushed());
  EXPECT_TRUE(flushed.info.denormals_flushed());

  // Step 1: the first two layers' weight gradients are wholly subnormal.
  EXPECT_EQ(gradual.Weights(0, 0).grad_subnormal_count(), 16u);
  EXPECT_EQ(gradual.Weights(0, 1).grad_subnormal_count(), 64u);
  EXPECT_GT(gradual.Weights(0, 2).grad_subnormal_count(), 0u);
  EXPECT_EQ(gradual.Weights(0, 0).grad_zero_fraction(), 0.0);
  EXPECT_LT(gradual.Weights(0, 0).grad_exponents().first_exponent(), -126);
  EXPECT_EQ(gradual.Weights(0, 3).grad_subnormal_count(), 0u);

  EXPECT_EQ(flushed.Weights(0, 0).grad_zero_fraction(), 1.0);
  EXPECT_EQ(flushed.Weights(0, 1).grad_zero_fraction(), 1.0);
  EXPECT_GT(flushed.Weights(0, 2).grad_zero_fraction(), 0.0);
  for (size_t i = 0; i < flushed.collected.size(); ++i) {
    for (const v1::LayerStats& layer : flushed.collected[i].layers()) {
      for (const v1::TensorStats& tensor : layer.params()) {
        EXPECT_EQ(tensor.grad_subnormal_count(), 0u);
      }
    }
  }
  // Above the subnormal range the two runs compute the same gradients.
  for (int l = 3; l < 17; ++l) {
    EXPECT_EQ(flushed.Weights(0, l).grad_l2_norm(),
              gradual.Weights(0, l).grad_l2_norm())
        << l;
  }
  // Either way, updates of 0.1 * 1e-38 leave the first layers unchanged.
  for (size_t i = 0; i < gradual.collected.size(); ++i) {
    EXPECT_TRUE(gradual.Weights(i, 0).unchanged()) << i;
    EXPECT_TRUE(flushed.Weights(i, 0).unchanged()) << i;
  }
}

// Claim 7: a wholly dead middle layer stops every layer before it; layers
// after it keep learning, from a constant. A partly dead one leaves paths
// around its dead units, and the layers before it learn through them.
TEST_F(SeedStudyTest, Claim7DeadMiddleLayerStopsOnlyTheLayersBeforeIt) {
  const v1::JobSpec whole_spec = LoadSpec("claim7_dead_middle");
  const JobRun whole = Train("claim7_dead_middle");
  for (size_t i = 0; i < whole.collected.size(); ++i) {
    EXPECT_EQ(whole.Layer(i, 1).dead_ratio(), 1.0) << i;
    EXPECT_EQ(whole.Layer(i, 0).dead_ratio(), 0.0) << i;
    for (int l : {0, 1}) {
      EXPECT_EQ(whole.Weights(i, l).grad_zero_fraction(), 1.0) << i;
      EXPECT_EQ(whole.Bias(i, l).grad_zero_fraction(), 1.0) << i;
      EXPECT_TRUE(whole.Weights(i, l).unchanged()) << i;
    }
    // h2 sees only zeros: its weights get no gradient, its bias does.
    EXPECT_EQ(whole.Weights(i, 2).grad_zero_fraction(), 1.0) << i;
    EXPECT_GT(whole.Bias(i, 2).grad_l2_norm(), 0.0) << i;
    EXPECT_GT(whole.Weights(i, 3).update_ratio(), 0.0) << i;
    EXPECT_FALSE(whole.Weights(i, 3).unchanged()) << i;
  }
  EXPECT_NEAR(whole.TailMean(50, MeanLoss), kChance, 0.01 * kChance);
  EXPECT_EQ(whole.summary.diagnosis(), v1::STALLED_DEAD_UNITS);
  EXPECT_THAT(whole.summary.diagnosis_reason(), HasSubstr("layer 1 (h1)"));
  const v1::Model whole_start = InitialModel(whole_spec);
  const v1::Model whole_end = FinalModel(whole);
  ASSERT_EQ(whole_end.layers_size(), 4);
  for (int l : {0, 1, 2}) {
    EXPECT_TRUE(BitIdentical(whole_start.layers(l).weights(),
                             whole_end.layers(l).weights()))
        << l;
  }
  EXPECT_FALSE(
      BitIdentical(whole_start.layers(2).bias(), whole_end.layers(2).bias()));
  EXPECT_FALSE(BitIdentical(whole_start.layers(3).weights(),
                            whole_end.layers(3).weights()));

  const v1::JobSpec partly_spec = LoadSpec("claim7_partly_dead");
  const JobRun partly = Train("claim7_partly_dead");
  EXPECT_GT(partly.Layer(0, 1).dead_ratio(), 0.5);
  EXPECT_LT(partly.Layer(0, 1).dead_ratio(), 1.0);
  for (size_t i = 0; i < partly.collected.size(); ++i) {
    EXPECT_LT(partly.Weights(i, 0).grad_zero_fraction(), 1.0) << i;
    EXPECT_GT(partly.Weights(i, 0).update_ratio(), 0.0) << i;
  }
  EXPECT_GT(partly.TailMean(20, MeanAccuracy), 0.85);
  // Units of h1 that never got a gradient (incoming weights and bias
  // bit-identical) never passed one either: their outgoing row of h2's
  // weights is bit-identical too, while everything else moved.
  const v1::Model start = InitialModel(partly_spec);
  const v1::Model end = FinalModel(partly);
  ASSERT_EQ(end.layers_size(), 4);
  const v1::LayerParameters& h1_start = start.layers(1);
  const v1::LayerParameters& h1_end = end.layers(1);
  const v1::LayerParameters& h2_start = start.layers(2);
  const v1::LayerParameters& h2_end = end.layers(2);
  const uint32_t units = h1_end.units();
  const uint32_t next_units = h2_end.units();
  int frozen = 0;
  for (uint32_t j = 0; j < units; ++j) {
    bool unchanged = h1_start.bias(j) == h1_end.bias(j);
    for (uint32_t in = 0; in < h1_end.inputs(); ++in) {
      unchanged &=
          h1_start.weights(in * units + j) == h1_end.weights(in * units + j);
    }
    bool row_unchanged = true;
    for (uint32_t k = 0; k < next_units; ++k) {
      row_unchanged &= h2_start.weights(j * next_units + k) ==
                       h2_end.weights(j * next_units + k);
    }
    EXPECT_EQ(unchanged, row_unchanged) << "unit " << j;
    frozen += unchanged ? 1 : 0;
  }
  EXPECT_GE(frozen, 10);
  EXPECT_LT(frozen, static_cast<int>(units));
  EXPECT_FALSE(
      BitIdentical(start.layers(0).weights(), end.layers(0).weights()));
}

// Claim 8: a stuck net and a trained one, both with small gradients, told
// apart by the diagnosis and by the curvature.
TEST_F(SeedStudyTest, Claim8DiagnosisAndCurvatureTellStuckFromTrained) {
  const JobRun trained = Train("claim8_trained");
  const JobRun stuck = Train("claim8_stuck");
  const double trained_norm = trained.TailMean(100, GradNorm);
  const double stuck_norm = stuck.TailMean(100, GradNorm);
  EXPECT_LT(trained_norm, 1.0);
  EXPECT_LT(stuck_norm, 1.0);
  EXPECT_LT(
      std::max(trained_norm, stuck_norm) / std::min(trained_norm, stuck_norm),
      10.0);

  EXPECT_EQ(trained.summary.diagnosis(), v1::CONVERGED);
  EXPECT_EQ(stuck.summary.diagnosis(), v1::STALLED_DEAD_UNITS);
  EXPECT_LT(trained.TailMean(50, MeanLoss), 0.25 * kChance);
  EXPECT_NEAR(stuck.TailMean(50, MeanLoss), kChance, 0.02 * kChance);

  auto eigenvalues = [](const JobRun& run) {
    std::vector<double> values;
    for (const v1::StepStats& s : run.steps) {
      if (s.has_hessian_max_eigenvalue()) {
        values.push_back(s.hessian_max_eigenvalue());
      }
    }
    return values;
  };
  const std::vector<double> trained_curvature = eigenvalues(trained);
  const std::vector<double> stuck_curvature = eigenvalues(stuck);
  ASSERT_EQ(trained_curvature.size(), 15u);
  ASSERT_EQ(stuck_curvature.size(), 15u);
  // The stuck net's only curvature is the output bias's softmax Hessian,
  // whose largest eigenvalue at uniform predictions is 1/3.
  for (double lambda : stuck_curvature) EXPECT_NEAR(lambda, 1.0 / 3, 0.02);
  EXPECT_GT(
      *std::min_element(trained_curvature.begin(), trained_curvature.end()),
      1.0);
}

// Claim 9: Leaky ReLU and ELU with the same bias -10 have a nonzero
// derivative everywhere; with an optimizer that scales the small gradient
// up (Adam), learning resumes. ReLU under the same Adam stays dead.
TEST_F(SeedStudyTest, Claim9LeakyReluAndEluResumeLearning) {
  const JobRun relu = Train("claim9_relu_adam");
  for (size_t i = 0; i < relu.collected.size(); ++i) {
    EXPECT_EQ(relu.Layer(i, 0).dead_ratio(), 1.0);
    EXPECT_TRUE(relu.Weights(i, 0).unchanged());
  }
  EXPECT_EQ(relu.summary.diagnosis(), v1::STALLED_DEAD_UNITS);

  const JobRun leaky = Train("claim9_leaky_relu");
  const JobRun elu = Train("claim9_elu");
  for (const JobRun* run : {&leaky, &elu}) {
    for (size_t i = 0; i < run->collected.size(); ++i) {
      EXPECT_EQ(run->Layer(i, 0).dead_ratio(), 0.0) << i;
      EXPECT_EQ(run->Weights(i, 0).grad_zero_fraction(), 0.0) << i;
    }
    EXPECT_LT(run->Layer(0, 0).z_max(), -6.0);
    EXPECT_GT(run->collected.back().layers(0).z_max(), 0.0);
    EXPECT_LT(run->TailMean(50, MeanLoss), 0.6 * kChance);
    EXPECT_NE(run->summary.diagnosis(), v1::STALLED_DEAD_UNITS);
  }
  EXPECT_GT(leaky.TailMean(20, MeanAccuracy), 0.65);
  // ELU at z = -10 starts saturated (derivative e^-10) and leaves it.
  EXPECT_EQ(elu.Layer(0, 0).saturated_ratio(), 1.0);
  EXPECT_LT(elu.collected.back().layers(0).saturated_ratio(), 0.2);
  EXPECT_GT(elu.TailMean(20, MeanAccuracy), 0.9);
}

}  // namespace
}  // namespace gradwatch::e2e
