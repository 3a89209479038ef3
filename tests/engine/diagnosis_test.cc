// The diagnosis and alerts on real runs through the Trainer: a dead first
// layer, a healthy net, a diverging one and a saturated sigmoid stack.
#include <string>
#include <vector>

#include "engine/spec_validation.h"
#include "engine/trainer.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

struct RunResult {
  v1::Summary summary;
  std::vector<v1::Alert> alerts;
  std::vector<v1::StepStats> stats;
};

RunResult Train(const std::string& text_spec) {
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text_spec, &spec));
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  auto trainer = Trainer::Create(spec, {.threads = 1});
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  RunResult result;
  CancellationToken cancel;
  result.summary = (*trainer)->Run(
      [&](const v1::JobEvent& event) {
        if (event.has_alert()) result.alerts.push_back(event.alert());
        if (event.has_stats()) result.stats.push_back(event.stats());
      },
      cancel);
  return result;
}

bool Fired(const RunResult& run, v1::HealthRule rule, int layer) {
  for (const v1::Alert& a : run.alerts) {
    if (a.rule() == rule && a.firing() && a.layer() == layer) return true;
  }
  return false;
}

constexpr char kSpirals[] = R"pb(
  data {
    synthetic { kind: SPIRALS samples: 600 classes: 3 noise: 0.05 seed: 1 }
  }
  loss: CROSS_ENTROPY
  training { steps: 800 batch_size: 64 seed: 1 }
)pb";
constexpr char kMonitoring[] = R"pb(
  monitoring { stats_every: 10 dataset_sweep_every: 200 }
)pb";

TEST(DiagnosisTest, DeadFirstLayerIsStalledDeadUnits) {
  const RunResult run = Train(std::string(kSpirals) + R"pb(
                                model {
                                  layers {
                                    units: 64
                                    activation: RELU
                                    init { scheme: HE_NORMAL bias: -10 }
                                  }
                                  layers { units: 64 activation: RELU }
                                  layers { units: 3 }
                                }
                                optimizer { kind: SGD learning_rate: 0.1 }
                              )pb" +
                              kMonitoring);
  EXPECT_EQ(run.summary.state(), v1::SUCCEEDED);
  EXPECT_EQ(run.summary.diagnosis(), v1::STALLED_DEAD_UNITS)
      << run.summary.diagnosis_reason();
  EXPECT_TRUE(Fired(run, v1::DEAD_RELU, 0));
  EXPECT_TRUE(Fired(run, v1::UNCHANGED_WEIGHTS, 0));
  // Every collected step: layer 0 wholly dead, its gradient exactly zero,
  // its weights bit-identical; the dataset sweep agrees.
  int sweeps = 0;
  for (const v1::StepStats& s : run.stats) {
    ASSERT_EQ(s.layers_size(), 3);
    const v1::LayerStats& l0 = s.layers(0);
    EXPECT_EQ(l0.dead_ratio(), 1.0) << "step " << s.step();
    EXPECT_EQ(l0.params(0).grad_zero_fraction(), 1.0);
    EXPECT_EQ(l0.params(0).grad_l2_norm(), 0.0);
    EXPECT_TRUE(l0.params(0).unchanged());
    EXPECT_EQ(l0.params(1).grad_zero_fraction(), 1.0);  // bias
    if (l0.has_dead_dataset_ratio()) {
      ++sweeps;
      EXPECT_EQ(l0.dead_dataset_ratio(), 1.0);
    }
  }
  EXPECT_EQ(sweeps, 4);
}

TEST(DiagnosisTest, HealthySpiralsConverge) {
  const RunResult run = Train(std::string(kSpirals) + R"pb(
                                model {
                                  layers { units: 64 activation: RELU }
                                  layers { units: 64 activation: RELU }
                                  layers { units: 3 }
                                }
                                optimizer { kind: ADAM learning_rate: 0.01 }
                              )pb" +
                              kMonitoring);
  EXPECT_EQ(run.summary.state(), v1::SUCCEEDED);
  EXPECT_TRUE(run.summary.diagnosis() == v1::CONVERGED ||
              run.summary.diagnosis() == v1::LEARNING)
      << v1::Diagnosis_Name(run.summary.diagnosis()) << ": "
      << run.summary.diagnosis_reason();
  EXPECT_GE(run.summary.final_accuracy(), 0.9);
  EXPECT_FALSE(Fired(run, v1::EXPLODING_TENSOR, -1));
}

TEST(DiagnosisTest, HugeLearningRateDiverges) {
  // Regression: the MSE gradient grows with the error, so lr 1e3 overflows
  // within a few steps (cross-entropy's gradient is bounded and would only
  // kill the ReLUs).
  const RunResult run = Train(R"pb(
    data {
      synthetic { kind: TEACHER_STUDENT samples: 400 features: 4 seed: 2 }
    }
    model {
      layers { units: 32 activation: TANH }
      layers { units: 1 }
    }
    loss: MSE
    optimizer { kind: SGD learning_rate: 1000 }
    training { steps: 800 batch_size: 32 seed: 1 }
  )pb");
  EXPECT_EQ(run.summary.state(), v1::FAILED);
  EXPECT_EQ(run.summary.diagnosis(), v1::DIVERGED);
  EXPECT_GT(run.summary.diverged_step(), 0u);
  EXPECT_LT(run.summary.steps_completed(), 800u);
  EXPECT_FALSE(run.summary.diverged_tensor().empty());
}

TEST(DiagnosisTest, DeepSigmoidStackInItsTailsStalls) {
  // Large constant weights drive every sigmoid unit into its flat tails;
  // from layer 1 on, sigmoid(z) rounds to exactly 1 and f'(z) to 0.
  const RunResult run = Train(R"pb(
    data {
      synthetic { kind: SPIRALS samples: 600 classes: 3 noise: 0.05 seed: 1 }
    }
    loss: CROSS_ENTROPY
    training { steps: 800 batch_size: 64 seed: 1 }
    monitoring { stats_every: 5 }
    model {
      layers {
        units: 32
        activation: SIGMOID
        init { scheme: CONSTANT gain: 4 bias: 20 }
      }
      layers {
        units: 32
        activation: SIGMOID
        init { scheme: CONSTANT gain: 4 bias: 20 }
      }
      layers {
        units: 32
        activation: SIGMOID
        init { scheme: CONSTANT gain: 4 bias: 20 }
      }
      layers { units: 3 }
    }
    optimizer { kind: SGD learning_rate: 0.01 }
  )pb");
  const v1::Diagnosis d = run.summary.diagnosis();
  EXPECT_TRUE(d == v1::STALLED_SATURATION || d == v1::STALLED_UNDERFLOW ||
              d == v1::STALLED_DEAD_UNITS)
      << v1::Diagnosis_Name(d) << ": " << run.summary.diagnosis_reason();
  EXPECT_TRUE(Fired(run, v1::SATURATED_ACTIVATION, 1) ||
              Fired(run, v1::VANISHING_GRADIENT, 0));
  const v1::StepStats& last = run.stats.back();
  EXPECT_EQ(last.layers(0).saturated_ratio(), 1.0);
  EXPECT_EQ(last.layers(0).dead_ratio(), 0.0);  // tiny, not zero, f'
  EXPECT_EQ(last.layers(1).dead_ratio(), 1.0);  // f' rounded to zero
}

}  // namespace
}  // namespace gradwatch::engine

namespace gradwatch::engine {
namespace {

// The largest Hessian eigenvalue on its schedule. With the first layer dead
// (and the second fed only zeros) the loss is flat in every weight; only
// the output bias curves it: softmax at chance level, whose Hessian
// diag(p) - p p^T has top eigenvalue 1/3 for three equally likely classes.
// The trained net sits in a minimum several times sharper.
TEST(DiagnosisTest, CurvatureTellsFlatStuckRegionFromMinimum) {
  auto top_eigenvalues = [](const std::string& model_and_optimizer) {
    const RunResult run = Train(std::string(kSpirals) + model_and_optimizer);
    std::vector<double> values;
    for (const v1::StepStats& s : run.stats) {
      EXPECT_EQ(s.has_hessian_max_eigenvalue(), s.step() % 200 == 0)
          << "step " << s.step();
      if (s.has_hessian_max_eigenvalue()) {
        values.push_back(s.hessian_max_eigenvalue());
      }
    }
    return values;
  };
  const std::vector<double> dead = top_eigenvalues(R"pb(
    model {
      layers {
        units: 64
        activation: RELU
        init { scheme: HE_NORMAL bias: -10 }
      }
      layers { units: 64 activation: RELU }
      layers { units: 3 }
    }
    optimizer { kind: SGD learning_rate: 0.1 }
    monitoring { stats_every: 10 curvature_every: 200 }
  )pb");
  const std::vector<double> trained = top_eigenvalues(R"pb(
    model {
      layers { units: 64 activation: RELU }
      layers { units: 64 activation: RELU }
      layers { units: 3 }
    }
    optimizer { kind: ADAM learning_rate: 0.01 }
    monitoring { stats_every: 10 curvature_every: 200 }
  )pb");
  ASSERT_EQ(dead.size(), 4u);
  ASSERT_EQ(trained.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(dead[i], 1.0 / 3.0, 0.01);
    EXPECT_GT(trained[i], 5 * dead[i]);
  }
}

}  // namespace
}  // namespace gradwatch::engine
