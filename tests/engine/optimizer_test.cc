#include "engine/optimizer.h"

#include <omp.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"
#include "tests/engine/allocation_counter.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::OptimizerSpec;

// A spec as WithDefaults leaves it: every optional field set.
OptimizerSpec Spec(OptimizerSpec::Kind kind, double lr) {
  OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(lr);
  spec.set_beta1(0.9);
  spec.set_beta2(0.999);
  spec.set_epsilon(1e-8);
  spec.set_rmsprop_alpha(0.99);
  spec.set_decoupled_weight_decay(kind == OptimizerSpec::ADAMW ? 0.01 : 0.0);
  return spec;
}

// One tensor whose gradient the test sets before each step.
struct OneTensor {
  OneTensor(const OptimizerSpec& spec, std::vector<float> initial)
      : w(std::move(initial)),
        g(w.size(), 0.0f),
        optimizer(spec, {ParamTensor{w.data(), g.data(),
                                     static_cast<int64_t>(w.size())}}),
        results(1) {}

  UpdateResult Step(const std::vector<float>& grad, double lr,
                    float grad_scale = 1.0f) {
    g = grad;
    optimizer.Step(lr, grad_scale, results);
    return results[0];
  }

  std::vector<float> w;
  std::vector<float> g;
  Optimizer optimizer;
  std::vector<UpdateResult> results;
};

// f32 arithmetic against a double reference: a few units in the last place.
void ExpectWeights(const std::vector<float>& actual,
                   const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i],
                1e-6 * std::fmax(1.0, std::fabs(expected[i])))
        << "element " << i;
  }
}

TEST(OptimizerTest, PlainSgdSubtractsLearningRateTimesGradient) {
  OneTensor t(Spec(OptimizerSpec::SGD, 0.1), {1.0f, -2.0f, 0.5f});
  const std::vector<std::vector<float>> grads = {
      {1.0f, -2.0f, 0.5f}, {0.25f, 0.0f, -1.0f}, {-3.0f, 1.5f, 2.0f}};
  std::vector<double> w = {1.0, -2.0, 0.5};
  for (const auto& g : grads) {
    t.Step(g, 0.1);
    for (int i = 0; i < 3; ++i) w[i] -= 0.1 * g[i];
    ExpectWeights(t.w, w);
  }
  // 1 - 0.1 - 0.025 + 0.3 = 1.175, written out once.
  EXPECT_NEAR(t.w[0], 1.175, 1e-6);
  EXPECT_EQ(t.optimizer.steps(), 3);
}

TEST(OptimizerTest, HeavyBallMomentumKeepsMovingAfterGradientVanishes) {
  OptimizerSpec spec = Spec(OptimizerSpec::SGD, 0.1);
  spec.set_momentum(0.9);
  OneTensor t(spec, {1.0f, -1.0f});
  const double lr = 0.1;
  const double mu = 0.9;
  std::vector<double> w = {1.0, -1.0};
  std::vector<double> v = {0.0, 0.0};
  const std::vector<std::vector<float>> grads = {
      {1.0f, -0.5f}, {0.5f, 0.5f}, {0.0f, 0.0f}, {0.0f, 0.0f}, {0.0f, 0.0f}};
  for (size_t s = 0; s < grads.size(); ++s) {
    const std::vector<float> before = t.w;
    const UpdateResult r = t.Step(grads[s], lr);
    for (int i = 0; i < 2; ++i) {
      v[i] = mu * v[i] + grads[s][i];
      w[i] -= lr * v[i];
    }
    ExpectWeights(t.w, w);
    if (s >= 2) {
      // No gradient, yet the buffer still moves the weights: the update is
      // lr * mu^(s-1) * v_2, shrinking geometrically.
      EXPECT_FALSE(r.unchanged) << "step " << s + 1;
      EXPECT_NE(t.w[0], before[0]);
      EXPECT_NE(t.w[1], before[1]);
    }
  }
  // v_2 = (0.9 + 0.5, -0.45 + 0.5); steps 3-5 add -lr * v_2 (0.9 + 0.81 +
  // 0.729).
  const double v2_0 = 1.4;
  EXPECT_NEAR(t.w[0], 1.0 - 0.1 * 1.0 - 0.1 * v2_0 - 0.1 * v2_0 * 2.439, 1e-6);
}

TEST(OptimizerTest, NesterovLooksAheadAlongTheBuffer) {
  OptimizerSpec spec = Spec(OptimizerSpec::SGD, 0.05);
  spec.set_momentum(0.8);
  spec.set_nesterov(true);
  OneTensor t(spec, {0.5f, 2.0f, -1.0f});
  const double lr = 0.05;
  const double mu = 0.8;
  std::vector<double> w = {0.5, 2.0, -1.0};
  std::vector<double> v(3, 0.0);
  const std::vector<std::vector<float>> grads = {
      {1.0f, 2.0f, -1.0f}, {-0.5f, 1.0f, 0.0f}, {0.0f, 0.0f, 0.25f}};
  for (const auto& g : grads) {
    t.Step(g, lr);
    for (int i = 0; i < 3; ++i) {
      v[i] = mu * v[i] + g[i];
      w[i] -= lr * (g[i] + mu * v[i]);
    }
    ExpectWeights(t.w, w);
  }
  // First step by hand: w0 -= 0.05 * (1 + 0.8 * 1) = 0.09.
  OneTensor first(spec, {0.5f});
  first.Step({1.0f}, lr);
  EXPECT_NEAR(first.w[0], 0.41, 1e-7);
}

TEST(OptimizerTest, AdamAppliesBiasCorrectionAtEachStep) {
  OneTensor t(Spec(OptimizerSpec::ADAM, 0.01), {1.0f, -0.5f, 0.0f});
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  std::vector<double> w = {1.0, -0.5, 0.0};
  std::vector<double> m(3, 0.0), s(3, 0.0);
  const std::vector<std::vector<float>> grads = {
      {0.1f, -2.0f, 3.0f}, {0.2f, 1.0f, 3.0f}, {-0.4f, 0.5f, 3.0f}};
  for (int t_step = 1; t_step <= 3; ++t_step) {
    const auto& g = grads[t_step - 1];
    t.Step(g, lr);
    EXPECT_EQ(t.optimizer.steps(), t_step);
    for (int i = 0; i < 3; ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      s[i] = b2 * s[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t_step));
      const double s_hat = s[i] / (1 - std::pow(b2, t_step));
      w[i] -= lr * m_hat / (std::sqrt(s_hat) + eps);
    }
    ExpectWeights(t.w, w);
  }
  // With bias correction the first step is lr * sign(g) (m_hat = g,
  // s_hat = g^2), and a constant gradient keeps it at lr: element 2 moved
  // by exactly 3 * lr.
  EXPECT_NEAR(t.w[2], -0.03, 1e-7);
  OneTensor first(Spec(OptimizerSpec::ADAM, 0.01), {1.0f, -0.5f});
  first.Step({0.1f, -2.0f}, lr);
  EXPECT_NEAR(first.w[0], 0.99, 1e-7);
  EXPECT_NEAR(first.w[1], -0.49, 1e-7);
}

TEST(OptimizerTest, AdamWDecaysWeightsOutsideTheAdaptiveScaling) {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, lambda = 0.1;
  OptimizerSpec adamw = Spec(OptimizerSpec::ADAMW, lr);
  adamw.set_decoupled_weight_decay(lambda);
  OptimizerSpec adam_l2 = Spec(OptimizerSpec::ADAM, lr);
  adam_l2.set_weight_decay(lambda);
  const std::vector<float> initial = {2.0f, -1.0f};
  OneTensor decoupled(adamw, initial);
  OneTensor coupled(adam_l2, initial);

  std::vector<double> wd = {2.0, -1.0}, wc = {2.0, -1.0};
  std::vector<double> md(2, 0), sd(2, 0), mc(2, 0), sc(2, 0);
  const std::vector<std::vector<float>> grads = {
      {0.0f, 0.5f}, {0.0f, 0.25f}, {0.0f, -0.5f}};
  for (int step = 1; step <= 3; ++step) {
    const auto& g = grads[step - 1];
    decoupled.Step(g, lr);
    coupled.Step(g, lr);
    const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    for (int i = 0; i < 2; ++i) {
      // AdamW: the moments see g only; w shrinks by (1 - lr * lambda).
      md[i] = b1 * md[i] + (1 - b1) * g[i];
      sd[i] = b2 * sd[i] + (1 - b2) * g[i] * g[i];
      wd[i] = wd[i] * (1 - lr * lambda) -
              lr * (md[i] / bc1) / (std::sqrt(sd[i] / bc2) + eps);
      // Adam + L2: the decay term goes through the moments.
      const double gc = g[i] + lambda * wc[i];
      mc[i] = b1 * mc[i] + (1 - b1) * gc;
      sc[i] = b2 * sc[i] + (1 - b2) * gc * gc;
      wc[i] -= lr * (mc[i] / bc1) / (std::sqrt(sc[i] / bc2) + eps);
    }
    ExpectWeights(decoupled.w, wd);
    ExpectWeights(coupled.w, wc);
  }
  // Element 0 has no gradient. AdamW shrinks it by (1 - 0.001)^3; Adam + L2
  // normalizes the decay gradient away and moves it by lr per step.
  EXPECT_NEAR(decoupled.w[0], 2.0 * std::pow(0.999, 3), 1e-6);
  EXPECT_NEAR(coupled.w[0], 2.0 - 3 * 0.01, 1e-5);
  EXPECT_GT(decoupled.w[0] - coupled.w[0], 0.02);
}

TEST(OptimizerTest, RmsPropDividesByRunningRootMeanSquare) {
  OneTensor t(Spec(OptimizerSpec::RMSPROP, 0.01), {1.0f, -1.0f, 0.25f});
  const double lr = 0.01, alpha = 0.99, eps = 1e-8;
  std::vector<double> w = {1.0, -1.0, 0.25};
  std::vector<double> s(3, 0.0);
  const std::vector<std::vector<float>> grads = {
      {1.0f, -0.1f, 0.0f}, {1.0f, 0.3f, 2.0f}, {-2.0f, 0.0f, 2.0f}};
  for (const auto& g : grads) {
    t.Step(g, lr);
    for (int i = 0; i < 3; ++i) {
      s[i] = alpha * s[i] + (1 - alpha) * g[i] * g[i];
      w[i] -= lr * g[i] / (std::sqrt(s[i]) + eps);
    }
    ExpectWeights(t.w, w);
  }
  // Step 1 by hand: s = 0.01, so w -= 0.01 * 1 / 0.1 = 0.1.
  OneTensor first(Spec(OptimizerSpec::RMSPROP, 0.01), {1.0f});
  first.Step({1.0f}, lr);
  EXPECT_NEAR(first.w[0], 0.9, 1e-6);
}

TEST(OptimizerTest, WeightDecayChangesWeightsWithZeroGradient) {
  const std::vector<float> zero = {0.0f, 0.0f};
  OptimizerSpec coupled_spec = Spec(OptimizerSpec::SGD, 0.1);
  coupled_spec.set_weight_decay(0.5);
  OneTensor coupled(coupled_spec, {1.0f, -4.0f});
  OptimizerSpec decoupled_spec = Spec(OptimizerSpec::SGD, 0.1);
  decoupled_spec.set_decoupled_weight_decay(0.2);
  OneTensor decoupled(decoupled_spec, {1.0f, -4.0f});
  for (int step = 1; step <= 3; ++step) {
    EXPECT_FALSE(coupled.Step(zero, 0.1).unchanged);
    EXPECT_FALSE(decoupled.Step(zero, 0.1).unchanged);
    // Coupled: w -= lr * wd * w -> factor 0.95; decoupled: 1 - 0.02.
    ExpectWeights(coupled.w, {std::pow(0.95, step), -4 * std::pow(0.95, step)});
    ExpectWeights(decoupled.w,
                  {std::pow(0.98, step), -4 * std::pow(0.98, step)});
  }
  // Coupled decay combined with momentum accumulates in the buffer.
  OptimizerSpec momentum_spec = coupled_spec;
  momentum_spec.set_momentum(0.5);
  OneTensor with_momentum(momentum_spec, {1.0f});
  with_momentum.Step({0.0f}, 0.1);  // v = 0.5, w = 0.95
  with_momentum.Step({0.0f}, 0.1);  // v = 0.25 + 0.475, w = 0.95 - 0.0725
  EXPECT_NEAR(with_momentum.w[0], 0.8775, 1e-6);
}

TEST(OptimizerTest, DecoupledDecayScalesTheOldWeightBeforeTheUpdate) {
  // PyTorch's order: w' = w (1 - lr lambda) - lr v, with v from g alone.
  OptimizerSpec spec = Spec(OptimizerSpec::SGD, 0.5);
  spec.set_momentum(0.9);
  spec.set_decoupled_weight_decay(0.4);
  OneTensor t(spec, {1.0f, -2.0f});
  std::vector<double> w = {1.0, -2.0}, v = {0.0, 0.0};
  const std::vector<std::vector<float>> grads = {
      {1.0f, 1.0f}, {-0.5f, 2.0f}, {0.0f, 0.0f}};
  for (const auto& g : grads) {
    t.Step(g, 0.5);
    for (int i = 0; i < 2; ++i) {
      v[i] = 0.9 * v[i] + g[i];
      w[i] = w[i] * (1 - 0.5 * 0.4) - 0.5 * v[i];
    }
    ExpectWeights(t.w, w);
  }
  // Step 1 by hand: 1 * 0.8 - 0.5 = 0.3 (decaying after the update would
  // give 0.4).
  OneTensor first(spec, {1.0f});
  first.Step({1.0f}, 0.5);
  EXPECT_NEAR(first.w[0], 0.3, 1e-7);
}

TEST(OptimizerTest, GradScaleMultipliesGradientButNotDecay) {
  OptimizerSpec spec = Spec(OptimizerSpec::SGD, 0.1);
  spec.set_weight_decay(0.5);
  OneTensor t(spec, {2.0f, -1.0f});
  std::vector<double> w = {2.0, -1.0};
  const std::vector<float> g = {4.0f, 1.0f};
  for (int step = 0; step < 3; ++step) {
    t.Step(g, 0.1, 0.25f);
    for (int i = 0; i < 2; ++i) w[i] -= 0.1 * (0.25 * g[i] + 0.5 * w[i]);
    ExpectWeights(t.w, w);
  }
  // Step 1 by hand: 2 - 0.1 * (1 + 1) = 1.8.
  OneTensor first(spec, {2.0f});
  first.Step({4.0f}, 0.1, 0.25f);
  EXPECT_NEAR(first.w[0], 1.8, 1e-6);
}

TEST(OptimizerTest, ReportsNormsOfWeightsAndAppliedUpdate) {
  // Sizes around the lane width and the chunk length, with a tail, and
  // one that the job's threads share.
  omp_set_num_threads(2);
  for (const int64_t n : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{1023},
                          int64_t{1025}, int64_t{10007}, int64_t{200003}}) {
    std::vector<float> a(n), ga(n), b(3), gb(3);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = 0.001f * static_cast<float>((i * 37) % 101) - 0.05f;
      ga[i] = 0.01f * static_cast<float>((i * 13) % 7) - 0.03f;
    }
    b = {1.0f, 2.0f, -2.0f};
    gb = {0.0f, 0.0f, 0.0f};
    OptimizerSpec spec = Spec(OptimizerSpec::SGD, 0.5);
    spec.set_momentum(0.9);
    Optimizer optimizer(spec, {ParamTensor{a.data(), ga.data(), n},
                               ParamTensor{b.data(), gb.data(), 3}});
    std::vector<UpdateResult> results(2);
    for (int step = 0; step < 2; ++step) {
      const std::vector<float> before = a;
      optimizer.Step(0.5, 1.0f, results);
      double weight_sq = 0, weight_sq_after = 0, update_sq = 0;
      for (int64_t i = 0; i < n; ++i) {
        weight_sq += static_cast<double>(before[i]) * before[i];
        weight_sq_after += static_cast<double>(a[i]) * a[i];
        const double d = static_cast<double>(a[i]) - before[i];
        update_sq += d * d;
      }
      EXPECT_NEAR(results[0].weight_sq_before, weight_sq, 1e-6 * weight_sq)
          << "n=" << n;
      EXPECT_NEAR(results[0].weight_sq_after, weight_sq_after,
                  1e-6 * weight_sq_after)
          << "n=" << n;
      EXPECT_NEAR(results[0].update_sq, update_sq, 1e-6 * update_sq)
          << "n=" << n;
      EXPECT_FALSE(results[0].unchanged);
      // The second tensor has no gradient and no momentum yet: 1 + 4 + 4.
      EXPECT_DOUBLE_EQ(results[1].weight_sq_before, 9.0);
      EXPECT_DOUBLE_EQ(results[1].weight_sq_after, 9.0);
      EXPECT_EQ(results[1].update_sq, 0.0);
      EXPECT_TRUE(results[1].unchanged);
    }
  }
}

TEST(OptimizerTest, ZeroGradientLeavesWeightsBitIdentical) {
  std::vector<float> w(1000);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] =
        std::ldexp(static_cast<float>(i) - 500.0f, -static_cast<int>(i % 40));
  }
  w[7] = FLT_MIN / 4;  // subnormal
  const std::vector<float> zero(w.size(), 0.0f);
  for (const OptimizerSpec::Kind kind :
       {OptimizerSpec::SGD, OptimizerSpec::ADAM, OptimizerSpec::RMSPROP}) {
    OneTensor t(Spec(kind, 0.1), w);
    for (int step = 0; step < 3; ++step) {
      const UpdateResult r = t.Step(zero, 0.1);
      EXPECT_TRUE(r.unchanged) << kind;
      EXPECT_EQ(r.update_sq, 0.0);
      EXPECT_GT(r.weight_sq_before, 0.0);
      EXPECT_EQ(std::memcmp(t.w.data(), w.data(), w.size() * sizeof(float)), 0)
          << kind;
    }
  }
  // A nonzero gradient whose product with lr rounds away entirely.
  OneTensor tiny(Spec(OptimizerSpec::SGD, 1e-30), {1.0f, -3.0f});
  EXPECT_TRUE(tiny.Step({1e-20f, 1e-20f}, 1e-30).unchanged);
  EXPECT_EQ(tiny.w[0], 1.0f);
  // One element moved by one unit in the last place is a change.
  OneTensor one_ulp(Spec(OptimizerSpec::SGD, 1.0), {1.0f, 1.0f});
  const UpdateResult r = one_ulp.Step({0.0f, FLT_EPSILON / 2}, 1.0);
  EXPECT_FALSE(r.unchanged);
  EXPECT_EQ(one_ulp.w[0], 1.0f);
  EXPECT_EQ(one_ulp.w[1], std::nextafter(1.0f, 0.0f));
  EXPECT_NEAR(r.update_sq, FLT_EPSILON * FLT_EPSILON / 4, 1e-20);
}

TEST(OptimizerTest, WeightsDoNotDependOnTheThreadCount) {
  // Large enough to be split among threads, with a tail that is not a
  // whole chunk.
  constexpr int64_t kSize = 300001;
  std::vector<float> initial(kSize);
  std::vector<std::vector<float>> grads(3, std::vector<float>(kSize));
  for (int64_t i = 0; i < kSize; ++i) {
    initial[i] = 0.01f * static_cast<float>((i * 31) % 199) - 1.0f;
    for (int s = 0; s < 3; ++s) {
      grads[s][i] = 0.001f * static_cast<float>((i * (7 + s)) % 53) - 0.02f;
    }
  }
  for (const OptimizerSpec::Kind kind :
       {OptimizerSpec::SGD, OptimizerSpec::ADAM, OptimizerSpec::RMSPROP}) {
    OptimizerSpec spec = Spec(kind, 0.01);
    spec.set_momentum(kind == OptimizerSpec::SGD ? 0.9 : 0.0);
    std::vector<std::vector<float>> finals;
    for (const int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      OneTensor t(spec, initial);
      for (const std::vector<float>& g : grads) t.Step(g, 0.01);
      finals.push_back(t.w);
    }
    for (size_t k = 1; k < finals.size(); ++k) {
      EXPECT_EQ(std::memcmp(finals[0].data(), finals[k].data(),
                            kSize * sizeof(float)),
                0)
          << kind << " with " << k + 1 << " threads";
    }
  }
  omp_set_num_threads(1);
}

TEST(OptimizerTest, StepAllocatesNothing) {
  std::vector<float> w(5000, 0.5f), g(5000, 0.01f), b(10, 0.5f), gb(10, 1.0f);
  for (const OptimizerSpec::Kind kind :
       {OptimizerSpec::SGD, OptimizerSpec::ADAM, OptimizerSpec::ADAMW,
        OptimizerSpec::RMSPROP}) {
    OptimizerSpec spec = Spec(kind, 0.01);
    spec.set_momentum(kind == OptimizerSpec::SGD ? 0.9 : 0.0);
    Optimizer optimizer(spec, {ParamTensor{w.data(), g.data(), 5000},
                               ParamTensor{b.data(), gb.data(), 10}});
    std::vector<UpdateResult> results(2);
    const int64_t before = gradwatch::testing::AllocationCount();
    for (int step = 0; step < 5; ++step) optimizer.Step(0.01, 1.0f, results);
    EXPECT_EQ(gradwatch::testing::AllocationCount(), before) << kind;
  }
}

}  // namespace
}  // namespace gradwatch::engine
