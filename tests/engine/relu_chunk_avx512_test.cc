#include "engine/relu_chunk_avx512.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

uint32_t Bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits;
}

// Chunks that start anywhere in a row, rows narrower than a vector and
// rows that a vector runs across; NaN, -0, -Inf and subnormals among
// normal values. (A chunk's ragged end is the portable loop's, which
// ActivationStatsTest covers with this pass.)
TEST(ReluChunkAvx512Test, MatchesANaiveRecomputation) {
  if (!ReluChunkAvx512Supported()) {
    GTEST_SKIP() << "this CPU has no AVX-512 (x86-64-v4)";
  }
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.2f, 1.0f);
  // +Inf left out: A's sums stay finite and comparable.
  const float specials[] = {kNaN, -0.0f, -kInf, 1e-40f, -1e-40f, 3.0f};
  struct Case {
    int n, unit, units;
  };
  for (const Case c :
       {Case{1024, 0, 64}, Case{1008, 13, 37}, Case{80, 3, 5}, Case{512, 0, 16},
        Case{336, 999, 1000}, Case{16, 0, 1}, Case{0, 0, 8}}) {
    const std::string where = "n " + std::to_string(c.n) + " unit " +
                              std::to_string(c.unit) + " units " +
                              std::to_string(c.units);
    std::vector<float> z(c.n);
    for (int i = 0; i < c.n; ++i) {
      z[i] = i % 29 == 5 ? specials[(i / 29) % 6] : normal(rng);
      // Unit 0 never active: its entries are at most 0.
      if ((c.unit + i) % c.units == 0) z[i] = -std::fabs(z[i]);
    }
    const float z_shift = 0.1f, a_shift = 0.5f;
    std::vector<float> a(c.n, 7.0f);
    std::vector<int32_t> active(c.units, 0);
    const ActivationStats::ChunkSums got =
        WriteReluAndSumVectorsAvx512(z.data(), a.data(), c.n, z_shift, a_shift,
                                     active.data(), c.unit, c.units);

    double sums[4] = {0, 0, 0, 0};
    int32_t negative = 0;
    float z_min = kInf, z_max = -kInf;
    std::vector<int32_t> want_active(c.units, 0);
    for (int i = 0; i < c.n; ++i) {
      const float want_a = z[i] > 0.0f ? z[i] : 0.0f;  // NaN, -0: +0
      EXPECT_EQ(Bits(a[i]), Bits(want_a)) << where << " entry " << i;
      const double ad = static_cast<double>(want_a) - a_shift;
      const double zd = static_cast<double>(z[i]) - z_shift;
      sums[0] += ad;
      sums[1] += ad * ad;
      sums[2] += zd;
      sums[3] += zd * zd;
      negative += z[i] < 0.0f;
      if (z[i] < z_min) z_min = z[i];
      if (z[i] > z_max) z_max = z[i];
      if (!(z[i] <= 0.0f)) want_active[(c.unit + i) % c.units] = -1;
    }
    EXPECT_EQ(active, want_active) << where;
    EXPECT_EQ(got.z_negative, negative) << where;
    EXPECT_EQ(got.z_min, z_min) << where;
    EXPECT_EQ(got.z_max, z_max) << where;
    // A's sums are finite; Z's hold the planted Inf and NaN.
    const double scale = 1e-5 * (c.n + 1);
    EXPECT_NEAR(got.a_sum, sums[0], scale * 2) << where;
    EXPECT_NEAR(got.a_sum_squares, sums[1], scale * 20) << where;
    if (c.n > 5 * 29) {
      EXPECT_TRUE(std::isnan(got.z_sum)) << where;
    }
    // No marks asked for: the same figures, nothing marked.
    std::vector<float> a_unmarked(c.n, 7.0f);
    const ActivationStats::ChunkSums unmarked =
        WriteReluAndSumVectorsAvx512(z.data(), a_unmarked.data(), c.n, z_shift,
                                     a_shift, nullptr, c.unit, c.units);
    EXPECT_EQ(std::memcmp(&unmarked, &got, sizeof(got)), 0) << where;
    for (int i = 0; i < c.n; ++i) {
      EXPECT_EQ(Bits(a_unmarked[i]), Bits(a[i])) << where << " entry " << i;
    }
  }
}

}  // namespace
}  // namespace gradwatch::engine
