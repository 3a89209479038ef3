#include "engine/relu_backward.h"

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSubnormal = std::numeric_limits<float>::denorm_min();

uint32_t Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}

// Random values with a share of the awkward ones: signed zeros, subnormals,
// infinities and (if allowed) NaN.
std::vector<float> Values(std::mt19937& rng, int64_t n, bool with_nan) {
  const float special[] = {0.0f,        -0.0f,   kSubnormal,
                           -kSubnormal, kInf,    -kInf,
                           1e-40f,      -3e-39f, with_nan ? kNaN : 1.0f};
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::uniform_int_distribution<int> pick(0, 15);
  std::vector<float> values(n);
  for (float& v : values) {
    const int k = pick(rng);
    v = k < 9 ? special[k] : uniform(rng);
  }
  return values;
}

// oneDNN's own eltwise_relu backward of the same arrays.
std::vector<float> OneDnnReluBackward(std::vector<float> z,
                                      std::vector<float> diff_dst,
                                      float slope) {
  using dnnl::memory;
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc md({static_cast<memory::dim>(z.size())},
                        memory::data_type::f32, memory::format_tag::x);
  std::vector<float> diff_src(z.size());
  memory z_mem(md, engine, z.data());
  memory diff_dst_mem(md, engine, diff_dst.data());
  memory diff_src_mem(md, engine, diff_src.data());
  const dnnl::eltwise_forward::primitive_desc fwd_pd(
      {dnnl::prop_kind::forward_training, dnnl::algorithm::eltwise_relu, md,
       slope, 0.0f},
      engine);
  const dnnl::eltwise_backward::primitive_desc bwd_pd(
      {dnnl::algorithm::eltwise_relu, md, md, slope, 0.0f}, engine, fwd_pd);
  dnnl::eltwise_backward(bwd_pd).execute(stream,
                                         {{DNNL_ARG_SRC, z_mem},
                                          {DNNL_ARG_DIFF_DST, diff_dst_mem},
                                          {DNNL_ARG_DIFF_SRC, diff_src_mem}});
  stream.wait();
  return diff_src;
}

TEST(ReluBackwardTest, MatchesOneDnnBitForBit) {
  std::mt19937 rng(11);
  // Lengths around the 16-entry vectors and the threaded split.
  for (const int64_t n : {1, 15, 16, 17, 1000, 4096, 32768, 70001}) {
    for (const float slope : {0.0f, 0.01f, 0.2f}) {
      SCOPED_TRACE(testing::Message() << "n=" << n << " slope=" << slope);
      // NaN pre-activations are compared in their own test: oneDNN's
      // reference and JIT kernels disagree on them.
      const std::vector<float> z = Values(rng, n, /*with_nan=*/false);
      const std::vector<float> diff_dst = Values(rng, n, /*with_nan=*/true);
      const std::vector<float> expected =
          OneDnnReluBackward(z, diff_dst, slope);
      for (const int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        std::vector<float> diff_src(n, 123.0f);
        ReluBackward(z.data(), diff_dst.data(), diff_src.data(), n, slope);
        int64_t mismatches = 0;
        for (int64_t i = 0; i < n; ++i) {
          if (Bits(diff_src[i]) != Bits(expected[i])) ++mismatches;
        }
        EXPECT_EQ(mismatches, 0) << "threads=" << threads;
      }
    }
  }
}

TEST(ReluBackwardTest, AppliesTheRuleEntryByEntry) {
  const float z[] = {2.0f,        -1.0f, 0.0f, -0.0f, kSubnormal,
                     -kSubnormal, kNaN,  kInf, -kInf};
  const float diff_dst[] = {-3.0f, -3.0f, 5.0f, 5.0f, 7.0f,
                            7.0f,  8.0f,  9.0f, -kInf};
  const int64_t n = std::size(z);
  float diff_src[std::size(z)];

  ReluBackward(z, diff_dst, diff_src, n, 0.0f);
  const float dead_slope[] = {-3.0f, -0.0f, 0.0f, 0.0f, 7.0f,
                              0.0f,  8.0f,  9.0f, kNaN};
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE(testing::Message() << "entry " << i);
    if (std::isnan(dead_slope[i])) {
      EXPECT_TRUE(std::isnan(diff_src[i]));  // 0 * -Inf
    } else {
      EXPECT_EQ(Bits(diff_src[i]), Bits(dead_slope[i]));
    }
  }

  ReluBackward(z, diff_dst, diff_src, n, 0.5f);
  const float leaky[] = {-3.0f, -1.5f, 2.5f, 2.5f, 7.0f,
                         3.5f,  8.0f,  9.0f, -kInf};
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(Bits(diff_src[i]), Bits(leaky[i])) << "entry " << i;
  }
}

}  // namespace
}  // namespace gradwatch::engine
