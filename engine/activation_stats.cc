#include "engine/activation_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/relu_chunk_avx512.h"
#include "engine/simd_clones.h"

namespace gradwatch::engine {
namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kInfBits = 0x7f800000u;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kHistogramChunk = 1024;
// Z's bins are counted in this many tables in turn: neighbouring entries
// mostly share a bin, and with one table each increment would wait for the
// previous one's store.
constexpr int kHistogramTables = 8;
// Entries per f32 partial sum: each of 16 lanes adds at most 64 terms.
constexpr int kMomentChunk = 1024;
constexpr int kShiftSample = 64;

// index[i] = the histogram bin of z[i]: (z[i] - lo) * scale, clamped to
// [0, top] (±Inf to the end bins), or nan_slot for NaN. The clamp is a
// maximum and a minimum in that order, which NaN leaves at 0.
GRADWATCH_WIDE_CLONES
void HistogramBins(const float* z, int n, double lo, double scale, double top,
                   int32_t nan_slot, int32_t* index) {
  for (int i = 0; i < n; ++i) {
    const double t = (static_cast<double>(z[i]) - lo) * scale;
    const double clamped = std::min(top, std::max(0.0, t));
    index[i] = z[i] == z[i] ? static_cast<int32_t>(clamped) : nan_slot;
  }
}

// f'(z) as back-propagation computes it in f32, from z and a = f(z).
struct ReluDerivative {
  float operator()(float z, float) const { return z <= 0.0f ? 0.0f : 1.0f; }
};

struct SigmoidDerivative {
  float operator()(float, float a) const { return a * (1.0f - a); }
};

struct TanhDerivative {
  float operator()(float, float a) const { return 1.0f - a * a; }
};

// For z <= 0, f' = alpha * exp(z) = a + alpha: exactly 0 once exp(z) - 1
// rounds to -1.
struct EluDerivative {
  float alpha;
  float operator()(float z, float a) const {
    return z > 0.0f ? 1.0f : a + alpha;
  }
};

float GeluDerivative(float z) {
  const float cdf = 0.5f * (1.0f + std::erf(z * kInvSqrt2));
  const float pdf = kInvSqrt2Pi * std::exp(-0.5f * z * z);
  return cdf + z * pdf;
}

// NaN becomes +Inf so that it counts as active.
inline float AbsOrInf(float d) {
  const float v = std::fabs(d);
  return v == v ? v : kInf;
}

// max_abs[j] = max over rows of |f'| for units j < units of rows `stride`
// apart; inlined into the vectorized clones below. Blocks of kUnitBlock
// units keep their maxima in registers over all rows: read from and stored
// to max_abs, each row's maxima would wait on the previous row's stores.
constexpr int kUnitBlock = 32;

template <class Derivative>
inline void MaxAbsDerivative(const Derivative& derivative, const float* z,
                             const float* a, int rows, int stride, int units,
                             float* max_abs) {
  int j0 = 0;
  for (; j0 + kUnitBlock <= units; j0 += kUnitBlock) {
    float block[kUnitBlock] = {};
    for (int r = 0; r < rows; ++r) {
      const int64_t offset = static_cast<int64_t>(r) * stride + j0;
      for (int k = 0; k < kUnitBlock; ++k) {
        const float v = AbsOrInf(derivative(z[offset + k], a[offset + k]));
        block[k] = v > block[k] ? v : block[k];
      }
    }
    std::copy(block, block + kUnitBlock, max_abs + j0);
  }
  std::fill(max_abs + j0, max_abs + units, 0.0f);
  for (int r = 0; r < rows; ++r) {
    const int64_t offset = static_cast<int64_t>(r) * stride;
    for (int j = j0; j < units; ++j) {
      const float v = AbsOrInf(derivative(z[offset + j], a[offset + j]));
      max_abs[j] = v > max_abs[j] ? v : max_abs[j];
    }
  }
}

GRADWATCH_WIDE_CLONES
void MaxAbsRelu(const float* z, const float* a, int rows, int stride, int units,
                float* max_abs) {
  MaxAbsDerivative(ReluDerivative{}, z, a, rows, stride, units, max_abs);
}

GRADWATCH_WIDE_CLONES
void MaxAbsSigmoid(const float* z, const float* a, int rows, int stride,
                   int units, float* max_abs) {
  MaxAbsDerivative(SigmoidDerivative{}, z, a, rows, stride, units, max_abs);
}

GRADWATCH_WIDE_CLONES
void MaxAbsTanh(const float* z, const float* a, int rows, int stride, int units,
                float* max_abs) {
  MaxAbsDerivative(TanhDerivative{}, z, a, rows, stride, units, max_abs);
}

GRADWATCH_WIDE_CLONES
void MaxAbsElu(float alpha, const float* z, const float* a, int rows,
               int stride, int units, float* max_abs) {
  MaxAbsDerivative(EluDerivative{alpha}, z, a, rows, stride, units, max_abs);
}

// GELU's derivative needs erf and exp: it is evaluated only for units whose
// maximum is still below `stop`, past which neither test can hold.
void MaxAbsGelu(float stop, const float* z, int rows, int stride, int units,
                float* max_abs) {
  std::fill(max_abs, max_abs + units, 0.0f);
  for (int r = 0; r < rows; ++r) {
    const float* zr = z + static_cast<int64_t>(r) * stride;
    for (int j = 0; j < units; ++j) {
      if (max_abs[j] >= stop) continue;
      max_abs[j] = std::max(max_abs[j], AbsOrInf(GeluDerivative(zr[j])));
    }
  }
}

// Fills max_abs per f for `units` units of rows `stride` apart (+Inf for
// activations that are never inactive or saturated).
void ComputeMaxAbsDerivative(const ActivationFunction& f, float gelu_stop,
                             const float* z, const float* a, int rows,
                             int stride, int units, float* max_abs) {
  switch (f.kind) {
    case v1::RELU:
      return MaxAbsRelu(z, a, rows, stride, units, max_abs);
    case v1::LEAKY_RELU:
      if (f.negative_slope == 0.0f) {
        return MaxAbsRelu(z, a, rows, stride, units, max_abs);
      }
      break;
    case v1::STEP:
      std::fill(max_abs, max_abs + units, 0.0f);
      return;
    case v1::SIGMOID:
      return MaxAbsSigmoid(z, a, rows, stride, units, max_abs);
    case v1::TANH:
      return MaxAbsTanh(z, a, rows, stride, units, max_abs);
    case v1::ELU:
      return MaxAbsElu(f.elu_alpha, z, a, rows, stride, units, max_abs);
    case v1::GELU:
      return MaxAbsGelu(gelu_stop, z, rows, stride, units, max_abs);
    default:
      break;
  }
  std::fill(max_abs, max_abs + units, kInf);
}

using ChunkSums = ActivationStats::ChunkSums;

// A = f(z) of ReLU and leaky ReLU as oneDNN's eltwise_relu forward gives
// it: with slope 0, max(z, +0) (so NaN and -0 give +0); otherwise
// z > 0 ? z : slope * z.
inline float Relu(float z, float slope) {
  return z > 0.0f ? z : (slope == 0.0f ? 0.0f : slope * z);
}

// A chunk's sums are kept in vectors of kSumLanes lanes (GCC's vector
// extensions), two sets used in turn: with one set, as `omp simd` gives
// it, every vector of entries waited for the previous one's additions
// (four cycles of FMA latency per 16 entries on Zen 4).
constexpr int kSumLanes = 16;
using SumLanes [[gnu::vector_size(kSumLanes * sizeof(float))]] = float;
using CountLanes [[gnu::vector_size(kSumLanes * sizeof(int32_t))]] = int32_t;

// Helpers take and give vectors by reference (passed by value, 64-byte
// vectors would change the calling convention between the clones), and
// are always inlined: a helper left out of line is built for the baseline
// instruction set, where a 16-float vector is four SSE registers.
[[gnu::always_inline]] inline void LoadLanes(const float* p, SumLanes& v) {
  std::memcpy(&v, p, sizeof(v));
}

[[gnu::always_inline]] inline void StoreLanes(float* p, const SumLanes& v) {
  std::memcpy(p, &v, sizeof(v));
}

struct LaneSums {
  SumLanes a_sum[2] = {}, a_sum_squares[2] = {}, z_sum[2] = {},
           z_sum_squares[2] = {};
  SumLanes z_min = SumLanes{} + kInf, z_max = SumLanes{} - kInf;
  CountLanes z_negative = {};

  // One vector of entries into set h; NaN is skipped by the extrema.
  [[gnu::always_inline]] void Add(int h, const SumLanes& z, const SumLanes& a,
                                  const SumLanes& z_shift,
                                  const SumLanes& a_shift) {
    const SumLanes ad = a - a_shift;
    const SumLanes zd = z - z_shift;
    a_sum[h] += ad;
    a_sum_squares[h] += ad * ad;
    z_sum[h] += zd;
    z_sum_squares[h] += zd * zd;
    z_negative -= z < 0.0f;  // a true comparison is -1
    z_min = z < z_min ? z : z_min;
    z_max = z > z_max ? z : z_max;
  }

  // The lanes added in a fixed order. Read through arrays: indexing the
  // vectors' lanes at run time would keep them in memory in the loop.
  [[gnu::always_inline]] ChunkSums Reduce() const {
    float lanes[7][kSumLanes];
    int32_t negative[kSumLanes];
    const SumLanes pairs[4] = {
        a_sum[0] + a_sum[1], a_sum_squares[0] + a_sum_squares[1],
        z_sum[0] + z_sum[1], z_sum_squares[0] + z_sum_squares[1]};
    std::memcpy(lanes, pairs, sizeof(pairs));
    std::memcpy(lanes[4], &z_min, sizeof(z_min));
    std::memcpy(lanes[5], &z_max, sizeof(z_max));
    std::memcpy(negative, &z_negative, sizeof(negative));
    ChunkSums out{0, 0, 0, 0, 0, kInf, -kInf};
    for (int k = 0; k < kSumLanes; ++k) {
      out.a_sum += lanes[0][k];
      out.a_sum_squares += lanes[1][k];
      out.z_sum += lanes[2][k];
      out.z_sum_squares += lanes[3][k];
      out.z_negative += negative[k];
      out.z_min = lanes[4][k] < out.z_min ? lanes[4][k] : out.z_min;
      out.z_max = lanes[5][k] > out.z_max ? lanes[5][k] : out.z_max;
    }
    return out;
  }
};

// Where a chunk's loop marks ReLU's active units: active[u] |= -1 for
// each entry of unit u with z > 0 or NaN (f' != 0), for the chunk's first
// entry of unit `unit` in rows of `units`. Null active: not marked.
struct ActiveMarks {
  int32_t* active;
  int unit;
  int units;
};

// Adds entries [i, n) of a chunk to its sums one by one, after its lanes
// (kWrite, kMark: as SumChunkIn; marks.unit is entry i's unit).
template <bool kWrite, bool kMark>
[[gnu::always_inline]] inline void AddTailIn(const float* z, float* a, int i,
                                             int n, float z_shift,
                                             float a_shift, float slope,
                                             ActiveMarks marks,
                                             ChunkSums& out) {
  int unit = marks.unit;
  for (; i < n; ++i) {
    const float zf = z[i];
    float av = a[i];
    if constexpr (kWrite) a[i] = av = Relu(zf, slope);
    const float ad = av - a_shift;
    const float zd = zf - z_shift;
    out.a_sum += ad;
    out.a_sum_squares += ad * ad;
    out.z_sum += zd;
    out.z_sum_squares += zd * zd;
    out.z_negative += zf < 0.0f;
    out.z_min = zf < out.z_min ? zf : out.z_min;
    out.z_max = zf > out.z_max ? zf : out.z_max;
    if constexpr (kMark) {
      if (!(zf <= 0.0f)) marks.active[unit] = -1;
      if (++unit == marks.units) unit = 0;
    }
  }
}

// The sums of one chunk of n entries around the shifts. kWrite: ReLU's A
// is computed from z with `slope`, stored to a, and summed from registers;
// otherwise A is read from a. Either way A's values, and so the sums, are
// the same bit for bit, as they are whether units are marked or not. The
// last n % 16 entries are added one by one after the lanes.
template <bool kWrite, bool kMark>
[[gnu::always_inline]] inline ChunkSums SumChunkIn(const float* z, float* a,
                                                   int n, float z_shift,
                                                   float a_shift, float slope,
                                                   ActiveMarks marks) {
  LaneSums sums;
  const SumLanes zs = SumLanes{} + z_shift;
  const SumLanes as = SumLanes{} + a_shift;
  const SumLanes zero = {};
  const SumLanes slopes = SumLanes{} + slope;
  int unit = marks.unit;  // of the next entry
  // A vector of entries within one row marks its units with one OR; one
  // that runs into the next row (once a row, when units % 16 != 0) lane by
  // lane.
  auto mark = [&](const SumLanes& zv) [[gnu::always_inline]] {
    const CountLanes on = ~(zv <= 0.0f);
    int32_t* active = marks.active;
    if (unit + kSumLanes <= marks.units) {
      CountLanes flags;
      std::memcpy(&flags, active + unit, sizeof(flags));
      flags |= on;
      std::memcpy(active + unit, &flags, sizeof(flags));
      unit += kSumLanes;
      if (unit == marks.units) unit = 0;
    } else {
      for (int k = 0; k < kSumLanes; ++k) {
        active[(unit + k) % marks.units] |= on[k];
      }
      unit = (unit + kSumLanes) % marks.units;
    }
  };
  // Entries [at, at + kSumLanes) into set h.
  auto add = [&](int at, int h) [[gnu::always_inline]] {
    SumLanes zv, av;
    LoadLanes(z + at, zv);
    if constexpr (kWrite) {
      av = zv > 0.0f ? zv : (slope == 0.0f ? zero : slopes * zv);
      StoreLanes(a + at, av);
    } else {
      LoadLanes(a + at, av);
    }
    sums.Add(h, zv, av, zs, as);
    if constexpr (kMark) mark(zv);
  };
  int i = 0;
  for (; i + 2 * kSumLanes <= n; i += 2 * kSumLanes) {
    add(i, 0);
    add(i + kSumLanes, 1);
  }
  for (; i + kSumLanes <= n; i += kSumLanes) add(i, 0);
  ChunkSums out = sums.Reduce();
  AddTailIn<kWrite, kMark>(z, a, i, n, z_shift, a_shift, slope,
                           ActiveMarks{marks.active, unit, marks.units}, out);
  return out;
}

GRADWATCH_WIDE_CLONES
void SumChunk(const float* z, const float* a, int n, float z_shift,
              float a_shift, ActiveMarks marks, ChunkSums* out) {
  // Not written: the kWrite = false instances only read a.
  float* const a_in = const_cast<float*>(a);
  *out = marks.active != nullptr
             ? SumChunkIn<false, true>(z, a_in, n, z_shift, a_shift, 0, marks)
             : SumChunkIn<false, false>(z, a_in, n, z_shift, a_shift, 0, marks);
}

// ReLU's tail after WriteReluAndSumVectorsAvx512's whole vectors: the
// portable loop's own tail, built as that loop is, so that a chunk's
// figures are the same bit for bit whichever loop summed its lanes.
GRADWATCH_WIDE_CLONES
void WriteReluTail(const float* z, float* a, int from, int n, float z_shift,
                   float a_shift, ActiveMarks marks, ChunkSums* out) {
  if (marks.active != nullptr) {
    AddTailIn<true, true>(z, a, from, n, z_shift, a_shift, 0, marks, *out);
  } else {
    AddTailIn<true, false>(z, a, from, n, z_shift, a_shift, 0, marks, *out);
  }
}

GRADWATCH_WIDE_CLONES
void WriteReluAndSumChunk(const float* z, float* a, int n, float slope,
                          float z_shift, float a_shift, ActiveMarks marks,
                          ChunkSums* out) {
  *out = marks.active != nullptr
             ? SumChunkIn<true, true>(z, a, n, z_shift, a_shift, slope, marks)
             : SumChunkIn<true, false>(z, a, n, z_shift, a_shift, slope, marks);
}

// The same sums in double, for chunks whose f32 sums overflowed.
// Also returns how many z are Inf or NaN: a chunk holding one has non-finite
// f32 sums, so its non-finite entries are counted here only.
int SumChunkInDouble(const float* z, const float* a, int n, float z_shift,
                     float a_shift, double* sums) {
  int z_nonfinite = 0;
  for (int i = 0; i < n; ++i) {
    z_nonfinite += !std::isfinite(z[i]);
    const double ad = static_cast<double>(a[i]) - a_shift;
    const double zd = static_cast<double>(z[i]) - z_shift;
    sums[0] += ad;
    sums[1] += ad * ad;
    sums[2] += zd;
    sums[3] += zd * zd;
  }
  return z_nonfinite;
}

// Values near the means of z and a over their first m <= kShiftSample
// entries, so that the shifted sums do not cancel: the means of the
// finite ones (0 if none is), in f32 (only the shift's nearness matters).
// One pass for both: its reductions cost more than its additions.
GRADWATCH_WIDE_CLONES
void HeadShifts(const float* z, const float* a, int m, float* z_shift,
                float* a_shift) {
  float z_sum = 0, a_sum = 0;
  int z_count = 0, a_count = 0;
#pragma omp simd reduction(+ : z_sum, a_sum, z_count, a_count)
  for (int i = 0; i < m; ++i) {
    uint32_t z_bits, a_bits;
    std::memcpy(&z_bits, z + i, sizeof(z_bits));
    std::memcpy(&a_bits, a + i, sizeof(a_bits));
    const bool z_finite = (z_bits & kAbsMask) < kInfBits;
    const bool a_finite = (a_bits & kAbsMask) < kInfBits;
    z_sum += z_finite ? z[i] : 0.0f;
    a_sum += a_finite ? a[i] : 0.0f;
    z_count += z_finite;
    a_count += a_finite;
  }
  *z_shift = z_count > 0 ? z_sum / static_cast<float>(z_count) : 0.0f;
  *a_shift = a_count > 0 ? a_sum / static_cast<float>(a_count) : 0.0f;
}

double ShiftedStd(double sum, double sum_squares, double n) {
  const double mean = sum / n;
  return std::sqrt(std::max(0.0, sum_squares / n - mean * mean));
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
                                 int max_rows, double saturation_eps,
                                 const v1::HistogramSpec& histogram,
                                 int max_parts)
    : f_(f),
      units_(units),
      max_parts_(std::max(max_parts, 1)),
      saturation_threshold_(
          static_cast<float>(saturation_eps * f.MaxDerivative())),
      max_abs_derivative_(units, 0.0f),
      inactive_(units, 0),
      saturated_(units, 0),
      chunk_sums_((static_cast<int64_t>(max_rows) * units + kMomentChunk - 1) /
                  kMomentChunk) {
  // ReLU (leaky with slope 0) is inactive where z <= 0: the chunk loops
  // mark the active units as they read z.
  if (f.kind == v1::RELU ||
      (f.kind == v1::LEAKY_RELU && f.negative_slope == 0.0f)) {
    part_active_.assign(static_cast<size_t>(max_parts_) * units, 0);
  }
  if (histogram.enabled() && histogram.bins() >= 2 &&
      histogram.min() < histogram.max()) {
    histogram_bins_ = static_cast<int>(histogram.bins());
    histogram_min_ = histogram.min();
    histogram_max_ = histogram.max();
    histogram_.assign(histogram_bins_ + 1, 0);
    histogram_tables_.assign(
        static_cast<size_t>(max_parts_) * kHistogramTables * histogram_.size(),
        0);
  }
}

void ActivationStats::Compute(const float* z, const float* a, int rows) {
  ComputePart(z, a, rows, 0, 1);
  Finish(z, a, rows);
}

void ActivationStats::ComputePart(const float* z, const float* a, int rows,
                                  int part, int parts) {
  ComputePartImpl(z, a, nullptr, rows, part, parts);
}

void ActivationStats::ComputePartWritingActivation(const float* z, float* a,
                                                   int rows, int part,
                                                   int parts) {
  ComputePartImpl(z, a, a, rows, part, parts);
}

void ActivationStats::ComputeWritingActivation(const float* z, float* a,
                                               int rows) {
  ComputePartWritingActivation(z, a, rows, 0, 1);
  Finish(z, a, rows);
}

void ActivationStats::ComputePartImpl(const float* z, const float* a,
                                      float* a_out, int rows, int part,
                                      int parts) {
  // Units in whole cache lines per part, so that parts never write to the
  // same line of the maxima.
  constexpr int kLine = 16;
  auto unit_bound = [&](int p) {
    return p == parts ? units_
                      : std::min(units_, units_ * p / parts / kLine * kLine);
  };
  const int unit_begin = unit_bound(part);
  const int unit_end = unit_bound(part + 1);
  // GELU's maximum stops mattering once it reaches both thresholds.
  const float gelu_stop =
      std::max(saturation_threshold_, std::numeric_limits<float>::min());
  int32_t* active = nullptr;
  if (!part_active_.empty() && parts <= max_parts_) {
    active = part_active_.data() + static_cast<int64_t>(part) * units_;
    std::fill(active, active + units_, 0);
  } else {
    // ReLU's derivative reads z only: while A is being written (by the
    // other parts too), z stands in for it.
    const float* a_in = a_out != nullptr ? z : a;
    ComputeMaxAbsDerivative(f_, gelu_stop, z + unit_begin, a_in + unit_begin,
                            rows, units_, unit_end - unit_begin,
                            max_abs_derivative_.data() + unit_begin);
  }

  const int64_t n = static_cast<int64_t>(rows) * units_;
  const int64_t chunks = (n + kMomentChunk - 1) / kMomentChunk;
  const int head = static_cast<int>(std::min<int64_t>(n, kShiftSample));
  float z_shift, a_shift;
  if (a_out != nullptr) {
    // From the first entries' A, computed here: other parts write them.
    float a_head[kShiftSample];
    for (int i = 0; i < head; ++i) a_head[i] = Relu(z[i], f_.negative_slope);
    HeadShifts(z, a_head, head, &z_shift, &a_shift);
  } else {
    HeadShifts(z, a, head, &z_shift, &a_shift);
  }
  if (part == 0) {  // for Finish
    shifts_ = {z_shift, a_shift};
    marked_parts_ = active != nullptr ? parts : 0;
    histogram_parts_ = parts <= max_parts_ ? parts : 0;
  }
  // Plain ReLU on AVX-512 CPUs: the same figures from a loop that leaves
  // the adders to the sums (relu_chunk_avx512.h).
  const bool relu_avx512 =
      f_.negative_slope == 0.0f && ReluChunkAvx512Supported();
  for (int64_t c = chunks * part / parts; c < chunks * (part + 1) / parts;
       ++c) {
    const int64_t start = c * kMomentChunk;
    const int count =
        static_cast<int>(std::min<int64_t>(kMomentChunk, n - start));
    // A written is summed as it is written; the same values in the same
    // order as Compute reading it: the same figures, bit for bit.
    const ActiveMarks marks{active, static_cast<int>(start % units_), units_};
    if (a_out != nullptr && relu_avx512) {
      const int whole = count / kSumLanes * kSumLanes;
      chunk_sums_[c] = WriteReluAndSumVectorsAvx512(
          z + start, a_out + start, whole, z_shift, a_shift, marks.active,
          marks.unit, marks.units);
      WriteReluTail(
          z + start, a_out + start, whole, count, z_shift, a_shift,
          {active, static_cast<int>((start + whole) % units_), units_},
          &chunk_sums_[c]);
    } else if (a_out != nullptr) {
      WriteReluAndSumChunk(z + start, a_out + start, count, f_.negative_slope,
                           z_shift, a_shift, marks, &chunk_sums_[c]);
    } else {
      SumChunk(z + start, a + start, count, z_shift, a_shift, marks,
               &chunk_sums_[c]);
    }
  }
  // The part's Z histogram, while its entries are in cache.
  if (has_histogram() && parts <= max_parts_) {
    const int64_t begin = std::min(n, chunks * part / parts * kMomentChunk);
    const int64_t end = std::min(n, chunks * (part + 1) / parts * kMomentChunk);
    CountHistogram(z + begin, end - begin,
                   histogram_tables_.data() + static_cast<size_t>(part) *
                                                  kHistogramTables *
                                                  histogram_.size());
  }
}

void ActivationStats::Finish(const float* z, const float* a, int rows) {
  // Locals, not members, in the loops: a byte store may alias any member,
  // which would keep GCC from vectorizing them.
  const int units = units_;
  float* const max_abs = max_abs_derivative_.data();
  if (marked_parts_ > 0) {
    // The parts' marks gathered in part 0's; ReLU's |f'| is 1 on an active
    // entry, so the largest is 1 or 0.
    int32_t* const active = part_active_.data();
    for (int p = 1; p < marked_parts_; ++p) {
      const int32_t* part = active + static_cast<int64_t>(p) * units;
      for (int j = 0; j < units; ++j) active[j] |= part[j];
    }
    for (int j = 0; j < units; ++j) {
      max_abs[j] = active[j] != 0 ? 1.0f : 0.0f;
    }
  }
  const float threshold = saturation_threshold_;
  uint8_t* const inactive = inactive_.data();
  uint8_t* const saturated = saturated_.data();
  int inactive_units = 0, saturated_units = 0;
  for (int j = 0; j < units; ++j) {
    const bool is_inactive = max_abs[j] == 0.0f;
    const bool is_saturated = max_abs[j] < threshold;
    inactive[j] = is_inactive;
    saturated[j] = is_saturated;
    inactive_units += is_inactive;
    saturated_units += is_saturated;
  }
  inactive_units_ = inactive_units;
  saturated_units_ = saturated_units;

  const int64_t n = static_cast<int64_t>(rows) * units_;
  moments_ = ActivationMoments();
  if (n > 0) AddUpMoments(z, a, n);
  if (has_histogram()) {
    // The parts' tables, or, when there were more parts than tables, one
    // count of the whole batch here.
    if (histogram_parts_ == 0) CountHistogram(z, n, histogram_tables_.data());
    const int tables = std::max(histogram_parts_, 1) * kHistogramTables;
    const size_t slots = histogram_.size();
    for (size_t b = 0; b < slots; ++b) {
      uint64_t total = 0;
      for (int t = 0; t < tables; ++t) {
        total += histogram_tables_[t * slots + b];
      }
      histogram_[b] = total;
    }
  }
}

// The chunks' f32 sums are added in chunk order, whatever the parts were.
void ActivationStats::AddUpMoments(const float* z, const float* a, int64_t n) {
  const auto [z_shift, a_shift] = shifts_;
  double sums[4] = {0, 0, 0, 0};  // a, a^2, z, z^2 around the shifts
  int64_t z_negative = 0, z_nonfinite = 0;
  float z_min = kInf, z_max = -kInf;
  for (int64_t start = 0; start < n; start += kMomentChunk) {
    const ChunkSums& c = chunk_sums_[start / kMomentChunk];
    if (std::isfinite(c.a_sum_squares) && std::isfinite(c.z_sum_squares)) {
      sums[0] += c.a_sum;
      sums[1] += c.a_sum_squares;
      sums[2] += c.z_sum;
      sums[3] += c.z_sum_squares;
    } else {
      z_nonfinite += SumChunkInDouble(
          z + start, a + start,
          static_cast<int>(std::min<int64_t>(kMomentChunk, n - start)), z_shift,
          a_shift, sums);
    }
    z_negative += c.z_negative;
    z_min = std::min(z_min, c.z_min);
    z_max = std::max(z_max, c.z_max);
  }
  const double count = static_cast<double>(n);
  moments_.a_mean = a_shift + sums[0] / count;
  moments_.a_std = ShiftedStd(sums[0], sums[1], count);
  moments_.z_mean = z_shift + sums[2] / count;
  moments_.z_std = ShiftedStd(sums[2], sums[3], count);
  const bool any_number = z_min <= z_max;
  moments_.z_min = any_number ? z_min : std::nan("");
  moments_.z_max = any_number ? z_max : std::nan("");
  moments_.z_negative_fraction = static_cast<double>(z_negative) / count;
  moments_.z_nonfinite_count = static_cast<uint64_t>(z_nonfinite);
}

void ActivationStats::CountHistogram(const float* z, int64_t n,
                                     uint64_t* tables) const {
  const double lo = histogram_min_;
  const double scale = histogram_bins_ / (static_cast<double>(histogram_max_) -
                                          static_cast<double>(histogram_min_));
  const double top = histogram_bins_ - 1;
  const int nan_slot = histogram_bins_;
  const size_t slots = histogram_.size();
  std::fill(tables, tables + kHistogramTables * slots, 0);
  int32_t index[kHistogramChunk];
  for (int64_t start = 0; start < n; start += kHistogramChunk) {
    const int count =
        static_cast<int>(std::min<int64_t>(kHistogramChunk, n - start));
    HistogramBins(z + start, count, lo, scale, top, nan_slot, index);
    int i = 0;
    for (; i + kHistogramTables <= count; i += kHistogramTables) {
      for (int t = 0; t < kHistogramTables; ++t) {
        ++tables[t * slots + index[i + t]];
      }
    }
    for (; i < count; ++i) ++tables[index[i]];
  }
}

void ActivationStats::ClearActiveUnits(const ActivationFunction& f,
                                       const float* z, const float* a, int rows,
                                       int units, uint8_t* inactive,
                                       float* scratch) {
  ComputeMaxAbsDerivative(f, std::numeric_limits<float>::min(), z, a, rows,
                          units, units, scratch);
  for (int j = 0; j < units; ++j) inactive[j] &= scratch[j] == 0.0f;
}

}  // namespace gradwatch::engine
