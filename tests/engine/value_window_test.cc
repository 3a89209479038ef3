#include "engine/value_window.h"

#include <cmath>
#include <deque>
#include <random>

#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

// The two-pass mean and sample variance of `n` values ending `skip` before
// the newest of `values`.
void Naive(const std::deque<double>& values, size_t skip, size_t n,
           double* mean, double* variance) {
  const size_t end = values.size() - skip;
  double sum = 0;
  for (size_t i = end - n; i < end; ++i) sum += values[i];
  *mean = sum / static_cast<double>(n);
  double squares = 0;
  for (size_t i = end - n; i < end; ++i) {
    squares += (values[i] - *mean) * (values[i] - *mean);
  }
  *variance = n > 1 ? squares / static_cast<double>(n - 1) : 0;
}

// Every run of the window against Naive after each push of `series`.
template <typename Series>
void ExpectEveryRunMatches(size_t capacity, int pushes, Series series,
                           double variance_tolerance) {
  ValueWindow window(capacity);
  std::deque<double> kept;
  for (int step = 0; step < pushes; ++step) {
    const double value = series(step);
    window.Push(value);
    kept.push_back(value);
    if (kept.size() > capacity) kept.pop_front();
    ASSERT_EQ(window.size(), kept.size());
    for (size_t skip = 0; skip < kept.size(); ++skip) {
      for (size_t n = 1; skip + n <= kept.size(); ++n) {
        double mean = 0, variance = 0, want_mean = 0, want_variance = 0;
        window.MeanVariance(skip, n, &mean, &variance);
        Naive(kept, skip, n, &want_mean, &want_variance);
        ASSERT_NEAR(mean, want_mean, 1e-12 * (1 + std::abs(want_mean)))
            << "step " << step << " skip " << skip << " n " << n;
        ASSERT_NEAR(variance, want_variance,
                    variance_tolerance + 1e-9 * want_variance)
            << "step " << step << " skip " << skip << " n " << n;
      }
    }
  }
}

TEST(ValueWindowTest, EveryRunMatchesTheTwoPassFigures) {
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 1.0);
  // Many times the capacity: the sums are recentred again and again.
  ExpectEveryRunMatches(
      7, 300, [&](int) { return 5 + normal(rng); }, 1e-12);
  ExpectEveryRunMatches(
      40, 500, [&](int step) { return 2.0 - 0.003 * step + normal(rng); },
      1e-12);
}

TEST(ValueWindowTest, SmallNoiseFarFromZeroKeepsItsVariance) {
  // A loss of about 1e6 with noise of 1e-3: sums around 0 would lose the
  // variance (1e-6) to the mean's square (1e12) entirely.
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 1e-3);
  ExpectEveryRunMatches(
      25, 200, [&](int) { return 1e6 + noise(rng); }, 1e-12);
}

TEST(ValueWindowTest, AFlatRunAfterADropLosesLittleToTheCenter) {
  // Until the next recentring the center may stay above a drop of 1.9:
  // the variance of a flat run after it (1e-10) is off by about 1e-16 x
  // 100 pushes x 1.9^2 / (n - 1) at most, a thousandth of it. Without
  // the recentring, the error would grow with every drop.
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0.0, 1e-5);
  ExpectEveryRunMatches(
      50, 1000,
      [&](int step) { return (step % 50 < 10 ? 2.0 : 0.1) + noise(rng); },
      1e-13);
}

TEST(ValueWindowTest, SmallIntegersAreExact) {
  ValueWindow window(4);
  for (double v : {4.0, 4.0, 3.0, 3.0}) window.Push(v);
  double mean = 0, variance = 0;
  window.MeanVariance(2, 2, &mean, &variance);
  EXPECT_EQ(mean, 4.0);
  EXPECT_EQ(variance, 0.0);
  window.MeanVariance(0, 2, &mean, &variance);
  EXPECT_EQ(mean, 3.0);
  EXPECT_EQ(variance, 0.0);
  window.MeanVariance(0, 4, &mean, &variance);
  EXPECT_EQ(mean, 3.5);
  EXPECT_EQ(variance, 1.0 / 3.0);
  // One more: the oldest 4.0 leaves.
  window.Push(1.0);
  EXPECT_EQ(window.size(), 4u);
  EXPECT_EQ(window.Mean(4), 11.0 / 4);
}

TEST(ValueWindowTest, EmptyRunsAndSingleValuesHaveNoVariance) {
  ValueWindow window(3);
  double mean = 1, variance = 1;
  window.MeanVariance(0, 0, &mean, &variance);
  EXPECT_EQ(mean, 0.0);
  EXPECT_EQ(variance, 0.0);
  window.Push(-2.5);
  window.MeanVariance(0, 1, &mean, &variance);
  EXPECT_EQ(mean, -2.5);
  EXPECT_EQ(variance, 0.0);
}

}  // namespace
}  // namespace gradwatch::engine
