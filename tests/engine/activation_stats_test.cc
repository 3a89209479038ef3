#include "engine/activation_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

ActivationFunction Function(v1::Activation kind, float slope = 0,
                            float alpha = 1) {
  ActivationFunction f;
  f.kind = kind;
  f.negative_slope = slope;
  f.elu_alpha = alpha;
  return f;
}

v1::HistogramSpec NoHistogram() { return v1::HistogramSpec(); }

float Apply(const ActivationFunction& f, float z) {
  switch (f.kind) {
    case v1::RELU:
      return z > 0 ? z : 0.0f;
    case v1::LEAKY_RELU:
      return z > 0 ? z : f.negative_slope * z;
    case v1::ELU:
      return z > 0 ? z : f.elu_alpha * (std::exp(z) - 1.0f);
    case v1::GELU:
      return 0.5f * z * (1.0f + std::erf(z / std::sqrt(2.0f)));
    case v1::SIGMOID:
      return 1.0f / (1.0f + std::exp(-z));
    case v1::TANH:
      return std::tanh(z);
    case v1::STEP:
      return z > 0 ? 1.0f : 0.0f;
    default:
      return z;
  }
}

// [rows][units] from per-unit columns of z.
struct Batch {
  int rows, units;
  std::vector<float> z, a;
};

Batch FromColumns(const ActivationFunction& f,
                  const std::vector<std::vector<float>>& columns) {
  Batch b{static_cast<int>(columns[0].size()),
          static_cast<int>(columns.size()),
          {},
          {}};
  for (int r = 0; r < b.rows; ++r) {
    for (int j = 0; j < b.units; ++j) {
      b.z.push_back(columns[j][r]);
      b.a.push_back(Apply(f, columns[j][r]));
    }
  }
  return b;
}

std::vector<int> Flags(const std::vector<uint8_t>& flags) {
  return std::vector<int>(flags.begin(), flags.end());
}

TEST(ActivationStatsTest, ReluDeadUnitsAreThoseWithZNeverPositive) {
  const ActivationFunction f = Function(v1::RELU);
  const Batch b = FromColumns(f, {{-1.0f, -2.0f, -0.5f},   // dead
                                  {0.0f, 0.0f, 0.0f},      // dead: z <= 0
                                  {-0.0f, -0.0f, -3.0f},   // dead
                                  {-1.0f, 1e-30f, -1.0f},  // alive once
                                  {2.0f, 3.0f, 4.0f},      // alive
                                  {kNaN, -1.0f, -1.0f}});  // NaN: not inactive
  ActivationStats stats(f, b.units, b.rows, 1e-3, NoHistogram());
  stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_THAT(Flags(stats.inactive()), ElementsAre(1, 1, 1, 0, 0, 0));
  EXPECT_EQ(stats.inactive_units(), 3);
  EXPECT_EQ(stats.saturated_units(), 0);
}

TEST(ActivationStatsTest, UnitsActiveOnlyOnTheLastRowAreNotDead) {
  const ActivationFunction f = Function(v1::RELU);
  // Every unit is inactive on the first rows: the scan must not stop early.
  const Batch b = FromColumns(
      f, {{-1.0f, -1.0f, -1.0f, 5.0f}, {-1.0f, -1.0f, -1.0f, -1.0f}});
  ActivationStats stats(f, b.units, b.rows, 1e-3, NoHistogram());
  stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_THAT(Flags(stats.inactive()), ElementsAre(0, 1));
}

TEST(ActivationStatsTest, LeakyReluIsDeadOnlyWithSlopeZero) {
  const std::vector<std::vector<float>> columns = {{-1.0f, -2.0f},
                                                   {1.0f, -2.0f}};
  for (float slope : {0.01f, 0.0f}) {
    const ActivationFunction f = Function(v1::LEAKY_RELU, slope);
    const Batch b = FromColumns(f, columns);
    ActivationStats stats(f, b.units, b.rows, 1e-3, NoHistogram());
    stats.Compute(b.z.data(), b.a.data(), b.rows);
    EXPECT_EQ(stats.inactive_units(), slope == 0.0f ? 1 : 0) << slope;
    EXPECT_EQ(stats.saturated_units(), 0);
  }
}

TEST(ActivationStatsTest, StepIsAlwaysDeadAndLinearNever) {
  const std::vector<std::vector<float>> columns = {{-1.0f, 2.0f}, {3.0f, 4.0f}};
  const ActivationFunction step = Function(v1::STEP);
  Batch b = FromColumns(step, columns);
  ActivationStats step_stats(step, b.units, b.rows, 1e-3, NoHistogram());
  step_stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_EQ(step_stats.inactive_units(), 2);
  EXPECT_EQ(step_stats.saturated_units(), 0);

  const ActivationFunction linear = Function(v1::LINEAR);
  b = FromColumns(linear, {{-1e30f, -2.0f}, {0.0f, 0.0f}});
  ActivationStats linear_stats(linear, b.units, b.rows, 1e-3, NoHistogram());
  linear_stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_EQ(linear_stats.inactive_units(), 0);
  EXPECT_EQ(linear_stats.saturated_units(), 0);
}

TEST(ActivationStatsTest, SigmoidDeadWhereOutputRoundsToZeroOrOne) {
  const ActivationFunction f = Function(v1::SIGMOID);
  // f' = a (1 - a): 0 once a rounds to 1 (z = 20) or 0 (z = -200);
  // about 1e-4 < 1e-3 * 0.25 at z = -9.2 (saturated, not dead).
  const Batch b = FromColumns(f, {{20.0f, 30.0f},
                                  {-200.0f, -150.0f},
                                  {-9.2f, -9.5f},
                                  {-9.2f, 0.0f},
                                  {-9.2f, -200.0f}});
  ActivationStats stats(f, b.units, b.rows, 1e-3, NoHistogram());
  stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_EQ(b.a[0], 1.0f);
  EXPECT_EQ(b.a[1], 0.0f);
  EXPECT_THAT(Flags(stats.inactive()), ElementsAre(1, 1, 0, 0, 0));
  EXPECT_THAT(Flags(stats.saturated()), ElementsAre(1, 1, 1, 0, 1));
  EXPECT_EQ(stats.saturated_units(), 4);
}

TEST(ActivationStatsTest, TanhSaturationFollowsEps) {
  const ActivationFunction f = Function(v1::TANH);
  // 1 - tanh(z)^2: exactly 0 at z = 10 in f32, ~4.9e-4 at 4.5, ~1.6e-3
  // at 3.9.
  const Batch b =
      FromColumns(f, {{10.0f, -10.0f}, {4.5f, -4.5f}, {3.9f, 4.5f}});
  ActivationStats tight(f, b.units, b.rows, 1e-3, NoHistogram());
  tight.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_THAT(Flags(tight.inactive()), ElementsAre(1, 0, 0));
  EXPECT_THAT(Flags(tight.saturated()), ElementsAre(1, 1, 0));
  ActivationStats loose(f, b.units, b.rows, 1e-2, NoHistogram());
  loose.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_THAT(Flags(loose.saturated()), ElementsAre(1, 1, 1));
}

TEST(ActivationStatsTest, EluNegativeSide) {
  const ActivationFunction f = Function(v1::ELU, 0, 1.0f);
  // alpha exp(z) = a + alpha: 0 in f32 once exp(z) - 1 rounds to -1
  // (z = -20); 3.4e-4 at z = -8 (saturated); the positive side never.
  const Batch b = FromColumns(
      f, {{-20.0f, -30.0f}, {-8.0f, -9.0f}, {-1.0f, -8.0f}, {5.0f, 6.0f}});
  ActivationStats stats(f, b.units, b.rows, 1e-3, NoHistogram());
  stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_THAT(Flags(stats.inactive()), ElementsAre(1, 0, 0, 0));
  EXPECT_THAT(Flags(stats.saturated()), ElementsAre(1, 1, 0, 0));
}

TEST(ActivationStatsTest, GeluFromZ) {
  const ActivationFunction f = Function(v1::GELU);
  EXPECT_NEAR(f.MaxDerivative(), 1.1289, 1e-4);
  // f'(-20) = Phi(-20) + -20 phi(-20) is 0 in f32; f'(-5) ~ -7e-6 (|f'|
  // tiny but nonzero); f'(1) ~ 1.08.
  const Batch b =
      FromColumns(f, {{-20.0f, -30.0f}, {-5.0f, -6.0f}, {1.0f, -20.0f}});
  ActivationStats stats(f, b.units, b.rows, 1e-3, NoHistogram());
  stats.Compute(b.z.data(), b.a.data(), b.rows);
  EXPECT_THAT(Flags(stats.inactive()), ElementsAre(1, 0, 0));
  EXPECT_THAT(Flags(stats.saturated()), ElementsAre(1, 1, 0));
}

// Moments against a two-pass double recomputation, with planted
// non-finite values.
// The activation it writes is oneDNN's eltwise_relu forward bit for bit,
// special values included: with slope 0 it is max(z, +0) (NaN, -0 and -Inf
// give +0), otherwise z > 0 ? z : slope * z. Whatever the split, the
// figures are those of Compute on that activation.
TEST(ActivationStatsTest, WritingReluGivesOneDnnsActivationAndTheSameFigures) {
  const float z[] = {kNaN, -0.0f, -kInf, -1.0f, 2.0f, 1e-40f, kInf, -3e-39f};
  const float relu[] = {0.0f, 0.0f, 0.0f, 0.0f, 2.0f, 1e-40f, kInf, 0.0f};
  const float leaky[] = {kNaN, -0.0f,  -kInf, 0.1f * -1.0f,
                         2.0f, 1e-40f, kInf,  0.1f * -3e-39f};
  const int n = static_cast<int>(std::size(z));
  for (const float slope : {0.0f, 0.1f}) {
    SCOPED_TRACE(testing::Message() << "slope " << slope);
    const ActivationFunction f =
        slope == 0 ? Function(v1::RELU) : Function(v1::LEAKY_RELU, slope);
    const float* want = slope == 0 ? relu : leaky;
    for (const int parts : {1, 2, 3}) {
      ActivationStats written(f, n, 1, 1e-3, NoHistogram());
      std::vector<float> a(n, 123.0f);
      for (int part = 0; part < parts; ++part) {
        written.ComputePartWritingActivation(z, a.data(), 1, part, parts);
      }
      written.Finish(z, a.data(), 1);
      for (int i = 0; i < n; ++i) {
        uint32_t got_bits, want_bits;
        std::memcpy(&got_bits, &a[i], sizeof(got_bits));
        std::memcpy(&want_bits, &want[i], sizeof(want_bits));
        EXPECT_EQ(got_bits, want_bits) << "entry " << i << ", parts " << parts;
      }
      ActivationStats read(f, n, 1, 1e-3, NoHistogram());
      read.Compute(z, a.data(), 1);
      const ActivationMoments& w = written.moments();
      const ActivationMoments& r = read.moments();
      EXPECT_EQ(std::isnan(w.a_mean), std::isnan(r.a_mean));
      if (!std::isnan(r.a_mean)) {
        EXPECT_EQ(w.a_mean, r.a_mean);
      }
      EXPECT_EQ(w.z_negative_fraction, r.z_negative_fraction);
      EXPECT_EQ(w.z_nonfinite_count, r.z_nonfinite_count);
      EXPECT_EQ(written.inactive(), read.inactive());
    }
  }
}

TEST(ActivationStatsTest, MomentsMatchNaive) {
  const ActivationFunction f = Function(v1::TANH);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.5f, 2.0f);
  const int rows = 37, units = 19;
  std::vector<float> z(rows * units), a(rows * units);
  for (int i = 0; i < rows * units; ++i) {
    z[i] = normal(rng);
    a[i] = Apply(f, z[i]);
  }
  z[5] = -0.0f;
  a[5] = -0.0f;
  ActivationStats stats(f, units, rows, 1e-3, NoHistogram());
  stats.Compute(z.data(), a.data(), rows);

  const double n = rows * units;
  double a_sum = 0, z_sum = 0, z_min = 1e300, z_max = -1e300, negative = 0;
  for (int i = 0; i < rows * units; ++i) {
    a_sum += a[i];
    z_sum += z[i];
    z_min = std::min<double>(z_min, z[i]);
    z_max = std::max<double>(z_max, z[i]);
    negative += z[i] < 0;
  }
  double a_var = 0, z_var = 0;
  for (int i = 0; i < rows * units; ++i) {
    a_var += (a[i] - a_sum / n) * (a[i] - a_sum / n);
    z_var += (z[i] - z_sum / n) * (z[i] - z_sum / n);
  }
  const ActivationMoments& m = stats.moments();
  // f32 partial sums: about 1e-7 relative.
  EXPECT_NEAR(m.a_mean, a_sum / n, 1e-6 * std::fabs(a_sum / n));
  EXPECT_NEAR(m.z_mean, z_sum / n, 1e-6 * std::fabs(z_sum / n));
  EXPECT_NEAR(m.a_std, std::sqrt(a_var / n), 1e-6 * std::sqrt(a_var / n));
  EXPECT_NEAR(m.z_std, std::sqrt(z_var / n), 1e-6 * std::sqrt(z_var / n));
  EXPECT_EQ(m.z_min, z_min);
  EXPECT_EQ(m.z_max, z_max);
  EXPECT_DOUBLE_EQ(m.z_negative_fraction, negative / n);
  EXPECT_EQ(m.z_nonfinite_count, 0u);

  z[7] = kNaN;
  z[8] = -kInf;
  z[9] = kInf;
  stats.Compute(z.data(), a.data(), rows);
  EXPECT_EQ(stats.moments().z_nonfinite_count, 3u);
  EXPECT_EQ(stats.moments().z_min, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(stats.moments().z_max, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(stats.moments().z_mean));
  EXPECT_NEAR(stats.moments().a_mean, a_sum / n, 1e-6);  // A untouched
}

// A large mean with a small spread, and values whose squares overflow
// f32: the shifted sums and the double fallback keep both exact enough.
TEST(ActivationStatsTest, MomentsOfLargeAndOffsetValues) {
  const ActivationFunction f = Function(v1::LINEAR);
  const int n = 3000;
  std::vector<float> z(n), big(n);
  double sum = 0, big_sum = 0;
  for (int i = 0; i < n; ++i) {
    z[i] = 1000.0f + 0.01f * static_cast<float>(i % 7 - 3);
    big[i] = (i % 2 == 0 ? 3e30f : -1e30f);
    sum += z[i];
    big_sum += big[i];
  }
  double var = 0, big_var = 0;
  for (int i = 0; i < n; ++i) {
    var += (z[i] - sum / n) * (z[i] - sum / n);
    big_var += (big[i] - big_sum / n) * (big[i] - big_sum / n);
  }
  ActivationStats stats(f, 100, n / 100, 1e-3, NoHistogram());
  stats.Compute(z.data(), z.data(), n / 100);
  EXPECT_NEAR(stats.moments().z_mean, sum / n, 1e-9 * sum / n);
  EXPECT_NEAR(stats.moments().z_std, std::sqrt(var / n),
              1e-4 * std::sqrt(var / n));
  stats.Compute(big.data(), big.data(), n / 100);
  EXPECT_NEAR(stats.moments().z_mean, big_sum / n, 1e-6 * big_sum / n);
  EXPECT_NEAR(stats.moments().a_std, std::sqrt(big_var / n),
              1e-6 * std::sqrt(big_var / n));
  EXPECT_EQ(stats.moments().z_nonfinite_count, 0u);
}

TEST(ActivationStatsTest, AllNanZHasNanExtremes) {
  const ActivationFunction f = Function(v1::LINEAR);
  const std::vector<float> z = {kNaN, kNaN};
  ActivationStats stats(f, 2, 1, 1e-3, NoHistogram());
  stats.Compute(z.data(), z.data(), 1);
  EXPECT_TRUE(std::isnan(stats.moments().z_min));
  EXPECT_TRUE(std::isnan(stats.moments().z_max));
  EXPECT_EQ(stats.moments().z_nonfinite_count, 2u);
  EXPECT_EQ(stats.moments().z_negative_fraction, 0.0);
}

TEST(ActivationStatsTest, HistogramBinsAndEnds) {
  v1::HistogramSpec spec;
  spec.set_enabled(true);
  spec.set_bins(8);
  spec.set_min(-4.0f);
  spec.set_max(4.0f);
  const ActivationFunction f = Function(v1::LINEAR);
  // Bins of width 1 from -4; outside values go to the end bins, NaN
  // nowhere.
  const std::vector<float> z = {-5.0f, -4.0f,  std::nextafter(-3.0f, -4.0f),
                                -3.0f, -0.0f,  0.0f,
                                0.5f,  3.999f, 4.0f,
                                100.f, -kInf,  kInf,
                                kNaN,  -2.5f,  std::nextafter(1.0f, 0.0f),
                                1.0f};
  ActivationStats stats(f, static_cast<int>(z.size()), 1, 1e-3, spec);
  ASSERT_TRUE(stats.has_histogram());
  stats.Compute(z.data(), z.data(), 1);
  std::vector<uint64_t> counts(stats.histogram_counts(),
                               stats.histogram_counts() + 8);
  EXPECT_THAT(counts, ElementsAre(4u, 2u, 0u, 0u, 4u, 1u, 0u, 4u));

  // Naive: floor((z - min) / width) clamped, NaN skipped.
  std::vector<uint64_t> naive(8, 0);
  for (float v : z) {
    if (std::isnan(v)) continue;
    const double t = std::floor((static_cast<double>(v) + 4.0));
    ++naive[static_cast<int>(std::clamp(t, 0.0, 7.0))];
  }
  EXPECT_THAT(counts, ElementsAreArray(naive));

  // A second batch replaces the counts.
  const std::vector<float> again = {0.1f, 0.2f};
  ActivationStats small(f, 2, 1, 1e-3, spec);
  small.Compute(again.data(), again.data(), 1);
  small.Compute(again.data(), again.data(), 1);
  EXPECT_EQ(small.histogram_counts()[4], 2u);
}

TEST(ActivationStatsTest, HistogramOfSeveralChunksMatchesANaiveCount) {
  // 2,053 entries: two chunks of 1,024 and one of 5, fewer than the
  // interleaved tables' group of eight: counted one by one.
  v1::HistogramSpec spec;
  spec.set_enabled(true);
  spec.set_bins(12);
  spec.set_min(-3.0f);
  spec.set_max(3.0f);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> z(2053);
  for (float& v : z) v = normal(rng);
  z[7] = kNaN;
  z[1030] = kInf;
  z[2052] = -kInf;
  ActivationStats stats(Function(v1::LINEAR), 1, 2053, 1e-3, spec);
  stats.Compute(z.data(), z.data(), 2053);
  std::vector<uint64_t> naive(12, 0);
  for (float v : z) {
    if (std::isnan(v)) continue;
    const double t = std::floor((static_cast<double>(v) + 3.0) * 2.0);
    ++naive[static_cast<int>(std::clamp(t, 0.0, 11.0))];
  }
  std::vector<uint64_t> counts(stats.histogram_counts(),
                               stats.histogram_counts() + 12);
  EXPECT_THAT(counts, ElementsAreArray(naive));
}

TEST(ActivationStatsTest, SplitHistogramMatchesWhole) {
  // 6,400 entries, seven chunks: each part counts its chunks into tables
  // of its own, up to max_parts (4) parts; with more, Finish counts them.
  v1::HistogramSpec spec;
  spec.set_enabled(true);
  spec.set_bins(16);
  spec.set_min(-2.0f);
  spec.set_max(2.0f);
  const int rows = 64, units = 100;
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> z(rows * units);
  for (float& v : z) v = normal(rng);
  z[4000] = kNaN;
  const ActivationFunction f = Function(v1::RELU);
  std::vector<float> a(z.size());
  for (size_t i = 0; i < z.size(); ++i) a[i] = Apply(f, z[i]);
  ActivationStats whole(f, units, rows, 1e-3, spec);
  whole.Compute(z.data(), a.data(), rows);
  const std::vector<uint64_t> want(whole.histogram_counts(),
                                   whole.histogram_counts() + 17);
  EXPECT_EQ(want[16], 1u);  // the NaN slot
  for (int parts : {2, 3, 4, 7}) {
    ActivationStats split(f, units, rows, 1e-3, spec, /*max_parts=*/4);
    for (int round = 0; round < 2; ++round) {  // counts are replaced
      for (int part = parts - 1; part >= 0; --part) {
        split.ComputePart(z.data(), a.data(), rows, part, parts);
      }
      split.Finish(z.data(), a.data(), rows);
    }
    const std::vector<uint64_t> got(split.histogram_counts(),
                                    split.histogram_counts() + 17);
    EXPECT_EQ(got, want) << "parts " << parts;
  }
}

TEST(ActivationStatsTest, HistogramOffWhenDisabled) {
  v1::HistogramSpec spec;
  spec.set_bins(8);
  spec.set_min(-1.0f);
  spec.set_max(1.0f);
  ActivationStats stats(Function(v1::RELU), 4, 1, 1e-3, spec);
  EXPECT_FALSE(stats.has_histogram());
}

TEST(ActivationStatsTest, ClearActiveUnitsAccumulatesOverChunks) {
  const ActivationFunction f = Function(v1::RELU);
  std::vector<uint8_t> inactive(3, 1);
  std::vector<float> scratch(3);
  const Batch first = FromColumns(f, {{-1.0f}, {1.0f}, {-1.0f}});
  const Batch second =
      FromColumns(f, {{-2.0f, -3.0f}, {-1.0f, -1.0f}, {-1.0f, 0.5f}});
  ActivationStats::ClearActiveUnits(f, first.z.data(), first.a.data(), 1, 3,
                                    inactive.data(), scratch.data());
  EXPECT_THAT(Flags(inactive), ElementsAre(1, 0, 1));
  ActivationStats::ClearActiveUnits(f, second.z.data(), second.a.data(), 2, 3,
                                    inactive.data(), scratch.data());
  EXPECT_THAT(Flags(inactive), ElementsAre(1, 0, 0));

  std::vector<uint8_t> linear(3, 1);
  ActivationStats::ClearActiveUnits(Function(v1::LINEAR), first.z.data(),
                                    first.a.data(), 1, 3, linear.data(),
                                    scratch.data());
  EXPECT_THAT(Flags(linear), ElementsAre(0, 0, 0));
}

// Dead and saturated flags against a per-element evaluation of f' on
// random batches with planted dead and saturated units.
TEST(ActivationStatsTest, FlagsMatchNaiveDerivative) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (v1::Activation kind : {v1::RELU, v1::SIGMOID, v1::TANH, v1::ELU}) {
    const ActivationFunction f = Function(kind);
    const int rows = 16, units = 40;
    std::vector<float> z(rows * units), a(rows * units);
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < units; ++j) {
        float v = normal(rng);
        if (j % 4 == 0) v = -std::fabs(v) - 100.0f;  // planted dead
        if (j % 4 == 1) v = std::fabs(v) + 6.0f;     // saturated (sigmoid)
        z[r * units + j] = v;
        a[r * units + j] = Apply(f, v);
      }
    }
    ActivationStats stats(f, units, rows, 1e-3, NoHistogram());
    stats.Compute(z.data(), a.data(), rows);
    const float scale = static_cast<float>(1e-3 * f.MaxDerivative());
    for (int j = 0; j < units; ++j) {
      bool dead = true, saturated = scale > 0;
      for (int r = 0; r < rows; ++r) {
        const float zv = z[r * units + j], av = a[r * units + j];
        float d = 1.0f;
        if (kind == v1::RELU) d = zv > 0 ? 1.0f : 0.0f;
        if (kind == v1::SIGMOID) d = av * (1.0f - av);
        if (kind == v1::TANH) d = 1.0f - av * av;
        if (kind == v1::ELU) d = zv > 0 ? 1.0f : av + 1.0f;
        dead = dead && d == 0.0f;
        saturated = saturated && !(kind == v1::ELU && zv > 0) && d < scale;
      }
      EXPECT_EQ(stats.inactive()[j], dead) << kind << " unit " << j;
      EXPECT_EQ(stats.saturated()[j], saturated) << kind << " unit " << j;
      if (j % 4 == 0) {
        EXPECT_TRUE(dead) << kind;
      }
    }
  }
}

// A split computation gives the same figures, bit for bit, whatever the
// number of parts: the maxima are exact and the chunks' sums are added in
// one order. The batch spans several moment chunks, one of which overflows
// f32 (summed again in double), and the units are not a multiple of the
// parts' cache-line shares.
TEST(ActivationStatsTest, SplitComputationMatchesWholeForAnyParts) {
  const int rows = 64, units = 100;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (v1::Activation kind : {v1::RELU, v1::SIGMOID, v1::GELU}) {
    const ActivationFunction f = Function(kind);
    std::vector<float> z(rows * units), a(rows * units);
    for (int i = 0; i < rows * units; ++i) {
      const int j = i % units;
      z[i] = j % 5 == 0 ? -std::fabs(normal(rng)) : normal(rng);
      if (i / 1024 == 3) z[i] *= 1e30f;  // a chunk whose f32 squares overflow
      a[i] = Apply(f, z[i]);
    }
    ActivationStats whole(f, units, rows, 1e-3, NoHistogram());
    whole.Compute(z.data(), a.data(), rows);
    for (int parts : {2, 3, 7}) {
      ActivationStats split(f, units, rows, 1e-3, NoHistogram());
      for (int part = parts - 1; part >= 0; --part) {
        split.ComputePart(z.data(), a.data(), rows, part, parts);
      }
      split.Finish(z.data(), a.data(), rows);
      const ActivationMoments& m = split.moments();
      const ActivationMoments& w = whole.moments();
      EXPECT_EQ(m.a_mean, w.a_mean) << kind << " parts " << parts;
      EXPECT_EQ(m.a_std, w.a_std) << kind << " parts " << parts;
      EXPECT_EQ(m.z_mean, w.z_mean) << kind << " parts " << parts;
      EXPECT_EQ(m.z_std, w.z_std) << kind << " parts " << parts;
      EXPECT_EQ(m.z_min, w.z_min) << kind << " parts " << parts;
      EXPECT_EQ(m.z_max, w.z_max) << kind << " parts " << parts;
      EXPECT_EQ(m.z_negative_fraction, w.z_negative_fraction) << kind;
      EXPECT_THAT(split.max_abs_derivative(),
                  ElementsAreArray(whole.max_abs_derivative()))
          << kind << " parts " << parts;
      EXPECT_EQ(split.inactive_units(), whole.inactive_units()) << kind;
    }
    if (kind == v1::RELU) {
      EXPECT_EQ(whole.inactive_units(), units / 5);
    }
    EXPECT_TRUE(std::isfinite(whole.moments().z_std)) << kind;
  }
}

// With up to max_parts parts, RELU's units are marked active in the loop
// that sums the entries; beyond, the maxima of |f'| are computed by a pass
// of their own. Both must give the same flags and, bit for bit, the same
// sums, reading A or writing it, for any row length: rows shorter than a
// vector of 16 lanes, rows that are not a multiple of 16 (a vector then
// runs into the next row), and batches that end mid-vector.
TEST(ActivationStatsTest, ReluMarksInTheSumLoopMatchTheSeparatePass) {
  const ActivationFunction f = Function(v1::RELU);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int units : {5, 16, 37, 64, 100}) {
    const int rows = 2100 / units + 3;  // several chunks; a ragged end
    const int n = rows * units;
    std::vector<float> z(n);
    for (int i = 0; i < n; ++i) {
      const int j = i % units, r = i / units;
      float v = normal(rng);
      if (j % 3 == 0) v = r % 2 == 0 ? -std::fabs(v) : -0.0f;  // dead
      if (j == 1) v = r == rows - 1 ? 1e-30f : -1.0f;          // last row only
      if (j == 2) v = r == rows / 2 ? kNaN : -1.0f;            // NaN: active
      z[i] = v;
    }
    std::vector<float> a(n);
    for (int i = 0; i < n; ++i) a[i] = Apply(f, z[i]);
    std::vector<uint8_t> naive(units, 1);
    for (int i = 0; i < n; ++i) {
      if (!(z[i] <= 0.0f)) naive[i % units] = 0;
    }
    for (int parts : {1, 2, 3}) {
      for (bool write : {false, true}) {
        ActivationStats marked(f, units, rows, 1e-3, NoHistogram(), 3);
        ActivationStats separate(f, units, rows, 1e-3, NoHistogram(), 1);
        std::vector<float> a_marked(n, 7.0f), a_separate(n, 7.0f);
        for (ActivationStats* stats : {&marked, &separate}) {
          // The separate pass needs more parts than max_parts 1.
          const int p = stats == &separate ? parts + 1 : parts;
          float* out = stats == &marked ? a_marked.data() : a_separate.data();
          for (int part = 0; part < p; ++part) {
            if (write) {
              stats->ComputePartWritingActivation(z.data(), out, rows, part, p);
            } else {
              stats->ComputePart(z.data(), a.data(), rows, part, p);
            }
          }
          stats->Finish(z.data(), write ? out : a.data(), rows);
        }
        const std::string where = "units " + std::to_string(units) + " parts " +
                                  std::to_string(parts) +
                                  (write ? " writing" : " reading");
        EXPECT_THAT(marked.inactive(), ElementsAreArray(naive)) << where;
        EXPECT_THAT(separate.inactive(), ElementsAreArray(naive)) << where;
        EXPECT_THAT(marked.max_abs_derivative(),
                    ElementsAreArray(separate.max_abs_derivative()))
            << where;
        // Z's sums hold the planted NaN; A's are finite.
        const ActivationMoments& m = marked.moments();
        const ActivationMoments& s = separate.moments();
        EXPECT_TRUE(std::isfinite(m.a_std)) << where;
        EXPECT_EQ(m.a_mean, s.a_mean) << where;
        EXPECT_EQ(m.a_std, s.a_std) << where;
        EXPECT_TRUE(std::isnan(m.z_mean) && std::isnan(s.z_mean)) << where;
        EXPECT_EQ(m.z_min, s.z_min) << where;
        EXPECT_EQ(m.z_max, s.z_max) << where;
        EXPECT_EQ(m.z_negative_fraction, s.z_negative_fraction) << where;
        if (write) {
          EXPECT_EQ(std::memcmp(a_marked.data(), a_separate.data(),
                                n * sizeof(float)),
                    0)
              << where;
        }
      }
    }
  }
}

}  // namespace
}  // namespace gradwatch::engine
