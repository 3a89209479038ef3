#ifndef GRADWATCH_ENGINE_BLOCK_SWEEP_AVX512_H_
#define GRADWATCH_ENGINE_BLOCK_SWEEP_AVX512_H_

#include <cstdint>

namespace gradwatch::engine {

/// One block's figures from a single pass over its floats, on CPUs with
/// AVX-512 F and BW: the gradient sweep's sums, maximum and zeros, and
/// the counts of its exponent fields (exponent_counting.h), which the
/// portable sweep gets from three passes. Loading each entry once lets the
/// counting run while the block streams in from memory.
///
/// The exponent fields are counted in a window of 32 fields ending at
/// `window_top`, bit-sliced in carry-save adders; zeros by a mask; the
/// other entries (the tail: subnormals, Inf, NaN and fields below the
/// window) are compressed out and counted entry by entry. The window is a
/// guess (the previous block's highest field): a wrong one only makes the
/// tail longer. Functions only; thread-safe.

/// What one pass gives. Sums in f32, as the portable sweep's first pass.
struct BlockFigures {
  float sum_squares = 0;
  float sum_abs = 0;
  // Maximum of |g|'s bit patterns (NaN above Inf).
  uint32_t max_abs_bits = 0;
  uint32_t zeros = 0;
  // Bounds of the normal entries' fields (lo > hi: none).
  uint8_t lo = 255;
  uint8_t hi = 0;
};

/// Whether this CPU runs SweepBlockFused.
bool BlockSweepFusedSupported();

/// Blocks smaller than this are left to the portable sweep.
inline constexpr int kMinFusedBlock = 2048;

/// Sweeps g[0, n), kMinFusedBlock <= n <= kFieldBlock: fills `out` and
/// adds each field's entries to counts[field]. window_top in [1, 254].
/// Only where BlockSweepFusedSupported().
void SweepBlockFused(const float* g, int n, int window_top, uint64_t* counts,
                     BlockFigures* out);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_BLOCK_SWEEP_AVX512_H_
