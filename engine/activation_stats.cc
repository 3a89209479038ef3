#include "engine/activation_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace gradwatch::engine {
namespace {

// Plain loops that GCC vectorizes, also built for AVX-512 and AVX2 on
// x86-64 and picked at load time (as in gradient_stats.cc).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define GRADWATCH_WIDE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GRADWATCH_WIDE_CLONES
#endif

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kInfBits = 0x7f800000u;
constexpr int kHistogramChunk = 1024;

// Each test returns 1 when the derivative at (z, a = f(z)) is exactly zero
// (Inactive) or below the saturation threshold (Saturated), computed in
// f32 as back-propagation computes it.
struct NeverTest {
  uint8_t Inactive(float, float) const { return 0; }
  uint8_t Saturated(float, float) const { return 0; }
};

struct ReluTest {
  uint8_t Inactive(float z, float) const { return z <= 0.0f; }
  uint8_t Saturated(float, float) const { return 0; }
};

struct StepTest {
  uint8_t Inactive(float, float) const { return 1; }
  uint8_t Saturated(float, float) const { return 0; }
};

struct SigmoidTest {
  float threshold;
  uint8_t Inactive(float, float a) const { return a * (1.0f - a) == 0.0f; }
  uint8_t Saturated(float, float a) const { return a * (1.0f - a) < threshold; }
};

struct TanhTest {
  float threshold;
  uint8_t Inactive(float, float a) const { return 1.0f - a * a == 0.0f; }
  uint8_t Saturated(float, float a) const { return 1.0f - a * a < threshold; }
};

// For z <= 0, f' = alpha * exp(z) = a + alpha: exactly 0 once exp(z) - 1
// rounds to -1.
struct EluTest {
  float alpha;
  float threshold;
  uint8_t Inactive(float z, float a) const {
    return (z <= 0.0f) & (a + alpha == 0.0f);
  }
  uint8_t Saturated(float z, float a) const {
    return (z <= 0.0f) & (a + alpha < threshold);
  }
};

float GeluDerivative(float z) {
  const float cdf = 0.5f * (1.0f + std::erf(z * kInvSqrt2));
  const float pdf = kInvSqrt2Pi * std::exp(-0.5f * z * z);
  return cdf + z * pdf;
}

// Updates the per-unit flags row by row and stops as soon as no unit can
// still be inactive or saturated on every row.
template <bool kWithSaturation, class Test>
void ScanRows(const Test& test, const float* z, const float* a, int rows,
              int units, uint8_t* inactive, uint8_t* saturated) {
  for (int r = 0; r < rows; ++r) {
    const float* zr = z + static_cast<int64_t>(r) * units;
    const float* ar = a + static_cast<int64_t>(r) * units;
    uint8_t any = 0;
    for (int j = 0; j < units; ++j) {
      const uint8_t in = inactive[j] & test.Inactive(zr[j], ar[j]);
      inactive[j] = in;
      any |= in;
      if constexpr (kWithSaturation) {
        const uint8_t sat = saturated[j] & test.Saturated(zr[j], ar[j]);
        saturated[j] = sat;
        any |= sat;
      }
    }
    if (any == 0) return;
  }
}

// GELU's derivative needs erf and exp, so it is evaluated only for units
// whose flags are still set.
template <bool kWithSaturation>
void ScanGeluRows(float threshold, const float* z, int rows, int units,
                  uint8_t* inactive, uint8_t* saturated) {
  for (int r = 0; r < rows; ++r) {
    const float* zr = z + static_cast<int64_t>(r) * units;
    uint8_t any = 0;
    for (int j = 0; j < units; ++j) {
      uint8_t pending = inactive[j];
      if constexpr (kWithSaturation) pending |= saturated[j];
      if (pending == 0) continue;
      const float d = GeluDerivative(zr[j]);
      inactive[j] &= d == 0.0f;
      any |= inactive[j];
      if constexpr (kWithSaturation) {
        saturated[j] &= std::fabs(d) < threshold;
        any |= saturated[j];
      }
    }
    if (any == 0) return;
  }
}

template <bool kWithSaturation>
void Scan(const ActivationFunction& f, float threshold, const float* z,
          const float* a, int rows, int units, uint8_t* inactive,
          uint8_t* saturated) {
  auto run = [&](const auto& test) {
    ScanRows<kWithSaturation>(test, z, a, rows, units, inactive, saturated);
  };
  switch (f.kind) {
    case v1::RELU:
      return run(ReluTest{});
    case v1::LEAKY_RELU:
      return f.negative_slope == 0.0f ? run(ReluTest{}) : run(NeverTest{});
    case v1::STEP:
      return run(StepTest{});
    case v1::SIGMOID:
      return run(SigmoidTest{threshold});
    case v1::TANH:
      return run(TanhTest{threshold});
    case v1::ELU:
      return run(EluTest{f.elu_alpha, threshold});
    case v1::GELU:
      return ScanGeluRows<kWithSaturation>(threshold, z, rows, units, inactive,
                                           saturated);
    default:
      return run(NeverTest{});
  }
}

bool CanBeInactive(const ActivationFunction& f) {
  switch (f.kind) {
    case v1::RELU:
    case v1::STEP:
    case v1::SIGMOID:
    case v1::TANH:
    case v1::ELU:
    case v1::GELU:
      return true;
    case v1::LEAKY_RELU:
      return f.negative_slope == 0.0f;
    default:
      return false;
  }
}

struct MomentSums {
  double a_sum, a_sum_squares, z_sum, z_sum_squares, z_negative, z_nonfinite;
  float z_min, z_max;
};

// Counts are accumulated in double (exact below 2^53) so that every
// reduction of the loop has the same width.
GRADWATCH_WIDE_CLONES
void SumMoments(const float* z, const float* a, int64_t n, MomentSums* out) {
  double a_sum = 0, a_sum_squares = 0, z_sum = 0, z_sum_squares = 0;
  double z_negative = 0, z_nonfinite = 0;
  float z_min = std::numeric_limits<float>::infinity();
  float z_max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(+ : a_sum, a_sum_squares, z_sum, z_sum_squares, \
                               z_negative, z_nonfinite)                      \
    reduction(min : z_min) reduction(max : z_max)
  for (int64_t i = 0; i < n; ++i) {
    const float zf = z[i];
    const double av = a[i];
    const double zv = zf;
    a_sum += av;
    a_sum_squares += av * av;
    z_sum += zv;
    z_sum_squares += zv * zv;
    z_negative += zf < 0.0f ? 1.0 : 0.0;
    uint32_t bits;
    std::memcpy(&bits, &zf, sizeof(bits));
    z_nonfinite += (bits & kAbsMask) >= kInfBits ? 1.0 : 0.0;
    z_min = zf < z_min ? zf : z_min;
    z_max = zf > z_max ? zf : z_max;
  }
  *out = {a_sum,      a_sum_squares, z_sum, z_sum_squares,
          z_negative, z_nonfinite,   z_min, z_max};
}

double PopulationStd(double sum, double sum_squares, double n) {
  const double mean = sum / n;
  return std::sqrt(std::max(0.0, sum_squares / n - mean * mean));
}

int CountSet(const std::vector<uint8_t>& flags) {
  int count = 0;
  for (uint8_t flag : flags) count += flag;
  return count;
}

}  // namespace

ActivationFunction ActivationFunction::FromSpec(const v1::LayerSpec& spec) {
  ActivationFunction f;
  f.kind = spec.activation() == v1::ACTIVATION_UNSPECIFIED ? v1::LINEAR
                                                           : spec.activation();
  f.negative_slope = spec.negative_slope();
  f.elu_alpha = spec.has_elu_alpha() ? spec.elu_alpha() : 1.0f;
  return f;
}

double ActivationFunction::MaxDerivative() const {
  switch (kind) {
    case v1::SIGMOID:
      return 0.25;
    case v1::TANH:
    case v1::ELU:
      return 1.0;
    case v1::GELU: {
      // f'' = phi(z) (2 - z^2): the maximum is at z = sqrt(2).
      const double pi = 3.14159265358979323846;
      return 0.5 * (1.0 + std::erf(1.0)) +
             std::sqrt(2.0) * std::exp(-1.0) / std::sqrt(2.0 * pi);
    }
    default:
      return 0.0;
  }
}

ActivationStats::ActivationStats(const ActivationFunction& f, int units,
                                 double saturation_eps,
                                 const v1::HistogramSpec& histogram)
    : f_(f),
      units_(units),
      saturation_threshold_(
          static_cast<float>(saturation_eps * f.MaxDerivative())),
      inactive_(units, 0),
      saturated_(units, 0) {
  if (histogram.enabled() && histogram.bins() >= 2 &&
      histogram.min() < histogram.max()) {
    histogram_bins_ = static_cast<int>(histogram.bins());
    histogram_min_ = histogram.min();
    histogram_max_ = histogram.max();
    histogram_.assign(histogram_bins_ + 1, 0);
  }
}

void ActivationStats::Compute(const float* z, const float* a, int rows) {
  std::fill(inactive_.begin(), inactive_.end(), CanBeInactive(f_) ? 1 : 0);
  std::fill(saturated_.begin(), saturated_.end(),
            saturation_threshold_ > 0 ? 1 : 0);
  Scan<true>(f_, saturation_threshold_, z, a, rows, units_, inactive_.data(),
             saturated_.data());
  inactive_units_ = CountSet(inactive_);
  saturated_units_ = CountSet(saturated_);

  const int64_t n = static_cast<int64_t>(rows) * units_;
  moments_ = ActivationMoments();
  if (n > 0) {
    MomentSums sums;
    SumMoments(z, a, n, &sums);
    const double count = static_cast<double>(n);
    moments_.a_mean = sums.a_sum / count;
    moments_.a_std = PopulationStd(sums.a_sum, sums.a_sum_squares, count);
    moments_.z_mean = sums.z_sum / count;
    moments_.z_std = PopulationStd(sums.z_sum, sums.z_sum_squares, count);
    const bool any_number = sums.z_min <= sums.z_max;
    moments_.z_min = any_number ? sums.z_min : std::nan("");
    moments_.z_max = any_number ? sums.z_max : std::nan("");
    moments_.z_negative_fraction = sums.z_negative / count;
    moments_.z_nonfinite_count = static_cast<uint64_t>(sums.z_nonfinite);
  }
  if (has_histogram()) {
    std::fill(histogram_.begin(), histogram_.end(), 0);
    AddToHistogram(z, n);
  }
}

void ActivationStats::AddToHistogram(const float* z, int64_t n) {
  const double lo = histogram_min_;
  const double scale = histogram_bins_ / (static_cast<double>(histogram_max_) -
                                          static_cast<double>(histogram_min_));
  const double top = histogram_bins_ - 1;
  const int nan_slot = histogram_bins_;
  int32_t index[kHistogramChunk];
  for (int64_t start = 0; start < n; start += kHistogramChunk) {
    const int count =
        static_cast<int>(std::min<int64_t>(kHistogramChunk, n - start));
    const float* zc = z + start;
    for (int i = 0; i < count; ++i) {
      // NaN fails both comparisons and lands on `top`, then in the NaN
      // slot; ±Inf clamp to the end bins.
      const double t = (static_cast<double>(zc[i]) - lo) * scale;
      const double clamped = t < 0 ? 0 : (t < top ? t : top);
      index[i] = zc[i] == zc[i] ? static_cast<int32_t>(clamped) : nan_slot;
    }
    for (int i = 0; i < count; ++i) ++histogram_[index[i]];
  }
}

void ActivationStats::ClearActiveUnits(const ActivationFunction& f,
                                       const float* z, const float* a, int rows,
                                       int units, uint8_t* inactive) {
  if (!CanBeInactive(f)) {
    std::fill(inactive, inactive + units, 0);
    return;
  }
  Scan<false>(f, 0.0f, z, a, rows, units, inactive, nullptr);
}

}  // namespace gradwatch::engine
