// BF16 precision: bf16 inner products with f32 master weights, gradients
// and statistics. Compared with the same run in F32.
#include <cmath>
#include <string>
#include <vector>

#include "engine/onednn_util.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

v1::JobSpec SpiralsSpec(v1::TrainingSpec::Precision precision, int steps) {
  v1::JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        data {
          synthetic {
            kind: SPIRALS
            samples: 600
            classes: 3
            noise: 0.05
            seed: 3
          }
        }
        model {
          layers { units: 64 activation: RELU batch_norm: BEFORE_ACTIVATION }
          layers { units: 64 activation: TANH }
          layers { units: 3 }
        }
        loss: CROSS_ENTROPY
        optimizer { kind: ADAM learning_rate: 0.01 }
        training { batch_size: 64 seed: 5 }
      )pb",
      &spec));
  spec.mutable_training()->set_steps(steps);
  spec.mutable_training()->set_precision(precision);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  return spec;
}

struct RunResult {
  v1::RunInfo info;
  v1::Summary summary;
  std::vector<double> losses;
  v1::Model model;
};

RunResult Train(const v1::JobSpec& spec) {
  auto trainer = Trainer::Create(spec, {.threads = 1});
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  RunResult run;
  CancellationToken cancel;
  run.summary = (*trainer)->Run(
      [&](const v1::JobEvent& e) {
        if (e.has_started()) run.info = e.started();
        if (e.has_stats()) run.losses.push_back(e.stats().loss());
      },
      cancel);
  run.model = *(*trainer)->GetModel();
  return run;
}

class Bf16Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CpuSupportsBf16()) GTEST_SKIP() << "no bf16 support on this CPU";
  }
};

TEST_F(Bf16Test, FirstStepMatchesF32ToBf16Precision) {
  const RunResult f32 = Train(SpiralsSpec(v1::TrainingSpec::F32, 1));
  const RunResult bf16 = Train(SpiralsSpec(v1::TrainingSpec::BF16, 1));
  EXPECT_EQ(bf16.info.precision(), v1::TrainingSpec::BF16);
  EXPECT_EQ(f32.info.precision(), v1::TrainingSpec::F32);
  ASSERT_EQ(f32.losses.size(), 1u);
  ASSERT_EQ(bf16.losses.size(), 1u);
  // bf16 keeps 8 significant bits: the loss agrees to about 1%, not 1e-6.
  EXPECT_NEAR(bf16.losses[0], f32.losses[0], 0.01 * f32.losses[0]);
  EXPECT_NE(bf16.losses[0], f32.losses[0]);
  // Master weights stay f32: after one Adam step (each weight moves by
  // lr times the sign of its gradient at t = 1) they equal F32's wherever
  // the bf16 gradient has the same sign, i.e. almost everywhere.
  int differ = 0, total = 0;
  for (int l = 0; l < f32.model.layers_size(); ++l) {
    const auto& a = f32.model.layers(l).weights();
    const auto& b = bf16.model.layers(l).weights();
    ASSERT_EQ(a.size(), b.size());
    for (int i = 0; i < a.size(); ++i, ++total) {
      if (std::abs(a[i] - b[i]) > 1e-6f) ++differ;
    }
  }
  EXPECT_LT(differ, total / 10) << differ << " of " << total;
}

TEST_F(Bf16Test, LearnsSpirals) {
  const RunResult run = Train(SpiralsSpec(v1::TrainingSpec::BF16, 1500));
  EXPECT_EQ(run.summary.state(), v1::SUCCEEDED);
  EXPECT_GE(run.summary.final_accuracy(), 0.9);
  EXPECT_LT(run.losses.back(), 0.3 * run.losses.front());
}

}  // namespace
}  // namespace gradwatch::engine
