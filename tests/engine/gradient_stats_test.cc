#include "engine/gradient_stats.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kDenormMin = std::numeric_limits<float>::denorm_min();

// The figures recomputed one entry at a time with the C library's
// classification, independently of the bit tricks under test.
struct Naive {
  double sum_squares = 0, sum_abs = 0;
  float max_abs = 0;
  bool any_nan = false;
  int64_t zeros = 0, subnormals = 0, nans = 0, infs = 0;
  std::vector<uint64_t> exponents = std::vector<uint64_t>(kExponentBins, 0);
};

Naive NaiveSweep(const std::vector<float>& g) {
  Naive r;
  for (float v : g) {
    const float a = std::fabs(v);
    r.sum_squares += static_cast<double>(a) * a;
    r.sum_abs += a;
    switch (std::fpclassify(v)) {
      case FP_NAN:
        ++r.nans;
        r.any_nan = true;
        continue;
      case FP_INFINITE:
        ++r.infs;
        break;
      case FP_ZERO:
        ++r.zeros;
        break;
      case FP_SUBNORMAL:
        ++r.subnormals;
        ++r.exponents[std::ilogb(v) - kMinExponent];
        break;
      default:
        ++r.exponents[std::ilogb(v) - kMinExponent];
        break;
    }
    r.max_abs = std::max(r.max_abs, a);
  }
  return r;
}

void ExpectMatchesNaive(const std::vector<float>& g, const GradientSummary& s) {
  const Naive r = NaiveSweep(g);
  EXPECT_EQ(s.size, static_cast<int64_t>(g.size()));
  EXPECT_EQ(s.zeros, r.zeros);
  EXPECT_EQ(s.subnormals, r.subnormals);
  EXPECT_EQ(s.nans, r.nans);
  EXPECT_EQ(s.infs, r.infs);
  EXPECT_EQ(
      std::vector<uint64_t>(s.exponent_counts.begin(), s.exponent_counts.end()),
      r.exponents);
  int first = 0, end = kExponentBins;
  while (first < end && r.exponents[first] == 0) ++first;
  while (end > first && r.exponents[end - 1] == 0) --end;
  if (first == end) first = end = 0;
  EXPECT_EQ(s.first_bin, first);
  EXPECT_EQ(s.end_bin, end);
  if (r.any_nan) {
    EXPECT_TRUE(std::isnan(s.sum_squares));
    EXPECT_TRUE(std::isnan(s.max_abs));
  } else if (std::isinf(r.sum_squares)) {
    EXPECT_EQ(s.sum_squares, r.sum_squares);
    EXPECT_EQ(s.max_abs, r.max_abs);
  } else {
    // f32 partial sums within blocks (see GradientSummary).
    EXPECT_NEAR(s.sum_squares, r.sum_squares, 1e-5 * r.sum_squares);
    EXPECT_NEAR(s.sum_abs, r.sum_abs, 1e-5 * r.sum_abs);
    EXPECT_EQ(s.max_abs, r.max_abs);
  }
}

int64_t Bin(int exponent, const GradientSummary& s) {
  return static_cast<int64_t>(s.exponent_counts[exponent - kMinExponent]);
}

TEST(GradientStatsTest, EmptyBufferHasNoFigures) {
  GradientSummary s;
  SweepGradient(nullptr, 0, 0, s);
  EXPECT_EQ(s.size, 0);
  EXPECT_EQ(s.sum_squares, 0);
  EXPECT_EQ(s.mean_abs(), 0);
  EXPECT_EQ(s.zero_fraction(), 0);
  for (uint64_t c : s.exponent_counts) EXPECT_EQ(c, 0u);
}

TEST(GradientStatsTest, PlantedValuesLandInTheirBins) {
  const std::vector<float> g = {
      0.0f,     -0.0f,       1e-40f,
      FLT_MIN,  FLT_MIN / 2, kDenormMin,
      0.5f,     1.0f,        std::nextafter(2.0f, 0.0f),
      2.0f,     -3.0f,       FLT_MAX,
      -FLT_MAX, kNaN,        kInf,
      -kInf,    -1e-40f,     0.75f};
  GradientSummary s;
  SweepGradient(g.data(), static_cast<int64_t>(g.size()), 0, s);

  EXPECT_EQ(s.size, 18);
  EXPECT_EQ(s.zeros, 2);
  EXPECT_EQ(s.subnormals, 4);  // 1e-40 twice, FLT_MIN / 2, denorm_min
  EXPECT_EQ(s.nans, 1);
  EXPECT_EQ(s.infs, 2);
  // 1e-40 = 71362 * 2^-149 and 2^16 <= 71362 < 2^17.
  EXPECT_EQ(Bin(-133, s), 2);
  EXPECT_EQ(Bin(-149, s), 1);  // the smallest subnormal
  EXPECT_EQ(Bin(-127, s), 1);  // FLT_MIN / 2, the largest subnormal binade
  EXPECT_EQ(Bin(-126, s), 1);  // FLT_MIN
  EXPECT_EQ(Bin(-1, s), 2);    // 0.5, 0.75
  EXPECT_EQ(Bin(0, s), 2);     // 1.0, 2 - ulp
  EXPECT_EQ(Bin(1, s), 2);     // 2.0, -3.0
  EXPECT_EQ(Bin(127, s), 2);   // ±FLT_MAX
  uint64_t total = 0;
  for (uint64_t c : s.exponent_counts) total += c;
  EXPECT_EQ(total, 18u - 2 - 1 - 2);  // zeros, NaN and Inf are not binned
  EXPECT_TRUE(std::isnan(s.max_abs));
  EXPECT_TRUE(std::isnan(s.l2_norm()));
  ExpectMatchesNaive(g, s);
}

TEST(GradientStatsTest, InfWithoutNanGivesInfiniteNormAndMax) {
  const std::vector<float> g = {1.0f, -kInf, 2.0f};
  GradientSummary s;
  SweepGradient(g.data(), 3, 0, s);
  EXPECT_EQ(s.infs, 1);
  EXPECT_EQ(s.nans, 0);
  EXPECT_EQ(s.max_abs, kInf);
  EXPECT_EQ(s.l2_norm(), std::numeric_limits<double>::infinity());
}

TEST(GradientStatsTest, NormsOfFiniteValues) {
  const std::vector<float> g = {3.0f, -4.0f, 0.0f, 0.0f};
  GradientSummary s;
  SweepGradient(g.data(), 4, 0, s);
  EXPECT_DOUBLE_EQ(s.l2_norm(), 5.0);
  EXPECT_DOUBLE_EQ(s.mean_abs(), 7.0 / 4);
  EXPECT_EQ(s.max_abs, 4.0f);
  EXPECT_DOUBLE_EQ(s.zero_fraction(), 0.5);
}

// Squares of large and tiny f32 values neither overflow nor vanish.
TEST(GradientStatsTest, SumOfSquaresHasDoubleRange) {
  const std::vector<float> g = {1e30f, 1e30f, 1e-30f};
  GradientSummary s;
  SweepGradient(g.data(), 3, 0, s);
  EXPECT_NEAR(s.l2_norm(), std::sqrt(2.0) * 1e30, 1e24);
  const std::vector<float> tiny = {1e-30f, 1e-30f};
  SweepGradient(tiny.data(), 2, 0, s);
  EXPECT_NEAR(s.l2_norm(), std::sqrt(2.0) * 1e-30, 1e-36);
  // A full block of 2^60: its f32 sum of squares would overflow.
  const std::vector<float> large(4096, std::ldexp(1.0f, 60));
  SweepGradient(large.data(), 4096, 0, s);
  EXPECT_EQ(s.sum_squares, 4096 * std::ldexp(1.0, 120));
  EXPECT_EQ(s.sum_abs, 4096 * std::ldexp(1.0, 60));
}

TEST(GradientStatsTest, EveryBinadeEdge) {
  std::vector<float> g;
  for (int e = kMinExponent; e <= kMaxExponent; ++e) {
    g.push_back(std::ldexp(1.0f, e));  // lowest value of the binade
    if (e < kMaxExponent) {
      g.push_back(std::nextafter(std::ldexp(1.0f, e + 1), 0.0f));  // highest
    }
  }
  g.push_back(FLT_MAX);
  GradientSummary s;
  SweepGradient(g.data(), static_cast<int64_t>(g.size()), 0, s);
  // Every binade holds two values (2^-149 twice: it is its binade's
  // highest value too); 2^127 and FLT_MAX share the last.
  for (int e = kMinExponent; e <= kMaxExponent; ++e) {
    EXPECT_EQ(Bin(e, s), 2) << "exponent " << e;
  }
  EXPECT_EQ(s.subnormals, 2 * 23);
  ExpectMatchesNaive(g, s);
}

TEST(GradientStatsTest, PaddingIsNotCounted) {
  std::vector<float> g = {0.5f, 0.0f, -2.0f, 1e-40f};
  g.resize(20, 0.0f);  // 16 entries of padding
  GradientSummary s;
  SweepGradient(g.data(), 20, 16, s);
  EXPECT_EQ(s.size, 4);
  EXPECT_EQ(s.zeros, 1);
  EXPECT_DOUBLE_EQ(s.zero_fraction(), 0.25);
  EXPECT_EQ(s.subnormals, 1);
  EXPECT_DOUBLE_EQ(s.mean_abs(), (0.5 + 2.0 + 1e-40f) / 4);
}

// Random buffers of several shapes and spreads, which exercise each way of
// counting exponents (exponent_counting.h) that the CPU runs, partial
// blocks, the parallel sweep, and subnormal, NaN and Inf entries in
// mid-buffer.
TEST(GradientStatsTest, MatchesNaiveOnRandomBuffers) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  struct Case {
    int64_t n;
    float log_spread;
    double zero_fraction;
    bool plant_specials;
  };
  GradientSummary s;  // reused: each sweep must clear the previous one
  for (const Case& c :
       {Case{1, 0, 0, false}, Case{33, 1, 0.2, true},
        Case{4096, 0.5, 0.3, false}, Case{3 * 4096 + 17, 3, 0.1, true},
        Case{20000, 12, 0.0, true}, Case{300000, 2, 0.5, true}}) {
    std::vector<float> g(c.n);
    for (float& v : g) {
      v = uniform(rng) < c.zero_fraction
              ? 0.0f
              : 1e-3f * normal(rng) * std::exp(c.log_spread * normal(rng));
    }
    if (c.plant_specials) {
      g[c.n / 2] = kDenormMin;
      g[c.n / 3] = -1e-42f;
      g[c.n / 4] = -0.0f;
      g[c.n - 1] = -kInf;
    }
    SweepGradient(g.data(), c.n, 0, s);
    SCOPED_TRACE(c.n);
    ExpectMatchesNaive(g, s);
    if (c.plant_specials) {
      g[c.n / 5] = kNaN;
      SweepGradient(g.data(), c.n, 0, s);
      ExpectMatchesNaive(g, s);
    }
    // A sweep leaves its scratch counts as it found them.
    EXPECT_THAT(s.field_scratch, Each(0u));
    EXPECT_THAT(s.subnormal_scratch, Each(0u));
  }
}

TEST(GradientStatsTest, ParallelSweepIsDeterministic) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1e-2f);
  std::vector<float> g(kParallelSweepElements + 12345);
  for (float& v : g) v = normal(rng);
  GradientSummary first, second;
  SweepGradient(g.data(), static_cast<int64_t>(g.size()), 0, first);
  SweepGradient(g.data(), static_cast<int64_t>(g.size()), 0, second);
  EXPECT_EQ(std::memcmp(&first.sum_squares, &second.sum_squares, 8), 0);
  EXPECT_EQ(std::memcmp(&first.sum_abs, &second.sum_abs, 8), 0);
  EXPECT_EQ(first.exponent_counts, second.exponent_counts);
}

TEST(GradientStatsTest, SumOfSquares) {
  const std::vector<float> w = {1.0f, -2.0f, 2.0f, 0.0f};
  EXPECT_DOUBLE_EQ(SumOfSquares(w.data(), 4), 9.0);
  EXPECT_DOUBLE_EQ(SumOfSquares(w.data(), 0), 0.0);
  // Large enough to be split over threads.
  const std::vector<float> ones(kParallelSweepElements + 3, 0.5f);
  EXPECT_DOUBLE_EQ(SumOfSquares(ones.data(), static_cast<int64_t>(ones.size())),
                   0.25 * static_cast<double>(ones.size()));
}

TEST(GradientStatsTest, FillsTensorStatsWithTheOccupiedRange) {
  const std::vector<float> g = {0.5f, 0.25f, 0.0f, 4.0f, kNaN, 1e-40f};
  GradientSummary s;
  SweepGradient(g.data(), static_cast<int64_t>(g.size()), 0, s);
  v1::TensorStats stats;
  FillGradientStats(s, &stats);
  EXPECT_EQ(stats.size(), 6u);
  EXPECT_DOUBLE_EQ(stats.grad_zero_fraction(), 1.0 / 6);
  EXPECT_EQ(stats.grad_subnormal_count(), 1u);
  EXPECT_EQ(stats.grad_nan_count(), 1u);
  EXPECT_EQ(stats.grad_inf_count(), 0u);
  EXPECT_EQ(stats.grad_exponents().first_exponent(), -133);
  EXPECT_EQ(stats.grad_exponents().counts_size(), 2 - (-133) + 1);
  EXPECT_EQ(stats.grad_exponents().counts(0), 1u);            // 1e-40
  EXPECT_EQ(stats.grad_exponents().counts(-2 - (-133)), 1u);  // 0.25
  EXPECT_EQ(stats.grad_exponents().counts(-1 - (-133)), 1u);  // 0.5
  EXPECT_EQ(stats.grad_exponents().counts(2 - (-133)), 1u);   // 4
  EXPECT_TRUE(std::isnan(stats.grad_l2_norm()));

  // Reused for a narrower tensor, then for one without nonzero entries.
  const std::vector<float> narrow = {1.0f, -1.5f, 3.0f};
  SweepGradient(narrow.data(), 3, 0, s);
  FillGradientStats(s, &stats);
  EXPECT_EQ(stats.grad_exponents().first_exponent(), 0);
  EXPECT_THAT(stats.grad_exponents().counts(), ElementsAre(2u, 1u));
  EXPECT_EQ(stats.grad_nan_count(), 0u);
  EXPECT_DOUBLE_EQ(stats.grad_max_abs(), 3.0);

  const std::vector<float> zeros(5, 0.0f);
  SweepGradient(zeros.data(), 5, 0, s);
  FillGradientStats(s, &stats);
  EXPECT_EQ(stats.grad_exponents().first_exponent(), 0);
  EXPECT_EQ(stats.grad_exponents().counts_size(), 0);
  EXPECT_DOUBLE_EQ(stats.grad_zero_fraction(), 1.0);
  EXPECT_DOUBLE_EQ(stats.grad_l2_norm(), 0.0);
}

}  // namespace
}  // namespace gradwatch::engine
