#include "engine/exponent_counting.h"

#include <algorithm>
#include <cstring>

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

// Counts fields 0, 255 and [lo, hi] entry by entry in kTables interleaved
// tables: neighbouring gradients mostly share an exponent, and with several
// tables an increment rarely waits on the previous one's store. Only the
// tables' occupied entries are cleared and read.
template <int kTables>
void CountInTables(const uint8_t* fields, int n, int lo, int hi,
                   uint64_t* counts) {
  static_assert(kFieldBlock <= UINT16_MAX, "16-bit counts");
  uint16_t tables[kTables][kFieldValues];
  auto for_each_field = [lo, hi](auto&& visit) {
    visit(0);
    for (int f = lo; f <= hi; ++f) visit(f);
    visit(255);
  };
  for_each_field([&](int f) {
    for (auto& table : tables) table[f] = 0;
  });
  int i = 0;
  for (; i + kTables <= n; i += kTables) {
    for (int t = 0; t < kTables; ++t) ++tables[t][fields[i + t]];
  }
  for (; i < n; ++i) ++tables[0][fields[i]];
  // Added up in 16 bits (a block's entries fit), then widened once.
  for_each_field([&](int f) {
    uint16_t total = 0;
    for (const auto& table : tables) total += table[f];
    counts[f] += total;
  });
}

// Eight tables, unless the entries are fewer than kTablesEntriesPerField
// per occupied field (a bias, a gathered padded tensor, a fused block's
// tail): clearing and reading the tables would then cost more than the
// waits they save. Those few entries are added to `counts` one by one,
// with no table to clear and read back over their often wide field
// range (tiny's collected step costs a point less of its plain step's
// time than with one table).
constexpr int kDirectTables = 8;
constexpr int kTablesEntriesPerField = 8;

void CountEntryByEntry(const uint8_t* fields, int n, int lo, int hi,
                       uint64_t* counts) {
  const int occupied = (lo <= hi ? hi - lo + 1 : 0) + 2;
  if (n >= kTablesEntriesPerField * occupied) {
    CountInTables<kDirectTables>(fields, n, lo, hi, counts);
  } else {
    for (int i = 0; i < n; ++i) ++counts[fields[i]];
  }
}

FieldCounting ChooseCounting(int n, int lo, int hi) {
  const int occupied = (lo <= hi ? hi - lo + 1 : 0) + 2;
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

void CountExponentFields(const uint8_t* fields, int n, int lo, int hi,
                         uint64_t* counts, FieldCounting way) {
  if (way == FieldCounting::kAuto) way = ChooseCounting(n, lo, hi);
  switch (way) {
    case FieldCounting::kComparison:
      return CountOccupiedByComparison(fields, n, lo, hi, counts);
    case FieldCounting::kAuto:
    case FieldCounting::kEntryByEntry:
      return CountEntryByEntry(fields, n, lo, hi, counts);
  }
}

}  // namespace gradwatch::engine
