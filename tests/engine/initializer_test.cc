#include "engine/initializer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/random.h"
#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::InitSpec;
using gradwatch::v1::LayerSpec;

constexpr int kFanIn = 400;
constexpr int kFanOut = 500;

LayerSpec Layer(InitSpec::Scheme scheme, double gain, double bias,
                int units = kFanOut) {
  LayerSpec layer;
  layer.set_units(units);
  layer.mutable_init()->set_scheme(scheme);
  layer.mutable_init()->set_gain(gain);
  layer.mutable_init()->set_bias(bias);
  return layer;
}

struct Sample {
  std::vector<float> weights;
  std::vector<float> bias;
  double mean = 0;
  double stddev = 0;
  float min = 0;
  float max = 0;
};

Sample Initialize(const LayerSpec& layer, int fan_in, uint64_t seed) {
  Sample s;
  const int fan_out = static_cast<int>(layer.units());
  s.weights.assign(static_cast<size_t>(fan_in) * fan_out, -123.0f);
  s.bias.assign(fan_out, -123.0f);
  Rng rng(seed);
  InitializeLayer(layer, fan_in, rng, s.weights.data(), s.bias.data());
  double sum = 0, sum_sq = 0;
  for (float w : s.weights) {
    sum += w;
    sum_sq += static_cast<double>(w) * w;
  }
  const auto n = static_cast<double>(s.weights.size());
  s.mean = sum / n;
  s.stddev = std::sqrt(sum_sq / n - s.mean * s.mean);
  s.min = *std::min_element(s.weights.begin(), s.weights.end());
  s.max = *std::max_element(s.weights.begin(), s.weights.end());
  return s;
}

// 200,000 draws: the sample std is within 0.2% of the true one (one
// standard error), the mean within std / 447; the bounds are 5-6 errors.
void ExpectMoments(const Sample& s, double expected_std) {
  EXPECT_NEAR(s.stddev, expected_std, 0.01 * expected_std);
  EXPECT_NEAR(s.mean, 0.0, 5 * expected_std / std::sqrt(kFanIn * kFanOut));
}

TEST(InitializerTest, HeNormal) {
  const Sample s = Initialize(Layer(InitSpec::HE_NORMAL, 1, 0), kFanIn, 1);
  ExpectMoments(s, std::sqrt(2.0 / kFanIn));  // 0.0707
  // A normal sample of this size reaches beyond 4 standard deviations.
  EXPECT_GT(s.max, 4 * std::sqrt(2.0 / kFanIn));
}

TEST(InitializerTest, HeUniform) {
  const Sample s = Initialize(Layer(InitSpec::HE_UNIFORM, 1, 0), kFanIn, 2);
  const double bound = std::sqrt(6.0 / kFanIn);
  ExpectMoments(s, bound / std::sqrt(3.0));
  EXPECT_GE(s.min, -bound);
  EXPECT_LE(s.max, bound);
  EXPECT_GT(s.max, 0.999 * bound);
  EXPECT_LT(s.min, -0.999 * bound);
}

TEST(InitializerTest, XavierNormal) {
  const Sample s = Initialize(Layer(InitSpec::XAVIER_NORMAL, 1, 0), kFanIn, 3);
  ExpectMoments(s, std::sqrt(2.0 / (kFanIn + kFanOut)));
}

TEST(InitializerTest, XavierUniform) {
  const Sample s = Initialize(Layer(InitSpec::XAVIER_UNIFORM, 1, 0), kFanIn, 4);
  const double bound = std::sqrt(6.0 / (kFanIn + kFanOut));
  ExpectMoments(s, bound / std::sqrt(3.0));
  EXPECT_GE(s.min, -bound);
  EXPECT_LE(s.max, bound);
}

TEST(InitializerTest, LecunNormal) {
  const Sample s = Initialize(Layer(InitSpec::LECUN_NORMAL, 1, 0), kFanIn, 5);
  ExpectMoments(s, std::sqrt(1.0 / kFanIn));
}

TEST(InitializerTest, GainScalesTheSpread) {
  const Sample s = Initialize(Layer(InitSpec::HE_NORMAL, 2.5, 0), kFanIn, 6);
  ExpectMoments(s, 2.5 * std::sqrt(2.0 / kFanIn));
  const Sample u =
      Initialize(Layer(InitSpec::XAVIER_UNIFORM, 0.5, 0), kFanIn, 6);
  const double bound = 0.5 * std::sqrt(6.0 / (kFanIn + kFanOut));
  ExpectMoments(u, bound / std::sqrt(3.0));
  EXPECT_LE(u.max, bound);
}

TEST(InitializerTest, ZerosAndConstantAreExactAndDrawNothing) {
  Rng fresh(9);
  const uint64_t first_draw = fresh.Next();

  const LayerSpec zeros = Layer(InitSpec::ZEROS, 1, 0.5, 7);
  std::vector<float> w(3 * 7, -1.0f), b(7, -1.0f);
  Rng rng(9);
  InitializeLayer(zeros, 3, rng, w.data(), b.data());
  for (float x : w) EXPECT_EQ(x, 0.0f);
  for (float x : b) EXPECT_EQ(x, 0.5f);
  EXPECT_EQ(rng.Next(), first_draw);

  const LayerSpec constant = Layer(InitSpec::CONSTANT, -0.25, -2.0, 7);
  Rng rng2(9);
  InitializeLayer(constant, 3, rng2, w.data(), b.data());
  for (float x : w) EXPECT_EQ(x, -0.25f);
  for (float x : b) EXPECT_EQ(x, -2.0f);
  EXPECT_EQ(rng2.Next(), first_draw);
}

TEST(InitializerTest, BiasIsSetInEveryScheme) {
  for (const InitSpec::Scheme scheme :
       {InitSpec::HE_NORMAL, InitSpec::HE_UNIFORM, InitSpec::XAVIER_NORMAL,
        InitSpec::XAVIER_UNIFORM, InitSpec::LECUN_NORMAL}) {
    const Sample s = Initialize(Layer(scheme, 1, 0.125, 9), 4, 10);
    for (float x : s.bias) EXPECT_EQ(x, 0.125f) << scheme;
    for (float x : s.weights) EXPECT_NE(x, -123.0f) << scheme;
  }
}

TEST(InitializerTest, DrawsInRowMajorOrderAndIsDeterministic) {
  const LayerSpec layer = Layer(InitSpec::HE_NORMAL, 1.5, 0, 3);
  const Sample a = Initialize(layer, 2, 42);
  const Sample b = Initialize(layer, 2, 42);
  EXPECT_EQ(a.weights, b.weights);
  // weights[i * fan_out + j] is the (i * fan_out + j)-th draw.
  Rng rng(42);
  const double stddev = 1.5 * std::sqrt(2.0 / 2);
  for (size_t k = 0; k < a.weights.size(); ++k) {
    EXPECT_EQ(a.weights[k], static_cast<float>(rng.Normal(0.0, stddev)))
        << "draw " << k;
  }
  const Sample c = Initialize(layer, 2, 43);
  EXPECT_NE(a.weights, c.weights);
}

}  // namespace
}  // namespace gradwatch::engine
