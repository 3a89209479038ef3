#include "engine/block_sweep_avx512.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/exponent_counting.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using Counts = std::array<uint64_t, kFieldValues>;
// By the index of a subnormal's highest set bit.
using SubnormalCounts = std::array<uint64_t, 23>;

uint32_t AbsBits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits & 0x7fffffffu;
}

// The pass's figures recomputed one entry at a time.
struct Expected {
  double sum_squares = 0, sum_abs = 0;
  uint32_t max_abs_bits = 0, zeros = 0;
  int lo = 255, hi = 0;
  Counts counts{};
  SubnormalCounts subnormal_counts{};
  uint32_t subnormals = 0;
};

Expected Naive(const std::vector<float>& g) {
  Expected e;
  for (float v : g) {
    const uint32_t bits = AbsBits(v);
    const double a = std::fabs(static_cast<double>(v));
    e.sum_squares += a * a;
    e.sum_abs += a;
    e.max_abs_bits = std::max(e.max_abs_bits, bits);
    e.zeros += bits == 0;
    const int field = static_cast<int>(bits >> 23);
    ++e.counts[field];
    if (field == 0 && bits != 0) {
      ++e.subnormal_counts[31 - __builtin_clz(bits)];
      ++e.subnormals;
    }
    if (field != 0 && field != 255) {
      e.lo = std::min(e.lo, field);
      e.hi = std::max(e.hi, field);
    }
  }
  return e;
}

// Each block's sums and maximum, against the entry-by-entry recount of
// that block: the caller checks, block by block, that f32 sums suffice.
void ExpectBlocksMatch(const std::vector<float>& g, const SpanFigures& f) {
  const int n = static_cast<int>(g.size());
  for (int b = 0; b * kFieldBlock < n; ++b) {
    const Expected e = Naive(
        std::vector<float>(g.begin() + b * kFieldBlock,
                           g.begin() + std::min(n, (b + 1) * kFieldBlock)));
    const BlockFigures& block = f.blocks[b];
    SCOPED_TRACE(testing::Message() << "block " << b);
    EXPECT_EQ(block.max_abs_bits, e.max_abs_bits);
    ASSERT_EQ(std::isnan(block.sum_squares), std::isnan(e.sum_squares));
    ASSERT_EQ(std::isinf(block.sum_squares), std::isinf(e.sum_squares));
    ASSERT_EQ(std::isnan(block.sum_abs), std::isnan(e.sum_abs));
    if (!std::isfinite(e.sum_squares) || !std::isfinite(e.sum_abs)) continue;
    EXPECT_NEAR(block.sum_squares, e.sum_squares, 1e-5 * e.sum_squares);
    EXPECT_NEAR(block.sum_abs, e.sum_abs, 1e-5 * e.sum_abs);
  }
}

// Spans of gradients spread over `spread` binades (log-normally) around
// 2^center, with a share of zeros and a few planted specials; the window
// guess is right, too high or too low.
TEST(BlockSweepAvx512Test, MatchesOneEntryAtATime) {
  if (!BlockSweepFusedSupported()) {
    GTEST_SKIP() << "this CPU has no AVX-512 F and BW";
  }
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  struct Case {
    int n, center;
    double spread, zeros;
    bool specials;
    int guess_offset;  // window_top - the block's highest field
  };
  const Case cases[] = {
      {kMinFusedBlock, -10, 2, 0.1, false, 0},
      {4096, -10, 20, 0.3, false, 0},
      {4096, -10, 20, 0.3, true, 0},
      {4095, -30, 6, 0.0, true, 5},
      {1000, 0, 3, 0.5, false, -20},
      {4033, -60, 30, 0.2, true, -40},
      {2048, 40, 4, 0.0, false, 0},
      {3000, -120, 4, 0.1, true, 0},   // subnormals among the normals
      {4096, 0, 1, 1.0, false, 0},     // zeros only
      {4096, 5, 0, 0.0, false, 0},     // one field: the counters' largest
      {4096, -20, 60, 0.05, true, 0},  // a long tail below the window
      // Several blocks: each one's sums, one readout of the counters.
      {3 * kFieldBlock + 77, -15, 30, 0.2, true, -3},
      {kFusedSpan, -10, 8, 0.3, false, 0},
      {kFusedSpan, 5, 0, 0.0, false, 0},  // the 16-bit sums' largest
  };
  for (const Case& c : cases) {
    std::vector<float> g(c.n);
    for (float& v : g) {
      v = uniform(rng) < c.zeros
              ? 0.0f
              : static_cast<float>(
                    (uniform(rng) < 0.5 ? -1 : 1) *
                    std::exp2(c.center + c.spread / 3 * normal(rng)));
    }
    if (c.specials) {
      g[c.n / 2] = std::numeric_limits<float>::denorm_min();
      g[c.n / 3] = std::numeric_limits<float>::infinity();
      g[c.n / 5] = -std::numeric_limits<float>::quiet_NaN();
      g[c.n - 1] = -1e-41f;
    }
    const Expected e = Naive(g);
    const int top = e.lo <= e.hi ? e.hi : 127;
    const int guess = std::clamp(top + c.guess_offset, 1, 254);
    for (int windows = 1; windows <= kMaxWindows; ++windows) {
      Counts counts{};
      SubnormalCounts subnormals{};
      SpanFigures f;
      SweepSpanFused(g.data(), c.n, {guess, windows}, counts.data(),
                     subnormals.data(), &f);
      SCOPED_TRACE(testing::Message()
                   << "n " << c.n << " center " << c.center << " guess "
                   << guess << " windows " << windows);
      EXPECT_EQ(counts, e.counts);
      EXPECT_EQ(subnormals, e.subnormal_counts);
      EXPECT_EQ(f.span.subnormals, e.subnormals);
      EXPECT_EQ(f.span.zeros, e.zeros);
      EXPECT_EQ(f.span.lo, e.lo);
      EXPECT_EQ(f.span.hi, e.hi);
      ExpectBlocksMatch(g, f);
    }
  }
}

// A window's edges: the top field, the 31 below it, the first field below
// it, and the specials around them.
TEST(BlockSweepAvx512Test, CountsAtTheWindowEdges) {
  if (!BlockSweepFusedSupported()) {
    GTEST_SKIP() << "this CPU has no AVX-512 F and BW";
  }
  const float values[] = {1.5f,
                          std::exp2(-31.0f),
                          -std::exp2(-32.0f),
                          0.0f,
                          std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(),
                          std::exp2(-30.0f),
                          -1.0f};
  std::vector<float> g(4096);
  for (size_t i = 0; i < g.size(); ++i) g[i] = values[(i * 7 + i / 64) % 8];
  const Expected e = Naive(g);
  Counts counts{};
  SubnormalCounts subnormals{};
  SpanFigures f;
  SweepSpanFused(g.data(), static_cast<int>(g.size()), {127, 1}, counts.data(),
                 subnormals.data(), &f);
  EXPECT_EQ(counts, e.counts);
  EXPECT_EQ(subnormals, e.subnormal_counts);
  EXPECT_EQ(subnormals[0], 512u);
  EXPECT_EQ(counts[127], 1024u);
  EXPECT_EQ(counts[96], 512u);
  EXPECT_EQ(counts[95], 512u);
  EXPECT_EQ(f.span.zeros, 512u);
  EXPECT_EQ(f.span.lo, 1);
  EXPECT_EQ(f.span.hi, 127);
}

// The compacted fields are those of the entries that are neither zero nor
// subnormal, in order, for lengths around the 16-lane steps; the sums,
// maximum, zeros and bounds are those of the entry-by-entry recount.
TEST(BlockSweepAvx512Test, SweepBlockCompactMatchesOneEntryAtATime) {
  if (!BlockSweepFusedSupported()) {
    GTEST_SKIP() << "this CPU has no AVX-512 F and BW";
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind(0, 9);
  // Zeros, subnormals, Inf and NaN, or (kind 5 and up, and always without
  // specials) normal values over ~100 binades whose f32 squares stay finite.
  auto value = [&](bool specials) {
    switch (specials ? kind(rng) : 9) {
      case 0:
      case 1:
        return 0.0f;
      case 2:
        return -std::numeric_limits<float>::denorm_min() * 1000;
      case 3:
        return std::numeric_limits<float>::infinity();
      case 4:
        return std::numeric_limits<float>::quiet_NaN();
      default:
        return normal(rng) * std::exp2(normal(rng) * 10);
    }
  };
  for (int n : {1, 15, 16, 17, 100, 1000, 4096}) {
    for (bool specials : {false, true}) {
      std::vector<float> g(n);
      for (float& v : g) v = value(specials);
      std::vector<uint8_t> expected;
      int lo = 255, hi = 0;
      for (float v : g) {
        const int field = static_cast<int>(AbsBits(v) >> 23);
        if (field == 0) continue;
        expected.push_back(static_cast<uint8_t>(field));
        if (field != 255) {
          lo = std::min(lo, field);
          hi = std::max(hi, field);
        }
      }
      std::vector<uint8_t> fields(n + 16, 0xAB);
      BlockFigures f;
      const int m = SweepBlockCompact(g.data(), n, fields.data(), &f);
      SCOPED_TRACE(testing::Message() << "n " << n << " specials " << specials);
      ASSERT_EQ(m, static_cast<int>(expected.size()));
      EXPECT_TRUE(std::equal(expected.begin(), expected.end(), fields.begin()));
      EXPECT_EQ(f.lo, lo);
      EXPECT_EQ(f.hi, hi);
      const Expected e = Naive(g);
      EXPECT_EQ(f.zeros, e.zeros);
      EXPECT_EQ(f.max_abs_bits, e.max_abs_bits);
      if (!specials) {
        EXPECT_NEAR(f.sum_squares, e.sum_squares, 1e-5 * e.sum_squares);
        EXPECT_NEAR(f.sum_abs, e.sum_abs, 1e-5 * e.sum_abs);
      } else {
        EXPECT_EQ(std::isnan(f.sum_squares), std::isnan(e.sum_squares));
      }
    }
  }
}

}  // namespace
}  // namespace gradwatch::engine
