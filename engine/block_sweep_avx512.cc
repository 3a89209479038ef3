#include "engine/block_sweep_avx512.h"

#include <algorithm>

#include "engine/exponent_counting.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GRADWATCH_FUSED_BLOCK_SWEEP 1
#endif

namespace gradwatch::engine {
namespace {

constexpr int kWindowBins = 16;

#ifdef GRADWATCH_FUSED_BLOCK_SWEEP
#define GRADWATCH_AVX512_TARGET \
  __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")))

// The pass: per 64 entries, four loads of 16 floats feed the sums, the
// maximum and the zero count, and their exponent fields, narrowed to bytes,
// feed the window (two 32-byte halves, compare-to-vector and subtract,
// which Zen 4 runs faster than AVX-512's mask compares), the bounds and the
// tail's compress. A window counter gains at most 2 per 64 entries: no
// overflow within a block. Lanes past n load as 0.00: they add nothing to
// the sums, and the masks keep them out of every count. w0 in [1, 239]:
// fields 0 and 255 are never in the window. Returns the tail's length;
// `tail` has room for n + 64 bytes.
GRADWATCH_AVX512_TARGET
int FusedPass(const float* g, int n, int w0, uint64_t* counts, uint8_t* tail,
              BlockFigures* out) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i base = _mm512_set1_epi8(static_cast<char>(w0));
  const __m512i width = _mm512_set1_epi8(kWindowBins);
  const __m512i nonfinite = _mm512_set1_epi8(static_cast<char>(0xFF));
  __m512 squares[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m512 sums[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m512i max_bits = _mm512_setzero_si512();
  __m512i low = nonfinite;
  __m512i high = _mm512_setzero_si512();
  __m256i window[kWindowBins];
  for (__m256i& w : window) w = _mm256_setzero_si256();
  int tail_n = 0;
  int nonzero_n = 0;
  int zeros = 0;
  for (int i = 0; i < n; i += 64) {
    const int m = std::min(64, n - i);
    const __mmask64 valid = m == 64 ? ~__mmask64{0} : (__mmask64{1} << m) - 1;
    __m128i fields[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const auto lanes = static_cast<__mmask16>(valid >> (16 * j));
      const __m512i bits = _mm512_and_si512(
          _mm512_maskz_loadu_epi32(lanes, g + i + 16 * j), abs_mask);
      const __m512 a = _mm512_castsi512_ps(bits);
      squares[j & 1] = _mm512_fmadd_ps(a, a, squares[j & 1]);
      sums[j & 1] = _mm512_add_ps(sums[j & 1], a);
      max_bits = _mm512_max_epu32(max_bits, bits);
      zeros +=
          __builtin_popcount(_mm512_mask_testn_epi32_mask(lanes, bits, bits));
      fields[j] = _mm512_cvtepi32_epi8(_mm512_srli_epi32(bits, 23));
    }
    const __m512i v = _mm512_inserti32x4(
        _mm512_inserti32x4(
            _mm512_inserti32x4(_mm512_zextsi128_si512(fields[0]), fields[1], 1),
            fields[2], 2),
        fields[3], 3);
    const __mmask64 nonzero = _mm512_mask_test_epi8_mask(valid, v, v);
    nonzero_n += __builtin_popcountll(nonzero);
    const __mmask64 normal =
        _mm512_mask_cmpneq_epu8_mask(nonzero, v, nonfinite);
    low = _mm512_mask_min_epu8(low, normal, low, v);
    high = _mm512_mask_max_epu8(high, normal, high, v);
    const __m512i d = _mm512_sub_epi8(v, base);
    const __mmask64 outside = _mm512_mask_cmpge_epu8_mask(nonzero, d, width);
    _mm512_storeu_si512(tail + tail_n, _mm512_maskz_compress_epi8(outside, v));
    tail_n += __builtin_popcountll(outside);
    const __m256i d0 = _mm512_castsi512_si256(d);
    const __m256i d1 = _mm512_extracti64x4_epi64(d, 1);
#pragma GCC unroll 16
    for (int k = 0; k < kWindowBins; ++k) {
      const __m256i key = _mm256_set1_epi8(static_cast<char>(k));
      window[k] = _mm256_sub_epi8(window[k], _mm256_cmpeq_epi8(d0, key));
      window[k] = _mm256_sub_epi8(window[k], _mm256_cmpeq_epi8(d1, key));
    }
  }
  for (int k = 0; k < kWindowBins; ++k) {
    const __m256i s = _mm256_sad_epu8(window[k], _mm256_setzero_si256());
    counts[w0 + k] += static_cast<uint64_t>(_mm256_extract_epi64(s, 0)) +
                      static_cast<uint64_t>(_mm256_extract_epi64(s, 1)) +
                      static_cast<uint64_t>(_mm256_extract_epi64(s, 2)) +
                      static_cast<uint64_t>(_mm256_extract_epi64(s, 3));
  }
  counts[0] += static_cast<uint64_t>(n - nonzero_n);
  out->sum_squares =
      _mm512_reduce_add_ps(_mm512_add_ps(squares[0], squares[1]));
  out->sum_abs = _mm512_reduce_add_ps(_mm512_add_ps(sums[0], sums[1]));
  out->max_abs_bits = _mm512_reduce_max_epu32(max_bits);
  out->zeros = static_cast<uint32_t>(zeros);
  alignas(64) uint8_t low_lanes[64], high_lanes[64];
  _mm512_store_si512(low_lanes, low);
  _mm512_store_si512(high_lanes, high);
  out->lo = *std::min_element(low_lanes, low_lanes + 64);
  out->hi = *std::max_element(high_lanes, high_lanes + 64);
  return tail_n;
}

bool CpuHasFusedSweep() {
  static const bool has = __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vbmi2");
  return has;
}
#endif

}  // namespace

#ifdef GRADWATCH_FUSED_BLOCK_SWEEP
bool BlockSweepFusedSupported() { return CpuHasFusedSweep(); }

void SweepBlockFused(const float* g, int n, int window_top, uint64_t* counts,
                     BlockFigures* out) {
  const int w0 = std::max(1, window_top - kWindowBins + 1);
  alignas(64) uint8_t tail[kFieldBlock + 64];
  const int tail_n = FusedPass(g, n, w0, counts, tail, out);
  // The tail: field 255 and the normal fields outside the window, which
  // lie below it unless the guess was too low.
  int tail_hi = out->hi;
  if (out->hi < w0 + kWindowBins) tail_hi = std::min<int>(out->hi, w0 - 1);
  CountExponentFields(tail, tail_n, out->lo, tail_hi, counts,
                      FieldCounting::kEntryByEntry);
}
#else
bool BlockSweepFusedSupported() { return false; }

void SweepBlockFused(const float*, int, int, uint64_t*, BlockFigures*) {}
#endif

}  // namespace gradwatch::engine
