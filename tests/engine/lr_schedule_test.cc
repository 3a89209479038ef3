#include "engine/lr_schedule.h"

#include <cmath>

#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::OptimizerSpec;
using gradwatch::v1::Schedule;

OptimizerSpec Spec(double lr, Schedule::Kind kind, uint32_t warmup) {
  OptimizerSpec spec;
  spec.set_learning_rate(lr);
  spec.mutable_schedule()->set_kind(kind);
  spec.mutable_schedule()->set_warmup_steps(warmup);
  spec.mutable_schedule()->set_step_size(1000);
  spec.mutable_schedule()->set_gamma(0.1);
  return spec;
}

TEST(LrScheduleTest, ConstantIsTheLearningRate) {
  const OptimizerSpec spec = Spec(0.05, Schedule::CONSTANT, 0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 1, 100), 0.05);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 100, 100), 0.05);
  OptimizerSpec unspecified = spec;
  unspecified.mutable_schedule()->set_kind(Schedule::KIND_UNSPECIFIED);
  EXPECT_DOUBLE_EQ(LearningRateAt(unspecified, 37, 100), 0.05);
}

TEST(LrScheduleTest, WarmupRisesLinearlyToTheLearningRate) {
  const OptimizerSpec spec = Spec(0.1, Schedule::CONSTANT, 4);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 1, 100), 0.025);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 2, 100), 0.05);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 3, 100), 0.075);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 4, 100), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 5, 100), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 100, 100), 0.1);
}

TEST(LrScheduleTest, StepDecaysAtEachBoundary) {
  OptimizerSpec spec = Spec(1.0, Schedule::STEP, 0);
  spec.mutable_schedule()->set_step_size(10);
  spec.mutable_schedule()->set_gamma(0.5);
  // Steps 1-10 are the first period (s = 0..9), as PyTorch's StepLR.
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 1, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 11, 100), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 20, 100), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 21, 100), 0.25);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 31, 100), 0.125);
}

TEST(LrScheduleTest, StepCountsFromTheEndOfWarmup) {
  OptimizerSpec spec = Spec(1.0, Schedule::STEP, 5);
  spec.mutable_schedule()->set_step_size(10);
  spec.mutable_schedule()->set_gamma(0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 1, 100), 0.2);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 5, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 6, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 15, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 16, 100), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 26, 100), 0.25);
}

TEST(LrScheduleTest, CosineGoesFromLearningRateToItsFloor) {
  OptimizerSpec spec = Spec(2.0, Schedule::COSINE, 0);
  spec.mutable_schedule()->set_min_lr_fraction(0.1);
  // 101 steps: s = 0..100, S = 100.
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 1, 101), 2.0);
  EXPECT_NEAR(LearningRateAt(spec, 51, 101), 2.0 * (0.1 + 0.9 * 0.5), 1e-12);
  EXPECT_NEAR(LearningRateAt(spec, 101, 101), 0.2, 1e-12);
  // A quarter of the way: (1 + cos(pi / 4)) / 2 = 0.853553...
  EXPECT_NEAR(LearningRateAt(spec, 26, 101),
              2.0 * (0.1 + 0.9 * 0.8535533905932737), 1e-12);
  // Monotone in between, and flat at the floor past the end.
  for (uint64_t step = 2; step <= 101; ++step) {
    EXPECT_LT(LearningRateAt(spec, step, 101),
              LearningRateAt(spec, step - 1, 101));
  }
  EXPECT_NEAR(LearningRateAt(spec, 150, 101), 0.2, 1e-12);
}

TEST(LrScheduleTest, CosineAfterWarmup) {
  OptimizerSpec spec = Spec(1.0, Schedule::COSINE, 10);
  // Default floor 0: ends at exactly zero.
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 5, 111), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 10, 111), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 11, 111), 1.0);
  EXPECT_NEAR(LearningRateAt(spec, 61, 111), 0.5, 1e-12);
  EXPECT_NEAR(LearningRateAt(spec, 111, 111), 0.0, 1e-12);
  // No step after warm-up to decay over (S <= 0): the learning rate.
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 11, 11), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(spec, 11, 10), 1.0);
}

}  // namespace
}  // namespace gradwatch::engine
