#include "engine/block_sweep_avx512.h"

#include <algorithm>
#include <type_traits>

#include "engine/exponent_counting.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GRADWATCH_FUSED_BLOCK_SWEEP 1
#endif

namespace gradwatch::engine {
namespace {

// Fields per window: one per bit of a 32-bit lane.
constexpr int kWindowFields = 32;
// Entries per group: 16 vectors of 16.
constexpr int kGroup = 256;

#ifdef GRADWATCH_FUSED_BLOCK_SWEEP
#define GRADWATCH_AVX512_TARGET \
  __attribute__((target("avx2,avx512f,avx512bw,popcnt")))

// (carry, sum) of a + b + c per bit.
GRADWATCH_AVX512_TARGET
inline void CarrySave(__m512i a, __m512i b, __m512i c, __m512i& carry,
                      __m512i& sum) {
  carry = _mm512_ternarylogic_epi32(a, b, c, 0xE8);  // majority
  sum = _mm512_ternarylogic_epi32(a, b, c, 0x96);    // parity
}

// Counts 32 fields bit-sliced. Each entry becomes a one-hot word, 1 <<
// (field - base) in a 32-bit lane (0 outside the window: vpsllvd gives 0
// for counts of 32 and more, negative ones included), and the words are
// added bit-parallel in carry-save adders (Harley-Seal): planes of weight
// 1, 2, 4 and 8 and, every 16 words per lane, a plane of weight 16 whose
// bits go to byte counters. Per 16 entries that is a subtraction, a
// variable shift and about two three-input logic operations, where a
// compare and a subtract per field would cost 32 of each.
struct WindowCounter {
  __m512i ones, twos, fours, eights;
  // sixteens[k], byte j of each lane: the 16s of field base + 8j + k.
  __m512i sixteens[8];

  GRADWATCH_AVX512_TARGET void Clear() {
    ones = twos = fours = eights = _mm512_setzero_si512();
    for (__m512i& s : sixteens) s = _mm512_setzero_si512();
  }

  // Adds a group's entries; d[j] = field - the lowest window's base, and
  // this window starts `offset` fields above that.
  GRADWATCH_AVX512_TARGET void AddGroup(const __m512i* d, int offset) {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i shift = _mm512_set1_epi32(offset);
    auto word = [&](int j) GRADWATCH_AVX512_TARGET {
      return _mm512_sllv_epi32(one, _mm512_sub_epi32(d[j], shift));
    };
    __m512i twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, carry;
    auto add_eight = [&](int j, __m512i& eights_out) GRADWATCH_AVX512_TARGET {
      CarrySave(ones, word(j), word(j + 1), twos_a, ones);
      CarrySave(ones, word(j + 2), word(j + 3), twos_b, ones);
      CarrySave(twos, twos_a, twos_b, fours_a, twos);
      CarrySave(ones, word(j + 4), word(j + 5), twos_a, ones);
      CarrySave(ones, word(j + 6), word(j + 7), twos_b, ones);
      CarrySave(twos, twos_a, twos_b, fours_b, twos);
      CarrySave(fours, fours_a, fours_b, eights_out, fours);
    };
    add_eight(0, eights_a);
    add_eight(8, eights_b);
    CarrySave(eights, eights_a, eights_b, carry, eights);
    const __m512i bit0 = _mm512_set1_epi32(0x01010101);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      sixteens[k] = _mm512_add_epi8(
          sixteens[k], _mm512_and_si512(_mm512_srli_epi32(carry, k), bit0));
    }
  }

  // counts[k] += field base + k's entries, k < 32. A lane's byte counters
  // hold at most 16 per 256 entries of a block, so at most 256 over the 16
  // lanes: they are widened to 16 bits before the lanes are added.
  GRADWATCH_AVX512_TARGET void AddTo(uint64_t* counts) const {
    const __m512i bit0 = _mm512_set1_epi32(0x01010101);
    const __m512i even = _mm512_set1_epi32(0x00ff00ff);
    for (int k = 0; k < 8; ++k) {
      auto bit = [&](__m512i plane) GRADWATCH_AVX512_TARGET {
        return _mm512_and_si512(_mm512_srli_epi32(plane, k), bit0);
      };
      // At most 15 per byte: no carry between bytes.
      const __m512i low = _mm512_or_si512(
          _mm512_or_si512(_mm512_slli_epi32(bit(eights), 3),
                          _mm512_slli_epi32(bit(fours), 2)),
          _mm512_or_si512(_mm512_slli_epi32(bit(twos), 1), bit(ones)));
      auto widen = [&](int byte) GRADWATCH_AVX512_TARGET {
        const __m512i high =
            _mm512_and_si512(_mm512_srli_epi32(sixteens[k], byte), even);
        return static_cast<uint32_t>(_mm512_reduce_add_epi32(_mm512_add_epi32(
            _mm512_slli_epi32(high, 4),
            _mm512_and_si512(_mm512_srli_epi32(low, byte), even))));
      };
      const uint32_t even_sum = widen(0);
      const uint32_t odd_sum = widen(8);
      counts[k] += even_sum & 0xffff;
      counts[16 + k] += even_sum >> 16;
      counts[8 + k] += odd_sum & 0xffff;
      counts[24 + k] += odd_sum >> 16;
    }
  }
};

// A pass's sums of |g| and |g|^2 (two f32 accumulators each, for a pass
// that alternates them in an unrolled loop), the maximum of |g|'s bit
// patterns and the count of nonzero entries, in vector lanes.
struct LaneFigures {
  __m512 squares[2], sums[2];
  __m512i max_bits, nonzero_count;

  GRADWATCH_AVX512_TARGET void Clear() {
    squares[0] = squares[1] = sums[0] = sums[1] = _mm512_setzero_ps();
    max_bits = nonzero_count = _mm512_setzero_si512();
  }

  // bits: 16 entries' |g| bit patterns; parity: which accumulators.
  GRADWATCH_AVX512_TARGET void Add(__m512i bits, int parity) {
    const __m512 a = _mm512_castsi512_ps(bits);
    squares[parity] = _mm512_fmadd_ps(a, a, squares[parity]);
    sums[parity] = _mm512_add_ps(sums[parity], a);
    max_bits = _mm512_max_epu32(max_bits, bits);
    nonzero_count =
        _mm512_mask_add_epi32(nonzero_count, _mm512_test_epi32_mask(bits, bits),
                              nonzero_count, _mm512_set1_epi32(1));
  }

  // Sums, maximum and zeros of a pass over n entries.
  GRADWATCH_AVX512_TARGET void ReduceInto(int n, BlockFigures* out) const {
    out->sum_squares =
        _mm512_reduce_add_ps(_mm512_add_ps(squares[0], squares[1]));
    out->sum_abs = _mm512_reduce_add_ps(_mm512_add_ps(sums[0], sums[1]));
    out->max_abs_bits = _mm512_reduce_max_epu32(max_bits);
    out->zeros =
        static_cast<uint32_t>(n - _mm512_reduce_add_epi32(nonzero_count));
  }
};

// The pass, a group at a time: each vector of 16 floats feeds the sums,
// the maximum and the count of nonzero entries, and its fields feed the
// kWindows windows, which cover fields [base, base + 32 kWindows).
// Nonzero entries outside them (subnormals, Inf and NaN among them: fields
// 0 and 255 never are inside) are the tail: their |g| bit patterns are
// compressed into `tail`, which has room for n + 16. Lanes past n load as
// 0.0: they add nothing to the sums and are neither nonzero nor in a
// window. window[k] gets the entries of field base + k; base in
// [1, 255 - 32 kWindows]. Returns the tail's length.
template <int kWindows>
GRADWATCH_AVX512_TARGET int FusedPass(const float* g, int n, int base,
                                      uint64_t* window, uint32_t* tail,
                                      BlockFigures* out) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i base_field = _mm512_set1_epi32(base);
  const __m512i width = _mm512_set1_epi32(kWindows * kWindowFields);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i normal_fields = _mm512_set1_epi32(254);
  LaneFigures figures;
  figures.Clear();
  __m512i tail_low = _mm512_set1_epi32(255);
  __m512i tail_high = _mm512_setzero_si512();
  WindowCounter counters[kWindows];
  for (WindowCounter& c : counters) c.Clear();
  int tail_n = 0;
  // The group at i. With `full` true (every one of its 256 entries is
  // below n) the vectors are loaded without masks: computing each one's
  // mask took a quarter of the group's instructions.
  auto group = [&](int i, auto full) GRADWATCH_AVX512_TARGET
      __attribute__((always_inline)) {
    __m512i d[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      const int at = i + 16 * j;
      __m512i loaded;
      if constexpr (decltype(full)::value) {
        loaded = _mm512_loadu_si512(g + at);
      } else {
        const __mmask16 lanes =
            at + 16 <= n ? 0xffff
            : at >= n    ? 0
                         : static_cast<__mmask16>((1u << (n - at)) - 1);
        loaded = _mm512_maskz_loadu_epi32(lanes, g + at);
      }
      const __m512i bits = _mm512_and_si512(loaded, abs_mask);
      figures.Add(bits, j & 1);
      const __mmask16 nonzero = _mm512_test_epi32_mask(bits, bits);
      const __m512i field = _mm512_srli_epi32(bits, 23);
      d[j] = _mm512_sub_epi32(field, base_field);
      const __mmask16 outside =
          _mm512_mask_cmpge_epu32_mask(nonzero, d[j], width);
      if (outside != 0) {  // rare when the windows are well placed
        _mm512_storeu_si512(tail + tail_n,
                            _mm512_maskz_compress_epi32(outside, bits));
        tail_n += __builtin_popcount(outside);
        const __mmask16 normal = _mm512_mask_cmplt_epu32_mask(
            outside, _mm512_sub_epi32(field, one), normal_fields);
        tail_low = _mm512_mask_min_epu32(tail_low, normal, tail_low, field);
        tail_high = _mm512_mask_max_epu32(tail_high, normal, tail_high, field);
      }
    }
    for (int w = 0; w < kWindows; ++w) {
      counters[w].AddGroup(d, w * kWindowFields);
    }
  };
  int i = 0;
  for (; i + kGroup <= n; i += kGroup) group(i, std::true_type{});
  if (i < n) group(i, std::false_type{});
  for (int w = 0; w < kWindows; ++w) {
    counters[w].AddTo(window + w * kWindowFields);
  }
  figures.ReduceInto(n, out);
  // Bounds of the tail's normal fields (lo > hi: none).
  out->lo = static_cast<uint8_t>(_mm512_reduce_min_epu32(tail_low));
  out->hi = static_cast<uint8_t>(_mm512_reduce_max_epu32(tail_high));
  return tail_n;
}

// fields[i] = the field of tail[i], i < n (fields has room for n rounded
// up to 16); returns how many are 0 (subnormals: the tail has no zeros).
GRADWATCH_AVX512_TARGET
int TailFields(const uint32_t* tail, int n, uint8_t* fields) {
  int field_zero = 0;
  for (int i = 0; i < n; i += 16) {
    const auto lanes =
        static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m512i field =
        _mm512_srli_epi32(_mm512_maskz_loadu_epi32(lanes, tail + i), 23);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(fields + i),
                     _mm512_cvtepi32_epi8(field));
    field_zero += __builtin_popcount(
        _mm512_mask_cmpeq_epi32_mask(lanes, field, _mm512_setzero_si512()));
  }
  return field_zero;
}

// SweepBlockCompact's pass: the figures of FusedPass without its windows,
// and every field but 0 compressed into `fields` as bytes.
GRADWATCH_AVX512_TARGET
int CompactPass(const float* g, int n, uint8_t* fields, BlockFigures* out) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i normal_fields = _mm512_set1_epi32(254);
  LaneFigures figures;
  figures.Clear();
  __m512i low = _mm512_set1_epi32(255);
  __m512i high = _mm512_setzero_si512();
  int m = 0;
  // 16 entries into the sums of `parity`: alternating the two sets
  // keeps the additions of one vector from waiting for the previous one's.
  auto add = [&](__m512i loaded, int parity) GRADWATCH_AVX512_TARGET
      __attribute__((always_inline)) {
    const __m512i bits = _mm512_and_si512(loaded, abs_mask);
    figures.Add(bits, parity);
    const __m512i field = _mm512_srli_epi32(bits, 23);
    const __mmask16 keep = _mm512_test_epi32_mask(field, field);
    const __mmask16 normal = _mm512_mask_cmplt_epu32_mask(
        keep, _mm512_sub_epi32(field, one), normal_fields);
    low = _mm512_mask_min_epu32(low, normal, low, field);
    high = _mm512_mask_max_epu32(high, normal, high, field);
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(fields + m),
        _mm512_cvtepi32_epi8(_mm512_maskz_compress_epi32(keep, field)));
    m += __builtin_popcount(keep);
  };
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    add(_mm512_loadu_si512(g + i), 0);
    add(_mm512_loadu_si512(g + i + 16), 1);
  }
  for (; i < n; i += 16) {
    const auto lanes =
        static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    add(_mm512_maskz_loadu_epi32(lanes, g + i), 0);
  }
  figures.ReduceInto(n, out);
  out->lo = static_cast<uint8_t>(_mm512_reduce_min_epu32(low));
  out->hi = static_cast<uint8_t>(_mm512_reduce_max_epu32(high));
  return m;
}

bool CpuHasFusedSweep() {
  static const bool has =
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
  return has;
}
#endif

}  // namespace

#ifdef GRADWATCH_FUSED_BLOCK_SWEEP
bool BlockSweepFusedSupported() { return CpuHasFusedSweep(); }

void SweepBlockFused(const float* g, int n, ExponentWindows windows,
                     uint64_t* counts, uint64_t* subnormal_counts,
                     BlockFigures* out) {
  const int count = std::clamp(windows.count, 1, kMaxWindows);
  const int covered = count * kWindowFields;
  const int base = std::clamp(windows.top - covered + 1, 1, 255 - covered);
  alignas(64) uint32_t tail[kFieldBlock + 16];
  uint64_t window[kMaxWindows * kWindowFields] = {};
  int tail_n = 0;
  switch (count) {
    case 1:
      tail_n = FusedPass<1>(g, n, base, window, tail, out);
      break;
    case 2:
      tail_n = FusedPass<2>(g, n, base, window, tail, out);
      break;
    case 3:
      tail_n = FusedPass<3>(g, n, base, window, tail, out);
      break;
    default:
      tail_n = FusedPass<4>(g, n, base, window, tail, out);
      break;
  }

  // Added without a branch per field (mispredicting one cost about 500
  // cycles a block in a wide step, a tenth of its time); the occupied ends
  // are found by two short scans.
  for (int k = 0; k < covered; ++k) counts[base + k] += window[k];
  int first = 0;
  while (first < covered && window[first] == 0) ++first;
  int last = covered - 1;
  while (last > first && window[last] == 0) --last;
  int lo = first < covered ? base + first : 255;
  int hi = first < covered ? base + last : 0;
  counts[0] += out->zeros;
  out->subnormals = 0;
  if (tail_n > 0) {
    // Subnormals, Inf, NaN and the normal fields outside the windows. A
    // subnormal's binade is its mantissa's highest set bit.
    const int tail_lo = out->lo;
    const int tail_hi = out->hi;
    alignas(64) uint8_t fields[kFieldBlock];
    const int subnormals = TailFields(tail, tail_n, fields);
    CountExponentFields(fields, tail_n, tail_lo, tail_hi, counts,
                        FieldCounting::kEntryByEntry);
    for (int i = 0; out->subnormals < static_cast<uint32_t>(subnormals); ++i) {
      if (fields[i] != 0) continue;
      ++subnormal_counts[31 - __builtin_clz(tail[i])];
      ++out->subnormals;
    }
    if (tail_lo <= tail_hi) {
      lo = std::min(lo, tail_lo);
      hi = std::max(hi, tail_hi);
    }
  }
  out->lo = static_cast<uint8_t>(lo);
  out->hi = static_cast<uint8_t>(hi);
}

int SweepBlockCompact(const float* g, int n, uint8_t* fields,
                      BlockFigures* out) {
  return CompactPass(g, n, fields, out);
}
#else
bool BlockSweepFusedSupported() { return false; }

int SweepBlockCompact(const float*, int, uint8_t*, BlockFigures*) { return 0; }

void SweepBlockFused(const float*, int, ExponentWindows, uint64_t*, uint64_t*,
                     BlockFigures*) {}
#endif

}  // namespace gradwatch::engine
