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

// The sum of v's 16 lanes, added as unsigned: _mm512_reduce_add_epi32 adds
// them as int, and a lane holding two 16-bit counts may exceed INT_MAX.
GRADWATCH_AVX512_TARGET
inline uint32_t SumLanes(__m512i v) {
  const __m256i eight = _mm256_add_epi32(_mm512_castsi512_si256(v),
                                         _mm512_extracti64x4_epi64(v, 1));
  const __m128i four = _mm_add_epi32(_mm256_castsi256_si128(eight),
                                     _mm256_extracti128_si256(eight, 1));
  alignas(16) uint32_t lanes[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes), four);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Counts 32 fields bit-sliced. Each entry becomes a one-hot word, 1 <<
// (field - base) in a 32-bit lane (0 outside the window: vpsllvd gives 0
// for counts of 32 and more, negative ones included), and the words are
// added bit-parallel in carry-save adders (Harley-Seal): planes of weight
// 1 to 16 and, every two groups of 16 words per lane, a plane of weight 32
// whose bits go to byte counters. Per 16 entries that is a subtraction, a
// variable shift and about two three-input logic operations, where a
// compare and a subtract per field would cost 32 of each.
struct WindowCounter {
  __m512i ones, twos, fours, eights, sixteens;
  // thirty_twos[k], byte j of each lane: the 32s of field base + 8j + k.
  __m512i thirty_twos[8];

  GRADWATCH_AVX512_TARGET void Clear() {
    ones = twos = fours = eights = sixteens = _mm512_setzero_si512();
    for (__m512i& t : thirty_twos) t = _mm512_setzero_si512();
  }

  // Adds a group's entries; d[j] = field - the lowest window's base, and
  // this window starts `offset` fields above that. Returns the group's
  // plane of weight 16, for AddCarries.
  GRADWATCH_AVX512_TARGET __m512i AddGroup(const __m512i* d, int offset) {
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
    return carry;
  }

  // Adds two groups' planes of weight 16 (either may be 0).
  GRADWATCH_AVX512_TARGET void AddCarries(__m512i a, __m512i b) {
    const __m512i bit0 = _mm512_set1_epi32(0x01010101);
    __m512i carry;
    CarrySave(sixteens, a, b, carry, sixteens);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      thirty_twos[k] = _mm512_add_epi8(
          thirty_twos[k], _mm512_and_si512(_mm512_srli_epi32(carry, k), bit0));
    }
  }

  // counts[k] += field base + k's entries, k < 32. Of n <= kFusedSpan
  // entries, a lane's byte counter holds at most n / 16 / 32, and a
  // field's entries summed over the lanes in 16 bits at most n.
  GRADWATCH_AVX512_TARGET void AddTo(uint64_t* counts) const {
    static_assert(kFusedSpan <= UINT16_MAX, "16-bit sums over lanes");
    const __m512i bit0 = _mm512_set1_epi32(0x01010101);
    const __m512i even = _mm512_set1_epi32(0x00ff00ff);
    for (int k = 0; k < 8; ++k) {
      auto bit = [&](__m512i plane) GRADWATCH_AVX512_TARGET {
        return _mm512_and_si512(_mm512_srli_epi32(plane, k), bit0);
      };
      // At most 31 per byte: no carry between bytes.
      const __m512i low = _mm512_or_si512(
          _mm512_or_si512(_mm512_slli_epi32(bit(sixteens), 4),
                          _mm512_slli_epi32(bit(eights), 3)),
          _mm512_or_si512(_mm512_or_si512(_mm512_slli_epi32(bit(fours), 2),
                                          _mm512_slli_epi32(bit(twos), 1)),
                          bit(ones)));
      auto widen = [&](int byte) GRADWATCH_AVX512_TARGET {
        const __m512i high =
            _mm512_and_si512(_mm512_srli_epi32(thirty_twos[k], byte), even);
        return SumLanes(_mm512_add_epi32(
            _mm512_slli_epi32(high, 5),
            _mm512_and_si512(_mm512_srli_epi32(low, byte), even)));
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
// that alternates them in an unrolled loop) and the maximum of |g|'s bit
// patterns, in vector lanes.
struct LaneFigures {
  __m512 squares[2], sums[2];
  __m512i max_bits;

  GRADWATCH_AVX512_TARGET void Clear() {
    squares[0] = squares[1] = sums[0] = sums[1] = _mm512_setzero_ps();
    max_bits = _mm512_setzero_si512();
  }

  // bits: 16 entries' |g| bit patterns; parity: which accumulators.
  GRADWATCH_AVX512_TARGET void Add(__m512i bits, int parity) {
    const __m512 a = _mm512_castsi512_ps(bits);
    squares[parity] = _mm512_fmadd_ps(a, a, squares[parity]);
    sums[parity] = _mm512_add_ps(sums[parity], a);
    max_bits = _mm512_max_epu32(max_bits, bits);
  }

  // The sums and maximum into `out`.
  GRADWATCH_AVX512_TARGET void ReduceInto(BlockFigures* out) const {
    out->sum_squares =
        _mm512_reduce_add_ps(_mm512_add_ps(squares[0], squares[1]));
    out->sum_abs = _mm512_reduce_add_ps(_mm512_add_ps(sums[0], sums[1]));
    out->max_abs_bits = _mm512_reduce_max_epu32(max_bits);
  }
};

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

// Counts a block's tail, the |g| bit patterns of its nonzero entries
// outside the windows, whose normal fields lie in [lo, hi]; returns its
// subnormals.
uint32_t CountTail(const uint32_t* tail, int n, int lo, int hi,
                   uint64_t* counts, uint64_t* subnormal_counts) {
  alignas(64) uint8_t fields[kFieldBlock];
  const int subnormals = TailFields(tail, n, fields);
  CountExponentFields(fields, n, lo, hi, counts, FieldCounting::kEntryByEntry);
  // A subnormal's binade is its mantissa's highest set bit.
  int found = 0;
  for (int i = 0; found < subnormals; ++i) {
    if (fields[i] != 0) continue;
    ++subnormal_counts[31 - __builtin_clz(tail[i])];
    ++found;
  }
  return static_cast<uint32_t>(subnormals);
}

// The pass, a group at a time: each vector of 16 floats feeds its block's
// sums and maximum, and its fields feed the kWindows windows, which cover
// fields [base, base + 32 kWindows). Nonzero entries outside them
// (subnormals, Inf and NaN among them: fields 0 and 255 never are inside)
// are the tail: their |g| bit patterns are compressed into a buffer and
// counted at the end of each block. Lanes past a block's end load as 0.0:
// they add nothing to the sums and are neither in a window nor in the
// tail. window[k] gets the entries of field base + k; base in
// [1, 255 - 32 kWindows].
template <int kWindows>
GRADWATCH_AVX512_TARGET void FusedPass(const float* g, int n, int base,
                                       uint64_t* window, uint64_t* counts,
                                       uint64_t* subnormal_counts,
                                       SpanFigures* out) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i base_field = _mm512_set1_epi32(base);
  const __m512i width = _mm512_set1_epi32(kWindows * kWindowFields);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i normal_fields = _mm512_set1_epi32(254);
  LaneFigures figures;
  __m512i tail_low = _mm512_set1_epi32(255);
  __m512i tail_high = _mm512_setzero_si512();
  WindowCounter counters[kWindows];
  for (WindowCounter& c : counters) c.Clear();
  alignas(64) uint32_t tail[kFieldBlock + 16];
  int tail_n = 0;
  uint32_t tail_total = 0;
  // The 16 entries at `at`, in a block ending at `end`: their sums, their
  // tail, and their fields minus the base. With `full` true (every one of
  // their group's entries is below `end`) they are loaded without a mask:
  // computing each vector's mask took a quarter of a group's instructions.
  auto load_vector = [&](int at, int end, int parity, auto full)
      GRADWATCH_AVX512_TARGET __attribute__((always_inline)) {
    __m512i loaded;
    if constexpr (decltype(full)::value) {
      loaded = _mm512_loadu_si512(g + at);
    } else {
      const __mmask16 lanes =
          at + 16 <= end ? 0xffff
          : at >= end    ? 0
                         : static_cast<__mmask16>((1u << (end - at)) - 1);
      loaded = _mm512_maskz_loadu_epi32(lanes, g + at);
    }
    const __m512i bits = _mm512_and_si512(loaded, abs_mask);
    figures.Add(bits, parity);
    const __m512i field = _mm512_srli_epi32(bits, 23);
    const __m512i d = _mm512_sub_epi32(field, base_field);
    const __mmask16 outside = _mm512_mask_cmpge_epu32_mask(
        _mm512_test_epi32_mask(bits, bits), d, width);
    if (outside != 0) {  // rare when the windows are well placed
      _mm512_storeu_si512(tail + tail_n,
                          _mm512_maskz_compress_epi32(outside, bits));
      tail_n += __builtin_popcount(outside);
      const __mmask16 normal = _mm512_mask_cmplt_epu32_mask(
          outside, _mm512_sub_epi32(field, one), normal_fields);
      tail_low = _mm512_mask_min_epu32(tail_low, normal, tail_low, field);
      tail_high = _mm512_mask_max_epu32(tail_high, normal, tail_high, field);
    }
    return d;
  };
  // The group at i in a block ending at `end`; carries[w] gets window w's
  // plane of weight 16.
  auto group = [&](int i, int end, __m512i* carries) GRADWATCH_AVX512_TARGET
      __attribute__((always_inline)) {
    __m512i d[16];
    if (i + kGroup <= end) {
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        d[j] = load_vector(i + 16 * j, end, j & 1, std::true_type{});
      }
    } else {
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        d[j] = load_vector(i + 16 * j, end, j & 1, std::false_type{});
      }
    }
    for (int w = 0; w < kWindows; ++w) {
      carries[w] = counters[w].AddGroup(d, w * kWindowFields);
    }
  };
  // Each group's carries wait for the next one's (AddCarries takes two).
  // A loop over pairs of groups instead made a step's sweep of fresh
  // gradients slower than before, its loads stalling (wide: 320 -> 750 us).
  __m512i pending[kWindows];
  bool has_pending = false;
  for (int b = 0, i = 0; i < n; ++b) {
    const int end = std::min(n, i + kFieldBlock);
    figures.Clear();
    for (; i < end; i += kGroup) {
      __m512i carries[kWindows];
      group(i, end, carries);
      if (has_pending) {
        for (int w = 0; w < kWindows; ++w) {
          counters[w].AddCarries(pending[w], carries[w]);
        }
      } else {
        std::copy(carries, carries + kWindows, pending);
      }
      has_pending = !has_pending;
    }
    i = end;
    figures.ReduceInto(&out->blocks[b]);
    if (tail_n > 0) {
      const int tail_lo = _mm512_reduce_min_epu32(tail_low);
      const int tail_hi = _mm512_reduce_max_epu32(tail_high);
      out->span.subnormals +=
          CountTail(tail, tail_n, tail_lo, tail_hi, counts, subnormal_counts);
      tail_total += static_cast<uint32_t>(tail_n);
      tail_n = 0;
    }
  }
  for (int w = 0; w < kWindows; ++w) {
    if (has_pending) {
      counters[w].AddCarries(pending[w], _mm512_setzero_si512());
    }
    counters[w].AddTo(window + w * kWindowFields);
  }
  uint64_t in_windows = 0;
  for (int k = 0; k < kWindows * kWindowFields; ++k) in_windows += window[k];
  out->span.zeros = static_cast<uint32_t>(n - in_windows - tail_total);
  // Bounds of the tail's normal fields (lo > hi: none).
  out->span.lo = static_cast<uint8_t>(_mm512_reduce_min_epu32(tail_low));
  out->span.hi = static_cast<uint8_t>(_mm512_reduce_max_epu32(tail_high));
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
  __m512i nonzero_count = _mm512_setzero_si512();
  int m = 0;
  // 16 entries into the sums of `parity`: alternating the two sets
  // keeps the additions of one vector from waiting for the previous one's.
  auto add = [&](__m512i loaded, int parity) GRADWATCH_AVX512_TARGET
      __attribute__((always_inline)) {
    const __m512i bits = _mm512_and_si512(loaded, abs_mask);
    figures.Add(bits, parity);
    nonzero_count = _mm512_mask_add_epi32(
        nonzero_count, _mm512_test_epi32_mask(bits, bits), nonzero_count, one);
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
  figures.ReduceInto(out);
  out->zeros =
      static_cast<uint32_t>(n - _mm512_reduce_add_epi32(nonzero_count));
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

void SweepSpanFused(const float* g, int n, ExponentWindows windows,
                    uint64_t* counts, uint64_t* subnormal_counts,
                    SpanFigures* out) {
  const int count = std::clamp(windows.count, 1, kMaxWindows);
  const int covered = count * kWindowFields;
  const int base = std::clamp(windows.top - covered + 1, 1, 255 - covered);
  uint64_t window[kMaxWindows * kWindowFields] = {};
  *out = SpanFigures{};
  switch (count) {
    case 1:
      FusedPass<1>(g, n, base, window, counts, subnormal_counts, out);
      break;
    case 2:
      FusedPass<2>(g, n, base, window, counts, subnormal_counts, out);
      break;
    case 3:
      FusedPass<3>(g, n, base, window, counts, subnormal_counts, out);
      break;
    default:
      FusedPass<4>(g, n, base, window, counts, subnormal_counts, out);
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
  counts[0] += out->span.zeros;
  if (out->span.lo <= out->span.hi) {  // the tail's normal fields
    lo = std::min<int>(lo, out->span.lo);
    hi = std::max<int>(hi, out->span.hi);
  }
  out->span.lo = static_cast<uint8_t>(lo);
  out->span.hi = static_cast<uint8_t>(hi);
}

int SweepBlockCompact(const float* g, int n, uint8_t* fields,
                      BlockFigures* out) {
  return CompactPass(g, n, fields, out);
}
#else
bool BlockSweepFusedSupported() { return false; }

int SweepBlockCompact(const float*, int, uint8_t*, BlockFigures*) { return 0; }

void SweepSpanFused(const float*, int, ExponentWindows, uint64_t*, uint64_t*,
                    SpanFigures*) {}
#endif

}  // namespace gradwatch::engine
