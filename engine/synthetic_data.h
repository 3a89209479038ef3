#ifndef GRADWATCH_ENGINE_SYNTHETIC_DATA_H_
#define GRADWATCH_ENGINE_SYNTHETIC_DATA_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/dataset.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Generates the examples of a SyntheticData spec, bit-identical for a given
/// spec on every platform (all draws come from engine/random.h's Rng).
///
/// Zero-valued fields take the defaults of spec.proto (samples 1000,
/// features 2, classes 3 for SPIRALS and BLOBS, 2 for XOR, MOONS and CIRCLES,
/// 1 output for TEACHER_STUDENT), so the function is usable without
/// WithDefaults. Out-of-range fields give INVALID_ARGUMENT naming
/// `data.synthetic.<field>`.
///
/// Rows are not shuffled (SplitDataset and Batcher do that). Classification
/// row i has class k = i % classes, so classes are balanced to within one
/// row; within class k, j = i / classes counts the class's rows, and n_k is
/// the number of rows of class k. Construction, with normal draws N(mean,
/// variance) and uniform draws U(a, b) from Rng(seed), in row order unless
/// stated:
///
/// - SPIRALS: t = j / n_k, angle = 4 t + 2 pi k / classes,
///   x = (t sin(angle), t cos(angle)). No draws; |x| < 1.
/// - XOR: x0, x1 ~ U(-1, 1) (redrawn while either is exactly 0); if the sign
///   of x0 * x1 disagrees with the class (1 for x0 * x1 > 0, else 0), x1 is
///   negated. Each class is uniform over its two quadrants.
/// - MOONS (scikit-learn's make_moons): a = pi * j / (n_k - 1) (0 if
///   n_k == 1); class 0: x = (cos a, sin a); class 1: x = (1 - cos a,
///   0.5 - sin a). No draws.
/// - CIRCLES (scikit-learn's make_circles, factor 0.5): a = 2 pi j / n_k;
///   class 0: x = (cos a, sin a); class 1: x = 0.5 (cos a, sin a). No draws.
/// - BLOBS: first the centers, c_k ~ U(-5, 5)^features (k = 0, 1, ...,
///   coordinates in order); then row by row x = c_k + N(0, 1) per coordinate.
/// - TEACHER_STUDENT (regression, target_width = classes): first the teacher,
///   W1 [features][32] ~ N(0, 1/features) row-major, b1 [32] ~ N(0, 0.1^2),
///   W2 [32][classes] ~ N(0, 1/32) row-major (no output bias); then x row by
///   row, x ~ N(0, I); y = tanh(x W1 + b1) W2, computed in double.
///
/// Noise: when noise > 0, every input coordinate (TEACHER_STUDENT: every
/// target instead) gets noise * N(0, 1) added, drawn row-major from a
/// second generator Rng(seed ^ kNoiseSeedMask), so the noise-free values are
/// identical for every noise level. For BLOBS the points then have standard
/// deviation sqrt(1 + noise^2) around their center.
absl::StatusOr<Dataset> GenerateSynthetic(
    const gradwatch::v1::SyntheticData& spec);

/// XOR-ed into the seed to derive the noise generator's seed.
inline constexpr uint64_t kNoiseSeedMask = 0x6a09e667f3bcc908ULL;

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_SYNTHETIC_DATA_H_
