#include "engine/relu_chunk_avx512.h"

#include <limits>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define GRADWATCH_RELU_CHUNK_AVX512 1
// The instruction set ReluChunkAvx512Supported checks for.
#define GRADWATCH_V4_TARGET __attribute__((target("arch=x86-64-v4")))
#endif

namespace gradwatch::engine {

#ifdef GRADWATCH_RELU_CHUNK_AVX512
namespace {

constexpr int kLanes = 16;
constexpr float kInf = std::numeric_limits<float>::infinity();

}  // namespace

bool ReluChunkAvx512Supported() {
  static const bool has = __builtin_cpu_supports("x86-64-v4");
  return has;
}

GRADWATCH_V4_TARGET
ActivationStats::ChunkSums WriteReluAndSumVectorsAvx512(
    const float* z, float* a, int n, float z_shift, float a_shift,
    int32_t* active, int unit, int units) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 zs = _mm512_set1_ps(z_shift);
  const __m512 as = _mm512_set1_ps(a_shift);
  // Hidden from the optimizer, which would turn x * 1 - s back into a
  // subtraction on the adders, the units this loop has too few of.
  __m512 one = _mm512_set1_ps(1.0f);
  asm("" : "+v"(one));
  const __m512i all_set = _mm512_set1_epi32(-1);
  // Two sets of sums used in turn, as in the portable loop.
  __m512 a_sum[2] = {zero, zero}, a_squares[2] = {zero, zero};
  __m512 z_sum[2] = {zero, zero}, z_squares[2] = {zero, zero};
  __m512 z_min = _mm512_set1_ps(kInf), z_max = _mm512_set1_ps(-kInf);
  int32_t negative = 0;

  auto add = [&](int at, int h) GRADWATCH_V4_TARGET {
    const __m512 zv = _mm512_loadu_ps(z + at);
    // max(z, 0) is z > 0 ? z : 0: NaN and -0 give +0.
    const __m512 av = _mm512_max_ps(zv, zero);
    _mm512_storeu_ps(a + at, av);
    const __m512 ad = _mm512_fmsub_ps(av, one, as);
    const __m512 zd = _mm512_fmsub_ps(zv, one, zs);
    a_sum[h] = _mm512_add_ps(a_sum[h], ad);
    a_squares[h] = _mm512_fmadd_ps(ad, ad, a_squares[h]);
    z_sum[h] = _mm512_add_ps(z_sum[h], zd);
    z_squares[h] = _mm512_fmadd_ps(zd, zd, z_squares[h]);
    negative += __builtin_popcount(_mm512_cmp_ps_mask(zv, zero, _CMP_LT_OQ));
    // min(z, m) is z < m ? z : m: NaN is skipped.
    z_min = _mm512_min_ps(zv, z_min);
    z_max = _mm512_max_ps(zv, z_max);
    if (active == nullptr) return;
    const __mmask16 on = _mm512_cmp_ps_mask(zv, zero, _CMP_NLE_UQ);
    const int left = units - unit;  // entries to the row's end
    if (left >= kLanes) {
      _mm512_mask_storeu_epi32(active + unit, on, all_set);
      unit = left == kLanes ? 0 : unit + kLanes;
    } else if (units >= kLanes) {
      // Runs into the next row: its first lanes end this row, the others
      // start the next one.
      const auto head = static_cast<__mmask16>((1u << left) - 1);
      _mm512_mask_storeu_epi32(active + unit, on & head, all_set);
      _mm512_mask_storeu_epi32(active, static_cast<__mmask16>(on >> left),
                               all_set);
      unit = kLanes - left;
    } else {
      for (int k = 0; k < kLanes; ++k) {
        if ((on >> k) & 1) active[(unit + k) % units] = -1;
      }
      unit = (unit + kLanes) % units;
    }
  };
  int i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    add(i, 0);
    add(i + kLanes, 1);
  }
  for (; i + kLanes <= n; i += kLanes) add(i, 0);

  // The lanes added in the portable loop's order.
  float lanes[6][kLanes];
  _mm512_storeu_ps(lanes[0], _mm512_add_ps(a_sum[0], a_sum[1]));
  _mm512_storeu_ps(lanes[1], _mm512_add_ps(a_squares[0], a_squares[1]));
  _mm512_storeu_ps(lanes[2], _mm512_add_ps(z_sum[0], z_sum[1]));
  _mm512_storeu_ps(lanes[3], _mm512_add_ps(z_squares[0], z_squares[1]));
  _mm512_storeu_ps(lanes[4], z_min);
  _mm512_storeu_ps(lanes[5], z_max);
  ActivationStats::ChunkSums out{0, 0, 0, 0, negative, kInf, -kInf};
  for (int k = 0; k < kLanes; ++k) {
    out.a_sum += lanes[0][k];
    out.a_sum_squares += lanes[1][k];
    out.z_sum += lanes[2][k];
    out.z_sum_squares += lanes[3][k];
    out.z_min = lanes[4][k] < out.z_min ? lanes[4][k] : out.z_min;
    out.z_max = lanes[5][k] > out.z_max ? lanes[5][k] : out.z_max;
  }
  return out;
}
#else
bool ReluChunkAvx512Supported() { return false; }

ActivationStats::ChunkSums WriteReluAndSumVectorsAvx512(const float*, float*,
                                                        int, float, float,
                                                        int32_t*, int, int) {
  return {};
}
#endif

}  // namespace gradwatch::engine
