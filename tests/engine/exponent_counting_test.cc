#include "engine/exponent_counting.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using Counts = std::array<uint64_t, kFieldValues>;

constexpr FieldCounting kEveryWay[] = {FieldCounting::kAuto,
                                       FieldCounting::kEntryByEntry,
                                       FieldCounting::kComparison};

// A block of fields: a share of zeros and of 255s (Inf/NaN), the rest
// normal fields spread below `top` (geometrically: most near the top, a
// long tail, as real gradients are).
std::vector<uint8_t> RandomFields(std::mt19937& rng, int n, int top,
                                  double spread, double zeros,
                                  double nonfinite) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::exponential_distribution<double> below(1.0 / spread);
  std::vector<uint8_t> fields(n);
  for (uint8_t& f : fields) {
    const double u = uniform(rng);
    if (u < zeros) {
      f = 0;
    } else if (u < zeros + nonfinite) {
      f = 255;
    } else {
      f = static_cast<uint8_t>(std::max(1, top - static_cast<int>(below(rng))));
    }
  }
  return fields;
}

void Bounds(const std::vector<uint8_t>& fields, int* lo, int* hi) {
  *lo = 255;
  *hi = 0;
  for (uint8_t f : fields) {
    if (f == 0 || f == 255) continue;
    *lo = std::min<int>(*lo, f);
    *hi = std::max<int>(*hi, f);
  }
}

TEST(ExponentCountingTest, ExponentFieldsAndBounds) {
  const float g[] = {1.0f,   -0.5f,   0.0f,
                     1e-40f, 3.0e38f, std::numeric_limits<float>::infinity()};
  uint8_t fields[6], lo, hi;
  ExponentFields(g, 6, fields, &lo, &hi);
  EXPECT_EQ(fields[0], 127);
  EXPECT_EQ(fields[1], 126);
  EXPECT_EQ(fields[2], 0);
  EXPECT_EQ(fields[3], 0);
  EXPECT_EQ(fields[4], 254);
  EXPECT_EQ(fields[5], 255);
  EXPECT_EQ(lo, 126);
  EXPECT_EQ(hi, 254);
  ExponentFields(g + 2, 2, fields, &lo, &hi);  // no normal entry
  EXPECT_GT(lo, hi);
}

// Every way of counting against a plain count, over blocks of narrow and
// wide spreads at both ends of the field range, with and without normal
// entries, and of lengths that end on partial vectors.
TEST(ExponentCountingTest, EveryWayCountsEveryField) {
  std::mt19937 rng(11);
  struct Case {
    int n, top;
    double spread, zeros, nonfinite;
  };
  const Case cases[] = {
      {1, 127, 1, 0, 0},
      {63, 120, 3, 0.2, 0.02},
      {64, 130, 40, 0.1, 0},
      {65, 5, 2, 0.3, 0.01},
      {1000, 254, 30, 0.3, 0.01},
      {4096, 127, 6, 0.4, 0},
      {4096, 110, 60, 0.05, 0.001},
      {4095, 20, 8, 0, 0},
      {4096, 127, 0.5, 0, 0},
      {3000, 127, 1, 1.0, 0},
      {2048, 127, 1, 0.5, 0.5},
      {4096, 1, 1, 0.2, 0},
  };
  for (const Case& c : cases) {
    const std::vector<uint8_t> fields =
        RandomFields(rng, c.n, c.top, c.spread, c.zeros, c.nonfinite);
    Counts expected{};
    for (uint8_t f : fields) ++expected[f];
    int lo, hi;
    Bounds(fields, &lo, &hi);
    for (FieldCounting way : kEveryWay) {
      Counts counts{};
      counts[7] = 5;  // counts are added to
      CountExponentFields(fields.data(), c.n, lo, hi, counts.data(), way);
      counts[7] -= 5;
      EXPECT_EQ(counts, expected)
          << "n " << c.n << " top " << c.top << " spread " << c.spread
          << " way " << static_cast<int>(way);
    }
  }
}

}  // namespace
}  // namespace gradwatch::engine
