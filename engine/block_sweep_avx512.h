#ifndef GRADWATCH_ENGINE_BLOCK_SWEEP_AVX512_H_
#define GRADWATCH_ENGINE_BLOCK_SWEEP_AVX512_H_

#include <cstdint>

#include "engine/exponent_counting.h"

namespace gradwatch::engine {

/// Gradient figures from a single pass over the floats, on CPUs with
/// AVX-512 F and BW: the gradient sweep's sums, maximum and zeros, and the
/// counts of its exponent fields (exponent_counting.h), which the portable
/// sweep gets from three passes. Loading each entry once lets the counting
/// run while the buffer streams in from memory.
///
/// The exponent fields are counted in 1 to kMaxWindows windows of 32
/// fields, next to each other below a top field, bit-sliced in carry-save
/// adders; the other nonzero entries (the tail: subnormals, Inf, NaN and
/// fields below the windows) are compressed out and counted entry by
/// entry; zeros are what neither holds. The windows are a guess (the same
/// tensor's last sweep): a wrong one only makes the tail longer.
/// Functions only; thread-safe.

/// Where the fused pass counts exponent fields bit-sliced: `count` windows
/// of 32 fields, the highest ending at field `top`, in [1, 254].
struct ExponentWindows {
  int top = 127;
  int count = 1;
};
inline constexpr int kMaxWindows = 4;

/// What one pass gives. Sums in f32, as the portable sweep's first pass.
struct BlockFigures {
  float sum_squares = 0;
  float sum_abs = 0;
  // Maximum of |g|'s bit patterns (NaN above Inf).
  uint32_t max_abs_bits = 0;
  uint32_t zeros = 0;
  uint32_t subnormals = 0;
  // Bounds of the normal entries' fields (lo > hi: none).
  uint8_t lo = 255;
  uint8_t hi = 0;
};

/// Blocks (of kFieldBlock entries) that one fused call sweeps at most: the
/// windows' counters are read out once per call, which costs about as much
/// as counting a few hundred entries.
inline constexpr int kFusedSpanBlocks = 8;
inline constexpr int kFusedSpan = kFusedSpanBlocks * kFieldBlock;

/// What one fused call gives: the whole span's zeros, subnormals and
/// bounds in `span`, and each block's f32 sums and maximum in `blocks`
/// (sum_squares, sum_abs and max_abs_bits only), so that the caller can
/// check, block by block as the portable sweep does, that f32 sums suffice.
struct SpanFigures {
  BlockFigures span;
  BlockFigures blocks[kFusedSpanBlocks];
};

/// Whether this CPU runs SweepSpanFused and SweepBlockCompact.
bool BlockSweepFusedSupported();

/// Spans shorter than this are left to the portable sweep.
inline constexpr int kMinFusedBlock = 2048;

/// Sweeps g[0, n), n <= kFusedSpan, block k being g[k kFieldBlock, ...):
/// fills `out`, adds each field's entries to counts[field] (field 0: zeros
/// and subnormals), and each subnormal to subnormal_counts[b], b = the
/// index of its highest set bit (its binade is 2^(b - 149)). Only where
/// BlockSweepFusedSupported().
void SweepSpanFused(const float* g, int n, ExponentWindows windows,
                    uint64_t* counts, uint64_t* subnormal_counts,
                    SpanFigures* out);

/// The pass for blocks the fused pass leaves to the portable one: fills
/// `out`'s sums, maximum, zero count and the bounds of the normal fields
/// (lo > hi when there is none), and writes the exponent fields of the
/// entries whose field is not 0 (zeros and subnormals left out), in order,
/// into fields[0, m); returns m. `fields` has room for n + 16. The zeros of
/// dead units' gradients are then not counted one by one. Only where
/// BlockSweepFusedSupported().
int SweepBlockCompact(const float* g, int n, uint8_t* fields,
                      BlockFigures* out);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_BLOCK_SWEEP_AVX512_H_
