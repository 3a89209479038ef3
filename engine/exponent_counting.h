#ifndef GRADWATCH_ENGINE_EXPONENT_COUNTING_H_
#define GRADWATCH_ENGINE_EXPONENT_COUNTING_H_

#include <cstdint>

namespace gradwatch::engine {

/// The exponent histogram's inner loop: how many entries of a block of
/// gradients have each biased exponent field (bits 23..30 of the f32:
/// 0 for zeros and subnormals, 255 for Inf and NaN, 1..254 for normal
/// values). The caller sweeps a buffer block by block: ExponentFields turns
/// a block into one byte per entry, CountExponentFields counts the bytes.
/// (On AVX-512 CPUs a pass of block_sweep_avx512.h replaces
/// ExponentFields, and counts most fields itself in the larger buffers.)
/// Functions only; thread-safe.

/// Entries per block at most.
inline constexpr int kFieldBlock = 4096;
inline constexpr int kFieldValues = 256;

/// fields[i] = the exponent field of g[i], for i < n <= kFieldBlock; *lo
/// and *hi bound the fields of the normal entries (*lo > *hi when there is
/// none).
void ExponentFields(const float* g, int n, uint8_t* fields, uint8_t* lo,
                    uint8_t* hi);

/// How CountExponentFields counts; every way gives the same counts.
enum class FieldCounting {
  /// The fastest way for the block's spread and the CPU.
  kAuto,
  /// Entry by entry: in interleaved tables, or straight into the counts
  /// when the entries are few for their spread.
  kEntryByEntry,
  /// By byte comparison against each occupied field.
  kComparison,
};

/// counts[f] += the entries of fields[0, n) equal to f, for every f, given
/// the bounds lo, hi of the normal fields that ExponentFields gave.
/// n <= kFieldBlock.
void CountExponentFields(const uint8_t* fields, int n, int lo, int hi,
                         uint64_t* counts,
                         FieldCounting way = FieldCounting::kAuto);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_EXPONENT_COUNTING_H_
