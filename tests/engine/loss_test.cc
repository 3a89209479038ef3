#include "engine/loss.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/random.h"
#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::Loss;

struct Batch {
  std::vector<float> out;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  int batch = 0;
  int width = 0;
};

LossResult Compute(Loss loss, const Batch& b, std::vector<float>* d_out) {
  if (d_out != nullptr) d_out->assign(b.out.size(), -99.0f);
  return ComputeLoss(loss, b.out.data(), b.batch, b.width,
                     b.labels.empty() ? nullptr : b.labels.data(),
                     b.targets.empty() ? nullptr : b.targets.data(),
                     d_out == nullptr ? nullptr : d_out->data());
}

// Logits on a grid of 1/64 and a step of 1/1024, so that out +- h is exact
// in f32 and the central difference sees exactly the intended inputs.
std::vector<float> GridValues(uint64_t seed, int n, double range) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) {
    x = static_cast<float>(std::round(rng.Uniform(-range, range) * 64) / 64);
  }
  return v;
}

void ExpectGradientMatchesCentralDifferences(Loss loss, Batch b) {
  std::vector<float> d;
  Compute(loss, b, &d);
  const double h = 1.0 / 1024;
  for (size_t i = 0; i < b.out.size(); ++i) {
    const float saved = b.out[i];
    b.out[i] = static_cast<float>(saved + h);
    const double up = Compute(loss, b, nullptr).loss;
    b.out[i] = static_cast<float>(saved - h);
    const double down = Compute(loss, b, nullptr).loss;
    b.out[i] = saved;
    EXPECT_NEAR(d[i], (up - down) / (2 * h), 2e-6) << "element " << i;
  }
}

TEST(LossTest, CrossEntropyMatchesHandComputedValues) {
  Batch b{{1, 2, 3, 0, 0, 0}, {2, 0}, {}, 2, 3};
  std::vector<float> d;
  const LossResult r = Compute(Loss::CROSS_ENTROPY, b, &d);
  // Row 0: log(e + e^2 + e^3) - 3 = log(1 + e^-1 + e^-2); row 1: log 3.
  const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
  EXPECT_NEAR(r.loss, (std::log(z) + std::log(3.0)) / 2, 1e-12);
  EXPECT_NEAR(r.loss, 0.7531091266, 1e-9);
  // d = (softmax - onehot) / batch.
  EXPECT_NEAR(d[0], std::exp(-2.0) / z / 2, 1e-8);
  EXPECT_NEAR(d[1], std::exp(-1.0) / z / 2, 1e-8);
  EXPECT_NEAR(d[2], (1 / z - 1) / 2, 1e-8);
  EXPECT_NEAR(d[3], (1.0 / 3 - 1) / 2, 1e-8);
  EXPECT_NEAR(d[4], 1.0 / 6, 1e-8);
  EXPECT_NEAR(d[5], 1.0 / 6, 1e-8);
  EXPECT_EQ(r.correct, 2);  // row 1 is a three-way tie: index 0 wins
}

TEST(LossTest, CrossEntropyGradientMatchesFiniteDifferences) {
  Batch b{GridValues(7, 3 * 5, 4.0), {4, 0, 2}, {}, 3, 5};
  ExpectGradientMatchesCentralDifferences(Loss::CROSS_ENTROPY, b);
}

TEST(LossTest, CrossEntropyIsStableForHugeLogits) {
  Batch b{{1e4f, 0.0f, -1e4f, -1e4f, 1e4f, 1e4f}, {1, 2}, {}, 2, 3};
  std::vector<float> d;
  const LossResult r = Compute(Loss::CROSS_ENTROPY, b, &d);
  // Row 0: 1e4 - 0; row 1: log(2 e^1e4) - 1e4 = log 2.
  ASSERT_TRUE(std::isfinite(r.loss));
  EXPECT_NEAR(r.loss, (1e4 + std::log(2.0)) / 2, 1e-9);
  for (float x : d) EXPECT_TRUE(std::isfinite(x));
  EXPECT_FLOAT_EQ(d[0], 0.5f);
  EXPECT_FLOAT_EQ(d[1], -0.5f);
  EXPECT_FLOAT_EQ(d[2], 0.0f);
  EXPECT_FLOAT_EQ(d[4], 0.25f);
  EXPECT_FLOAT_EQ(d[5], -0.25f);
  EXPECT_EQ(r.correct, 0);  // row 1: the tie goes to index 1, label is 2
}

TEST(LossTest, CrossEntropyCountsFirstMaximumOnTies) {
  Batch b{{2, 2, 1, 5, 1, 5, 0, 1, 0}, {0, 2, 1}, {}, 3, 3};
  // Argmaxes 0, 0, 1: rows 0 and 2 are right.
  EXPECT_EQ(Compute(Loss::CROSS_ENTROPY, b, nullptr).correct, 2);
  b.labels = {1, 2, 0};
  EXPECT_EQ(Compute(Loss::CROSS_ENTROPY, b, nullptr).correct, 0);
}

TEST(LossTest, BinaryCrossEntropyMatchesHandComputedValues) {
  Batch b{{0.0f, 2.0f, -1.0f, 3.0f}, {1, 0, 0, 1}, {}, 4, 1};
  std::vector<float> d;
  const LossResult r = Compute(Loss::BINARY_CROSS_ENTROPY, b, &d);
  // -log sigmoid(o) for y = 1, -log(1 - sigmoid(o)) for y = 0.
  const auto sigmoid = [](double o) { return 1 / (1 + std::exp(-o)); };
  const double expected = (-std::log(0.5) - std::log(1 - sigmoid(2)) -
                           std::log(1 - sigmoid(-1)) - std::log(sigmoid(3))) /
                          4;
  EXPECT_NEAR(r.loss, expected, 1e-12);
  EXPECT_NEAR(d[0], (0.5 - 1) / 4, 1e-8);
  EXPECT_NEAR(d[1], sigmoid(2) / 4, 1e-8);
  EXPECT_NEAR(d[2], sigmoid(-1) / 4, 1e-8);
  EXPECT_NEAR(d[3], (sigmoid(3) - 1) / 4, 1e-8);
  // o > 0 predicts 1: rows 2 and 3 are right; o = 0 predicts 0.
  EXPECT_EQ(r.correct, 2);
}

TEST(LossTest, BinaryCrossEntropyGradientMatchesFiniteDifferences) {
  Batch b{GridValues(11, 6, 6.0), {0, 1, 1, 0, 1, 0}, {}, 6, 1};
  ExpectGradientMatchesCentralDifferences(Loss::BINARY_CROSS_ENTROPY, b);
}

TEST(LossTest, BinaryCrossEntropyIsStableForHugeLogits) {
  Batch b{{1e4f, -1e4f, 1e4f, -1e4f}, {0, 1, 1, 0}, {}, 4, 1};
  std::vector<float> d;
  const LossResult r = Compute(Loss::BINARY_CROSS_ENTROPY, b, &d);
  // Two confident mistakes cost 1e4 each; the right answers cost ~0.
  ASSERT_TRUE(std::isfinite(r.loss));
  EXPECT_NEAR(r.loss, 2e4 / 4, 1e-9);
  EXPECT_FLOAT_EQ(d[0], 0.25f);
  EXPECT_FLOAT_EQ(d[1], -0.25f);
  EXPECT_FLOAT_EQ(d[2], 0.0f);
  EXPECT_FLOAT_EQ(d[3], 0.0f);
  EXPECT_EQ(r.correct, 2);
}

TEST(LossTest, MeanSquaredErrorMatchesHandComputedValues) {
  Batch b{{1, 2, 3, 4}, {}, {0, 2, 5, 3}, 2, 2};
  std::vector<float> d;
  const LossResult r = Compute(Loss::MSE, b, &d);
  EXPECT_DOUBLE_EQ(r.loss, (1 + 0 + 4 + 1) / 4.0);
  EXPECT_FLOAT_EQ(d[0], 2 * 1 / 4.0f);
  EXPECT_FLOAT_EQ(d[1], 0.0f);
  EXPECT_FLOAT_EQ(d[2], 2 * -2 / 4.0f);
  EXPECT_FLOAT_EQ(d[3], 2 * 1 / 4.0f);
  EXPECT_EQ(r.correct, 0);
}

TEST(LossTest, MeanSquaredErrorGradientMatchesFiniteDifferences) {
  Batch b{GridValues(3, 4 * 3, 2.0), {}, GridValues(4, 4 * 3, 2.0), 4, 3};
  ExpectGradientMatchesCentralDifferences(Loss::MSE, b);
}

TEST(LossTest, NullGradientGivesTheSameLoss) {
  Batch b{GridValues(5, 8, 3.0), {1, 3}, {}, 2, 4};
  std::vector<float> d;
  EXPECT_EQ(Compute(Loss::CROSS_ENTROPY, b, &d).loss,
            Compute(Loss::CROSS_ENTROPY, b, nullptr).loss);
}

TEST(LossTest, OutputLinkGivesProbabilities) {
  const std::vector<float> logits = {1, 2, 3, 1e4f, 0, -1e4f};
  std::vector<float> p(6);
  ApplyOutputLink(Loss::CROSS_ENTROPY, logits.data(), 2, 3, p.data());
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(p[0], std::exp(1.0) / z, 1e-7);
  EXPECT_NEAR(p[1], std::exp(2.0) / z, 1e-7);
  EXPECT_NEAR(p[2], std::exp(3.0) / z, 1e-7);
  EXPECT_FLOAT_EQ(p[3], 1.0f);
  EXPECT_FLOAT_EQ(p[4], 0.0f);
  EXPECT_FLOAT_EQ(p[5], 0.0f);

  const std::vector<float> single = {0.0f, 2.0f, -1e4f, 1e4f};
  std::vector<float> q(4);
  ApplyOutputLink(Loss::BINARY_CROSS_ENTROPY, single.data(), 4, 1, q.data());
  EXPECT_FLOAT_EQ(q[0], 0.5f);
  EXPECT_NEAR(q[1], 1 / (1 + std::exp(-2.0)), 1e-7);
  EXPECT_EQ(q[2], 0.0f);
  EXPECT_EQ(q[3], 1.0f);

  ApplyOutputLink(Loss::MSE, single.data(), 2, 2, q.data());
  EXPECT_EQ(q, single);
}

}  // namespace
}  // namespace gradwatch::engine
