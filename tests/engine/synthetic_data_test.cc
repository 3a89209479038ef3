#include "engine/synthetic_data.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::SyntheticData;
using ::testing::HasSubstr;

SyntheticData Spec(SyntheticData::Kind kind, uint32_t samples,
                   uint32_t features, uint32_t classes, float noise,
                   uint64_t seed) {
  SyntheticData spec;
  spec.set_kind(kind);
  spec.set_samples(samples);
  spec.set_features(features);
  spec.set_classes(classes);
  spec.set_noise(noise);
  spec.set_seed(seed);
  return spec;
}

Dataset Generate(const SyntheticData& spec) {
  absl::StatusOr<Dataset> data = GenerateSynthetic(spec);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *std::move(data) : Dataset{};
}

template <typename T>
bool BitIdentical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() ||
          std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

double StdDev(const std::vector<double>& v) {
  double mean = 0.0;
  for (double e : v) mean += e;
  mean /= v.size();
  double var = 0.0;
  for (double e : v) var += (e - mean) * (e - mean);
  return std::sqrt(var / v.size());
}

class AllKindsTest : public ::testing::TestWithParam<SyntheticData::Kind> {};

TEST_P(AllKindsTest, SameSeedIsBitIdenticalAndOtherSeedDiffers) {
  const Dataset a = Generate(Spec(GetParam(), 300, 0, 0, 0.1f, 42));
  const Dataset b = Generate(Spec(GetParam(), 300, 0, 0, 0.1f, 42));
  const Dataset c = Generate(Spec(GetParam(), 300, 0, 0, 0.1f, 43));
  EXPECT_TRUE(BitIdentical(a.x, b.x));
  EXPECT_TRUE(BitIdentical(a.labels, b.labels));
  EXPECT_TRUE(BitIdentical(a.targets, b.targets));
  EXPECT_FALSE(BitIdentical(a.x, c.x));
}

TEST_P(AllKindsTest, ShapesFollowTheSpecAndValuesAreOfOrderOne) {
  const Dataset d = Generate(Spec(GetParam(), 500, 0, 0, 0.0f, 1));
  EXPECT_EQ(d.rows, 500);
  EXPECT_EQ(d.features, 2);
  EXPECT_EQ(d.x.size(), 1000u);
  float max_abs = 0.0f;
  for (float v : d.x) max_abs = std::max(max_abs, std::fabs(v));
  EXPECT_GT(max_abs, 0.5f);
  EXPECT_LT(max_abs, 12.0f);
  if (GetParam() == SyntheticData::TEACHER_STUDENT) {
    EXPECT_EQ(d.target_width, 1);
    EXPECT_EQ(d.targets.size(), 500u);
    EXPECT_TRUE(d.labels.empty());
  } else {
    EXPECT_EQ(d.target_width, 0);
    EXPECT_EQ(d.labels.size(), 500u);
    EXPECT_TRUE(d.targets.empty());
  }
}

TEST_P(AllKindsTest, NoiseIsAddedOnTopOfTheNoiseFreeValues) {
  const Dataset clean = Generate(Spec(GetParam(), 2000, 0, 0, 0.0f, 5));
  const Dataset noisy = Generate(Spec(GetParam(), 2000, 0, 0, 0.25f, 5));
  const bool regression = GetParam() == SyntheticData::TEACHER_STUDENT;
  const std::vector<float>& a = regression ? clean.targets : clean.x;
  const std::vector<float>& b = regression ? noisy.targets : noisy.x;
  ASSERT_EQ(a.size(), b.size());
  std::vector<double> diff;
  for (size_t i = 0; i < a.size(); ++i) diff.push_back(b[i] - a[i]);
  EXPECT_NEAR(StdDev(diff), 0.25, 0.02);
  // The other side is untouched.
  if (regression) {
    EXPECT_TRUE(BitIdentical(clean.x, noisy.x));
  } else {
    EXPECT_TRUE(BitIdentical(clean.labels, noisy.labels));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, AllKindsTest,
    ::testing::Values(SyntheticData::SPIRALS, SyntheticData::XOR,
                      SyntheticData::MOONS, SyntheticData::CIRCLES,
                      SyntheticData::BLOBS, SyntheticData::TEACHER_STUDENT),
    [](const auto& info) { return SyntheticData::Kind_Name(info.param); });

struct BalanceCase {
  SyntheticData::Kind kind;
  uint32_t classes;
  int expected_classes;
};

class ClassBalanceTest : public ::testing::TestWithParam<BalanceCase> {};

TEST_P(ClassBalanceTest, ClassesDifferByAtMostOneRow) {
  const BalanceCase& c = GetParam();
  const Dataset d = Generate(Spec(c.kind, 1001, 0, c.classes, 0.0f, 3));
  std::vector<int> counts(c.expected_classes, 0);
  for (int32_t label : d.labels) {
    ASSERT_GE(label, 0);
    ASSERT_LT(label, c.expected_classes);
    ++counts[label];
  }
  const int floor_count = 1001 / c.expected_classes;
  for (int k = 0; k < c.expected_classes; ++k) {
    EXPECT_EQ(counts[k], floor_count + (k < 1001 % c.expected_classes ? 1 : 0))
        << "class " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ClassBalanceTest,
    ::testing::Values(BalanceCase{SyntheticData::SPIRALS, 0, 3},
                      BalanceCase{SyntheticData::SPIRALS, 7, 7},
                      BalanceCase{SyntheticData::XOR, 0, 2},
                      BalanceCase{SyntheticData::MOONS, 2, 2},
                      BalanceCase{SyntheticData::CIRCLES, 0, 2},
                      BalanceCase{SyntheticData::BLOBS, 0, 3},
                      BalanceCase{SyntheticData::BLOBS, 10, 10}));

TEST(SyntheticDataTest, ZeroFieldsTakeTheDocumentedDefaults) {
  const Dataset spirals = Generate(Spec(SyntheticData::SPIRALS, 0, 0, 0, 0, 0));
  EXPECT_EQ(spirals.rows, 1000);
  EXPECT_EQ(spirals.features, 2);
  EXPECT_EQ(*std::max_element(spirals.labels.begin(), spirals.labels.end()), 2);
  const Dataset teacher =
      Generate(Spec(SyntheticData::TEACHER_STUDENT, 0, 0, 0, 0, 0));
  EXPECT_EQ(teacher.rows, 1000);
  EXPECT_EQ(teacher.features, 2);
  EXPECT_EQ(teacher.target_width, 1);
}

TEST(SyntheticDataTest, SpiralsFollowTheDocumentedFormula) {
  const int classes = 4;
  const Dataset d =
      Generate(Spec(SyntheticData::SPIRALS, 402, 2, classes, 0.0f, 9));
  for (int64_t i = 0; i < d.rows; ++i) {
    const int k = static_cast<int>(i % classes);
    ASSERT_EQ(d.labels[i], k);
    const int n_k = 402 / classes + (k < 402 % classes ? 1 : 0);
    const double t = static_cast<double>(i / classes) / n_k;
    const double angle = 4.0 * t + 2.0 * M_PI * k / classes;
    EXPECT_NEAR(d.x[2 * i], t * std::sin(angle), 1e-6) << "row " << i;
    EXPECT_NEAR(d.x[2 * i + 1], t * std::cos(angle), 1e-6) << "row " << i;
    EXPECT_LT(std::hypot(d.x[2 * i], d.x[2 * i + 1]), 1.0);
  }
}

TEST(SyntheticDataTest, XorLabelRuleHoldsExactlyWithoutNoise) {
  const Dataset d = Generate(Spec(SyntheticData::XOR, 4000, 2, 2, 0.0f, 11));
  int quadrants[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < d.rows; ++i) {
    const float x0 = d.x[2 * i];
    const float x1 = d.x[2 * i + 1];
    ASSERT_EQ(d.labels[i], x0 * x1 > 0.0f ? 1 : 0) << "row " << i;
    ASSERT_LE(std::fabs(x0), 1.0f);
    ASSERT_LE(std::fabs(x1), 1.0f);
    ++quadrants[(x0 > 0 ? 1 : 0) + (x1 > 0 ? 2 : 0)];
  }
  for (int q : quadrants) EXPECT_NEAR(q, 1000, 120);
}

TEST(SyntheticDataTest, MoonsAreTwoInterleavingHalfCircles) {
  const Dataset d = Generate(Spec(SyntheticData::MOONS, 200, 2, 2, 0.0f, 0));
  for (int64_t i = 0; i < d.rows; ++i) {
    const double x = d.x[2 * i];
    const double y = d.x[2 * i + 1];
    if (d.labels[i] == 0) {
      EXPECT_NEAR(std::hypot(x, y), 1.0, 1e-6);
      EXPECT_GE(y, -1e-6);
    } else {
      EXPECT_NEAR(std::hypot(x - 1.0, y - 0.5), 1.0, 1e-6);
      EXPECT_LE(y, 0.5 + 1e-6);
    }
  }
  // Both ends of each half circle are included (numpy linspace).
  EXPECT_FLOAT_EQ(d.x[0], 1.0f);
  EXPECT_NEAR(d.x[2 * 198], -1.0f, 1e-6);
  EXPECT_NEAR(d.x[2 * 1], 0.0f, 1e-6);
  EXPECT_NEAR(d.x[2 * 199], 2.0f, 1e-6);
}

TEST(SyntheticDataTest, CirclesHaveRadiusOneAndOneHalf) {
  const Dataset d = Generate(Spec(SyntheticData::CIRCLES, 300, 2, 2, 0.0f, 0));
  for (int64_t i = 0; i < d.rows; ++i) {
    const double r = std::hypot(d.x[2 * i], d.x[2 * i + 1]);
    EXPECT_NEAR(r, d.labels[i] == 0 ? 1.0 : 0.5, 1e-6) << "row " << i;
  }
}

TEST(SyntheticDataTest, BlobsAreUnitGaussiansAroundCentersInTheBox) {
  const int features = 5;
  const int classes = 4;
  const Dataset d =
      Generate(Spec(SyntheticData::BLOBS, 8000, features, classes, 0.0f, 21));
  ASSERT_EQ(d.features, features);
  // The centers are the first draws of the seed's generator.
  Rng rng(21);
  std::vector<double> centers(classes * features);
  for (double& c : centers) c = rng.Uniform(-5.0, 5.0);
  for (int k = 0; k < classes; ++k) {
    for (int f = 0; f < features; ++f) {
      std::vector<double> column;
      for (int64_t i = k; i < d.rows; i += classes) {
        column.push_back(d.x[i * features + f] - centers[k * features + f]);
      }
      double mean = 0.0;
      for (double v : column) mean += v;
      mean /= column.size();
      EXPECT_NEAR(mean, 0.0, 0.1) << "class " << k << " feature " << f;
      EXPECT_NEAR(StdDev(column), 1.0, 0.06);
    }
  }
}

TEST(SyntheticDataTest, TeacherStudentMatchesANaiveRecomputation) {
  const int features = 3;
  const int outputs = 2;
  const uint64_t seed = 77;
  const Dataset d = Generate(
      Spec(SyntheticData::TEACHER_STUDENT, 50, features, outputs, 0.0f, seed));
  ASSERT_EQ(d.target_width, outputs);
  Rng rng(seed);
  double w1[features][32];
  double b1[32];
  double w2[32][outputs];
  for (auto& row : w1) {
    for (double& w : row) w = rng.Normal(0.0, std::sqrt(1.0 / features));
  }
  for (double& b : b1) b = rng.Normal(0.0, 0.1);
  for (auto& row : w2) {
    for (double& w : row) w = rng.Normal(0.0, std::sqrt(1.0 / 32));
  }
  for (int64_t i = 0; i < d.rows; ++i) {
    for (int f = 0; f < features; ++f) {
      ASSERT_EQ(d.x[i * features + f], static_cast<float>(rng.Normal()));
    }
  }
  std::vector<double> all_targets;
  for (int64_t i = 0; i < d.rows; ++i) {
    double hidden[32];
    for (int u = 0; u < 32; ++u) {
      double z = b1[u];
      for (int f = 0; f < features; ++f) z += d.x[i * features + f] * w1[f][u];
      hidden[u] = std::tanh(z);
    }
    for (int o = 0; o < outputs; ++o) {
      double y = 0.0;
      for (int u = 0; u < 32; ++u) y += hidden[u] * w2[u][o];
      EXPECT_NEAR(d.targets[i * outputs + o], y, 1e-6);
      all_targets.push_back(y);
    }
  }
  // Targets of order one, not collapsed to a constant.
  EXPECT_GT(StdDev(all_targets), 0.1);
  EXPECT_LT(StdDev(all_targets), 2.0);
}

TEST(SyntheticDataTest, OutOfRangeFieldsAreInvalidArgument) {
  struct Case {
    SyntheticData spec;
    const char* message;
  };
  const Case cases[] = {
      {Spec(SyntheticData::KIND_UNSPECIFIED, 10, 0, 0, 0, 0),
       "data.synthetic.kind must be one of"},
      {Spec(SyntheticData::SPIRALS, 3, 0, 0, 0, 0),
       "data.synthetic.samples must be in [4, 1000000], got 3"},
      {Spec(SyntheticData::SPIRALS, 1000001, 0, 0, 0, 0),
       "data.synthetic.samples must be in [4, 1000000], got 1000001"},
      {Spec(SyntheticData::XOR, 10, 3, 0, 0, 0),
       "data.synthetic.features must be in {0, 2} for this kind, got 3"},
      {Spec(SyntheticData::MOONS, 10, 0, 3, 0, 0),
       "data.synthetic.classes must be in {0, 2} for this kind, got 3"},
      {Spec(SyntheticData::BLOBS, 10, 4097, 0, 0, 0),
       "data.synthetic.features must be in [1, 4096], got 4097"},
      {Spec(SyntheticData::SPIRALS, 10, 0, 1, 0, 0),
       "data.synthetic.classes must be in [2, 1000], got 1"},
      {Spec(SyntheticData::TEACHER_STUDENT, 10, 0, 1025, 0, 0),
       "data.synthetic.classes must be in [1, 1024], got 1025"},
      {Spec(SyntheticData::CIRCLES, 10, 0, 0, -0.5f, 0),
       "data.synthetic.noise must be in [0, 10], got -0.5"},
      {Spec(SyntheticData::CIRCLES, 10, 0, 0, NAN, 0),
       "data.synthetic.noise must be in [0, 10], got nan"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Dataset> d = GenerateSynthetic(c.spec);
    ASSERT_FALSE(d.ok()) << c.message;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace gradwatch::engine
