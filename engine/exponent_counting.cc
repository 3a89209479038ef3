#include "engine/exponent_counting.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GRADWATCH_WINDOW_COUNTING 1
#endif

#include "engine/simd_clones.h"

namespace gradwatch::engine {
namespace {

// Occupied fields up to which counting by comparison beats counting entry
// by entry (measured: ~0.006 ns per entry and field against ~0.25 ns per
// entry).
constexpr int kMaxCompareBins = 48;
// Below this many entries per occupied field, a block is counted entry by
// entry: the per-field cost of comparison would dominate.
constexpr int kDirectEntriesPerBin = 16;
constexpr int kCountLanes = 32;
constexpr int kCountGroup = 4;
static_assert(kFieldBlock / kCountLanes < 256, "byte counters would overflow");
// Fields counted by comparison in kWindowAndTail, and the smallest block
// worth its setup.
constexpr int kWindowBins = 16;
constexpr int kMinWindowEntries = 256;

// counts[k] = entries of fields[0, n) equal to bins[k]. Each group of bins
// is counted in byte lanes that cannot overflow in a block.
GRADWATCH_AVX2_CLONES
void CountByComparison(const uint8_t* fields, int n, const uint8_t* bins,
                       int num_bins, uint64_t* counts) {
  const int vector_end = n / kCountLanes * kCountLanes;
  for (int k0 = 0; k0 < num_bins; k0 += kCountGroup) {
    uint8_t target[kCountGroup];
    for (int k = 0; k < kCountGroup; ++k) {
      target[k] = bins[std::min(k0 + k, num_bins - 1)];
    }
    uint8_t lanes[kCountGroup][kCountLanes] = {};
    for (int i = 0; i < vector_end; i += kCountLanes) {
      for (int k = 0; k < kCountGroup; ++k) {
        for (int j = 0; j < kCountLanes; ++j) {
          lanes[k][j] += fields[i + j] == target[k];
        }
      }
    }
    for (int k = 0; k < kCountGroup && k0 + k < num_bins; ++k) {
      uint32_t count = 0;
      for (int j = 0; j < kCountLanes; ++j) count += lanes[k][j];
      for (int i = vector_end; i < n; ++i) count += fields[i] == target[k];
      counts[k0 + k] = count;
    }
  }
}

// Counts fields 0, 255 and [lo, hi] by comparison.
void CountOccupiedByComparison(const uint8_t* fields, int n, int lo, int hi,
                               uint64_t* counts) {
  uint8_t bins[kFieldValues];
  uint64_t bin_counts[kFieldValues];
  int num_bins = 0;
  bins[num_bins++] = 0;
  for (int f = lo; f <= hi; ++f) bins[num_bins++] = static_cast<uint8_t>(f);
  bins[num_bins++] = 255;
  CountByComparison(fields, n, bins, num_bins, bin_counts);
  for (int k = 0; k < num_bins; ++k) counts[bins[k]] += bin_counts[k];
}

// Counts fields 0, 255 and [lo, hi] entry by entry. Neighbouring gradients
// mostly share an exponent, so kDirectTables interleaved tables keep each
// increment from waiting on the previous one's store; only their occupied
// entries are cleared and read.
constexpr int kDirectTables = 8;
static_assert(kFieldBlock / kDirectTables <= UINT16_MAX, "16-bit counts");

void CountEntryByEntry(const uint8_t* fields, int n, int lo, int hi,
                       uint64_t* counts) {
  uint16_t tables[kDirectTables][kFieldValues];
  auto for_each_field = [lo, hi](auto&& visit) {
    visit(0);
    for (int f = lo; f <= hi; ++f) visit(f);
    visit(255);
  };
  for_each_field([&](int f) {
    for (auto& table : tables) table[f] = 0;
  });
  int i = 0;
  for (; i + kDirectTables <= n; i += kDirectTables) {
    for (int t = 0; t < kDirectTables; ++t) ++tables[t][fields[i + t]];
  }
  for (; i < n; ++i) ++tables[0][fields[i]];
  for_each_field([&](int f) {
    for (const auto& table : tables) counts[f] += table[f];
  });
}

#ifdef GRADWATCH_WINDOW_COUNTING
// counts[w0 + k] += entries of fields[0, n) equal to w0 + k, for
// k < kWindowBins, and counts[0] += the entries equal to 0 (zero gradients
// are common: dead units, padding); the other entries are copied, in
// order, to tail, and their number returned. tail has room for n + 64
// bytes. 1 <= w0 <= 239, so that field 255 always falls in the tail.
//
// Per 64 entries: mask compares and one compress gather the tail, and the
// window is counted in two 32-byte halves by compare-to-vector and
// subtract, which Zen 4 runs faster than AVX-512's mask compares. A byte
// lane gains at most 2 per 64 entries: no overflow within a block.
__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt"))) int
CountWindowGatherTail(const uint8_t* fields, int n, int w0, uint64_t* counts,
                      uint8_t* tail) {
  const __m512i base = _mm512_set1_epi8(static_cast<char>(w0));
  const __m512i width = _mm512_set1_epi8(kWindowBins);
  __m256i acc[kWindowBins];
  for (__m256i& a : acc) a = _mm256_setzero_si256();
  int tail_n = 0;
  int nonzero_n = 0;
  for (int i = 0; i < n; i += 64) {
    const int m = std::min(64, n - i);
    const __mmask64 valid = m == 64 ? ~__mmask64{0} : (__mmask64{1} << m) - 1;
    const __m512i v = _mm512_maskz_loadu_epi8(valid, fields + i);
    const __mmask64 nonzero = _mm512_mask_test_epi8_mask(valid, v, v);
    nonzero_n += __builtin_popcountll(nonzero);
    // Field 0, and the lanes past n (loaded as 0), lie 256 - w0 >= 17
    // above w0: outside the window, and the mask keeps them out of the
    // tail.
    const __m512i d = _mm512_sub_epi8(v, base);
    const __mmask64 outside = _mm512_mask_cmpge_epu8_mask(nonzero, d, width);
    _mm512_storeu_si512(tail + tail_n, _mm512_maskz_compress_epi8(outside, v));
    tail_n += __builtin_popcountll(outside);
    // The zero-masked forms: GCC 12 warns of the undefined upper lanes of
    // the plain ones.
    const __m256i d0 = _mm512_maskz_extracti64x4_epi64(0xF, d, 0);
    const __m256i d1 = _mm512_maskz_extracti64x4_epi64(0xF, d, 1);
#pragma GCC unroll 16
    for (int k = 0; k < kWindowBins; ++k) {
      const __m256i key = _mm256_set1_epi8(static_cast<char>(k));
      acc[k] = _mm256_sub_epi8(acc[k], _mm256_cmpeq_epi8(d0, key));
      acc[k] = _mm256_sub_epi8(acc[k], _mm256_cmpeq_epi8(d1, key));
    }
  }
  for (int k = 0; k < kWindowBins; ++k) {
    const __m256i sums = _mm256_sad_epu8(acc[k], _mm256_setzero_si256());
    counts[w0 + k] += static_cast<uint64_t>(_mm256_extract_epi64(sums, 0)) +
                      static_cast<uint64_t>(_mm256_extract_epi64(sums, 1)) +
                      static_cast<uint64_t>(_mm256_extract_epi64(sums, 2)) +
                      static_cast<uint64_t>(_mm256_extract_epi64(sums, 3));
  }
  counts[0] += static_cast<uint64_t>(n - nonzero_n);
  return tail_n;
}

bool CpuHasWindowCounting() {
  static const bool has = __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vbmi2");
  return has;
}

void CountWindowAndTail(const uint8_t* fields, int n, int lo, int hi,
                        uint64_t* counts) {
  // No normal entry: an empty window, which still counts the zeros.
  const int w0 = lo <= hi ? std::max(1, hi - kWindowBins + 1) : 1;
  alignas(64) uint8_t tail[kFieldBlock + 64];
  const int tail_n = CountWindowGatherTail(fields, n, w0, counts, tail);
  // The tail: field 255 and the normal fields below the window.
  CountEntryByEntry(tail, tail_n, lo, std::min(hi, w0 - 1), counts);
}
#else
bool CpuHasWindowCounting() { return false; }

// Never called: FieldCountingSupported is false.
void CountWindowAndTail(const uint8_t*, int, int, int, uint64_t*) {}
#endif

FieldCounting ChooseCounting(int n, int lo, int hi) {
  const int occupied = (lo <= hi ? hi - lo + 1 : 0) + 2;
  if (n < kDirectEntriesPerBin * std::min(occupied, kWindowBins + 2)) {
    return FieldCounting::kEntryByEntry;
  }
  if (CpuHasWindowCounting()) {
    return occupied <= kWindowBins + 2 || n < kMinWindowEntries
               ? FieldCounting::kComparison
               : FieldCounting::kWindowAndTail;
  }
  return occupied <= kMaxCompareBins && n >= kDirectEntriesPerBin * occupied
             ? FieldCounting::kComparison
             : FieldCounting::kEntryByEntry;
}

uint32_t Bits(const float* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return bits;
}

}  // namespace

GRADWATCH_WIDE_CLONES
void ExponentFields(const float* g, int n, uint8_t* fields, uint8_t* lo,
                    uint8_t* hi) {
  uint8_t low = 255, high = 0;
#pragma omp simd reduction(min : low) reduction(max : high)
  for (int i = 0; i < n; ++i) {
    const uint8_t field = static_cast<uint8_t>(Bits(g + i) >> 23);
    fields[i] = field;
    const bool normal = static_cast<uint8_t>(field - 1) < 254;
    const uint8_t as_low = normal ? field : 255;
    const uint8_t as_high = normal ? field : 0;
    low = low < as_low ? low : as_low;
    high = high > as_high ? high : as_high;
  }
  *lo = low;
  *hi = high;
}

bool FieldCountingSupported(FieldCounting way) {
  return way != FieldCounting::kWindowAndTail || CpuHasWindowCounting();
}

void CountExponentFields(const uint8_t* fields, int n, int lo, int hi,
                         uint64_t* counts, FieldCounting way) {
  if (way == FieldCounting::kAuto) way = ChooseCounting(n, lo, hi);
  switch (way) {
    case FieldCounting::kComparison:
      return CountOccupiedByComparison(fields, n, lo, hi, counts);
    case FieldCounting::kWindowAndTail:
      return CountWindowAndTail(fields, n, lo, hi, counts);
    case FieldCounting::kAuto:
    case FieldCounting::kEntryByEntry:
      return CountEntryByEntry(fields, n, lo, hi, counts);
  }
}

}  // namespace gradwatch::engine
