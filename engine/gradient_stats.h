#ifndef GRADWATCH_ENGINE_GRADIENT_STATS_H_
#define GRADWATCH_ENGINE_GRADIENT_STATS_H_

#include <array>
#include <cstdint>

#include "gradwatch/v1/events.pb.h"

namespace gradwatch::engine {

/// Binary exponents floor(log2|g|) of finite nonzero f32 values: subnormals
/// span [-149, -127], normal values [-126, 127].
inline constexpr int kMinExponent = -149;
inline constexpr int kMaxExponent = 127;
inline constexpr int kExponentBins = kMaxExponent - kMinExponent + 1;

/// The figures of one sweep over a gradient buffer. A caller keeps one per
/// buffer and passes it to every SweepGradient call of that buffer: it is
/// the sweep's output and its only memory (no allocation per call), and
/// the last sweep's exponent range tells the next where to look. Aligned
/// to a cache line, so that summaries swept on another thread (a
/// SpareThread) share no line with the caller's data.
///
/// Sums and the maximum follow IEEE arithmetic over every counted entry:
/// one NaN makes sum_squares, sum_abs and max_abs NaN, an Inf makes them
/// Inf; the counts say which entries did it. The sums are accumulated in
/// f32 within blocks of 4096 entries and in double across blocks (relative
/// error about 1e-6, at most 1e-4); blocks whose largest |g| is outside
/// [2^-50, 2^50) are summed in double, so that no square overflows or
/// vanishes.
struct alignas(64) GradientSummary {
  int64_t size = 0;  // entries counted (padding excluded)
  double sum_squares = 0;
  double sum_abs = 0;
  float max_abs = 0;
  int64_t zeros = 0;  // +0 and -0
  int64_t subnormals = 0;
  int64_t nans = 0;
  int64_t infs = 0;
  // exponent_counts[e - kMinExponent] = entries with floor(log2|g|) == e;
  // every entry outside [first_bin, end_bin) is 0 (empty range: none).
  std::array<uint64_t, kExponentBins> exponent_counts{};
  int first_bin = 0;
  int end_bin = 0;
  // SweepGradient's own counts, per biased exponent field (0 to 255) and
  // per subnormal binade, zero between calls: a sweep clears only the
  // entries it used, not all of them (which cost more than sweeping a
  // bias of 64 entries).
  std::array<uint64_t, 256> field_scratch{};
  std::array<uint64_t, -126 - kMinExponent> subnormal_scratch{};

  double l2_norm() const;
  double mean_abs() const;
  double zero_fraction() const;
};

/// One fused sweep over `grad[0, n)`: sum of squares, sum and maximum of
/// |g|, and the counts of zeros, subnormals (0 < |g| < FLT_MIN), NaN, ±Inf
/// and entries per binary exponent, computed from the bit patterns.
/// `padding` entries of the buffer (the zero padding of a blocked layout,
/// exactly +0 by construction) are excluded from the figures. Buffers of
/// at least kParallelSweepElements entries are split over the calling
/// thread's OpenMP threads; the result does not depend on the timing.
void SweepGradient(const float* grad, int64_t n, int64_t padding,
                   GradientSummary& out);

/// Buffers this large are swept by several threads.
inline constexpr int64_t kParallelSweepElements = int64_t{1} << 16;

/// Sum of x[i]^2 in double precision (vectorized; split over the OpenMP
/// threads from kParallelSweepElements entries, deterministically).
double SumOfSquares(const float* x, int64_t n);

/// Writes the gradient figures of `summary` into `stats` (size, norms,
/// fractions, counts and the occupied range of the exponent histogram),
/// reusing the storage of its repeated fields.
void FillGradientStats(const GradientSummary& summary,
                       gradwatch::v1::TensorStats* stats);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_GRADIENT_STATS_H_
