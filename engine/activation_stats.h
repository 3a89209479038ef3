#ifndef GRADWATCH_ENGINE_ACTIVATION_STATS_H_
#define GRADWATCH_ENGINE_ACTIVATION_STATS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// A layer's activation f and its parameters, as the dead and saturated
/// tests need them.
struct ActivationFunction {
  gradwatch::v1::Activation kind = gradwatch::v1::LINEAR;
  float negative_slope = 0;  // LEAKY_RELU
  float elu_alpha = 1;       // ELU

  /// From a LayerSpec with its defaults filled.
  static ActivationFunction FromSpec(const gradwatch::v1::LayerSpec& spec);

  /// The scale of the saturation test, max f' (SIGMOID 0.25, TANH 1, ELU's
  /// negative side 1, GELU 1.1289), or 0 for activations that never
  /// saturate (RELU, LEAKY_RELU, LINEAR, STEP).
  double MaxDerivative() const;
};

/// Activation health of a layer over a batch. Means and standard
/// deviations (population) cover every entry and follow IEEE arithmetic (a
/// NaN makes them NaN); z_min and z_max skip NaN (NaN when every entry is
/// NaN). z_negative_fraction counts z < 0 (not -0, not NaN).
struct ActivationMoments {
  double a_mean = 0;
  double a_std = 0;
  double z_mean = 0;
  double z_std = 0;
  double z_min = 0;
  double z_max = 0;
  double z_negative_fraction = 0;
  uint64_t z_nonfinite_count = 0;
};

/// The per-step statistics of one layer's pre-activation Z and activation
/// A = f(Z) over a batch ([rows][units], row-major):
///
/// - inactive: f'(z) == 0 as f32 arithmetic gives it, for every row:
///   RELU (and LEAKY_RELU with slope 0) z <= 0; STEP always; SIGMOID
///   a (1 - a) == 0; TANH 1 - a^2 == 0; ELU z <= 0 and a + alpha == 0; GELU
///   Phi(z) + z phi(z) == 0 computed from z in f32; LINEAR never.
/// - saturated: |f'(z)| < eps * max f' for every row, with the same f'
///   (ELU: negative side only); never for RELU, LEAKY_RELU, LINEAR, STEP.
///   A NaN derivative counts as active and unsaturated.
/// - ActivationMoments, and optionally a fixed-bin histogram of Z.
///
/// Both unit tests reduce to the largest |f'| of each unit over the batch
/// (0: inactive; below eps * max f': saturated), one vectorized max per
/// entry; for RELU, whose |f'| is 0 or 1, the loop that sums the entries
/// marks the units with an active one instead. Sums are accumulated in f32 over
/// chunks around a shift near the mean, then in double (relative error about
/// 1e-6; a chunk whose f32 sums overflow is summed again in double).
///
/// Every buffer is allocated in the constructor; Compute allocates
/// nothing. Not thread-safe: one caller at a time, except for the parts
/// of a split computation (ComputePart).
class ActivationStats {
 public:
  /// Compute takes at most `max_rows` rows. `histogram` is used when
  /// enabled (bins >= 2, min < max; defaults filled). A split computation
  /// of up to `max_parts` parts tells RELU's inactive units in the pass
  /// over the entries; of more parts, in a pass of its own (the same
  /// figures either way).
  ActivationStats(const ActivationFunction& f, int units, int max_rows,
                  double saturation_eps,
                  const gradwatch::v1::HistogramSpec& histogram,
                  int max_parts = 1);

  /// One pass over the batch's Z and A, `rows` rows of `units()` values.
  void Compute(const float* z, const float* a, int rows);

  /// Compute, split for several threads: ComputePart for each part in
  /// [0, parts), concurrently and once each, then Finish on one thread.
  /// Each part takes a share of the units (the maxima of |f'|; for RELU,
  /// up to max_parts parts, marks set with its entries instead, merged by
  /// Finish) and of the entries (the sums, per fixed chunk, added up by
  /// Finish in order): the figures do not depend on `parts`.
  void ComputePart(const float* z, const float* a, int rows, int part,
                   int parts);
  void Finish(const float* z, const float* a, int rows);

  /// Compute and ComputePart for RELU and LEAKY_RELU only, writing A =
  /// f(Z) into `a` as they go instead of reading it: the activation and
  /// its statistics in one pass over Z. A is what oneDNN's eltwise_relu
  /// forward writes, bit for bit (slope 0: max(z, +0), so NaN and -0 give
  /// +0; otherwise z > 0 ? z : slope * z), and the figures are those of
  /// Compute on it. Each part writes its share of the entries; Finish
  /// reads them all.
  void ComputeWritingActivation(const float* z, float* a, int rows);
  void ComputePartWritingActivation(const float* z, float* a, int rows,
                                    int part, int parts);

  int units() const { return units_; }
  /// Per unit, 1 if inactive (saturated) on every row of the last Compute.
  const std::vector<uint8_t>& inactive() const { return inactive_; }
  /// Per unit, the largest |f'| over the rows of the last Compute
  /// (infinity for activations that are never inactive or saturated).
  const std::vector<float>& max_abs_derivative() const {
    return max_abs_derivative_;
  }
  const std::vector<uint8_t>& saturated() const { return saturated_; }
  int inactive_units() const { return inactive_units_; }
  int saturated_units() const { return saturated_units_; }
  const ActivationMoments& moments() const { return moments_; }

  bool has_histogram() const { return histogram_bins_ > 0; }
  float histogram_min() const { return histogram_min_; }
  float histogram_max() const { return histogram_max_; }
  /// Counts per bin of [min, max): values below min fall into the first
  /// bin, values at or above max into the last; NaN is not counted.
  const uint64_t* histogram_counts() const { return histogram_.data(); }
  int histogram_bins() const { return histogram_bins_; }

  /// Clears inactive[j] for every unit j that is active on one of `rows`
  /// rows of z and a ([rows][units]): with inactive[] set to 1 before the
  /// first call, it accumulates "inactive on every row seen" over chunks.
  /// `scratch` holds `units` floats.
  static void ClearActiveUnits(const ActivationFunction& f, const float* z,
                               const float* a, int rows, int units,
                               uint8_t* inactive, float* scratch);

  /// Sums of one chunk of entries around the shifts, in f32 (internal).
  struct ChunkSums {
    float a_sum, a_sum_squares, z_sum, z_sum_squares;
    int32_t z_negative;
    float z_min, z_max;
  };

 private:
  // a_out null: read A from `a`; else write it there (a == a_out).
  void ComputePartImpl(const float* z, const float* a, float* a_out, int rows,
                       int part, int parts);
  void AddUpMoments(const float* z, const float* a, int64_t n);
  // Counts the bins of z[0, n) into one part's interleaved tables at
  // `tables` (histogram_.size() slots each), cleared first.
  void CountHistogram(const float* z, int64_t n, uint64_t* tables) const;

  ActivationFunction f_;
  int units_;
  int max_parts_;
  float saturation_threshold_;  // eps * max f', 0 when f never saturates
  std::vector<float> max_abs_derivative_;
  std::vector<uint8_t> inactive_;
  std::vector<uint8_t> saturated_;
  std::vector<ChunkSums> chunk_sums_;  // one per kMomentChunk entries
  std::pair<float, float> shifts_;     // of Z and A, from ComputePart
  // RELU: per part, per unit, -1 if the part's entries of the unit hold
  // one with z > 0 or NaN; marked_parts_ parts of the last computation
  // marked theirs (0: the maxima of |f'| were computed instead).
  std::vector<int32_t> part_active_;
  int marked_parts_ = 0;
  int inactive_units_ = 0;
  int saturated_units_ = 0;
  ActivationMoments moments_;
  int histogram_bins_ = 0;
  float histogram_min_ = 0;
  float histogram_max_ = 0;
  std::vector<uint64_t> histogram_;  // bins + 1: the last slot takes NaN
  // Per part, CountHistogram's tables; histogram_parts_ parts of the last
  // computation counted theirs (0: Finish counts the whole batch).
  std::vector<uint64_t> histogram_tables_;
  int histogram_parts_ = 0;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_ACTIVATION_STATS_H_
